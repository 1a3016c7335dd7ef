#pragma once

// Agent <-> issuer wire protocol (docs/protocol.md): one plain struct per message, encode() to
// deterministic CBOR and decode_<message>() from untrusted bytes under per-message limits.
//
// Every message is a CBOR map with small unsigned integer keys (1, 2, ...), like COSE/CWT.
// Decoders reject: non-map bodies, non-integer keys, duplicate keys, unknown non-negative keys,
// missing required fields, wrong types and oversized fields; errors name the message and field
// ("enroll request: field ek_cert: expected bytes, found text"). Negative keys are reserved for
// extensions and are ignored. Encoders write keys in ascending order and omit absent optionals,
// so the same struct always yields the same bytes.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "platform/base/bytes.h"
#include "platform/base/error.h"

namespace warden::protocol {

/// The media type of every request and response body.
inline constexpr std::string_view kContentType = "application/cbor";

// ---- POST /v1/enroll --------------------------------------------------------------------------

struct DeviceMetadata {
  std::string hostname;
  std::string machine_id;
  std::optional<std::string> owner_label;
  std::string agent_version;
  bool operator==(const DeviceMetadata&) const = default;
};

struct EnrollRequest {
  Bytes ek_public;               ///< TPM2B_PUBLIC of the EK (marshalled, with size)
  std::optional<Bytes> ek_cert;  ///< DER EK certificate from NV, if present
  std::vector<Bytes> ek_chain;   ///< DER intermediates, leaf issuer first (may be empty)
  Bytes ak_public;               ///< TPM2B_PUBLIC of the AK
  Bytes ak_name;                 ///< TPM2B_NAME body: nameAlg (2 bytes) || digest
  DeviceMetadata metadata;
  bool operator==(const EnrollRequest&) const = default;
};

struct EnrollResponse {
  std::string enrollment_id;
  Bytes credential_blob;         ///< TPM2B_ID_OBJECT (MakeCredential output)
  Bytes encrypted_secret;        ///< TPM2B_ENCRYPTED_SECRET
  std::uint64_t expires_at = 0;  ///< unix seconds; activate before this
  /// Key -1 (an extension older agents ignore): TPM2B_PUBLIC of the issuer's sealing authority,
  /// the key sealed secrets are bound to with TPM2_PolicyAuthorize (docs/sealing.md).
  std::optional<Bytes> seal_authority = std::nullopt;
  bool operator==(const EnrollResponse&) const = default;
};

// ---- POST /v1/enroll/{id}/activate ------------------------------------------------------------

struct ActivateRequest {
  std::string enrollment_id;  ///< must equal the {id} of the URL
  Bytes proof;                ///< activation_proof(secret, enrollment_id, ak_name), 32 bytes
  bool operator==(const ActivateRequest&) const = default;
};

struct ActivateResponse {
  std::string device_id;
  bool operator==(const ActivateResponse&) const = default;
};

/// HMAC-SHA256(key = recovered credential secret, "warden-activate-v1" || 0x00 ||
/// enrollment_id || 0x00 || ak_name). Never sends the secret itself; binds the proof to this
/// enrollment and AK. The issuer accepts one activation attempt per enrollment id.
Result<Bytes> activation_proof(ByteSpan secret, std::string_view enrollment_id, ByteSpan ak_name);

// ---- POST /v1/challenge -----------------------------------------------------------------------

struct ChallengeRequest {
  std::string device_id;
  bool operator==(const ChallengeRequest&) const = default;
};

struct ChallengeResponse {
  Bytes nonce;                   ///< 16..64 bytes; the quote's qualifying data
  std::uint64_t expires_at = 0;  ///< unix seconds
  bool operator==(const ChallengeResponse&) const = default;
};

// ---- POST /v1/attest --------------------------------------------------------------------------

/// A TPM-signed attestation: TPMS_ATTEST bytes (the TPM2B_ATTEST body) and TPMT_SIGNATURE.
struct SignedAttest {
  Bytes attest;
  Bytes signature;
  bool operator==(const SignedAttest&) const = default;
};

struct PcrValue {
  std::uint16_t alg = 0;  ///< TPM_ALG_ID of the bank
  std::uint8_t pcr = 0;   ///< 0..23
  Bytes digest;
  bool operator==(const PcrValue&) const = default;
};

enum class ImaFormat : std::uint8_t { kBinary = 0, kAscii = 1 };

struct ImaLog {
  std::uint64_t offset = 0;  ///< index of the first entry in `entries` within the kernel's list
  Bytes entries;             ///< the measurement list from `offset` on, in `format`
  ImaFormat format = ImaFormat::kBinary;
  bool operator==(const ImaLog&) const = default;
};

struct BindingKey {
  Bytes public_area;     ///< TPM2B_PUBLIC of the TPM-resident binding key
  SignedAttest certify;  ///< TPM2_Certify of it by the AK (qualifying data = nonce)
  bool operator==(const BindingKey&) const = default;
};

/// Software session key certified by the binding key: `signature` is a TPMT_SIGNATURE by the
/// binding key over SHA-256(session_key_signed_bytes(nonce, jkt)), jkt = RFC 7638 thumbprint.
struct SessionKey {
  std::string jwk;  ///< public JWK (JSON text), EC P-256
  Bytes signature;
  bool operator==(const SessionKey&) const = default;
};

/// "warden-session-key-v1" || 0x00 || nonce || jkt (raw 32-byte SHA-256 thumbprint).
Bytes session_key_signed_bytes(ByteSpan nonce, ByteSpan jkt);

struct AttestRequest {
  std::string device_id;
  Bytes nonce;
  SignedAttest quote;
  std::string pcr_selection;         ///< PcrSelection::to_string() form, e.g. "sha256:0,1,2,3"
  std::vector<PcrValue> pcr_values;  ///< optional, informational only (may be empty)
  Bytes boot_log;                    ///< TCG PC Client event log (may be empty)
  std::optional<ImaLog> ima;
  std::optional<Bytes> cel;  ///< container Canonical Event Log (CBOR)
  BindingKey binding_key;
  std::optional<SessionKey> session_key;
  std::optional<std::string> kernel_version;
  /// Key -1 (extension): the PCRs the agent's sealed secrets are bound to, sha256 bank only and
  /// within pcr_selection; asks for an ApprovedPolicy of their quoted values.
  std::optional<std::string> seal_pcrs;
  bool operator==(const AttestRequest&) const = default;
};

enum class Verdict : std::uint8_t { kPass = 0, kFail = 1 };

struct Reason {
  std::string code;  ///< to_string(ErrorCode), e.g. "pcr_digest_mismatch"
  std::string subject;
  std::optional<std::string> expected;
  std::optional<std::string> found;
  bool operator==(const Reason&) const = default;
};

struct AttestResponse {
  Verdict verdict = Verdict::kFail;
  std::vector<Reason> reasons;
  std::string policy_version;
  std::optional<Bytes> device_token;  ///< CWT (COSE_Sign1); present iff verdict is pass
  std::optional<std::uint64_t> expires_at;
  std::uint64_t ima_next_offset = 0;  ///< where the next incremental IMA upload starts
  /// Key -1 (extension): a serialized attest::tpm_policy::ApprovedPolicy of the quoted seal_pcrs,
  /// only with verdict pass and only when the request named seal_pcrs.
  std::optional<Bytes> approved_policy;
  bool operator==(const AttestResponse&) const = default;
};

// ---- POST /v1/token ---------------------------------------------------------------------------

struct WorkloadSelectors {
  std::optional<std::uint32_t> uid;
  std::optional<std::uint32_t> gid;
  std::optional<std::string> systemd_unit;
  std::optional<std::string> container_id;
  std::optional<std::string> container_runtime;
  std::optional<std::string> image_ref;
  std::optional<std::string> image_digest;
  std::optional<std::string> exe_path;
  std::optional<std::string> exe_digest;
  bool operator==(const WorkloadSelectors&) const = default;
};

enum class TokenFormat : std::uint8_t { kJwt = 0, kCwt = 1 };

struct TokenRequest {
  Bytes device_token;  ///< the CWT from AttestResponse
  std::string proof;   ///< DPoP-style compact JWS by the device's bound key
  WorkloadSelectors selectors;
  std::string audience;
  std::vector<std::string> scopes;
  std::uint32_t ttl = 0;  ///< seconds requested (the issuer may shorten it)
  TokenFormat format = TokenFormat::kJwt;
  bool operator==(const TokenRequest&) const = default;
};

struct TokenResponse {
  std::variant<std::string, Bytes> token;  ///< compact JWT text, or CWT bytes
  std::string jti;
  std::uint64_t expires_at = 0;
  std::uint64_t status_index = 0;  ///< index in the issuer's Token Status List
  bool operator==(const TokenResponse&) const = default;
};

// ---- POST /v1/revoke --------------------------------------------------------------------------

struct RevokeRequest {
  std::string device_id;
  std::string reason;
  std::uint64_t timestamp = 0;    ///< unix seconds; the issuer refuses stale/future requests
  std::vector<std::string> jtis;  ///< empty: revoke every token of the device
  Bytes signature;  ///< TPMT_SIGNATURE by the binding key over SHA-256(revoke_signed_bytes())
  bool operator==(const RevokeRequest&) const = default;
};

/// The bytes that get signed: the request's canonical encoding without the signature field.
Bytes revoke_signed_bytes(const RevokeRequest& request);

struct RevokeResponse {
  std::uint64_t revoked = 0;
  bool operator==(const RevokeResponse&) const = default;
};

// ---- Errors (any endpoint, HTTP 4xx/5xx) ------------------------------------------------------

struct ErrorResponse {
  std::string code;  ///< to_string(ErrorCode), stable snake_case
  std::string reason;
  bool operator==(const ErrorResponse&) const = default;
};

ErrorResponse error_response(const Error& error);
/// Back to an Error; an unknown code maps to ErrorCode::kInternal with the code in the message.
Error to_error(const ErrorResponse& response);

// ---- Encoding ---------------------------------------------------------------------------------

Bytes encode(const EnrollRequest& m);
Bytes encode(const EnrollResponse& m);
Bytes encode(const ActivateRequest& m);
Bytes encode(const ActivateResponse& m);
Bytes encode(const ChallengeRequest& m);
Bytes encode(const ChallengeResponse& m);
Bytes encode(const AttestRequest& m);
Bytes encode(const AttestResponse& m);
Bytes encode(const TokenRequest& m);
Bytes encode(const TokenResponse& m);
Bytes encode(const RevokeRequest& m);
Bytes encode(const RevokeResponse& m);
Bytes encode(const ErrorResponse& m);

Result<EnrollRequest> decode_enroll_request(ByteSpan data);
Result<EnrollResponse> decode_enroll_response(ByteSpan data);
Result<ActivateRequest> decode_activate_request(ByteSpan data);
Result<ActivateResponse> decode_activate_response(ByteSpan data);
Result<ChallengeRequest> decode_challenge_request(ByteSpan data);
Result<ChallengeResponse> decode_challenge_response(ByteSpan data);
Result<AttestRequest> decode_attest_request(ByteSpan data);
Result<AttestResponse> decode_attest_response(ByteSpan data);
Result<TokenRequest> decode_token_request(ByteSpan data);
Result<TokenResponse> decode_token_response(ByteSpan data);
Result<RevokeRequest> decode_revoke_request(ByteSpan data);
Result<RevokeResponse> decode_revoke_response(ByteSpan data);
Result<ErrorResponse> decode_error_response(ByteSpan data);

}  // namespace warden::protocol
