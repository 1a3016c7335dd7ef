#pragma once

// CWTs (RFC 8392) as tagged COSE_Sign1 (RFC 9052, tag 18) and the generic COSE_Sign1 layer.

#include <optional>
#include <string>

#include "attest/token/claims.h"
#include "attest/token/signer.h"
#include "platform/base/cbor.h"

namespace warden::token {

/// Limits for untrusted COSE/CWT bytes (indefinite lengths are always refused).
inline constexpr cbor::Limits kCoseLimits{
    .max_input = 64 * 1024, .max_items = 4096, .max_depth = 12};

/// A decoded, NOT verified COSE_Sign1.
struct CoseSign1 {
  Bytes protected_bytes;         ///< the protected header bstr exactly as received
  cbor::Value protected_header;  ///< its decoded map (empty map when zero-length)
  cbor::Value unprotected;
  Bytes payload;
  Bytes signature;
  [[nodiscard]] const cbor::Value* header(
      std::int64_t label) const;  ///< protected, then unprotected
};

/// Decodes COSE_Sign1 bytes (tag 18 required; an outer CWT tag 61 is accepted).
Result<CoseSign1> decode_cose_sign1(ByteSpan data, const cbor::Limits& limits = kCoseLimits);
/// Sig_structure ["Signature1", protected, external_aad, payload] encoded (RFC 9052 4.4).
Bytes sig_structure(ByteSpan protected_bytes, ByteSpan external_aad, ByteSpan payload);

/// Signs `payload`: protected {1: alg[, 16: content_type]}, unprotected {4: kid}; tag 18.
Result<Bytes> sign_cose_sign1(Signer& signer, ByteSpan payload,
                              std::optional<std::string> content_type = std::nullopt);
/// Verifies with the key found by kid (protected or unprotected label 4) in `keys`.
Result<CoseSign1> verify_cose_sign1(ByteSpan data, const KeySet& keys,
                                    const std::vector<Alg>& allowed = {Alg::kEs256, Alg::kEs384,
                                                                       Alg::kEdDsa});

/// Mints a CWT carrying `claims` (ES256 via the signer).
Result<Bytes> mint_cwt(Signer& signer, const Claims& claims,
                       std::optional<std::string> content_type = std::nullopt);

struct VerifiedCwt {
  CoseSign1 message;
  cbor::Value payload;
  Claims claims;
};
/// Verifies signature and claims; same error codes as verify_jwt.
Result<VerifiedCwt> verify_cwt(ByteSpan data, const KeySet& keys, const ClaimChecks& checks);

}  // namespace warden::token
