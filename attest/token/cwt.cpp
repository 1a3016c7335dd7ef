#include "attest/token/cwt.h"

#include <algorithm>

namespace warden::token {
namespace {

using cbor::Value;
constexpr std::uint64_t kTagSign1 = 18;
constexpr std::uint64_t kTagCwt = 61;

}  // namespace

const Value* CoseSign1::header(std::int64_t label) const {
  if (const auto* v = protected_header.find(label)) return v;
  return unprotected.find(label);
}

Result<CoseSign1> decode_cose_sign1(ByteSpan data, const cbor::Limits& limits) {
  auto decoded = cbor::decode(data, limits);
  if (!decoded) return fail(decoded.error().context("cose_sign1"));
  const Value* v = &*decoded;
  if (v->type() == Value::Type::kTag && v->tag_number() == kTagCwt) v = v->tag_content();
  if (v == nullptr || v->type() != Value::Type::kTag || v->tag_number() != kTagSign1) {
    return fail(ErrorCode::kMalformed, "cose_sign1: expected tag 18 (COSE_Sign1)");
  }
  v = v->tag_content();
  if (v == nullptr || v->type() != Value::Type::kArray || v->items().size() != 4) {
    return fail(ErrorCode::kMalformed, "cose_sign1: expected an array of 4 items");
  }
  const auto& items = v->items();
  if (items[0].as_bytes() == nullptr || items[1].type() != Value::Type::kMap ||
      items[2].as_bytes() == nullptr || items[3].as_bytes() == nullptr) {
    return fail(
        ErrorCode::kMalformed,
        "cose_sign1: expected [bstr protected, map unprotected, bstr payload, bstr signature]"
        " (detached payloads are not supported)");
  }
  CoseSign1 msg;
  msg.protected_bytes = *items[0].as_bytes();
  if (msg.protected_bytes.empty()) {
    msg.protected_header = Value::map();
  } else {
    auto ph = cbor::decode(msg.protected_bytes, limits);
    if (!ph) return fail(ph.error().context("cose_sign1: protected header"));
    if (ph->type() != Value::Type::kMap) {
      return fail(ErrorCode::kMalformed, "cose_sign1: protected header is not a map");
    }
    msg.protected_header = std::move(*ph);
  }
  msg.unprotected = items[1];
  msg.payload = *items[2].as_bytes();
  msg.signature = *items[3].as_bytes();
  return msg;
}

Bytes sig_structure(ByteSpan protected_bytes, ByteSpan external_aad, ByteSpan payload) {
  return cbor::encode(Value::array({Value::text("Signature1"), Value::bytes(protected_bytes),
                                    Value::bytes(external_aad), Value::bytes(payload)}));
}

Result<Bytes> sign_cose_sign1(Signer& signer, ByteSpan payload,
                              std::optional<std::string> content_type) {
  Value ph = Value::map({{Value::integer(1), Value::integer(cose_alg_id(signer.alg()))}});
  if (content_type) ph.put(Value::integer(16), Value::text(*content_type));
  Bytes protected_bytes = cbor::encode(ph);
  auto sig = signer.sign(sig_structure(protected_bytes, {}, payload));
  if (!sig) return fail(sig.error().context("cose_sign1"));
  Value unprotected = Value::map();
  if (!signer.kid().empty())
    unprotected.put(Value::integer(4), Value::bytes(to_bytes(signer.kid())));
  return cbor::encode(
      Value::tag(kTagSign1, Value::array({Value::bytes(protected_bytes), std::move(unprotected),
                                          Value::bytes(payload), Value::bytes(*sig)})));
}

Result<CoseSign1> verify_cose_sign1(ByteSpan data, const KeySet& keys,
                                    const std::vector<Alg>& allowed) {
  auto msg = decode_cose_sign1(data);
  if (!msg) return msg;
  const Value* alg_value = msg->protected_header.find(1);
  if (alg_value == nullptr || !alg_value->as_int()) {
    return fail(ErrorCode::kMalformed, "cose_sign1: protected header has no alg (1)");
  }
  auto alg = alg_from_cose(*alg_value->as_int());
  if (!alg || std::find(allowed.begin(), allowed.end(), *alg) == allowed.end()) {
    return fail(ErrorCode::kAlgorithmNotAllowed,
                "algorithm not allowed: COSE alg " + std::to_string(*alg_value->as_int()));
  }
  if (msg->protected_header.find(2) != nullptr) {
    return fail(ErrorCode::kMalformed, "cose_sign1: unknown critical header parameters (crit)");
  }
  std::string kid;
  if (const auto* k = msg->header(4)) {
    if (k->as_bytes() == nullptr)
      return fail(ErrorCode::kMalformed, "cose_sign1: kid is not a bstr");
    kid = to_string(*k->as_bytes());
  }
  auto key = keys.find(kid, *alg);
  if (!key) return fail(key.error());
  WARDEN_TRY_STATUS(
      (*key)->verify(*alg, sig_structure(msg->protected_bytes, {}, msg->payload), msg->signature));
  return msg;
}

Result<Bytes> mint_cwt(Signer& signer, const Claims& claims,
                       std::optional<std::string> content_type) {
  auto payload = claims_to_cbor(claims);
  if (!payload) return fail(payload.error());
  return sign_cose_sign1(signer, cbor::encode(*payload), std::move(content_type));
}

Result<VerifiedCwt> verify_cwt(ByteSpan data, const KeySet& keys, const ClaimChecks& checks) {
  auto msg = verify_cose_sign1(data, keys);
  if (!msg) return fail(msg.error());
  auto payload = cbor::decode(msg->payload, kCoseLimits);
  if (!payload) return fail(payload.error().context("cwt: payload"));
  auto claims = claims_from_cbor(*payload);
  if (!claims) return fail(claims.error());
  WARDEN_TRY_STATUS(check_claims(*claims, checks));
  return VerifiedCwt{std::move(*msg), std::move(*payload), std::move(*claims)};
}

}  // namespace warden::token
