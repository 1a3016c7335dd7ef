// Challenge and attestation messages.
// docs/protocol.md lists the key numbers and caps; keep the two in step.
#include "attest/protocol/messages.h"
#include "attest/protocol/messages_codec.h"
#include "platform/base/pcr_selection.h"

namespace warden::protocol {
namespace {

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
                                          Field{11, "kernel_version"},
                                          Field{-1, "seal_pcrs"}};
constexpr std::array kImaFields{Field{1, "offset"}, Field{2, "entries"}, Field{3, "format"}};
constexpr std::array kBindingKeyFields{Field{1, "public"}, Field{2, "certify"}};
constexpr std::array kSessionKeyFields{Field{1, "jwk"}, Field{2, "signature"}};
constexpr std::array kAttestResponseFields{Field{1, "verdict"},         Field{2, "reasons"},
                                           Field{3, "policy_version"},  Field{4, "device_token"},
                                           Field{5, "expires_at"},      Field{6, "ima_next_offset"},
                                           Field{-1, "approved_policy"}};
constexpr std::array kReasonFields{Field{1, "code"}, Field{2, "subject"}, Field{3, "expected"},
                                   Field{4, "found"}};

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

}  // namespace

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
  if (m.seal_pcrs) w.text(-1, *m.seal_pcrs);
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
  PROTO_TRY(seal_pcrs, r.opt_text(-1, lim::kShortText));
  if (seal_pcrs) {
    if (auto parsed = PcrSelection::parse(*seal_pcrs); !parsed)
      return fail(r.error(ErrorCode::kMalformed, "seal_pcrs", parsed.error().message));
  }
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
  m.seal_pcrs = std::move(seal_pcrs);
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
  // Negative keys after the positive ones: RFC 8949 4.2.1 bytewise order.
  if (m.approved_policy) w.bytes(-1, *m.approved_policy);
  return cbor::encode(w.take());
}

namespace {

Result<Verdict> decode_verdict(const MapReader& r) {
  // Not PROTO_TRY: moving the text out makes g++ 12 warn falsely that it may be uninitialized.
  const auto text = r.text(1, lim::kShortText);
  if (!text) return fail(text.error());
  if (*text == "pass") return Verdict::kPass;
  if (*text == "fail") return Verdict::kFail;
  return fail(r.error(ErrorCode::kMalformed, "verdict",
                      "expected \"pass\" or \"fail\", found \"" + *text + "\""));
}

}  // namespace

Result<AttestResponse> decode_attest_response(ByteSpan data) {
  constexpr std::string_view kWhat = "attest response";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kAttestResponseBody, 2048), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kAttestResponseFields));
  AttestResponse m;
  PROTO_TRY(verdict, decode_verdict(r));
  m.verdict = verdict;
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
  PROTO_TRY(approved, r.opt_bytes(-1, lim::kApprovedPolicy));
  if (m.verdict == Verdict::kPass && (!token || !expires_at)) {
    return fail(ErrorCode::kMalformed,
                std::string(kWhat) + ": verdict pass requires device_token and expires_at");
  }
  if (m.verdict == Verdict::kFail && token) {
    return fail(ErrorCode::kMalformed,
                std::string(kWhat) + ": field device_token: not allowed with verdict fail");
  }
  if (m.verdict == Verdict::kFail && approved) {
    return fail(ErrorCode::kMalformed,
                std::string(kWhat) + ": field approved_policy: not allowed with verdict fail");
  }
  m.policy_version = std::move(policy_version);
  m.device_token = std::move(token);
  m.expires_at = expires_at;
  m.ima_next_offset = next;
  m.approved_policy = std::move(approved);
  return m;
}

}  // namespace warden::protocol
