#pragma once

// Size caps of the wire protocol (docs/protocol.md "Limits"). Decoders refuse anything larger
// with ErrorCode::kLimitExceeded before or while decoding.

#include <cstddef>
#include <cstdint>

namespace warden::protocol::limits {

inline constexpr std::size_t kKiB = 1024;
inline constexpr std::size_t kMiB = 1024 * kKiB;

inline constexpr std::size_t kId = 128;         ///< enrollment/device ids, jti
inline constexpr std::size_t kShortText = 256;  ///< hostname, labels, versions, selection
inline constexpr std::size_t kText = 1024;      ///< audience, reasons, selectors
inline constexpr std::size_t kPath = 4096;      ///< exe_path (PATH_MAX)
inline constexpr std::size_t kTpmBlob = 1024;   ///< TPM2B_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE,
                                                ///< TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET
inline constexpr std::size_t kName = 68;        ///< nameAlg + SHA-512 digest
inline constexpr std::size_t kCert = 8 * kKiB;  ///< one DER certificate
inline constexpr std::size_t kChain = 8;        ///< certificates in ek_chain
inline constexpr std::size_t kNonceMin = 16;
inline constexpr std::size_t kNonceMax = 64;
inline constexpr std::size_t kProof = 64;      ///< activation proof (HMAC-SHA256 = 32)
inline constexpr std::size_t kPcrValues = 96;  ///< 4 banks x 24 PCRs
inline constexpr std::size_t kDigest = 64;
inline constexpr std::size_t kBootLog = 1 * kMiB;
inline constexpr std::size_t kImaEntries = 8 * kMiB;
inline constexpr std::size_t kCel = 4 * kMiB;
inline constexpr std::size_t kJwk = 1 * kKiB;
inline constexpr std::size_t kReasons = 256;
inline constexpr std::size_t kApprovedPolicy = 4 * kKiB;  ///< tpm_policy::kMaxApprovedPolicySize
inline constexpr std::size_t kToken = 16 * kKiB;          ///< device token, workload token
inline constexpr std::size_t kJws = 8 * kKiB;             ///< DPoP-style proof
inline constexpr std::size_t kScopes = 64;
inline constexpr std::uint64_t kMaxTtl = 86400;  ///< seconds; issuers cap lower by policy
inline constexpr std::size_t kJtis = 1024;
inline constexpr std::size_t kErrorReason = 4 * kKiB;
inline constexpr std::uint64_t kImaOffsetMax = (1ULL << 53);

/// Whole-body caps (max_input of the CBOR decoder).
inline constexpr std::size_t kSmallBody = 4 * kKiB;  ///< activate, challenge, revoke response
inline constexpr std::size_t kEnrollRequestBody = 96 * kKiB;
inline constexpr std::size_t kEnrollResponseBody = 8 * kKiB;
inline constexpr std::size_t kAttestRequestBody = kBootLog + kImaEntries + kCel + 64 * kKiB;
inline constexpr std::size_t kAttestResponseBody = 512 * kKiB;
inline constexpr std::size_t kTokenRequestBody = 96 * kKiB;
inline constexpr std::size_t kTokenResponseBody = 32 * kKiB;
inline constexpr std::size_t kRevokeRequestBody = 256 * kKiB;
inline constexpr std::size_t kErrorBody = 8 * kKiB;

}  // namespace warden::protocol::limits
