#include "attest/quote/quote.h"

#include <cstdio>
#include <memory>
#include <string>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "platform/base/encoding.h"
#include "platform/base/memo.h"

namespace warden::attest::quote {
namespace {

std::string hex4(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04x", v);
  return buf;
}

#define WARDEN_ASSIGN(var, expr)              \
  auto var##_r = (expr);                      \
  if (!var##_r) return fail(var##_r.error()); \
  auto var = std::move(*var##_r)

Result<PcrSelection> read_selection(ByteReader& r) {
  WARDEN_ASSIGN(count, r.u32be("TPML_PCR_SELECTION.count"));
  if (count > 16)
    return fail(
        r.error("TPML_PCR_SELECTION.count", "expected at most 16, found " + std::to_string(count)));
  PcrSelection sel;
  for (std::uint32_t i = 0; i < count; ++i) {
    WARDEN_ASSIGN(alg, r.u16be("hash"));
    WARDEN_ASSIGN(size, r.u8("sizeofSelect"));
    if (size > 4)
      return fail(r.error("sizeofSelect", "expected <= 4, found " + std::to_string(size)));
    WARDEN_ASSIGN(bits, r.bytes(size, "pcrSelect"));
    auto known = hash_from_tpm_id(alg);
    if (!known) return fail(r.error("hash", "unsupported PCR bank " + hex4(alg)));
    PcrBank bank{*known, {}};
    for (std::size_t b = 0; b < bits.size() * 8; ++b) {
      if ((bits[b / 8] >> (b % 8)) & 1) {
        if (b >= kPcrCount)
          return fail(r.error("pcrSelect", "PCR " + std::to_string(b) + " out of range"));
        bank.pcrs.set(b);
      }
    }
    sel.banks.push_back(bank);
  }
  return sel;
}

Result<std::uint16_t> read_scheme(ByteReader& r, std::uint16_t& hash, std::string_view field) {
  WARDEN_ASSIGN(scheme, r.u16be(field));
  hash = 0;
  if (scheme != kAlgNull) {
    WARDEN_ASSIGN(h, r.u16be("scheme hashAlg"));
    hash = h;
    if (scheme == 0x001A) {  // ECDAA carries a count
      WARDEN_TRY_STATUS(r.skip(2, "ECDAA count"));
    }
  }
  return scheme;
}

Result<PublicArea> read_public(ByteReader& r, std::size_t start, ByteSpan whole) {
  PublicArea p;
  WARDEN_ASSIGN(type, r.u16be("type"));
  WARDEN_ASSIGN(name_alg, r.u16be("nameAlg"));
  WARDEN_ASSIGN(attrs, r.u32be("objectAttributes"));
  WARDEN_ASSIGN(policy, r.tpm2b("authPolicy", 64));
  p.type = type;
  p.name_alg = name_alg;
  p.attributes = attrs;
  p.auth_policy.assign(policy.begin(), policy.end());
  if (type != kAlgRsa && type != kAlgEcc)
    return fail(ErrorCode::kUnsupported,
                "TPMT_PUBLIC: type " + hex4(type) + " (expected RSA 0x0001 or ECC 0x0023)");
  WARDEN_ASSIGN(sym, r.u16be("symmetric.algorithm"));
  p.symmetric = sym;
  if (sym != kAlgNull) {
    WARDEN_ASSIGN(bits, r.u16be("symmetric.keyBits"));
    WARDEN_ASSIGN(mode, r.u16be("symmetric.mode"));
    p.symmetric_bits = bits;
    p.symmetric_mode = mode;
  }
  WARDEN_ASSIGN(scheme, read_scheme(r, p.scheme_hash, "scheme"));
  p.scheme = scheme;
  if (type == kAlgRsa) {
    WARDEN_ASSIGN(bits, r.u16be("keyBits"));
    WARDEN_ASSIGN(exp, r.u32be("exponent"));
    WARDEN_ASSIGN(n, r.tpm2b("unique.rsa", 512));
    p.rsa_bits = bits;
    p.rsa_exponent = exp;
    p.rsa_modulus.assign(n.begin(), n.end());
  } else {
    WARDEN_ASSIGN(curve, r.u16be("curveID"));
    p.curve = curve;
    WARDEN_ASSIGN(kdf, read_scheme(r, p.kdf_hash, "kdf"));
    p.kdf = kdf;
    WARDEN_ASSIGN(x, r.tpm2b("unique.ecc.x", 128));
    WARDEN_ASSIGN(y, r.tpm2b("unique.ecc.y", 128));
    p.ecc_x.assign(x.begin(), x.end());
    p.ecc_y.assign(y.begin(), y.end());
  }
  auto raw = whole.subspan(start, r.offset() - start);
  p.raw.assign(raw.begin(), raw.end());
  return p;
}

std::optional<TpmAlg> sig_hash(std::uint16_t alg) { return hash_from_tpm_id(alg); }

}  // namespace

Result<Attest> parse_attest(ByteSpan data) {
  ByteReader r(data, "TPMS_ATTEST");
  Attest a;
  WARDEN_ASSIGN(magic, r.u32be("magic"));
  WARDEN_ASSIGN(type, r.u16be("type"));
  WARDEN_ASSIGN(signer, r.tpm2b("qualifiedSigner", 68));
  WARDEN_ASSIGN(extra, r.tpm2b("extraData", 64));
  WARDEN_ASSIGN(clock, r.u64be("clockInfo.clock"));
  WARDEN_ASSIGN(reset, r.u32be("clockInfo.resetCount"));
  WARDEN_ASSIGN(restart, r.u32be("clockInfo.restartCount"));
  WARDEN_ASSIGN(safe, r.u8("clockInfo.safe"));
  WARDEN_ASSIGN(fw, r.u64be("firmwareVersion"));
  if (safe > 1)
    return fail(r.error("clockInfo.safe", "expected 0 or 1, found " + std::to_string(safe)));
  a.magic = magic;
  a.type = type;
  a.qualified_signer.assign(signer.begin(), signer.end());
  a.extra_data.assign(extra.begin(), extra.end());
  a.clock_info = {clock, reset, restart, safe == 1};
  a.firmware_version = fw;
  if (type == kStAttestQuote) {
    WARDEN_ASSIGN(sel, read_selection(r));
    WARDEN_ASSIGN(digest, r.tpm2b("pcrDigest", 64));
    a.pcr_selection = std::move(sel);
    a.pcr_digest.assign(digest.begin(), digest.end());
    WARDEN_TRY_STATUS(r.expect_end());
  } else if (type == kStAttestCertify) {
    WARDEN_ASSIGN(name, r.tpm2b("certifyInfo.name", 68));
    WARDEN_ASSIGN(qname, r.tpm2b("certifyInfo.qualifiedName", 68));
    a.certified_name.assign(name.begin(), name.end());
    a.certified_qualified_name.assign(qname.begin(), qname.end());
    WARDEN_TRY_STATUS(r.expect_end());
  }
  return a;
}

Result<Signature> parse_signature(ByteSpan data) {
  ByteReader r(data, "TPMT_SIGNATURE");
  Signature s;
  WARDEN_ASSIGN(alg, r.u16be("sigAlg"));
  s.sig_alg = alg;
  if (alg != kAlgEcdsa && alg != kAlgRsassa && alg != kAlgRsapss)
    return fail(ErrorCode::kUnsupported,
                "TPMT_SIGNATURE: sigAlg " + hex4(alg) +
                    " (expected ECDSA 0x0018, RSASSA 0x0014 or RSAPSS 0x0016)");
  WARDEN_ASSIGN(hash, r.u16be("hash"));
  s.hash_alg = hash;
  if (alg == kAlgEcdsa) {
    WARDEN_ASSIGN(rr, r.tpm2b("signatureR", 66));
    WARDEN_ASSIGN(ss, r.tpm2b("signatureS", 66));
    s.r.assign(rr.begin(), rr.end());
    s.s.assign(ss.begin(), ss.end());
  } else {
    WARDEN_ASSIGN(sig, r.tpm2b("sig", 512));
    s.rsa.assign(sig.begin(), sig.end());
  }
  WARDEN_TRY_STATUS(r.expect_end());
  return s;
}

Result<PublicArea> parse_public(ByteSpan data) {
  ByteReader r(data, "TPMT_PUBLIC");
  WARDEN_ASSIGN(p, read_public(r, 0, data));
  WARDEN_TRY_STATUS(r.expect_end());
  return p;
}

Result<PublicArea> parse_public2b(ByteSpan data) {
  ByteReader r(data, "TPM2B_PUBLIC");
  WARDEN_ASSIGN(inner, r.tpm2b("size"));
  WARDEN_TRY_STATUS(r.expect_end());
  return parse_public(inner);
}

Result<Bytes> object_name(const PublicArea& pub) {
  auto alg = hash_from_tpm_id(pub.name_alg);
  if (!alg)
    return fail(ErrorCode::kUnsupported,
                "object name: nameAlg " + hex4(pub.name_alg) + " unsupported");
  WARDEN_ASSIGN(h, ossl::digest(to_ossl(*alg), pub.raw));
  ByteWriter w;
  w.u16be(pub.name_alg).bytes(h);
  return std::move(w).take();
}

namespace {

// The parameters of a named curve only, built once. A TPM key's point is set on a key with copied
// parameters: EVP_PKEY_fromdata by group name builds the EC group anew on every call, ~2.5x the
// cost (measured with OpenSSL 3.0), and every attestation brings a new binding key.
const EVP_PKEY* curve_parameters(std::uint16_t curve) {
  auto make = [](const char* group) -> EVP_PKEY* {
    ossl::ParamBld bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1)
      return nullptr;
    ossl::Params params(OSSL_PARAM_BLD_to_param(bld.get()));
    ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    EVP_PKEY* key = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_KEY_PARAMETERS, params.get()) != 1)
      return nullptr;
    return key;
  };
  switch (curve) {
    case kEccNistP256: {
      static const ossl::PKey p256(make("P-256"));
      return p256.get();
    }
    case kEccNistP384: {
      static const ossl::PKey p384(make("P-384"));
      return p384.get();
    }
    case kEccNistP521: {
      static const ossl::PKey p521(make("P-521"));
      return p521.get();
    }
    default:
      return nullptr;
  }
}

}  // namespace

Result<ossl::PKey> public_key(const PublicArea& pub) {
  ossl::ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld) return fail(ossl::error("OSSL_PARAM_BLD_new"));
  ossl::Bn n, e;
  Bytes point;
  if (pub.type == kAlgRsa) {
    if (pub.rsa_modulus.empty())
      return fail(ErrorCode::kMalformed, "TPMT_PUBLIC: empty RSA modulus");
    n.reset(BN_bin2bn(pub.rsa_modulus.data(), static_cast<int>(pub.rsa_modulus.size()), nullptr));
    e.reset(BN_new());
    if (!n || !e || BN_set_word(e.get(), pub.rsa_exponent == 0 ? 65537 : pub.rsa_exponent) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1)
      return fail(ossl::error("RSA public key params"));
  } else {
    std::size_t field = 0;
    switch (pub.curve) {
      case kEccNistP256:
        field = 32;
        break;
      case kEccNistP384:
        field = 48;
        break;
      case kEccNistP521:
        field = 66;
        break;
      default:
        return fail(ErrorCode::kUnsupported,
                    "TPMT_PUBLIC: curve " + hex4(pub.curve) + " (expected NIST P-256/P-384/P-521)");
    }
    if (pub.ecc_x.size() > field || pub.ecc_y.size() > field || pub.ecc_x.empty() ||
        pub.ecc_y.empty())
      return fail(ErrorCode::kMalformed, "TPMT_PUBLIC: ECC point coordinates of " +
                                             std::to_string(pub.ecc_x.size()) + "/" +
                                             std::to_string(pub.ecc_y.size()) + " bytes for a " +
                                             std::to_string(field) + "-byte curve");
    point.reserve(1 + 2 * field);
    point.push_back(0x04);
    point.insert(point.end(), field - pub.ecc_x.size(), 0);
    point.insert(point.end(), pub.ecc_x.begin(), pub.ecc_x.end());
    point.insert(point.end(), field - pub.ecc_y.size(), 0);
    point.insert(point.end(), pub.ecc_y.begin(), pub.ecc_y.end());
    ossl::PKey key(EVP_PKEY_new());
    const EVP_PKEY* parameters = curve_parameters(pub.curve);
    if (!key || parameters == nullptr || EVP_PKEY_copy_parameters(key.get(), parameters) != 1)
      return fail(ossl::error("EC public key parameters"));
    if (EVP_PKEY_set1_encoded_public_key(key.get(), point.data(), point.size()) != 1)
      return fail(ErrorCode::kMalformed,
                  "TPMT_PUBLIC: key is not a valid public key (" +
                      ossl::error("EVP_PKEY_set1_encoded_public_key").message + ")");
    ossl::PKeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    // The quick check (on the curve, not infinity) is complete for the prime-order curves TPMs
    // use; the full check adds a scalar multiplication by the order, as costly as a verify.
    if (!check || EVP_PKEY_public_check_quick(check.get()) != 1)
      return fail(ErrorCode::kMalformed, "TPMT_PUBLIC: ECC point is not on the curve");
    return key;
  }
  ossl::Params params(OSSL_PARAM_BLD_to_param(bld.get()));
  ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1)
    return fail(ossl::error("EVP_PKEY_fromdata_init"));
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1 || raw == nullptr)
    return fail(ErrorCode::kMalformed, "TPMT_PUBLIC: key is not a valid public key (" +
                                           ossl::error("EVP_PKEY_fromdata").message + ")");
  return ossl::PKey(raw);
}

namespace {

/// A verify context initialised with public_key() for one signature scheme, kept by the fields
/// the key is built from and the scheme. The AK verifies the quote and both certifications of
/// every attestation; building a key through OpenSSL 3's provider layer costs about as much as the
/// ECDSA verify itself, and EVP_DigestVerifyInit fetches the implementation again on every call
/// (copying an initialised context does not).
Result<std::shared_ptr<const EVP_MD_CTX>> verification_context(const PublicArea& pub,
                                                               const Signature& sig, TpmAlg hash) {
  static BoundedMemo<std::shared_ptr<const EVP_MD_CTX>> contexts(4096);
  ByteWriter w;
  w.u16be(sig.sig_alg).u16be(sig.hash_alg);
  w.u16be(pub.type).u16be(pub.curve).u32be(pub.rsa_exponent);
  for (const Bytes* part : {&pub.ecc_x, &pub.ecc_y, &pub.rsa_modulus}) {
    w.u32be(static_cast<std::uint32_t>(part->size())).bytes(*part);
  }
  const Bytes packed = std::move(w).take();
  return contexts.get(
      std::string(packed.begin(), packed.end()),
      [&]() -> Result<std::shared_ptr<const EVP_MD_CTX>> {
        WARDEN_ASSIGN(pkey, public_key(pub));
        ossl::MdCtx md(EVP_MD_CTX_new());
        EVP_PKEY_CTX* pctx = nullptr;
        if (!md || EVP_DigestVerifyInit(md.get(), &pctx, ossl::evp_md(to_ossl(hash)), nullptr,
                                        pkey.get()) != 1)
          return fail(ossl::error("EVP_DigestVerifyInit"));
        if (sig.sig_alg == kAlgRsassa && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
          return fail(ossl::error("RSA padding"));
        if (sig.sig_alg == kAlgRsapss &&
            (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1))
          return fail(ossl::error("RSA-PSS padding"));
        return std::shared_ptr<const EVP_MD_CTX>(md.release(), EVP_MD_CTX_free);
      });
}

}  // namespace

Status verify_signature(const PublicArea& key, ByteSpan message, const Signature& sig) {
  const bool ecc_sig = sig.sig_alg == kAlgEcdsa;
  if ((key.type == kAlgEcc) != ecc_sig)
    return fail(ErrorCode::kAlgorithmNotAllowed, "verify signature: sigAlg " + hex4(sig.sig_alg) +
                                                     " does not fit key type " + hex4(key.type));
  if (key.scheme != kAlgNull && (key.scheme != sig.sig_alg || key.scheme_hash != sig.hash_alg))
    return fail(ErrorCode::kAlgorithmNotAllowed,
                "verify signature: key scheme " + hex4(key.scheme) + "/" + hex4(key.scheme_hash) +
                    ", signature uses " + hex4(sig.sig_alg) + "/" + hex4(sig.hash_alg));
  auto hash = sig_hash(sig.hash_alg);
  if (!hash)
    return fail(ErrorCode::kAlgorithmNotAllowed,
                "verify signature: hash " + hex4(sig.hash_alg) + " unsupported");
  WARDEN_ASSIGN(prepared, verification_context(key, sig, *hash));
  Bytes der;
  ByteSpan sig_bytes;
  if (ecc_sig) {
    WARDEN_ASSIGN(d, ossl::ecdsa_raw_to_der(sig.r, sig.s));
    der = std::move(d);
    sig_bytes = der;
  } else {
    sig_bytes = sig.rsa;
  }
  ossl::MdCtx md(EVP_MD_CTX_new());
  if (!md || EVP_MD_CTX_copy_ex(md.get(), prepared.get()) != 1)
    return fail(ossl::error("EVP_MD_CTX_copy_ex"));
  const int rc = EVP_DigestVerify(md.get(), sig_bytes.data(), sig_bytes.size(), message.data(),
                                  message.size());
  if (rc != 1) {
    (void)ossl::error("EVP_DigestVerify");  // drain the queue
    return fail(ErrorCode::kBadSignature, "verify signature: " + std::string(hash_name(*hash)) +
                                              " " +
                                              (ecc_sig                     ? "ECDSA"
                                               : sig.sig_alg == kAlgRsassa ? "RSASSA"
                                                                           : "RSAPSS") +
                                              " signature does not verify with the given key");
  }
  return ok();
}

namespace {
Result<Attest> verified_header(const PublicArea& key, ByteSpan attest, ByteSpan signature,
                               std::uint16_t want_type, ByteSpan nonce, Signature* sig_out) {
  WARDEN_ASSIGN(sig, parse_signature(signature));
  WARDEN_TRY_STATUS(verify_signature(key, attest, sig));
  WARDEN_ASSIGN(a, parse_attest(attest));
  if (a.magic != kTpmGeneratedValue)
    return fail(ErrorCode::kMalformed,
                "TPMS_ATTEST: magic expected 0xff544347, found " + hex4(a.magic));
  if (a.type != want_type)
    return fail(ErrorCode::kMalformed,
                "TPMS_ATTEST: type expected " + hex4(want_type) + ", found " + hex4(a.type));
  if (!ossl::equal_ct(a.extra_data, nonce))
    return fail(ErrorCode::kNonceMismatch, "TPMS_ATTEST: extraData expected " + hex_encode(nonce) +
                                               ", found " + hex_encode(a.extra_data));
  *sig_out = std::move(sig);
  return a;
}
}  // namespace

Result<VerifiedQuote> verify_quote(const PublicArea& ak, ByteSpan attest, ByteSpan signature,
                                   const QuoteExpectations& expected) {
  Signature sig;
  WARDEN_ASSIGN(a, verified_header(ak, attest, signature, kStAttestQuote, expected.nonce, &sig));
  if (!(a.pcr_selection == expected.selection))
    return fail(ErrorCode::kPcrSelectionMismatch, "quote: PCR selection expected " +
                                                      expected.selection.to_string() + ", found " +
                                                      a.pcr_selection.to_string());
  if (expected.pcrs == nullptr)
    return fail(ErrorCode::kInvalidArgument, "quote: no PCR values to compare the pcrDigest with");
  auto hash = hash_from_tpm_id(sig.hash_alg);
  WARDEN_ASSIGN(digest, pcr_composite_digest(a.pcr_selection, *expected.pcrs, to_ossl(*hash)));
  if (!ossl::equal_ct(digest, a.pcr_digest))
    return fail(ErrorCode::kPcrDigestMismatch, "quote: pcrDigest " + hex_encode(a.pcr_digest) +
                                                   " does not match " + hex_encode(digest) +
                                                   " computed from the expected PCR values for " +
                                                   a.pcr_selection.to_string());
  if (expected.require_safe && !a.clock_info.safe)
    return fail(ErrorCode::kPolicyViolation,
                "quote: clockInfo.safe expected 1, found 0 (clock may have rolled back)");
  return VerifiedQuote{std::move(a), sig.hash_alg};
}

Result<VerifiedCertify> verify_certify(const PublicArea& signer, ByteSpan attest,
                                       ByteSpan signature, ByteSpan nonce,
                                       const PublicArea& certified) {
  Signature sig;
  WARDEN_ASSIGN(a, verified_header(signer, attest, signature, kStAttestCertify, nonce, &sig));
  WARDEN_ASSIGN(name, object_name(certified));
  if (!ossl::equal_ct(name, a.certified_name))
    return fail(ErrorCode::kProofMismatch, "certify: certified name " +
                                               hex_encode(a.certified_name) +
                                               ", expected Name(public area) " + hex_encode(name));
  return VerifiedCertify{std::move(a), certified};
}

namespace {
Status check_attributes(const PublicArea& pub, std::uint32_t required, std::uint32_t forbidden,
                        std::string_view what) {
  static const std::pair<std::uint32_t, const char*> kNames[] = {
      {kFixedTpm, "fixedTPM"},
      {kFixedParent, "fixedParent"},
      {kSensitiveDataOrigin, "sensitiveDataOrigin"},
      {kRestricted, "restricted"},
      {kDecrypt, "decrypt"},
      {kSign, "sign"}};
  std::string problems;
  for (const auto& [bit, name] : kNames) {
    if ((required & bit) && !(pub.attributes & bit))
      problems += std::string(problems.empty() ? "" : ", ") + "missing " + name;
    if ((forbidden & bit) && (pub.attributes & bit))
      problems += std::string(problems.empty() ? "" : ", ") + "forbidden " + name;
  }
  if (problems.empty()) return ok();
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", pub.attributes);
  return fail(ErrorCode::kPolicyViolation,
              std::string(what) + " attributes " + buf + ": " + problems);
}
}  // namespace

Status check_ak_attributes(const PublicArea& pub) {
  return check_attributes(
      pub, kRestricted | kSign | kFixedTpm | kFixedParent | kSensitiveDataOrigin, kDecrypt, "AK");
}

Status check_binding_key_attributes(const PublicArea& pub) {
  return check_attributes(pub, kSign | kFixedTpm | kFixedParent | kSensitiveDataOrigin,
                          kRestricted | kDecrypt, "binding key");
}

}  // namespace warden::attest::quote
