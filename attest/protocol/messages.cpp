// Encoders and decoders of the agent <-> issuer messages. Key numbers and caps are listed in
// docs/protocol.md; keep the two in step.
#include "attest/protocol/messages.h"

#include <array>

#include "attest/protocol/fields.h"
#include "attest/protocol/limits.h"
#include "platform/base/cbor.h"
#include "platform/base/openssl.h"
#include "platform/base/pcr_selection.h"

// Assigns the value of a Result expression to a new variable or returns its error.
#define PROTO_TRY(var, expr)                                                   \
  auto var##_result_ = (expr);                                                 \
  if (!var##_result_) return ::warden::fail(std::move(var##_result_).error()); \
  auto var = std::move(*var##_result_)

namespace warden::protocol {
namespace {

using cbor::Value;
using detail::Field;
using detail::MapReader;
using detail::MapWriter;
namespace lim = limits;

cbor::Limits body_limits(std::size_t max_input, std::size_t max_items = 256) {
  return cbor::Limits{max_input, max_items, 6};
}

Result<std::string> id_text(const MapReader& r, std::int64_t key) {
  PROTO_TRY(id, r.text(key, lim::kId));
  if (id.empty()) return fail(r.error(ErrorCode::kMalformed, r.field_name(key), "empty"));
  return id;
}

// ---- shared pieces ----------------------------------------------------------------------------

constexpr std::array kSignedAttestFields{Field{1, "attest"}, Field{2, "signature"}};

Value encode_signed(const SignedAttest& s) {
  return MapWriter().bytes(1, s.attest).bytes(2, s.signature).take();
}

Result<SignedAttest> decode_signed(const MapReader& parent, std::int64_t key) {
  PROTO_TRY(v, parent.required(key));
  PROTO_TRY(r, MapReader::open_field(parent, key, *v, kSignedAttestFields));
  SignedAttest s;
  PROTO_TRY(attest, r.bytes(1, lim::kTpmBlob));
  PROTO_TRY(sig, r.bytes(2, lim::kTpmBlob));
  s.attest = std::move(attest);
  s.signature = std::move(sig);
  return s;
}

Result<Bytes> nonce_field(const MapReader& r, std::int64_t key) {
  PROTO_TRY(nonce, r.bytes(key, lim::kNonceMax));
  if (nonce.size() < lim::kNonceMin) {
    return fail(r.error(ErrorCode::kMalformed, r.field_name(key),
                        "expected at least 16 bytes, found " + std::to_string(nonce.size())));
  }
  return nonce;
}

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

// Field tables (the key numbers of docs/protocol.md).
constexpr std::array kMetadataFields{Field{1, "hostname"}, Field{2, "machine_id"},
                                     Field{3, "owner_label"}, Field{4, "agent_version"}};
constexpr std::array kEnrollRequestFields{Field{1, "ek_public"}, Field{2, "ek_cert"},
                                          Field{3, "ek_chain"},  Field{4, "ak_public"},
                                          Field{5, "ak_name"},   Field{6, "metadata"}};
constexpr std::array kEnrollResponseFields{Field{1, "enrollment_id"}, Field{2, "credential_blob"},
                                           Field{3, "encrypted_secret"}, Field{4, "expires_at"}};
constexpr std::array kActivateRequestFields{Field{1, "enrollment_id"}, Field{2, "proof"}};
constexpr std::array kDeviceIdFields{Field{1, "device_id"}};
constexpr std::array kChallengeResponseFields{Field{1, "nonce"}, Field{2, "expires_at"}};
constexpr std::array kAttestRequestFields{Field{1, "device_id"},
                                          Field{2, "nonce"},
                                          Field{3, "quote"},
                                          Field{4, "pcr_selection"},
                                          Field{5, "pcr_values"},
                                          Field{6, "boot_log"},
                                          Field{7, "ima"},
                                          Field{8, "cel"},
                                          Field{9, "binding_key"},
                                          Field{10, "session_key"},
                                          Field{11, "kernel_version"}};
constexpr std::array kImaFields{Field{1, "offset"}, Field{2, "entries"}, Field{3, "format"}};
constexpr std::array kBindingKeyFields{Field{1, "public"}, Field{2, "certify"}};
constexpr std::array kSessionKeyFields{Field{1, "jwk"}, Field{2, "signature"}};
constexpr std::array kAttestResponseFields{Field{1, "verdict"},        Field{2, "reasons"},
                                           Field{3, "policy_version"}, Field{4, "device_token"},
                                           Field{5, "expires_at"},     Field{6, "ima_next_offset"}};
constexpr std::array kReasonFields{Field{1, "code"}, Field{2, "subject"}, Field{3, "expected"},
                                   Field{4, "found"}};
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
constexpr std::array kErrorFields{Field{1, "code"}, Field{2, "reason"}};

constexpr std::uint64_t kU64Max = ~std::uint64_t{0};

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
  return cbor::encode(MapWriter()
                          .text(1, m.enrollment_id)
                          .bytes(2, m.credential_blob)
                          .bytes(3, m.encrypted_secret)
                          .uint(4, m.expires_at)
                          .take());
}

Result<EnrollResponse> decode_enroll_response(ByteSpan data) {
  constexpr std::string_view kWhat = "enroll response";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kEnrollResponseBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kEnrollResponseFields));
  PROTO_TRY(id, id_text(r, 1));
  PROTO_TRY(blob, r.bytes(2, lim::kTpmBlob));
  PROTO_TRY(secret, r.bytes(3, lim::kTpmBlob));
  PROTO_TRY(expires_at, r.uint(4, kU64Max));
  return EnrollResponse{std::move(id), std::move(blob), std::move(secret), expires_at};
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

// ---- challenge --------------------------------------------------------------------------------

Bytes encode(const ChallengeRequest& m) {
  return cbor::encode(MapWriter().text(1, m.device_id).take());
}

Result<ChallengeRequest> decode_challenge_request(ByteSpan data) {
  constexpr std::string_view kWhat = "challenge request";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kSmallBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kDeviceIdFields));
  PROTO_TRY(id, id_text(r, 1));
  return ChallengeRequest{std::move(id)};
}

Bytes encode(const ChallengeResponse& m) {
  return cbor::encode(MapWriter().bytes(1, m.nonce).uint(2, m.expires_at).take());
}

Result<ChallengeResponse> decode_challenge_response(ByteSpan data) {
  constexpr std::string_view kWhat = "challenge response";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kSmallBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kChallengeResponseFields));
  PROTO_TRY(nonce, nonce_field(r, 1));
  PROTO_TRY(expires_at, r.uint(2, kU64Max));
  return ChallengeResponse{std::move(nonce), expires_at};
}

// ---- attest -----------------------------------------------------------------------------------

Bytes session_key_signed_bytes(ByteSpan nonce, ByteSpan jkt) {
  ByteWriter w;
  w.bytes(std::string_view("warden-session-key-v1"));
  w.u8(0);
  w.bytes(nonce);
  w.bytes(jkt);
  return std::move(w).take();
}

Bytes encode(const AttestRequest& m) {
  MapWriter w;
  w.text(1, m.device_id).bytes(2, m.nonce).put(3, encode_signed(m.quote)).text(4, m.pcr_selection);
  if (!m.pcr_values.empty()) {
    Value arr = Value::array();
    for (const auto& p : m.pcr_values) {
      arr.push(Value::array({Value::uint(p.alg), Value::uint(p.pcr), Value::bytes(p.digest)}));
    }
    w.put(5, std::move(arr));
  }
  w.bytes(6, m.boot_log);
  if (m.ima) {
    w.put(7, MapWriter()
                 .uint(1, m.ima->offset)
                 .bytes(2, m.ima->entries)
                 .text(3, m.ima->format == ImaFormat::kAscii ? "ascii" : "binary")
                 .take());
  }
  if (m.cel) w.bytes(8, *m.cel);
  w.put(9, MapWriter()
               .bytes(1, m.binding_key.public_area)
               .put(2, encode_signed(m.binding_key.certify))
               .take());
  if (m.session_key) {
    w.put(10, MapWriter().text(1, m.session_key->jwk).bytes(2, m.session_key->signature).take());
  }
  if (m.kernel_version) w.text(11, *m.kernel_version);
  return cbor::encode(w.take());
}

namespace {

Result<std::vector<PcrValue>> decode_pcr_values(const MapReader& r) {
  std::vector<PcrValue> out;
  PROTO_TRY(arr, r.array(5, lim::kPcrValues, false));
  if (arr == nullptr) return out;
  for (std::size_t i = 0; i < arr->items().size(); ++i) {
    const Value& e = arr->items()[i];
    std::string label = "pcr_values[" + std::to_string(i) + "]";
    if (e.type() != Value::Type::kArray || e.items().size() != 3) {
      return fail(r.type_error(label, "array [alg, pcr, digest]", e));
    }
    auto alg = e.items()[0].as_uint();
    auto pcr = e.items()[1].as_uint();
    if (!alg || *alg > 0xFFFF || !hash_from_tpm_id(static_cast<std::uint16_t>(*alg))) {
      return fail(
          r.error(ErrorCode::kMalformed, label + ".alg", "expected a TPM hash algorithm id"));
    }
    if (!pcr || *pcr > 23) {
      return fail(r.error(ErrorCode::kMalformed, label + ".pcr", "expected an index 0..23"));
    }
    PROTO_TRY(digest, r.bytes_value(e.items()[2], label + ".digest", lim::kDigest));
    out.push_back(PcrValue{static_cast<std::uint16_t>(*alg), static_cast<std::uint8_t>(*pcr),
                           std::move(digest)});
  }
  return out;
}

Result<std::optional<ImaLog>> decode_ima(const MapReader& r) {
  const Value* v = r.get(7);
  if (v == nullptr) return std::optional<ImaLog>();
  Value* owned = r.get_owned(7);
  PROTO_TRY(ir, owned != nullptr ? MapReader::open_field(r, 7, *owned, kImaFields)
                                 : MapReader::open_field(r, 7, *v, kImaFields));
  PROTO_TRY(offset, ir.uint(1, lim::kImaOffsetMax));
  PROTO_TRY(entries, ir.take_bytes(2, lim::kImaEntries));
  PROTO_TRY(format, ir.text(3, lim::kShortText));
  ImaLog ima{offset, std::move(entries), ImaFormat::kBinary};
  if (format == "ascii") {
    ima.format = ImaFormat::kAscii;
  } else if (format != "binary") {
    return fail(ir.error(ErrorCode::kMalformed, "ima.format",
                         "expected \"binary\" or \"ascii\", found \"" + format + "\""));
  }
  return std::optional<ImaLog>(std::move(ima));
}

}  // namespace

Result<AttestRequest> decode_attest_request(ByteSpan data) {
  constexpr std::string_view kWhat = "attest request";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kAttestRequestBody, 1024), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kAttestRequestFields));
  AttestRequest m;
  PROTO_TRY(device_id, id_text(r, 1));
  PROTO_TRY(nonce, nonce_field(r, 2));
  PROTO_TRY(quote, decode_signed(r, 3));
  PROTO_TRY(selection, r.text(4, lim::kShortText));
  if (auto parsed = PcrSelection::parse(selection); !parsed) {
    return fail(r.error(ErrorCode::kMalformed, "pcr_selection", parsed.error().message));
  }
  PROTO_TRY(pcr_values, decode_pcr_values(r));
  PROTO_TRY(boot_log, r.take_bytes(6, lim::kBootLog));
  PROTO_TRY(ima, decode_ima(r));
  PROTO_TRY(cel, r.opt_bytes(8, lim::kCel));
  PROTO_TRY(bkv, r.required(9));
  PROTO_TRY(bk, MapReader::open_field(r, 9, *bkv, kBindingKeyFields));
  PROTO_TRY(bk_public, bk.bytes(1, lim::kTpmBlob));
  PROTO_TRY(certify, decode_signed(bk, 2));
  if (const Value* skv = r.get(10); skv != nullptr) {
    PROTO_TRY(sk, MapReader::open_field(r, 10, *skv, kSessionKeyFields));
    PROTO_TRY(jwk, sk.text(1, lim::kJwk));
    PROTO_TRY(sig, sk.bytes(2, lim::kTpmBlob));
    m.session_key = SessionKey{std::move(jwk), std::move(sig)};
  }
  PROTO_TRY(kernel, r.opt_text(11, lim::kShortText));
  m.device_id = std::move(device_id);
  m.nonce = std::move(nonce);
  m.quote = std::move(quote);
  m.pcr_selection = std::move(selection);
  m.pcr_values = std::move(pcr_values);
  m.boot_log = std::move(boot_log);
  m.ima = std::move(ima);
  m.cel = std::move(cel);
  m.binding_key = BindingKey{std::move(bk_public), std::move(certify)};
  m.kernel_version = std::move(kernel);
  return m;
}

Bytes encode(const AttestResponse& m) {
  MapWriter w;
  w.text(1, m.verdict == Verdict::kPass ? "pass" : "fail");
  Value reasons = Value::array();
  for (const auto& reason : m.reasons) {
    MapWriter rw;
    rw.text(1, reason.code).text(2, reason.subject);
    if (reason.expected) rw.text(3, *reason.expected);
    if (reason.found) rw.text(4, *reason.found);
    reasons.push(rw.take());
  }
  w.put(2, std::move(reasons)).text(3, m.policy_version);
  if (m.device_token) w.bytes(4, *m.device_token);
  if (m.expires_at) w.uint(5, *m.expires_at);
  w.uint(6, m.ima_next_offset);
  return cbor::encode(w.take());
}

Result<AttestResponse> decode_attest_response(ByteSpan data) {
  constexpr std::string_view kWhat = "attest response";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kAttestResponseBody, 2048), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kAttestResponseFields));
  AttestResponse m;
  PROTO_TRY(verdict, r.text(1, lim::kShortText));
  if (verdict == "pass") {
    m.verdict = Verdict::kPass;
  } else if (verdict != "fail") {
    return fail(r.error(ErrorCode::kMalformed, "verdict",
                        "expected \"pass\" or \"fail\", found \"" + verdict + "\""));
  }
  PROTO_TRY(reasons, r.array(2, lim::kReasons, true));
  for (std::size_t i = 0; i < reasons->items().size(); ++i) {
    PROTO_TRY(rr, MapReader::open(reasons->items()[i], kWhat, "reasons[" + std::to_string(i) + "].",
                                  kReasonFields));
    PROTO_TRY(code, rr.text(1, lim::kShortText));
    PROTO_TRY(subject, rr.text(2, lim::kText));
    PROTO_TRY(expected, rr.opt_text(3, lim::kText));
    PROTO_TRY(found, rr.opt_text(4, lim::kText));
    m.reasons.push_back(
        Reason{std::move(code), std::move(subject), std::move(expected), std::move(found)});
  }
  PROTO_TRY(policy_version, r.text(3, lim::kShortText));
  PROTO_TRY(token, r.opt_bytes(4, lim::kToken));
  PROTO_TRY(expires_at, r.opt_uint(5, kU64Max));
  PROTO_TRY(next, r.uint(6, lim::kImaOffsetMax));
  if (m.verdict == Verdict::kPass && (!token || !expires_at)) {
    return fail(ErrorCode::kMalformed,
                std::string(kWhat) + ": verdict pass requires device_token and expires_at");
  }
  if (m.verdict == Verdict::kFail && token) {
    return fail(ErrorCode::kMalformed,
                std::string(kWhat) + ": field device_token: not allowed with verdict fail");
  }
  m.policy_version = std::move(policy_version);
  m.device_token = std::move(token);
  m.expires_at = expires_at;
  m.ima_next_offset = next;
  return m;
}

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

// ---- errors -----------------------------------------------------------------------------------

ErrorResponse error_response(const Error& error) {
  return ErrorResponse{std::string(to_string(error.code)), error.message};
}

Error to_error(const ErrorResponse& response) {
  // Codes appended later are found too: out-of-range values name "internal", matched at 0.
  for (int i = 0; i < 256; ++i) {
    auto code = static_cast<ErrorCode>(i);
    if (to_string(code) == response.code) return Error{code, response.reason, 0, 0};
  }
  return Error{ErrorCode::kInternal, "issuer error " + response.code + ": " + response.reason, 0,
               0};
}

Bytes encode(const ErrorResponse& m) {
  return cbor::encode(MapWriter().text(1, m.code).text(2, m.reason).take());
}

Result<ErrorResponse> decode_error_response(ByteSpan data) {
  constexpr std::string_view kWhat = "error response";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kErrorBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kErrorFields));
  PROTO_TRY(code, r.text(1, lim::kShortText));
  PROTO_TRY(reason, r.text(2, lim::kErrorReason));
  return ErrorResponse{std::move(code), std::move(reason)};
}

}  // namespace warden::protocol
