#pragma once

// The signing side of every Warden token: an interface the TPM binding key and the agent's
// session keys implement, and a software EC P-256 key for the issuer and tests.

#include <memory>
#include <string>
#include <string_view>

#include "attest/token/jwk.h"
#include "platform/base/bytes.h"
#include "platform/base/clock.h"
#include "platform/base/error.h"
#include "platform/base/openssl.h"

namespace warden::token {

class Signer {
 public:
  virtual ~Signer() = default;
  [[nodiscard]] virtual Alg alg() const = 0;
  /// The public key (with kid set) relying parties verify with.
  [[nodiscard]] virtual const Jwk& public_jwk() const = 0;
  [[nodiscard]] const std::string& kid() const { return public_jwk().kid(); }
  /// Signs `signing_input` (JWS: ASCII header.payload; COSE: the Sig_structure bytes) and
  /// returns the raw JOSE/COSE signature (ECDSA: r||s, fixed width).
  virtual Result<Bytes> sign(ByteSpan signing_input) = 0;
};

/// A software ES256 key.
class EcSigner final : public Signer {
 public:
  /// A new P-256 key whose private scalar comes from `random`. An empty kid becomes the key's
  /// RFC 7638 thumbprint.
  static Result<EcSigner> generate(Random& random, std::string kid = {});
  /// A P-256 private key from PEM (PKCS#8 or SEC1).
  static Result<EcSigner> from_pem(std::string_view pem, std::string kid = {});
  /// A P-256 private key held elsewhere too (the issuer's SigningKeys); the signer shares it.
  static Result<EcSigner> from_key(std::shared_ptr<EVP_PKEY> key, std::string kid = {});

  [[nodiscard]] Alg alg() const override { return Alg::kEs256; }
  [[nodiscard]] const Jwk& public_jwk() const override { return public_; }
  Result<Bytes> sign(ByteSpan signing_input) override;
  /// PKCS#8 PEM of the private key (for provisioning; treat as a secret).
  [[nodiscard]] Result<std::string> private_key_pem() const;

 private:
  EcSigner(std::shared_ptr<EVP_PKEY> key, std::shared_ptr<EVP_MD_CTX> init, Jwk pub)
      : key_(std::move(key)), init_(std::move(init)), public_(std::move(pub)) {}
  static Result<EcSigner> wrap(std::shared_ptr<EVP_PKEY> key, std::string kid);
  std::shared_ptr<EVP_PKEY> key_;
  /// Initialised for signing once; each signature works on a copy: EVP_DigestSignInit looks the
  /// implementation up again on every call (~7-9 us), copying an initialised context ~0.5 us.
  /// Copies of the signer share it; it is only read.
  std::shared_ptr<EVP_MD_CTX> init_;
  Jwk public_;
};

}  // namespace warden::token
