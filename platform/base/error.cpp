#include "platform/base/error.h"

namespace warden {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kMalformed:
      return "malformed";
    case ErrorCode::kLimitExceeded:
      return "limit_exceeded";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kCrypto:
      return "crypto";
    case ErrorCode::kTpm:
      return "tpm";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kPermissionDenied:
      return "permission_denied";
    case ErrorCode::kBadSignature:
      return "bad_signature";
    case ErrorCode::kNonceMismatch:
      return "nonce_mismatch";
    case ErrorCode::kPcrDigestMismatch:
      return "pcr_digest_mismatch";
    case ErrorCode::kPcrSelectionMismatch:
      return "pcr_selection_mismatch";
    case ErrorCode::kReplayMismatch:
      return "replay_mismatch";
    case ErrorCode::kPolicyViolation:
      return "policy_violation";
    case ErrorCode::kExpired:
      return "expired";
    case ErrorCode::kNotYetValid:
      return "not_yet_valid";
    case ErrorCode::kRevoked:
      return "revoked";
    case ErrorCode::kReplay:
      return "replay";
    case ErrorCode::kAudienceMismatch:
      return "audience_mismatch";
    case ErrorCode::kUnknownKey:
      return "unknown_key";
    case ErrorCode::kAlgorithmNotAllowed:
      return "algorithm_not_allowed";
    case ErrorCode::kProofMismatch:
      return "proof_mismatch";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kUntrusted:
      return "untrusted";
  }
  return "internal";
}

Error Error::context(std::string_view operation) const& {
  Error copy = *this;
  return std::move(copy).context(operation);
}

Error Error::context(std::string_view operation) && {
  message.insert(0, std::string(operation) + ": ");
  return std::move(*this);
}

}  // namespace warden
