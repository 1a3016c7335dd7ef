#pragma once

#include <cstdint>
#include <string>

#include "attest/pcr_values.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"
#include "platform/base/openssl.h"
#include "platform/base/pcr_selection.h"

/// TPM quotes and certifications (TPM-NOTES §3): parse TPMS_ATTEST, TPMT_SIGNATURE and
/// TPMT_PUBLIC/TPM2B_PUBLIC, compute object Names, verify signatures with OpenSSL 3 EVP.
/// Parsed structures are unverified; verify_quote/verify_certify return Verified* types.
namespace warden::attest::quote {

inline constexpr std::uint32_t kTpmGeneratedValue = 0xFF544347;
inline constexpr std::uint16_t kStAttestQuote = 0x8018;
inline constexpr std::uint16_t kStAttestCertify = 0x8017;

inline constexpr std::uint16_t kAlgRsa = 0x0001;
inline constexpr std::uint16_t kAlgEcc = 0x0023;
inline constexpr std::uint16_t kAlgNull = 0x0010;
inline constexpr std::uint16_t kAlgRsassa = 0x0014;
inline constexpr std::uint16_t kAlgRsapss = 0x0016;
inline constexpr std::uint16_t kAlgEcdsa = 0x0018;
inline constexpr std::uint16_t kEccNistP256 = 0x0003;
inline constexpr std::uint16_t kEccNistP384 = 0x0004;
inline constexpr std::uint16_t kEccNistP521 = 0x0005;

/// TPMA_OBJECT bits.
enum ObjectAttribute : std::uint32_t {
  kFixedTpm = 1u << 1,
  kStClear = 1u << 2,
  kFixedParent = 1u << 4,
  kSensitiveDataOrigin = 1u << 5,
  kUserWithAuth = 1u << 6,
  kAdminWithPolicy = 1u << 7,
  kNoDa = 1u << 10,
  kEncryptedDuplication = 1u << 11,
  kRestricted = 1u << 16,
  kDecrypt = 1u << 17,
  kSign = 1u << 18,
};

struct ClockInfo {
  std::uint64_t clock = 0;  ///< milliseconds
  std::uint32_t reset_count = 0;
  std::uint32_t restart_count = 0;
  bool safe = false;
};

/// TPMS_ATTEST (quote or certify), unverified.
struct Attest {
  std::uint32_t magic = 0;
  std::uint16_t type = 0;
  Bytes qualified_signer;
  Bytes extra_data;
  ClockInfo clock_info;
  std::uint64_t firmware_version = 0;
  // type == kStAttestQuote
  PcrSelection pcr_selection;
  Bytes pcr_digest;
  // type == kStAttestCertify
  Bytes certified_name;
  Bytes certified_qualified_name;
};
/// Parses TPMS_ATTEST (the TPM2B_ATTEST contents; tpm2_quote -m output). Types other than quote
/// and certify parse the header only.
Result<Attest> parse_attest(ByteSpan data);

/// TPMT_SIGNATURE: ECDSA (r, s) or RSASSA/RSAPSS (sig).
struct Signature {
  std::uint16_t sig_alg = 0;
  std::uint16_t hash_alg = 0;
  Bytes r, s;  ///< ECDSA
  Bytes rsa;   ///< RSASSA / RSAPSS
};
Result<Signature> parse_signature(ByteSpan data);

/// TPMT_PUBLIC of an RSA or ECC key.
struct PublicArea {
  std::uint16_t type = 0;
  std::uint16_t name_alg = 0;
  std::uint32_t attributes = 0;
  Bytes auth_policy;
  std::uint16_t symmetric = kAlgNull;  ///< TPMT_SYM_DEF_OBJECT algorithm
  std::uint16_t symmetric_bits = 0;
  std::uint16_t symmetric_mode = 0;
  std::uint16_t scheme = kAlgNull;  ///< signing/decryption scheme
  std::uint16_t scheme_hash = 0;
  // RSA
  std::uint16_t rsa_bits = 0;
  std::uint32_t rsa_exponent = 0;  ///< 0 means 65537
  Bytes rsa_modulus;
  // ECC
  std::uint16_t curve = 0;
  std::uint16_t kdf = kAlgNull;
  std::uint16_t kdf_hash = 0;
  Bytes ecc_x, ecc_y;
  /// The exact TPMT_PUBLIC bytes (what the Name hashes).
  Bytes raw;
};
/// TPMT_PUBLIC (no size prefix; tpm2_createak -f tpmt) and TPM2B_PUBLIC (tpm2_create -u).
Result<PublicArea> parse_public(ByteSpan tpmt_public);
Result<PublicArea> parse_public2b(ByteSpan tpm2b_public);

/// Name = nameAlg (u16 BE) || H_nameAlg(TPMT_PUBLIC).
Result<Bytes> object_name(const PublicArea& pub);
/// The key as an OpenSSL public key (RSA n/e; ECC P-256/P-384/P-521 point).
Result<ossl::PKey> public_key(const PublicArea& pub);

/// Verifies `sig` over `message` with `key`: ECDSA (raw r,s -> DER), RSASSA PKCS#1 v1.5, RSAPSS
/// (salt length auto-detected). Rejects a signature that does not fit the key's type or scheme.
/// kBadSignature when the signature does not verify.
Status verify_signature(const PublicArea& key, ByteSpan message, const Signature& sig);

struct QuoteExpectations {
  ByteSpan nonce;                   ///< extraData you issued
  PcrSelection selection;           ///< what you asked for
  const PcrValues* pcrs = nullptr;  ///< values (e.g. replayed) whose composite must equal pcrDigest
  bool require_safe = true;
};

/// A quote whose signature, header, nonce, selection and PCR digest were checked.
struct VerifiedQuote {
  Attest attest;
  std::uint16_t hash_alg = 0;  ///< the signing scheme's hash (also pcrDigest's)
};

/// Checks in order: signature (kBadSignature), magic/type (kMalformed), extraData == nonce
/// (kNonceMismatch), selection (kPcrSelectionMismatch), pcrDigest (kPcrDigestMismatch),
/// clockInfo.safe (kPolicyViolation).
Result<VerifiedQuote> verify_quote(const PublicArea& ak, ByteSpan attest, ByteSpan signature,
                                   const QuoteExpectations& expected);

struct VerifiedCertify {
  Attest attest;
  PublicArea certified;
};
/// Verifies a TPM2_Certify by `signer` over `certified`: signature, type, nonce, and certified
/// name == Name(certified) (kProofMismatch).
Result<VerifiedCertify> verify_certify(const PublicArea& signer, ByteSpan attest,
                                       ByteSpan signature, ByteSpan nonce,
                                       const PublicArea& certified);

/// AK: restricted|sign|fixedTPM|fixedParent|sensitiveDataOrigin and not decrypt.
Status check_ak_attributes(const PublicArea& pub);
/// TPM-resident binding key: sign|fixedTPM|fixedParent|sensitiveDataOrigin, not restricted, not
/// decrypt. Fails with kPolicyViolation listing every missing/forbidden attribute.
Status check_binding_key_attributes(const PublicArea& pub);

}  // namespace warden::attest::quote
