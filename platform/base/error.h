#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace warden {

/// Stable, machine-readable error classes. The string form (to_string) is part of the wire
/// protocol (issuer and local API error codes), so values are only ever appended.
enum class ErrorCode : std::uint16_t {
  kInternal,
  kInvalidArgument,
  kMalformed,      ///< untrusted bytes do not parse
  kLimitExceeded,  ///< input larger/deeper/longer than allowed
  kUnsupported,
  kNotFound,
  kAlreadyExists,
  kIo,
  kCrypto,
  kTpm,
  kUnavailable,  ///< a peer (TPM, issuer, database) cannot be reached
  kTimeout,
  kPermissionDenied,
  kBadSignature,
  kNonceMismatch,
  kPcrDigestMismatch,
  kPcrSelectionMismatch,
  kReplayMismatch,
  kPolicyViolation,
  kExpired,
  kNotYetValid,
  kRevoked,
  kReplay,  ///< a nonce, jti or proof seen before
  kAudienceMismatch,
  kUnknownKey,
  kAlgorithmNotAllowed,
  kProofMismatch,
  kConflict,
  kUntrusted,  ///< a certificate or key that does not chain to a configured trust anchor
};

/// "snake_case" name of a code, stable across releases.
std::string_view to_string(ErrorCode code);

/// An error: a code, a message that names the operation, what was expected and what was found,
/// and the TSS or OpenSSL codes where one of those libraries failed.
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::uint32_t tss_rc = 0;
  unsigned long openssl_code = 0;

  /// Prefixes the message with the operation that was being attempted ("enroll: " + message).
  [[nodiscard]] Error context(std::string_view operation) const&;
  [[nodiscard]] Error context(std::string_view operation) &&;
};

/// The one error model: a value or an Error. Mirrors std::expected (tl::expected underneath).
template <class T>
class [[nodiscard]] Result : public tl::expected<T, Error> {
 public:
  using Base = tl::expected<T, Error>;
  using Base::Base;
  Result(Base base) : Base(std::move(base)) {}  // NOLINT(google-explicit-constructor): monadic ops
};

/// Builds the unexpected side of a Result: `return fail(ErrorCode::kMalformed, "…");`
inline tl::unexpected<Error> fail(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message), 0, 0});
}
inline tl::unexpected<Error> fail(Error error) { return tl::unexpected<Error>(std::move(error)); }

/// Status of an operation that returns nothing.
using Status = Result<void>;
inline Status ok() { return {}; }

}  // namespace warden

/// Propagates an error from an expression yielding a Result; otherwise evaluates to nothing.
#define WARDEN_TRY_STATUS(expr)                                     \
  do {                                                              \
    if (auto warden_try_result_ = (expr); !warden_try_result_) {    \
      return ::warden::fail(std::move(warden_try_result_).error()); \
    }                                                               \
  } while (false)
