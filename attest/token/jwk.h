#pragma once

// JSON Web Keys (RFC 7517), key sets, RFC 7638 thumbprints and the JOSE/COSE signature
// algorithms Warden accepts.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <openssl/evp.h>

#include "attest/token/json.h"
#include "platform/base/bytes.h"
#include "platform/base/cbor.h"
#include "platform/base/error.h"

namespace warden::token {

/// Asymmetric signature algorithms (JOSE names, COSE ids). Anything else ("none", HS*) is
/// rejected by name before a key is even looked up.
enum class Alg { kEs256, kEs384, kEdDsa, kRs256 };

std::string_view alg_name(Alg alg);  ///< "ES256", "ES384", "EdDSA", "RS256"
std::optional<Alg> alg_from_name(std::string_view name);
std::int64_t cose_alg_id(Alg alg);  ///< -7, -35, -8, -257
std::optional<Alg> alg_from_cose(std::int64_t id);

/// A public verification key. Copyable (shares the immutable OpenSSL key).
class Jwk {
 public:
  /// Imports a public JWK (kty EC P-256/P-384, OKP Ed25519, RSA >= 2048 bits). Private members
  /// ("d", "p", ...) are refused: a JWK that travels must be public.
  static Result<Jwk> from_json(const boost::json::object& jwk);
  /// Wraps a public (or private: only its public half is used) OpenSSL key.
  static Result<Jwk> from_pkey(EVP_PKEY* key, std::string kid = {});
  /// Imports a COSE_Key map (RFC 9052 section 7: EC2 P-256/P-384, OKP Ed25519).
  static Result<Jwk> from_cose_key(const cbor::Value& key);
  /// The COSE_Key map of this key (EC2 and OKP only; kUnsupported for RSA).
  [[nodiscard]] Result<cbor::Value> to_cose_key() const;

  /// The public JWK: required members, plus kid and alg when set.
  [[nodiscard]] boost::json::object to_json() const;
  /// Only the members RFC 7638 requires, in lexicographic order.
  [[nodiscard]] boost::json::object required_members() const;
  /// RFC 7638 SHA-256 thumbprint, base64url without padding.
  [[nodiscard]] std::string thumbprint() const;

  [[nodiscard]] const std::string& kty() const { return kty_; }
  [[nodiscard]] const std::string& crv() const { return crv_; }  ///< empty for RSA
  [[nodiscard]] const std::string& kid() const { return kid_; }
  [[nodiscard]] const std::optional<Alg>& alg() const { return alg_; }
  void set_kid(std::string kid) { kid_ = std::move(kid); }
  void set_alg(std::optional<Alg> alg) { alg_ = alg; }
  [[nodiscard]] EVP_PKEY* pkey() const { return key_.get(); }
  /// Raw public coordinates (EC x/y, OKP x) or RSA n/e, big-endian.
  [[nodiscard]] const Bytes& x() const { return x_; }
  [[nodiscard]] const Bytes& y() const { return y_; }

  /// True when this key's type and curve can verify `alg` (and its "alg" member, if any, agrees).
  [[nodiscard]] bool fits(Alg alg) const;

  /// Verifies a raw JOSE/COSE signature (ECDSA r||s, Ed25519, RSASSA-PKCS1-v1_5) over `input`.
  /// kBadSignature on mismatch, kAlgorithmNotAllowed when the key does not fit `alg`.
  [[nodiscard]] Status verify(Alg alg, ByteSpan input, ByteSpan signature) const;

 private:
  std::shared_ptr<EVP_PKEY> key_;
  /// EC keys: a context initialised for verification once, copied per use (else null).
  std::shared_ptr<EVP_MD_CTX> verify_init_;
  std::string thumbprint_;  // EC keys: computed once per distinct key (else empty: on demand)
  std::string kty_;         // "EC", "OKP", "RSA"
  std::string crv_;         // "P-256", "P-384", "Ed25519"
  Bytes x_, y_;             // EC x,y / OKP x / RSA n,e
  std::string kid_;
  std::optional<Alg> alg_;
};

/// A set of verification keys (RFC 7517 JWK Set) with kid lookup.
class KeySet {
 public:
  /// Parses an untrusted JWKS document. Keys of unsupported types are skipped (RFC 7517 5);
  /// a malformed supported key is an error.
  static Result<KeySet> from_json(std::string_view jwks);
  [[nodiscard]] std::string to_json() const;

  void add(Jwk key) { keys_.push_back(std::move(key)); }
  [[nodiscard]] const std::vector<Jwk>& keys() const { return keys_; }
  /// The key for `kid` that fits `alg`; with an empty kid, the only key that fits `alg`.
  /// kUnknownKey when none (or, without a kid, several) match.
  [[nodiscard]] Result<const Jwk*> find(std::string_view kid, Alg alg) const;

 private:
  std::vector<Jwk> keys_;
};

}  // namespace warden::token
