#pragma once

#include <string_view>

#include "attest/quote/quote.h"
#include "platform/base/bytes.h"
#include "platform/base/clock.h"
#include "platform/base/error.h"
#include "platform/base/openssl.h"

/// TPM2_MakeCredential in software, the verifier's half of credential activation (TPM-NOTES §2.2).
namespace warden::attest::credential {

/// KDFa (SP 800-108 counter mode with HMAC, TPM Part 1 11.4.10.2); `label` without its NUL (added).
Result<Bytes> kdfa(ossl::Hash hash, ByteSpan key, std::string_view label, ByteSpan context_u,
                   ByteSpan context_v, std::size_t bits);
/// KDFe (SP 800-56A concatenation, TPM Part 1 11.4.10.3); `label` without its NUL (added).
Result<Bytes> kdfe(ossl::Hash hash, ByteSpan z, std::string_view label, ByteSpan party_u,
                   ByteSpan party_v, std::size_t bits);

struct Credential {
  Bytes id_object;         ///< TPM2B_ID_OBJECT, with its u16 size
  Bytes encrypted_secret;  ///< TPM2B_ENCRYPTED_SECRET, with its u16 size
  /// tpm2-tools' credential file: BADCC0DE || 00000001 || id_object || encrypted_secret.
  [[nodiscard]] Bytes tpm2_tools_file() const;
};

/// Wraps `secret` (1..|H| bytes, H = the EK's nameAlg) for the key named `ak_name` so that only the
/// TPM holding `ek` can recover it with TPM2_ActivateCredential. RSA EKs: OAEP with label
/// "IDENTITY\0"; ECC EKs (P-256/P-384/P-521): ephemeral ECDH + KDFe. The seed and the ECC
/// ephemeral key come from `random` (RSA-OAEP's own padding randomness comes from OpenSSL).
Result<Credential> make_credential(const quote::PublicArea& ek, ByteSpan ak_name, ByteSpan secret,
                                   Random& random);

}  // namespace warden::attest::credential
