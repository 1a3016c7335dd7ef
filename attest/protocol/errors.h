#pragma once

// The one error table of every front end (the issuer's HTTP API, the agent's local API and the
// coming gRPC one) and the one `{"error": code, "reason": message}` JSON envelope.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "attest/protocol/messages.h"
#include "platform/base/error.h"

namespace warden::protocol {

/// grpc::StatusCode values (google.rpc.Code), as plain numbers: nothing here links gRPC.
enum class GrpcCode : std::uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

/// One row of the table.
struct ErrorInfo {
  ErrorCode code;
  unsigned http_status;
  GrpcCode grpc;
  /// The request's own credentials or evidence failed (a signature, proof, nonce, key, validity
  /// window). HTTP says 401 for those where the caller presented them; a server that
  /// authenticates callers another way (the local API: SO_PEERCRED) and only relays such a
  /// failure from upstream answers 403 instead.
  bool credential;
};

/// Every ErrorCode, in enum order.
std::span<const ErrorInfo> error_table();
/// The row of `code` (the kInternal row for a value outside the enum).
const ErrorInfo& error_info(ErrorCode code);
inline unsigned http_status(ErrorCode code) { return error_info(code).http_status; }
inline GrpcCode grpc_code(ErrorCode code) { return error_info(code).grpc; }
/// The code whose to_string() is `name`; nullopt for a name no release used.
std::optional<ErrorCode> error_code_from_string(std::string_view name);

/// The reason a client is shown: internal errors keep their detail for the log.
std::string public_reason(const Error& error);

/// {"error": code, "reason": reason} as compact JSON.
std::string error_json(std::string_view code, std::string_view reason);
/// Parses an error envelope from untrusted JSON: an object with string "error" and "reason".
Result<ErrorResponse> parse_error_json(std::string_view body);

}  // namespace warden::protocol
