#include "attest/token/jwk.h"

#include <string>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "platform/base/encoding.h"
#include "platform/base/memo.h"
#include "platform/base/openssl.h"

namespace warden::token {
namespace {

std::shared_ptr<EVP_PKEY> share(ossl::PKey key) {
  return std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
}

Result<Bytes> member_b64(const boost::json::object& jwk, std::string_view name) {
  auto text = json::get_string(jwk, name);
  if (!text)
    return fail(ErrorCode::kMalformed, "jwk: missing member \"" + std::string(name) + "\"");
  auto bytes = base64url_decode(*text);
  if (!bytes) {
    return fail(ErrorCode::kMalformed,
                "jwk: member \"" + std::string(name) + "\" is not base64url");
  }
  return bytes;
}

Result<ossl::PKey> parse_ec_point(const std::string& crv, ByteSpan x, ByteSpan y) {
  std::size_t size = crv == "P-256" ? 32 : 48;
  if (x.size() != size || y.size() != size) {
    return fail(ErrorCode::kMalformed,
                "jwk: " + crv + " coordinates must be " + std::to_string(size) + " bytes, found " +
                    std::to_string(x.size()) + "/" + std::to_string(y.size()));
  }
  ByteWriter point;
  point.u8(0x04);
  point.bytes(x);
  point.bytes(y);
  Bytes encoded = std::move(point).take();
  ossl::ParamBld bld(OSSL_PARAM_BLD_new());
  const char* group = crv == "P-256" ? "prime256v1" : "secp384r1";
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, encoded.data(),
                                       encoded.size()) != 1) {
    return fail(ossl::error("jwk: build EC params"));
  }
  ossl::Params params(OSSL_PARAM_BLD_to_param(bld.get()));
  ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return fail(ossl::error("jwk: EC point is not on " + crv, ErrorCode::kMalformed));
  }
  ossl::PKey key(raw);
  ossl::PKeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  // The quick check (on the curve, not infinity) is complete for P-256/384/521 (cofactor 1); the
  // full check adds a scalar multiplication by the order, as costly as a signature verify.
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) {
    return fail(ossl::error("jwk: EC point is not on " + crv, ErrorCode::kMalformed));
  }
  return key;
}

// An EC public key and a digest-verify context initialised for it once: each verification works
// on a copy (EVP_DigestVerifyInit looks the signature implementation up again on every call).
struct EcKey {
  std::shared_ptr<EVP_PKEY> key;
  std::shared_ptr<EVP_MD_CTX> verify_init;  // null when it could not be made: init per verify
  std::string thumbprint;                   // RFC 7638, asked for on every DPoP proof
};

std::string thumbprint_of(const boost::json::object& required_members) {
  return base64url_encode(ossl::sha256(to_bytes(json::serialize(required_members))));
}

Result<EcKey> build_ec_key(const std::string& crv, ByteSpan x, ByteSpan y) {
  auto parsed = parse_ec_point(crv, x, y);
  if (!parsed) return fail(std::move(parsed).error());
  boost::json::object members;
  members["crv"] = crv;
  members["kty"] = "EC";
  members["x"] = base64url_encode(x);
  members["y"] = base64url_encode(y);
  EcKey key{share(std::move(*parsed)), nullptr, thumbprint_of(members)};
  std::shared_ptr<EVP_MD_CTX> init(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const EVP_MD* md = ossl::evp_md(crv == "P-384" ? ossl::Hash::kSha384 : ossl::Hash::kSha256);
  if (init && EVP_DigestVerifyInit(init.get(), nullptr, md, nullptr, key.key.get()) == 1) {
    key.verify_init = std::move(init);
  }
  ERR_clear_error();
  return key;
}

// Proof keys repeat (one per agent session key, every token request), and decoding and checking
// a point through OpenSSL 3's provider layer costs half a signature verify. Keys and contexts are
// immutable once built (only ever copied from), so they may be shared by threads.
Result<EcKey> ec_from_xy(const std::string& crv, ByteSpan x, ByteSpan y) {
  static BoundedMemo<EcKey> keys(4096);
  std::string id;
  id.reserve(crv.size() + 1 + x.size() + y.size());
  id.append(crv).push_back(':');
  id.append(x.begin(), x.end());
  id.append(y.begin(), y.end());
  return keys.get(std::move(id), [&] { return build_ec_key(crv, x, y); });
}

Result<ossl::PKey> rsa_from_ne(ByteSpan n, ByteSpan e) {
  ossl::Bn bn_n(BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr));
  ossl::Bn bn_e(BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr));
  if (!bn_n || !bn_e) return fail(ossl::error("jwk: RSA n/e"));
  if (BN_num_bits(bn_n.get()) < 2048 || BN_num_bits(bn_n.get()) > 8192) {
    return fail(ErrorCode::kAlgorithmNotAllowed,
                "jwk: RSA modulus must be 2048..8192 bits, found " +
                    std::to_string(BN_num_bits(bn_n.get())));
  }
  ossl::ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return fail(ossl::error("jwk: build RSA params"));
  }
  ossl::Params params(OSSL_PARAM_BLD_to_param(bld.get()));
  ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return fail(ossl::error("jwk: RSA key", ErrorCode::kMalformed));
  }
  return ossl::PKey(raw);
}

Result<Bytes> bn_param(EVP_PKEY* key, const char* name, std::size_t pad) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) return fail(ossl::error("jwk: read key"));
  ossl::Bn bn(raw);
  std::size_t size = pad != 0 ? pad : static_cast<std::size_t>(BN_num_bytes(bn.get()));
  Bytes out(size);
  if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(size)) < 0) {
    return fail(ossl::error("jwk: encode key"));
  }
  return out;
}

const EVP_MD* alg_md(Alg alg) {
  switch (alg) {
    case Alg::kEs256:
    case Alg::kRs256:
      return ossl::evp_md(ossl::Hash::kSha256);
    case Alg::kEs384:
      return ossl::evp_md(ossl::Hash::kSha384);
    case Alg::kEdDsa:
      return nullptr;
  }
  return nullptr;
}

}  // namespace

std::string_view alg_name(Alg alg) {
  switch (alg) {
    case Alg::kEs256:
      return "ES256";
    case Alg::kEs384:
      return "ES384";
    case Alg::kEdDsa:
      return "EdDSA";
    case Alg::kRs256:
      return "RS256";
  }
  return "?";
}

std::optional<Alg> alg_from_name(std::string_view name) {
  if (name == "ES256") return Alg::kEs256;
  if (name == "ES384") return Alg::kEs384;
  if (name == "EdDSA") return Alg::kEdDsa;
  if (name == "RS256") return Alg::kRs256;
  return std::nullopt;
}

std::int64_t cose_alg_id(Alg alg) {
  switch (alg) {
    case Alg::kEs256:
      return -7;
    case Alg::kEs384:
      return -35;
    case Alg::kEdDsa:
      return -8;
    case Alg::kRs256:
      return -257;
  }
  return 0;
}

std::optional<Alg> alg_from_cose(std::int64_t id) {
  switch (id) {
    case -7:
      return Alg::kEs256;
    case -35:
      return Alg::kEs384;
    case -8:
      return Alg::kEdDsa;
    case -257:
      return Alg::kRs256;
    default:
      return std::nullopt;
  }
}

Result<Jwk> Jwk::from_json(const boost::json::object& obj) {
  auto kty = json::get_string(obj, "kty");
  if (!kty) return fail(ErrorCode::kMalformed, "jwk: missing \"kty\"");
  if (*kty != "EC" && *kty != "OKP" && *kty != "RSA") {
    return fail(ErrorCode::kUnsupported,
                "jwk: key type \"" + std::string(*kty) + "\" not supported");
  }
  for (const char* priv : {"d", "p", "q", "dp", "dq", "qi", "k"}) {
    if (obj.contains(priv)) {
      return fail(ErrorCode::kMalformed,
                  std::string("jwk: private or symmetric member \"") + priv + "\" present");
    }
  }
  Jwk jwk;
  jwk.kty_ = std::string(*kty);
  if (auto kid = json::get_string(obj, "kid")) jwk.kid_ = std::string(*kid);
  if (const auto* alg = obj.if_contains("alg")) {
    if (!alg->is_string()) return fail(ErrorCode::kMalformed, "jwk: \"alg\" is not a string");
    auto parsed = alg_from_name(alg->as_string());
    if (!parsed) {
      return fail(ErrorCode::kAlgorithmNotAllowed,
                  "jwk: algorithm \"" + std::string(alg->as_string()) + "\" not allowed");
    }
    jwk.alg_ = parsed;
  }
  if (*kty == "EC") {
    auto crv = json::get_string(obj, "crv");
    if (!crv || (*crv != "P-256" && *crv != "P-384")) {
      return fail(ErrorCode::kUnsupported, "jwk: EC curve must be P-256 or P-384");
    }
    jwk.crv_ = std::string(*crv);
    auto x = member_b64(obj, "x");
    if (!x) return fail(x.error());
    auto y = member_b64(obj, "y");
    if (!y) return fail(y.error());
    auto key = ec_from_xy(jwk.crv_, *x, *y);
    if (!key) return fail(key.error());
    jwk.key_ = std::move(key->key);
    jwk.verify_init_ = std::move(key->verify_init);
    jwk.thumbprint_ = std::move(key->thumbprint);
    jwk.x_ = std::move(*x);
    jwk.y_ = std::move(*y);
  } else if (*kty == "OKP") {
    auto crv = json::get_string(obj, "crv");
    if (!crv || *crv != "Ed25519")
      return fail(ErrorCode::kUnsupported, "jwk: OKP curve must be Ed25519");
    jwk.crv_ = "Ed25519";
    auto x = member_b64(obj, "x");
    if (!x) return fail(x.error());
    if (x->size() != 32) return fail(ErrorCode::kMalformed, "jwk: Ed25519 x must be 32 bytes");
    ossl::PKey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, x->data(), x->size()));
    if (!key) return fail(ossl::error("jwk: Ed25519 key", ErrorCode::kMalformed));
    jwk.key_ = share(std::move(key));
    jwk.x_ = std::move(*x);
  } else if (*kty == "RSA") {
    auto n = member_b64(obj, "n");
    if (!n) return fail(n.error());
    auto e = member_b64(obj, "e");
    if (!e) return fail(e.error());
    auto key = rsa_from_ne(*n, *e);
    if (!key) return fail(key.error());
    jwk.key_ = share(std::move(*key));
    jwk.x_ = std::move(*n);
    jwk.y_ = std::move(*e);
  } else {
    return fail(ErrorCode::kUnsupported,
                "jwk: key type \"" + std::string(*kty) + "\" not supported");
  }
  if (jwk.alg_ && !jwk.fits(*jwk.alg_)) {
    return fail(
        ErrorCode::kAlgorithmNotAllowed,
        "jwk: \"alg\" " + std::string(alg_name(*jwk.alg_)) + " does not fit key type " + jwk.kty_);
  }
  return jwk;
}

Result<Jwk> Jwk::from_pkey(EVP_PKEY* key, std::string kid) {
  Jwk jwk;
  jwk.kid_ = std::move(kid);
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: {
      char group[64] = {};
      std::size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                         &len) != 1) {
        return fail(ossl::error("jwk: EC group"));
      }
      std::string_view name(group, len);
      std::size_t size = 0;
      if (name == "prime256v1") {
        jwk.crv_ = "P-256";
        size = 32;
      } else if (name == "secp384r1") {
        jwk.crv_ = "P-384";
        size = 48;
      } else {
        return fail(ErrorCode::kUnsupported,
                    "jwk: EC group " + std::string(name) + " not supported");
      }
      jwk.kty_ = "EC";
      auto x = bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, size);
      if (!x) return fail(x.error());
      auto y = bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, size);
      if (!y) return fail(y.error());
      jwk.x_ = std::move(*x);
      jwk.y_ = std::move(*y);
      auto pub = ec_from_xy(jwk.crv_, jwk.x_, jwk.y_);
      if (!pub) return fail(pub.error());
      jwk.key_ = std::move(pub->key);
      jwk.verify_init_ = std::move(pub->verify_init);
      jwk.thumbprint_ = std::move(pub->thumbprint);
      return jwk;
    }
    case EVP_PKEY_ED25519: {
      Bytes x(32);
      std::size_t len = x.size();
      if (EVP_PKEY_get_raw_public_key(key, x.data(), &len) != 1 || len != 32) {
        return fail(ossl::error("jwk: Ed25519 public key"));
      }
      jwk.kty_ = "OKP";
      jwk.crv_ = "Ed25519";
      ossl::PKey pub(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, x.data(), x.size()));
      if (!pub) return fail(ossl::error("jwk: Ed25519 key"));
      jwk.key_ = share(std::move(pub));
      jwk.x_ = std::move(x);
      return jwk;
    }
    case EVP_PKEY_RSA: {
      auto n = bn_param(key, OSSL_PKEY_PARAM_RSA_N, 0);
      if (!n) return fail(n.error());
      auto e = bn_param(key, OSSL_PKEY_PARAM_RSA_E, 0);
      if (!e) return fail(e.error());
      auto pub = rsa_from_ne(*n, *e);
      if (!pub) return fail(pub.error());
      jwk.kty_ = "RSA";
      jwk.key_ = share(std::move(*pub));
      jwk.x_ = std::move(*n);
      jwk.y_ = std::move(*e);
      return jwk;
    }
    default:
      return fail(ErrorCode::kUnsupported, "jwk: key type not supported");
  }
}

Result<Jwk> Jwk::from_cose_key(const cbor::Value& key) {
  if (key.type() != cbor::Value::Type::kMap)
    return fail(ErrorCode::kMalformed, "cose_key: not a map");
  const auto* kty = key.find(1);
  if (kty == nullptr || !kty->as_int())
    return fail(ErrorCode::kMalformed, "cose_key: missing kty (1)");
  boost::json::object obj;
  auto b64 = [&](std::int64_t label, const char* name) -> Status {
    const auto* v = key.find(label);
    if (v == nullptr || v->as_bytes() == nullptr) {
      return fail(ErrorCode::kMalformed, "cose_key: missing bstr label " + std::to_string(label));
    }
    obj[name] = base64url_encode(*v->as_bytes());
    return ok();
  };
  const auto* crv = key.find(-1);
  std::int64_t crv_id = crv != nullptr ? crv->as_int().value_or(0) : 0;
  if (*kty->as_int() == 2) {
    obj["kty"] = "EC";
    if (crv_id == 1) {
      obj["crv"] = "P-256";
    } else if (crv_id == 2) {
      obj["crv"] = "P-384";
    } else {
      return fail(ErrorCode::kUnsupported, "cose_key: EC2 curve must be P-256 (1) or P-384 (2)");
    }
    WARDEN_TRY_STATUS(b64(-2, "x"));
    WARDEN_TRY_STATUS(b64(-3, "y"));
  } else if (*kty->as_int() == 1) {
    if (crv_id != 6)
      return fail(ErrorCode::kUnsupported, "cose_key: OKP curve must be Ed25519 (6)");
    obj["kty"] = "OKP";
    obj["crv"] = "Ed25519";
    WARDEN_TRY_STATUS(b64(-2, "x"));
  } else {
    return fail(ErrorCode::kUnsupported,
                "cose_key: kty " + std::to_string(*kty->as_int()) + " not supported");
  }
  if (key.find(-4) != nullptr)
    return fail(ErrorCode::kMalformed, "cose_key: private key (d) present");
  auto jwk = from_json(obj);
  if (!jwk) return jwk;
  if (const auto* kid = key.find(2); kid != nullptr && kid->as_bytes() != nullptr) {
    jwk->kid_ = to_string(*kid->as_bytes());
  }
  return jwk;
}

Result<cbor::Value> Jwk::to_cose_key() const {
  cbor::Value map = cbor::Value::map();
  if (kty_ == "EC") {
    map.put(cbor::Value::integer(1), cbor::Value::integer(2));
    map.put(cbor::Value::integer(-1), cbor::Value::integer(crv_ == "P-256" ? 1 : 2));
    map.put(cbor::Value::integer(-2), cbor::Value::bytes(x_));
    map.put(cbor::Value::integer(-3), cbor::Value::bytes(y_));
  } else if (kty_ == "OKP") {
    map.put(cbor::Value::integer(1), cbor::Value::integer(1));
    map.put(cbor::Value::integer(-1), cbor::Value::integer(6));
    map.put(cbor::Value::integer(-2), cbor::Value::bytes(x_));
  } else {
    return fail(ErrorCode::kUnsupported, "cose_key: RSA keys are not encoded as COSE_Key here");
  }
  return map;
}

boost::json::object Jwk::required_members() const {
  boost::json::object obj;
  if (kty_ == "RSA") {
    obj["e"] = base64url_encode(y_);
    obj["kty"] = "RSA";
    obj["n"] = base64url_encode(x_);
  } else if (kty_ == "OKP") {
    obj["crv"] = crv_;
    obj["kty"] = "OKP";
    obj["x"] = base64url_encode(x_);
  } else {
    obj["crv"] = crv_;
    obj["kty"] = "EC";
    obj["x"] = base64url_encode(x_);
    obj["y"] = base64url_encode(y_);
  }
  return obj;
}

boost::json::object Jwk::to_json() const {
  boost::json::object obj = required_members();
  if (!kid_.empty()) obj["kid"] = kid_;
  if (alg_) obj["alg"] = std::string(alg_name(*alg_));
  return obj;
}

std::string Jwk::thumbprint() const {
  return thumbprint_.empty() ? thumbprint_of(required_members()) : thumbprint_;
}

bool Jwk::fits(Alg alg) const {
  if (alg_ && *alg_ != alg) return false;
  switch (alg) {
    case Alg::kEs256:
      return kty_ == "EC" && crv_ == "P-256";
    case Alg::kEs384:
      return kty_ == "EC" && crv_ == "P-384";
    case Alg::kEdDsa:
      return kty_ == "OKP" && crv_ == "Ed25519";
    case Alg::kRs256:
      return kty_ == "RSA";
  }
  return false;
}

Status Jwk::verify(Alg alg, ByteSpan input, ByteSpan signature) const {
  if (!fits(alg)) {
    return fail(ErrorCode::kAlgorithmNotAllowed, "verify: algorithm " + std::string(alg_name(alg)) +
                                                     " does not fit key type " + kty_ + " " + crv_);
  }
  Bytes der;
  ByteSpan sig = signature;
  if (alg == Alg::kEs256 || alg == Alg::kEs384) {
    std::size_t half = alg == Alg::kEs256 ? 32 : 48;
    if (signature.size() != 2 * half) {
      return fail(ErrorCode::kBadSignature, "verify: " + std::string(alg_name(alg)) +
                                                " signature must be " + std::to_string(2 * half) +
                                                " bytes (r||s), found " +
                                                std::to_string(signature.size()));
    }
    auto converted = ossl::ecdsa_raw_to_der(signature.first(half), signature.subspan(half));
    if (!converted) return fail(ErrorCode::kBadSignature, "verify: invalid ECDSA signature");
    der = std::move(*converted);
    sig = der;
  }
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  // An EC key's curve fixes its algorithm (fits() above), so its prepared context applies.
  if (!ctx || (verify_init_ ? EVP_MD_CTX_copy_ex(ctx.get(), verify_init_.get())
                            : EVP_DigestVerifyInit(ctx.get(), nullptr, alg_md(alg), nullptr,
                                                   key_.get())) != 1) {
    return fail(ossl::error("verify: init"));
  }
  int rc = EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), input.data(), input.size());
  ERR_clear_error();
  if (rc != 1) {
    return fail(ErrorCode::kBadSignature,
                "verify: " + std::string(alg_name(alg)) + " signature does not verify");
  }
  return ok();
}

Result<KeySet> KeySet::from_json(std::string_view text) {
  auto doc = json::parse_object(text, {.max_size = 256 * 1024, .max_depth = 8});
  if (!doc) return fail(doc.error().context("jwks"));
  const auto* keys = doc->if_contains("keys");
  if (keys == nullptr || !keys->is_array()) {
    return fail(ErrorCode::kMalformed, "jwks: missing \"keys\" array");
  }
  if (keys->as_array().size() > 256) {
    return fail(ErrorCode::kLimitExceeded, "jwks: more than 256 keys");
  }
  KeySet set;
  for (const auto& entry : keys->as_array()) {
    if (!entry.is_object()) return fail(ErrorCode::kMalformed, "jwks: key is not an object");
    auto jwk = Jwk::from_json(entry.as_object());
    if (!jwk) {
      if (jwk.error().code == ErrorCode::kUnsupported) continue;
      return fail(jwk.error().context("jwks"));
    }
    set.add(std::move(*jwk));
  }
  return set;
}

std::string KeySet::to_json() const {
  boost::json::array keys;
  for (const auto& key : keys_) keys.push_back(key.to_json());
  boost::json::object doc;
  doc["keys"] = std::move(keys);
  return json::serialize(doc);
}

Result<const Jwk*> KeySet::find(std::string_view kid, Alg alg) const {
  const Jwk* found = nullptr;
  std::size_t candidates = 0;
  for (const auto& key : keys_) {
    if (!kid.empty() && key.kid() != kid) continue;
    if (!kid.empty()) {
      if (!key.fits(alg)) {
        return fail(ErrorCode::kAlgorithmNotAllowed, "key " + std::string(kid) + " (" + key.kty() +
                                                         ") does not fit algorithm " +
                                                         std::string(alg_name(alg)));
      }
      return &key;
    }
    if (key.fits(alg)) {
      found = &key;
      ++candidates;
    }
  }
  if (!kid.empty())
    return fail(ErrorCode::kUnknownKey, "unknown key id \"" + std::string(kid) + "\"");
  if (candidates != 1) {
    return fail(ErrorCode::kUnknownKey, "no key id given and " + std::to_string(candidates) +
                                            " keys fit " + std::string(alg_name(alg)));
  }
  return found;
}

}  // namespace warden::token
