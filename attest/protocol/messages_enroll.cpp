// Enrollment and credential activation messages.
// docs/protocol.md lists the key numbers and caps; keep the two in step.
#include "attest/protocol/messages.h"
#include "attest/protocol/messages_codec.h"
#include "platform/base/openssl.h"

namespace warden::protocol {
namespace {

constexpr std::array kMetadataFields{Field{1, "hostname"}, Field{2, "machine_id"},
                                     Field{3, "owner_label"}, Field{4, "agent_version"}};
constexpr std::array kEnrollRequestFields{Field{1, "ek_public"}, Field{2, "ek_cert"},
                                          Field{3, "ek_chain"},  Field{4, "ak_public"},
                                          Field{5, "ak_name"},   Field{6, "metadata"}};
constexpr std::array kEnrollResponseFields{Field{1, "enrollment_id"}, Field{2, "credential_blob"},
                                           Field{3, "encrypted_secret"}, Field{4, "expires_at"},
                                           Field{-1, "seal_authority"}};
constexpr std::array kActivateRequestFields{Field{1, "enrollment_id"}, Field{2, "proof"}};

}  // namespace

// ---- enroll -----------------------------------------------------------------------------------

Bytes encode(const EnrollRequest& m) {
  MapWriter w;
  w.bytes(1, m.ek_public);
  if (m.ek_cert) w.bytes(2, *m.ek_cert);
  if (!m.ek_chain.empty()) {
    Value chain = Value::array();
    for (const auto& c : m.ek_chain) chain.push(Value::bytes(c));
    w.put(3, std::move(chain));
  }
  w.bytes(4, m.ak_public).bytes(5, m.ak_name);
  MapWriter md;
  md.text(1, m.metadata.hostname).text(2, m.metadata.machine_id);
  if (m.metadata.owner_label) md.text(3, *m.metadata.owner_label);
  md.text(4, m.metadata.agent_version);
  w.put(6, md.take());
  return cbor::encode(w.take());
}

Result<EnrollRequest> decode_enroll_request(ByteSpan data) {
  constexpr std::string_view kWhat = "enroll request";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kEnrollRequestBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kEnrollRequestFields));
  EnrollRequest m;
  PROTO_TRY(ek_public, r.bytes(1, lim::kTpmBlob));
  PROTO_TRY(ek_cert, r.opt_bytes(2, lim::kCert));
  PROTO_TRY(chain, r.array(3, lim::kChain, false));
  if (chain != nullptr) {
    for (std::size_t i = 0; i < chain->items().size(); ++i) {
      PROTO_TRY(
          c, r.bytes_value(chain->items()[i], "ek_chain[" + std::to_string(i) + "]", lim::kCert));
      m.ek_chain.push_back(std::move(c));
    }
  }
  PROTO_TRY(ak_public, r.bytes(4, lim::kTpmBlob));
  PROTO_TRY(ak_name, r.bytes(5, lim::kName));
  PROTO_TRY(mdv, r.required(6));
  PROTO_TRY(md, MapReader::open_field(r, 6, *mdv, kMetadataFields));
  PROTO_TRY(hostname, md.text(1, lim::kShortText));
  PROTO_TRY(machine_id, md.text(2, lim::kShortText));
  PROTO_TRY(owner_label, md.opt_text(3, lim::kShortText));
  PROTO_TRY(agent_version, md.text(4, lim::kShortText));
  m.ek_public = std::move(ek_public);
  m.ek_cert = std::move(ek_cert);
  m.ak_public = std::move(ak_public);
  m.ak_name = std::move(ak_name);
  m.metadata = DeviceMetadata{std::move(hostname), std::move(machine_id), std::move(owner_label),
                              std::move(agent_version)};
  return m;
}

Bytes encode(const EnrollResponse& m) {
  MapWriter w;
  w.text(1, m.enrollment_id)
      .bytes(2, m.credential_blob)
      .bytes(3, m.encrypted_secret)
      .uint(4, m.expires_at);
  if (m.seal_authority) w.bytes(-1, *m.seal_authority);
  return cbor::encode(w.take());
}

Result<EnrollResponse> decode_enroll_response(ByteSpan data) {
  constexpr std::string_view kWhat = "enroll response";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kEnrollResponseBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kEnrollResponseFields));
  PROTO_TRY(id, id_text(r, 1));
  PROTO_TRY(blob, r.bytes(2, lim::kTpmBlob));
  PROTO_TRY(secret, r.bytes(3, lim::kTpmBlob));
  PROTO_TRY(expires_at, r.uint(4, kU64Max));
  EnrollResponse m{std::move(id), std::move(blob), std::move(secret), expires_at, std::nullopt};
  // Not PROTO_TRY: moving an optional out makes g++ 12 warn falsely that it may be uninitialized.
  auto seal_authority = r.opt_bytes(-1, lim::kTpmBlob);
  if (!seal_authority) return fail(std::move(seal_authority).error());
  m.seal_authority = *seal_authority;
  return m;
}

Bytes encode(const ActivateRequest& m) {
  return cbor::encode(MapWriter().text(1, m.enrollment_id).bytes(2, m.proof).take());
}

Result<ActivateRequest> decode_activate_request(ByteSpan data) {
  constexpr std::string_view kWhat = "activate request";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kSmallBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kActivateRequestFields));
  PROTO_TRY(id, id_text(r, 1));
  PROTO_TRY(proof, r.bytes(2, lim::kProof));
  return ActivateRequest{std::move(id), std::move(proof)};
}

Bytes encode(const ActivateResponse& m) {
  return cbor::encode(MapWriter().text(1, m.device_id).take());
}

Result<ActivateResponse> decode_activate_response(ByteSpan data) {
  constexpr std::string_view kWhat = "activate response";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kSmallBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kDeviceIdFields));
  PROTO_TRY(id, id_text(r, 1));
  return ActivateResponse{std::move(id)};
}

Result<Bytes> activation_proof(ByteSpan secret, std::string_view enrollment_id, ByteSpan ak_name) {
  ByteWriter w;
  constexpr std::string_view kLabel = "warden-activate-v1";
  w.bytes(kLabel);
  w.u8(0);
  w.bytes(enrollment_id);
  w.u8(0);
  w.bytes(ak_name);
  return ossl::hmac(ossl::Hash::kSha256, secret, w.data());
}

}  // namespace warden::protocol
