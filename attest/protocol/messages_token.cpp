// Token and revocation messages.
// docs/protocol.md lists the key numbers and caps; keep the two in step.
#include "attest/protocol/messages.h"
#include "attest/protocol/messages_codec.h"

namespace warden::protocol {
namespace {

constexpr std::array kTokenRequestFields{
    Field{1, "device_token"}, Field{2, "proof"}, Field{3, "selectors"}, Field{4, "audience"},
    Field{5, "scopes"},       Field{6, "ttl"},   Field{7, "format"}};
constexpr std::array kSelectorFields{Field{1, "uid"},
                                     Field{2, "gid"},
                                     Field{3, "systemd_unit"},
                                     Field{4, "container_id"},
                                     Field{5, "container_runtime"},
                                     Field{6, "image_ref"},
                                     Field{7, "image_digest"},
                                     Field{8, "exe_path"},
                                     Field{9, "exe_digest"}};
constexpr std::array kTokenResponseFields{Field{1, "token"}, Field{2, "jti"},
                                          Field{3, "expires_at"}, Field{4, "status_index"}};
constexpr std::array kRevokeRequestFields{Field{1, "device_id"}, Field{2, "reason"},
                                          Field{3, "timestamp"}, Field{4, "jtis"},
                                          Field{5, "signature"}};
constexpr std::array kRevokeResponseFields{Field{1, "revoked"}};

Result<std::vector<std::string>> text_array(const MapReader& r, std::int64_t key,
                                            std::size_t max_items, std::size_t max_size,
                                            bool required) {
  PROTO_TRY(arr, r.array(key, max_items, required));
  std::vector<std::string> out;
  if (arr == nullptr) return out;
  for (std::size_t i = 0; i < arr->items().size(); ++i) {
    PROTO_TRY(t, r.text_value(arr->items()[i], r.field_name(key) + "[" + std::to_string(i) + "]",
                              max_size));
    out.push_back(std::move(t));
  }
  return out;
}

Value text_array_value(const std::vector<std::string>& items) {
  Value arr = Value::array();
  for (const auto& s : items) arr.push(Value::text(s));
  return arr;
}

}  // namespace

// ---- token ------------------------------------------------------------------------------------

Bytes encode(const TokenRequest& m) {
  MapWriter w;
  w.bytes(1, m.device_token).text(2, m.proof);
  const WorkloadSelectors& s = m.selectors;
  MapWriter sw;
  if (s.uid) sw.uint(1, *s.uid);
  if (s.gid) sw.uint(2, *s.gid);
  const std::array<std::pair<std::int64_t, const std::optional<std::string>*>, 7> texts{
      {{3, &s.systemd_unit},
       {4, &s.container_id},
       {5, &s.container_runtime},
       {6, &s.image_ref},
       {7, &s.image_digest},
       {8, &s.exe_path},
       {9, &s.exe_digest}}};
  for (const auto& [key, value] : texts) {
    if (*value) sw.text(key, **value);
  }
  w.put(3, sw.take()).text(4, m.audience).put(5, text_array_value(m.scopes)).uint(6, m.ttl);
  w.text(7, m.format == TokenFormat::kCwt ? "cwt" : "jwt");
  return cbor::encode(w.take());
}

Result<TokenRequest> decode_token_request(ByteSpan data) {
  constexpr std::string_view kWhat = "token request";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kTokenRequestBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kTokenRequestFields));
  TokenRequest m;
  PROTO_TRY(device_token, r.bytes(1, lim::kToken));
  PROTO_TRY(proof, r.text(2, lim::kJws));
  PROTO_TRY(sv, r.required(3));
  PROTO_TRY(sr, MapReader::open_field(r, 3, *sv, kSelectorFields));
  WorkloadSelectors& s = m.selectors;
  PROTO_TRY(uid, sr.opt_uint(1, 0xFFFFFFFFu));
  PROTO_TRY(gid, sr.opt_uint(2, 0xFFFFFFFFu));
  if (uid) s.uid = static_cast<std::uint32_t>(*uid);
  if (gid) s.gid = static_cast<std::uint32_t>(*gid);
  const std::array<std::pair<std::int64_t, std::optional<std::string>*>, 7> texts{
      {{3, &s.systemd_unit},
       {4, &s.container_id},
       {5, &s.container_runtime},
       {6, &s.image_ref},
       {7, &s.image_digest},
       {8, &s.exe_path},
       {9, &s.exe_digest}}};
  for (const auto& [key, target] : texts) {
    PROTO_TRY(t, sr.opt_text(key, key == 8 ? lim::kPath : lim::kText));
    *target = std::move(t);
  }
  PROTO_TRY(audience, r.text(4, lim::kText));
  if (audience.empty()) return fail(r.error(ErrorCode::kMalformed, "audience", "empty"));
  PROTO_TRY(scopes, text_array(r, 5, lim::kScopes, lim::kShortText, true));
  PROTO_TRY(ttl, r.uint(6, lim::kMaxTtl));
  PROTO_TRY(format, r.text(7, lim::kShortText));
  if (format == "cwt") {
    m.format = TokenFormat::kCwt;
  } else if (format != "jwt") {
    return fail(r.error(ErrorCode::kMalformed, "format",
                        "expected \"jwt\" or \"cwt\", found \"" + format + "\""));
  }
  m.device_token = std::move(device_token);
  m.proof = std::move(proof);
  m.audience = std::move(audience);
  m.scopes = std::move(scopes);
  m.ttl = static_cast<std::uint32_t>(ttl);
  return m;
}

Bytes encode(const TokenResponse& m) {
  MapWriter w;
  if (const auto* text = std::get_if<std::string>(&m.token)) {
    w.text(1, *text);
  } else {
    w.bytes(1, std::get<Bytes>(m.token));
  }
  w.text(2, m.jti).uint(3, m.expires_at).uint(4, m.status_index);
  return cbor::encode(w.take());
}

Result<TokenResponse> decode_token_response(ByteSpan data) {
  constexpr std::string_view kWhat = "token response";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kTokenResponseBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kTokenResponseFields));
  TokenResponse m;
  PROTO_TRY(tv, r.required(1));
  if (tv->as_text() != nullptr) {
    PROTO_TRY(t, r.text(1, lim::kToken));
    m.token = std::move(t);
  } else if (tv->as_bytes() != nullptr) {
    PROTO_TRY(b, r.bytes(1, lim::kToken));
    m.token = std::move(b);
  } else {
    return fail(r.type_error("token", "text or bytes", *tv));
  }
  PROTO_TRY(jti, id_text(r, 2));
  PROTO_TRY(expires_at, r.uint(3, kU64Max));
  PROTO_TRY(status_index, r.uint(4, kU64Max));
  m.jti = std::move(jti);
  m.expires_at = expires_at;
  m.status_index = status_index;
  return m;
}

// ---- revoke -----------------------------------------------------------------------------------

namespace {
MapWriter revoke_fields(const RevokeRequest& m) {
  MapWriter w;
  w.text(1, m.device_id).text(2, m.reason).uint(3, m.timestamp);
  if (!m.jtis.empty()) w.put(4, text_array_value(m.jtis));
  return w;
}
}  // namespace

Bytes revoke_signed_bytes(const RevokeRequest& request) {
  return cbor::encode(revoke_fields(request).take());
}

Bytes encode(const RevokeRequest& m) {
  return cbor::encode(revoke_fields(m).bytes(5, m.signature).take());
}

Result<RevokeRequest> decode_revoke_request(ByteSpan data) {
  constexpr std::string_view kWhat = "revoke request";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kRevokeRequestBody, 2048), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kRevokeRequestFields));
  PROTO_TRY(device_id, id_text(r, 1));
  PROTO_TRY(reason, r.text(2, lim::kText));
  PROTO_TRY(timestamp, r.uint(3, kU64Max));
  PROTO_TRY(jtis, text_array(r, 4, lim::kJtis, lim::kId, false));
  PROTO_TRY(signature, r.bytes(5, lim::kTpmBlob));
  return RevokeRequest{std::move(device_id), std::move(reason), timestamp, std::move(jtis),
                       std::move(signature)};
}

Bytes encode(const RevokeResponse& m) {
  return cbor::encode(MapWriter().uint(1, m.revoked).take());
}

Result<RevokeResponse> decode_revoke_response(ByteSpan data) {
  constexpr std::string_view kWhat = "revoke response";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kSmallBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kRevokeResponseFields));
  PROTO_TRY(revoked, r.uint(1, kU64Max));
  return RevokeResponse{revoked};
}

}  // namespace warden::protocol
