#include "attest/protocol/errors.h"

#include <array>

#include "attest/token/json.h"

namespace warden::protocol {
namespace {

using E = ErrorCode;
using G = GrpcCode;

// RFC 9110: 400 a request the server will not process as sent; 401 the request's credentials
// failed; 403 understood and refused; 409 conflicts with the current state (a nonce, jti or
// proof seen before included); 429 too many requests (limit_exceeded from a service is a rate
// or a capacity; a body over its cap is 413, which the HTTP layers answer themselves);
// 503 a peer or the service itself cannot serve now.
constexpr std::array kTable{
    ErrorInfo{E::kInternal, 500, G::kInternal, false},
    ErrorInfo{E::kInvalidArgument, 400, G::kInvalidArgument, false},
    ErrorInfo{E::kMalformed, 400, G::kInvalidArgument, false},
    ErrorInfo{E::kLimitExceeded, 429, G::kResourceExhausted, false},
    ErrorInfo{E::kUnsupported, 400, G::kUnimplemented, false},
    ErrorInfo{E::kNotFound, 404, G::kNotFound, false},
    ErrorInfo{E::kAlreadyExists, 409, G::kAlreadyExists, false},
    ErrorInfo{E::kIo, 500, G::kInternal, false},
    ErrorInfo{E::kCrypto, 500, G::kInternal, false},
    ErrorInfo{E::kTpm, 500, G::kInternal, false},
    ErrorInfo{E::kUnavailable, 503, G::kUnavailable, false},
    ErrorInfo{E::kTimeout, 503, G::kDeadlineExceeded, false},
    ErrorInfo{E::kPermissionDenied, 403, G::kPermissionDenied, false},
    ErrorInfo{E::kBadSignature, 401, G::kUnauthenticated, true},
    ErrorInfo{E::kNonceMismatch, 401, G::kUnauthenticated, true},
    ErrorInfo{E::kPcrDigestMismatch, 403, G::kPermissionDenied, false},
    ErrorInfo{E::kPcrSelectionMismatch, 403, G::kPermissionDenied, false},
    ErrorInfo{E::kReplayMismatch, 403, G::kPermissionDenied, false},
    ErrorInfo{E::kPolicyViolation, 403, G::kPermissionDenied, false},
    ErrorInfo{E::kExpired, 401, G::kUnauthenticated, true},
    ErrorInfo{E::kNotYetValid, 401, G::kUnauthenticated, true},
    ErrorInfo{E::kRevoked, 403, G::kPermissionDenied, false},
    ErrorInfo{E::kReplay, 409, G::kAlreadyExists, true},
    ErrorInfo{E::kAudienceMismatch, 403, G::kPermissionDenied, false},
    ErrorInfo{E::kUnknownKey, 401, G::kUnauthenticated, true},
    ErrorInfo{E::kAlgorithmNotAllowed, 403, G::kPermissionDenied, false},
    ErrorInfo{E::kProofMismatch, 401, G::kUnauthenticated, true},
    ErrorInfo{E::kConflict, 409, G::kAborted, false},
    ErrorInfo{E::kUntrusted, 401, G::kUnauthenticated, true},
};

constexpr bool in_enum_order() {
  for (std::size_t i = 0; i < kTable.size(); ++i) {
    if (static_cast<std::size_t>(kTable[i].code) != i) return false;
  }
  return true;
}
static_assert(in_enum_order(), "error table rows must follow ErrorCode's order");
static_assert(kTable.back().code == ErrorCode::kUntrusted,
              "a new ErrorCode needs its row in the error table (and the last-code check here)");

}  // namespace

std::span<const ErrorInfo> error_table() { return kTable; }

const ErrorInfo& error_info(ErrorCode code) {
  const auto i = static_cast<std::size_t>(code);
  return i < kTable.size() ? kTable[i] : kTable[0];
}

std::optional<ErrorCode> error_code_from_string(std::string_view name) {
  for (const auto& row : kTable) {
    if (to_string(row.code) == name) return row.code;
  }
  return std::nullopt;
}

std::string public_reason(const Error& error) {
  return error.code == ErrorCode::kInternal ? std::string("internal error") : error.message;
}

std::string error_json(std::string_view code, std::string_view reason) {
  return json::ObjectWriter().str("error", code).str("reason", reason).done();
}

Result<ErrorResponse> parse_error_json(std::string_view body) {
  auto o = json::parse_object(body);
  if (!o) return fail(std::move(o).error().context("error response"));
  const auto code = json::get_string(*o, "error");
  const auto reason = json::get_string(*o, "reason");
  if (!code || !reason) {
    return fail(ErrorCode::kMalformed,
                "error response: expected string members \"error\" and \"reason\"");
  }
  return ErrorResponse{std::string(*code), std::string(*reason)};
}

}  // namespace warden::protocol
