#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attest/quote/quote.h"
#include "issuer/config.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"
#include "platform/base/openssl.h"

namespace warden::issuer {

/// How an EK came to be trusted (recorded in the audit log).
enum class EkTrustBasis { kCertificate, kAllowlist, kTofu };
std::string_view to_string(EkTrustBasis basis);

struct TrustedEk {
  attest::quote::PublicArea ek;
  std::string public_hash;  ///< hex SHA-256 of the TPM2B_PUBLIC bytes as sent (docs/issuer-config.md)
  std::string cert_pem;     ///< empty unless trusted by certificate
  EkTrustBasis basis = EkTrustBasis::kCertificate;
};

/// Decides whether an endorsement key belongs to a genuine TPM: its certificate chains to one of
/// the configured manufacturer CAs (intermediates from the request may fill the gap), or its
/// public area hash is allowlisted, or trust on first use is on. Immutable after open().
class EkTrust {
 public:
  /// Loads every PEM certificate of config.manufacturer_ca_files as a trust anchor.
  static Result<EkTrust> open(const IssuerConfig::Enrollment& config);

  /// `ek_public` is the TPM2B_PUBLIC from the request; `now` is the verification time.
  /// Errors: kMalformed (unparsable EK/certificate), kUntrusted (no chain, allowlist or TOFU),
  /// kProofMismatch (certificate key is not the EK), kPolicyViolation (EK certificate profile).
  Result<TrustedEk> check(ByteSpan ek_public, const std::optional<Bytes>& ek_cert,
                          const std::vector<Bytes>& chain, std::int64_t now) const;

 private:
  Result<std::string> verify_certificate(const attest::quote::PublicArea& ek, ByteSpan cert_der,
                                         const std::vector<Bytes>& chain,
                                         std::int64_t now) const;

  std::vector<std::shared_ptr<X509>> anchors_;
  std::vector<std::string> allowlist_;  ///< lowercase hex
  bool tofu_ = false;
};

}  // namespace warden::issuer
