// The bound key: the binding key the AK certified, and the session key it signed (if any).
#include "attest/token/json.h"
#include "attest/verify/stages.h"
#include "platform/base/encoding.h"

namespace warden::attest::verify::detail {

namespace q = attest::quote;

std::optional<token::Jwk> bound_key(const protocol::AttestRequest& req, const q::PublicArea& ak,
                                    Findings& f) {
  auto binding = q::parse_public2b(req.binding_key.public_area);
  if (!binding) {
    f.refuse(ErrorCode::kMalformed, "binding key", binding.error().message);
    return std::nullopt;
  }
  if (auto attrs = q::check_binding_key_attributes(*binding); !attrs) {
    f.refuse(attrs.error().code, "binding key", attrs.error().message);
    return std::nullopt;
  }
  if (auto cert = q::verify_certify(ak, req.binding_key.certify.attest,
                                    req.binding_key.certify.signature, req.nonce, *binding);
      !cert) {
    f.refuse(cert.error().code, "binding key certify", cert.error().message);
    return std::nullopt;
  }
  if (!req.session_key) {
    auto pkey = q::public_key(*binding);
    auto jwk = pkey ? token::Jwk::from_pkey(pkey->get()) : Result<token::Jwk>(fail(pkey.error()));
    if (!jwk) {
      f.refuse(ErrorCode::kUnsupported, "binding key", jwk.error().message);
      return std::nullopt;
    }
    return std::move(*jwk);
  }
  auto obj = json::parse_object(req.session_key->jwk);
  auto jwk = obj ? token::Jwk::from_json(*obj) : Result<token::Jwk>(fail(obj.error()));
  if (!jwk || jwk->kty() != "EC" || jwk->crv() != "P-256") {
    f.refuse(ErrorCode::kUnsupported, "session key",
             jwk ? "key type " + jwk->kty() + " " + jwk->crv() : jwk.error().message, "EC P-256");
    return std::nullopt;
  }
  auto sig = q::parse_signature(req.session_key->signature);
  if (!sig) {
    f.refuse(ErrorCode::kMalformed, "session key signature", sig.error().message);
    return std::nullopt;
  }
  auto jkt = base64url_decode(jwk->thumbprint());
  auto verified = q::verify_signature(
      *binding, protocol::session_key_signed_bytes(req.nonce, jkt.value_or(Bytes{})), *sig);
  if (!verified) {
    f.refuse(ErrorCode::kBadSignature, "session key signature", verified.error().message);
    return std::nullopt;
  }
  return std::move(*jwk);
}

}  // namespace warden::attest::verify::detail
