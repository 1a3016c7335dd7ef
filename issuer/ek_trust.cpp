#include "issuer/ek_trust.h"

#include <algorithm>
#include <cctype>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "platform/base/encoding.h"
#include "platform/base/file.h"

namespace warden::issuer {
namespace {

namespace q = attest::quote;

// TCG EK Credential Profile 2.5, 3.2.15: extendedKeyUsage, when present, must name
// tcg-kp-EKCertificate.
constexpr const char* kTcgKpEkCertificate = "2.23.133.8.1";

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Every PEM certificate in `pem` (a file may hold a bundle).
Result<std::vector<std::shared_ptr<X509>>> certificates_from_pem(ByteSpan pem,
                                                                 const std::string& path) {
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return fail(ossl::error("EK trust: BIO_new_mem_buf"));
  std::vector<std::shared_ptr<X509>> out;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(cert, X509_free);
  }
  ERR_clear_error();  // the loop ends on a "no start line" error
  if (out.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                "EK trust: " + path + ": expected PEM certificates, found none");
  }
  return out;
}

// OpenSSL knows subjectAltName (TPM EK certificates mark it critical, with the TPM manufacturer,
// model and version as a directoryName) and checks critical extensions it does not know. What
// it does not check is the EK profile, so that is done here.
Status check_ek_profile(X509* cert) {
  auto* eku = static_cast<EXTENDED_KEY_USAGE*>(
      X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr));
  if (eku != nullptr) {
    bool found = false;
    std::string seen;
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku); ++i) {
      char oid[80];
      OBJ_obj2txt(oid, sizeof(oid), sk_ASN1_OBJECT_value(eku, i), 1);
      seen += (seen.empty() ? "" : ",") + std::string(oid);
      if (std::string_view(oid) == kTcgKpEkCertificate) found = true;
    }
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    if (!found) {
      return fail(ErrorCode::kPolicyViolation,
                  std::string("EK certificate: extendedKeyUsage expected ") + kTcgKpEkCertificate +
                      ", found " + seen);
    }
  }
  if (X509_get_extension_flags(cert) & EXFLAG_CA) {
    return fail(ErrorCode::kPolicyViolation, "EK certificate: expected an end-entity, found a CA");
  }
  return ok();
}

}  // namespace

std::string_view to_string(EkTrustBasis basis) {
  switch (basis) {
    case EkTrustBasis::kCertificate: return "certificate";
    case EkTrustBasis::kAllowlist: return "allowlist";
    case EkTrustBasis::kTofu: return "tofu";
  }
  return "unknown";
}

Result<EkTrust> EkTrust::open(const IssuerConfig::Enrollment& config) {
  EkTrust t;
  for (const std::string& path : config.manufacturer_ca_files) {
    auto pem = read_file(path, 4 << 20);
    if (!pem) return fail(std::move(pem).error().context("EK trust: " + path));
    auto certs = certificates_from_pem(*pem, path);
    if (!certs) return fail(std::move(certs).error());
    t.anchors_.insert(t.anchors_.end(), certs->begin(), certs->end());
  }
  for (const std::string& h : config.ek_allowlist) {
    auto bytes = hex_decode(h);
    if (!bytes || bytes->size() != 32) {
      return fail(ErrorCode::kInvalidArgument,
                  "EK trust: ek_allowlist entry " + h + ": expected 64 hex digits (SHA-256)");
    }
    t.allowlist_.push_back(lower(h));
  }
  t.tofu_ = config.tofu;
  return t;
}

Result<std::string> EkTrust::verify_certificate(const q::PublicArea& ek, ByteSpan cert_der,
                                                const std::vector<Bytes>& chain,
                                                std::int64_t now) const {
  auto cert = ossl::certificate_from_der(cert_der);
  if (!cert) return fail(std::move(cert).error().context("EK certificate"));
  auto ek_key = q::public_key(ek);
  if (!ek_key) return fail(std::move(ek_key).error().context("EK public area"));
  EVP_PKEY* cert_key = X509_get0_pubkey(cert->get());
  if (cert_key == nullptr || EVP_PKEY_eq(cert_key, ek_key->get()) != 1) {
    return fail(ErrorCode::kProofMismatch,
                "EK certificate: its public key is not the EK in the request");
  }
  if (anchors_.empty()) {
    return fail(ErrorCode::kUntrusted,
                "EK certificate: no manufacturer CA is configured (enrollment.manufacturer_ca_files)");
  }
  ossl::X509Store store(X509_STORE_new());
  if (!store) return fail(ossl::error("EK trust: X509_STORE_new"));
  for (const auto& a : anchors_) {
    if (X509_STORE_add_cert(store.get(), a.get()) != 1)
      return fail(ossl::error("EK trust: X509_STORE_add_cert"));
  }
  std::vector<ossl::X509Ptr> owned;
  ossl::X509Stack untrusted(sk_X509_new_null(), [](STACK_OF(X509)* s) { sk_X509_free(s); });
  for (const Bytes& der : chain) {
    auto c = ossl::certificate_from_der(der);
    if (!c) return fail(std::move(c).error().context("EK chain"));
    sk_X509_push(untrusted.get(), c->get());
    owned.push_back(std::move(*c));
  }
  ossl::X509StoreCtx ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), untrusted.get()) != 1)
    return fail(ossl::error("EK trust: X509_STORE_CTX_init"));
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(now));
  // A configured intermediate is an anchor in its own right (manufacturers publish those).
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return fail(ErrorCode::kUntrusted,
                std::string("EK certificate: expected a chain to a configured manufacturer CA, "
                            "found: ") +
                    X509_verify_cert_error_string(err) + " (depth " +
                    std::to_string(X509_STORE_CTX_get_error_depth(ctx.get())) + ")");
  }
  WARDEN_TRY_STATUS(check_ek_profile(cert->get()));
  return ossl::certificate_to_pem(cert->get());
}

Result<TrustedEk> EkTrust::check(ByteSpan ek_public, const std::optional<Bytes>& ek_cert,
                                 const std::vector<Bytes>& chain, std::int64_t now) const {
  auto ek = q::parse_public2b(ek_public);
  if (!ek) return fail(std::move(ek).error().context("enroll: EK public area"));
  TrustedEk out;
  out.public_hash = hex_encode(ossl::sha256(ek_public));
  const bool allowlisted =
      std::find(allowlist_.begin(), allowlist_.end(), out.public_hash) != allowlist_.end();
  std::optional<Error> cert_error;
  if (ek_cert) {
    auto pem = verify_certificate(*ek, *ek_cert, chain, now);
    if (pem) {
      out.cert_pem = std::move(*pem);
      out.basis = EkTrustBasis::kCertificate;
      out.ek = std::move(*ek);
      return out;
    }
    // A certificate for another key is an attack, not a missing anchor: never fall back.
    if (pem.error().code == ErrorCode::kProofMismatch) return fail(std::move(pem).error());
    cert_error = std::move(pem).error();
  }
  if (allowlisted) {
    out.basis = EkTrustBasis::kAllowlist;
  } else if (tofu_) {
    out.basis = EkTrustBasis::kTofu;
  } else {
    std::string why = cert_error ? cert_error->message : "no EK certificate was sent";
    return fail(ErrorCode::kUntrusted,
                "enroll: EK " + out.public_hash +
                    " is not trusted: " + why + "; not in ek_allowlist; tofu is off");
  }
  out.ek = std::move(*ek);
  return out;
}

}  // namespace warden::issuer
