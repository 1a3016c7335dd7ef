#include "attest/protocol/messages.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "attest/protocol/errors.h"
#include "attest/protocol/limits.h"
#include "platform/base/cbor.h"
#include "platform/base/encoding.h"

namespace warden::protocol {
namespace {

Bytes filled(std::size_t n, std::uint8_t v) { return Bytes(n, v); }

EnrollRequest sample_enroll_request() {
  EnrollRequest m;
  m.ek_public = filled(90, 1);
  m.ek_cert = filled(700, 2);
  m.ek_chain = {filled(600, 3), filled(500, 4)};
  m.ak_public = filled(88, 5);
  m.ak_name = filled(34, 6);
  m.metadata = {"host1", "0123456789abcdef0123456789abcdef", "rack-7", "0.1.0"};
  return m;
}
EnrollResponse sample_enroll_response() { return {"enr-1", filled(70, 1), filled(66, 2), 1700}; }
ActivateRequest sample_activate_request() { return {"enr-1", filled(32, 9)}; }
ActivateResponse sample_activate_response() { return {"dev-42"}; }
ChallengeRequest sample_challenge_request() { return {"dev-42"}; }
ChallengeResponse sample_challenge_response() {
  Bytes nonce;
  for (std::uint8_t i = 0; i < 16; ++i) nonce.push_back(i);
  return {nonce, 1767225600};
}
AttestRequest sample_attest_request() {
  AttestRequest m;
  m.device_id = "dev-42";
  m.nonce = filled(32, 7);
  m.quote = {filled(129, 1), filled(72, 2)};
  m.pcr_selection = "sha256:0,1,2,3,4,5,6,7,8,9,10,14";
  m.pcr_values = {{0x0B, 0, filled(32, 0)}, {0x0B, 10, filled(32, 0xAA)}};
  m.boot_log = filled(400, 3);
  m.ima = ImaLog{12, filled(200, 4), ImaFormat::kBinary};
  m.cel = filled(300, 5);
  m.binding_key = {filled(88, 6), {filled(120, 7), filled(72, 8)}};
  m.session_key = SessionKey{R"({"kty":"EC","crv":"P-256","x":"AA","y":"BB"})", filled(72, 9)};
  m.kernel_version = "6.1.0-13-amd64";
  return m;
}
AttestResponse sample_attest_response() {
  AttestResponse m;
  m.verdict = Verdict::kPass;
  m.reasons = {{"policy_violation", "ima:/usr/bin/x", std::string("allowed"), std::nullopt}};
  m.policy_version = "p-3";
  m.device_token = filled(300, 1);
  m.expires_at = 1800;
  m.ima_next_offset = 40;
  return m;
}
TokenRequest sample_token_request() {
  TokenRequest m;
  m.device_token = filled(300, 1);
  m.proof = "eyJhbGciOiJFUzI1NiJ9.e30.sig";
  m.selectors.uid = 1000;
  m.selectors.gid = 0;
  m.selectors.systemd_unit = "web.service";
  m.selectors.container_id = "abc";
  m.selectors.container_runtime = "containerd";
  m.selectors.image_ref = "registry/app:1";
  m.selectors.image_digest = "sha256:00";
  m.selectors.exe_path = "/usr/bin/app";
  m.selectors.exe_digest = "sha256:11";
  m.audience = "https://db.example";
  m.scopes = {"read", "write"};
  m.ttl = 300;
  m.format = TokenFormat::kCwt;
  return m;
}
TokenResponse sample_token_response() { return {std::string("a.b.c"), "jti-1", 2000, 17}; }
RevokeRequest sample_revoke_request() {
  return {"dev-42", "container stopped", 1700, {"jti-1", "jti-2"}, filled(72, 3)};
}
RevokeResponse sample_revoke_response() { return {2}; }
ErrorResponse sample_error_response() { return {"nonce_mismatch", "attest: nonce expired"}; }

template <class T, class Decode>
void expect_round_trip(const T& m, Decode decode) {
  Bytes once = encode(m);
  auto back = decode(once);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, m);
  EXPECT_EQ(encode(*back), once);  // deterministic
  EXPECT_EQ(encode(m), once);
}

TEST(ProtocolMessages, RoundTripEveryMessage) {
  expect_round_trip(sample_enroll_request(), decode_enroll_request);
  expect_round_trip(sample_enroll_response(), decode_enroll_response);
  expect_round_trip(sample_activate_request(), decode_activate_request);
  expect_round_trip(sample_activate_response(), decode_activate_response);
  expect_round_trip(sample_challenge_request(), decode_challenge_request);
  expect_round_trip(sample_challenge_response(), decode_challenge_response);
  expect_round_trip(sample_attest_request(), decode_attest_request);
  expect_round_trip(sample_attest_response(), decode_attest_response);
  expect_round_trip(sample_token_request(), decode_token_request);
  expect_round_trip(sample_token_response(), decode_token_response);
  expect_round_trip(sample_revoke_request(), decode_revoke_request);
  expect_round_trip(sample_revoke_response(), decode_revoke_response);
  expect_round_trip(sample_error_response(), decode_error_response);
}

TEST(ProtocolMessages, RoundTripMinimalOptionals) {
  EnrollRequest e = sample_enroll_request();
  e.ek_cert.reset();
  e.ek_chain.clear();
  e.metadata.owner_label.reset();
  expect_round_trip(e, decode_enroll_request);

  AttestRequest a = sample_attest_request();
  a.pcr_values.clear();
  a.ima.reset();
  a.cel.reset();
  a.session_key.reset();
  a.kernel_version.reset();
  a.boot_log.clear();
  expect_round_trip(a, decode_attest_request);

  AttestResponse f;
  f.verdict = Verdict::kFail;
  f.reasons = {{"pcr_digest_mismatch", "pcr 7", std::string("aa"), std::string("bb")}};
  f.policy_version = "p-3";
  expect_round_trip(f, decode_attest_response);

  TokenRequest t = sample_token_request();
  t.selectors = {};
  t.scopes.clear();
  t.format = TokenFormat::kJwt;
  expect_round_trip(t, decode_token_request);

  TokenResponse c = sample_token_response();
  c.token = filled(100, 4);
  expect_round_trip(c, decode_token_response);

  RevokeRequest r = sample_revoke_request();
  r.jtis.clear();
  expect_round_trip(r, decode_revoke_request);
}

// Re-encodes `body` (a map) with `key` removed or replaced.
Bytes edit(const Bytes& body, std::int64_t key, std::optional<cbor::Value> replacement) {
  auto v = cbor::decode(body, {64 * 1024 * 1024, 100000, 16});
  EXPECT_TRUE(v);
  cbor::Value out = cbor::Value::map();
  bool found = false;
  for (std::size_t i = 0; i < v->map_size(); ++i) {
    if (v->map_key(i).as_int() == key) {
      found = true;
      if (replacement) out.put(v->map_key(i), *replacement);
    } else {
      out.put(v->map_key(i), v->map_value(i));
    }
  }
  if (!found && replacement) out.put(cbor::Value::integer(key), *replacement);
  return cbor::encode(out);
}

template <class Decode>
void expect_required(const Bytes& body, Decode decode, std::string_view what,
                     std::vector<std::pair<std::int64_t, std::string>> required) {
  for (const auto& [key, name] : required) {
    auto r = decode(edit(body, key, std::nullopt));
    ASSERT_FALSE(r) << what << " without " << name;
    EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
    EXPECT_EQ(r.error().message, std::string(what) + ": missing required field " + name);
  }
}

TEST(ProtocolMessages, MissingRequiredFieldIsNamed) {
  expect_required(encode(sample_enroll_request()), decode_enroll_request, "enroll request",
                  {{1, "ek_public"}, {4, "ak_public"}, {5, "ak_name"}, {6, "metadata"}});
  expect_required(
      encode(sample_enroll_response()), decode_enroll_response, "enroll response",
      {{1, "enrollment_id"}, {2, "credential_blob"}, {3, "encrypted_secret"}, {4, "expires_at"}});
  expect_required(encode(sample_activate_request()), decode_activate_request, "activate request",
                  {{1, "enrollment_id"}, {2, "proof"}});
  expect_required(encode(sample_activate_response()), decode_activate_response, "activate response",
                  {{1, "device_id"}});
  expect_required(encode(sample_challenge_request()), decode_challenge_request, "challenge request",
                  {{1, "device_id"}});
  expect_required(encode(sample_challenge_response()), decode_challenge_response,
                  "challenge response", {{1, "nonce"}, {2, "expires_at"}});
  expect_required(encode(sample_attest_request()), decode_attest_request, "attest request",
                  {{1, "device_id"},
                   {2, "nonce"},
                   {3, "quote"},
                   {4, "pcr_selection"},
                   {6, "boot_log"},
                   {9, "binding_key"}});
  expect_required(encode(sample_attest_response()), decode_attest_response, "attest response",
                  {{1, "verdict"}, {2, "reasons"}, {3, "policy_version"}, {6, "ima_next_offset"}});
  expect_required(encode(sample_token_request()), decode_token_request, "token request",
                  {{1, "device_token"},
                   {2, "proof"},
                   {3, "selectors"},
                   {4, "audience"},
                   {5, "scopes"},
                   {6, "ttl"},
                   {7, "format"}});
  expect_required(encode(sample_token_response()), decode_token_response, "token response",
                  {{1, "token"}, {2, "jti"}, {3, "expires_at"}, {4, "status_index"}});
  expect_required(encode(sample_revoke_request()), decode_revoke_request, "revoke request",
                  {{1, "device_id"}, {2, "reason"}, {3, "timestamp"}, {5, "signature"}});
  expect_required(encode(sample_revoke_response()), decode_revoke_response, "revoke response",
                  {{1, "revoked"}});
  expect_required(encode(sample_error_response()), decode_error_response, "error response",
                  {{1, "code"}, {2, "reason"}});
}

TEST(ProtocolMessages, MissingNestedFieldIsNamed) {
  auto v = cbor::decode(encode(sample_attest_request()), {64 * 1024 * 1024, 100000, 16});
  ASSERT_TRUE(v);
  cbor::Value quote = cbor::Value::map();
  quote.put(cbor::Value::uint(1), cbor::Value::bytes(filled(10, 1)));
  auto r = decode_attest_request(edit(encode(sample_attest_request()), 3, quote));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "attest request: missing required field quote.signature");

  cbor::Value md = cbor::Value::map();
  md.put(cbor::Value::uint(1), cbor::Value::text("h"));
  auto e = decode_enroll_request(edit(encode(sample_enroll_request()), 6, md));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message, "enroll request: missing required field metadata.machine_id");
}

TEST(ProtocolMessages, WrongTypeIsNamed) {
  auto r =
      decode_enroll_request(edit(encode(sample_enroll_request()), 2, cbor::Value::text("not der")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(r.error().message, "enroll request: field ek_cert: expected bytes, found text");

  auto c = decode_challenge_response(
      edit(encode(sample_challenge_response()), 2, cbor::Value::integer(-5)));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message,
            "challenge response: field expires_at: expected unsigned integer, found negative "
            "integer");

  auto t = decode_token_request(
      edit(encode(sample_token_request()), 5, cbor::Value::array({cbor::Value::uint(1)})));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().message,
            "token request: field scopes[0]: expected text, found unsigned integer");

  auto k = decode_token_response(edit(encode(sample_token_response()), 1, cbor::Value::uint(1)));
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().message,
            "token response: field token: expected text or bytes, found unsigned integer");

  auto body = decode_error_response(cbor::encode(cbor::Value::array()));
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().message, "error response: field body: expected map, found array");

  auto fmt =
      decode_token_request(edit(encode(sample_token_request()), 7, cbor::Value::text("saml")));
  ASSERT_FALSE(fmt);
  EXPECT_EQ(fmt.error().message,
            "token request: field format: expected \"jwt\" or \"cwt\", found \"saml\"");

  auto sel = decode_attest_request(
      edit(encode(sample_attest_request()), 4, cbor::Value::text("sha999:0")));
  ASSERT_FALSE(sel);
  EXPECT_NE(sel.error().message.find("attest request: field pcr_selection: "), std::string::npos);
}

TEST(ProtocolMessages, UnknownFieldsRejectedNegativeKeysIgnored) {
  auto r =
      decode_challenge_request(edit(encode(sample_challenge_request()), 9, cbor::Value::uint(1)));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "challenge request: unknown field 9");

  auto ext = decode_challenge_request(
      edit(encode(sample_challenge_request()), -1, cbor::Value::text("future")));
  ASSERT_TRUE(ext) << ext.error().message;
  EXPECT_EQ(ext->device_id, "dev-42");

  cbor::Value text_key = cbor::Value::map();
  text_key.put(cbor::Value::text("device_id"), cbor::Value::text("x"));
  auto tk = decode_challenge_request(cbor::encode(text_key));
  ASSERT_FALSE(tk);
  EXPECT_EQ(tk.error().message, "challenge request: map key: expected integer, found text");
}

TEST(ProtocolMessages, DuplicateKeyRejected) {
  // {1: "a", 1: "b"}
  Bytes dup = {0xA2, 0x01, 0x61, 'a', 0x01, 0x61, 'b'};
  auto r = decode_challenge_request(dup);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("duplicate"), std::string::npos) << r.error().message;
}

TEST(ProtocolMessages, OversizedFieldsAndBodies) {
  AttestRequest a = sample_attest_request();
  a.boot_log = filled(limits::kBootLog + 1, 0);
  auto r = decode_attest_request(encode(a));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
  EXPECT_NE(r.error().message.find("attest request: field boot_log: "), std::string::npos);

  a = sample_attest_request();
  a.ima->entries = filled(limits::kImaEntries, 0);  // at the cap: accepted
  ASSERT_TRUE(decode_attest_request(encode(a)));

  Bytes big = filled(limits::kSmallBody + 1, 0);
  auto b = decode_challenge_request(big);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::kLimitExceeded);

  TokenRequest t = sample_token_request();
  t.ttl = static_cast<std::uint32_t>(limits::kMaxTtl + 1);
  auto tt = decode_token_request(encode(t));
  ASSERT_FALSE(tt);
  EXPECT_EQ(tt.error().code, ErrorCode::kLimitExceeded);
  EXPECT_NE(tt.error().message.find("field ttl"), std::string::npos);

  EnrollRequest e = sample_enroll_request();
  e.ek_chain.assign(limits::kChain + 1, filled(10, 1));
  auto ee = decode_enroll_request(encode(e));
  ASSERT_FALSE(ee);
  EXPECT_EQ(ee.error().code, ErrorCode::kLimitExceeded);

  ChallengeResponse c = sample_challenge_response();
  c.nonce = filled(8, 1);
  auto cc = decode_challenge_response(encode(c));
  ASSERT_FALSE(cc);
  EXPECT_EQ(cc.error().message,
            "challenge response: field nonce: expected at least 16 bytes, found 8");
}

TEST(ProtocolMessages, AttestVerdictConsistency) {
  AttestResponse m = sample_attest_response();
  m.device_token.reset();
  EXPECT_FALSE(decode_attest_response(encode(m)));
  m = sample_attest_response();
  m.verdict = Verdict::kFail;
  EXPECT_FALSE(decode_attest_response(encode(m)));
}

// The sealing fields are negative-keyed extensions: a peer that predates them ignores them.
TEST(ProtocolMessages, SealingExtensionsRoundTrip) {
  EnrollResponse e = sample_enroll_response();
  e.seal_authority = filled(90, 3);
  expect_round_trip(e, decode_enroll_response);
  AttestRequest a = sample_attest_request();
  a.seal_pcrs = "sha256:0,2,4";
  expect_round_trip(a, decode_attest_request);
  AttestResponse r = sample_attest_response();
  r.approved_policy = filled(200, 4);
  expect_round_trip(r, decode_attest_response);

  a.seal_pcrs = "sha256:99";
  auto bad = decode_attest_request(encode(a));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("seal_pcrs"), std::string::npos) << bad.error().message;

  r.verdict = Verdict::kFail;
  r.device_token.reset();
  r.expires_at.reset();
  auto failed = decode_attest_response(encode(r));
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message.find("approved_policy"), std::string::npos);

  r = sample_attest_response();
  r.approved_policy = filled(limits::kApprovedPolicy + 1, 4);
  auto big = decode_attest_response(encode(r));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kLimitExceeded);
}

TEST(ProtocolMessages, HexVectorMatchesDocs) {
  constexpr std::string_view kHex = "a20150000102030405060708090a0b0c0d0e0f021a6955b900";
  EXPECT_EQ(hex_encode(encode(sample_challenge_response())), kHex);
  std::ifstream doc(std::string(WARDEN_SOURCE_DIR) + "/docs/protocol.md");
  ASSERT_TRUE(doc);
  std::stringstream text;
  text << doc.rdbuf();
  EXPECT_NE(text.str().find(kHex), std::string::npos) << "docs/protocol.md lacks the vector";
}

TEST(ProtocolMessages, RevokeSignedBytesExcludeSignature) {
  RevokeRequest r = sample_revoke_request();
  Bytes signed_bytes = revoke_signed_bytes(r);
  r.signature = filled(10, 0xEE);
  EXPECT_EQ(revoke_signed_bytes(r), signed_bytes);
  auto v = cbor::decode(signed_bytes);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->map_size(), 4u);
  EXPECT_EQ(v->find(5), nullptr);
  // The signed bytes are exactly the encoding with key 5 removed.
  EXPECT_EQ(edit(encode(r), 5, std::nullopt), signed_bytes);
  r.jtis.push_back("jti-3");
  EXPECT_NE(revoke_signed_bytes(r), signed_bytes);
}

TEST(ProtocolMessages, ActivationProofBindsContext) {
  Bytes secret = filled(32, 0x42);
  auto p1 = activation_proof(secret, "enr-1", filled(34, 6));
  auto p2 = activation_proof(secret, "enr-2", filled(34, 6));
  auto p3 = activation_proof(secret, "enr-1", filled(34, 7));
  ASSERT_TRUE(p1 && p2 && p3);
  EXPECT_EQ(p1->size(), 32u);
  EXPECT_NE(*p1, *p2);
  EXPECT_NE(*p1, *p3);
  EXPECT_EQ(*activation_proof(secret, "enr-1", filled(34, 6)), *p1);
}

TEST(ProtocolMessages, ErrorResponseMapsCodes) {
  Error e{ErrorCode::kNonceMismatch, "nonce expired", 0, 0};
  ErrorResponse resp = error_response(e);
  EXPECT_EQ(resp.code, "nonce_mismatch");
  Error back = to_error(resp);
  EXPECT_EQ(back.code, ErrorCode::kNonceMismatch);
  EXPECT_EQ(back.message, "nonce expired");
  Error unknown = to_error({"brand_new_code", "x"});
  EXPECT_EQ(unknown.code, ErrorCode::kInternal);
  EXPECT_NE(unknown.message.find("brand_new_code"), std::string::npos);
}

TEST(ProtocolMessages, ToErrorKnowsEveryCodeOfTheErrorTable) {
  for (const ErrorInfo& row : error_table()) {
    SCOPED_TRACE(std::string(to_string(row.code)));
    Error back = to_error(error_response(Error{row.code, "why", 0, 0}));
    EXPECT_EQ(back.code, row.code);
    EXPECT_EQ(back.message, "why");
  }
}

template <class Decode>
void expect_round_trip(ByteSpan body, Decode decode) {
  auto m = decode(body);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(hex_encode(encode(*m)), hex_encode(body));
}

// The committed fuzz_protocol seeds (see WriteFuzzSeeds) still decode to what they encode.
TEST(ProtocolMessages, FuzzSeedsRoundTrip) {
  for (int i = 0; i < 13; ++i) {
    SCOPED_TRACE(i);
    std::ifstream in(
        std::string(WARDEN_SOURCE_DIR) + "/fuzz/corpus/fuzz_protocol/seed_" + std::to_string(i),
        std::ios::binary);
    const Bytes seed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(seed.empty());
    ASSERT_EQ(seed[0], i);
    const ByteSpan body = ByteSpan(seed).subspan(1);
    switch (i) {
      case 0:
        expect_round_trip(body, decode_enroll_request);
        break;
      case 1:
        expect_round_trip(body, decode_enroll_response);
        break;
      case 2:
        expect_round_trip(body, decode_activate_request);
        break;
      case 3:
        expect_round_trip(body, decode_activate_response);
        break;
      case 4:
        expect_round_trip(body, decode_challenge_request);
        break;
      case 5:
        expect_round_trip(body, decode_challenge_response);
        break;
      case 6:
        expect_round_trip(body, decode_attest_request);
        break;
      case 7:
        expect_round_trip(body, decode_attest_response);
        break;
      case 8:
        expect_round_trip(body, decode_token_request);
        break;
      case 9:
        expect_round_trip(body, decode_token_response);
        break;
      case 10:
        expect_round_trip(body, decode_revoke_request);
        break;
      case 11:
        expect_round_trip(body, decode_revoke_response);
        break;
      default:
        expect_round_trip(body, decode_error_response);
        break;
    }
  }
}

TEST(ProtocolMessages, TruncatedAndGarbageRejected) {
  Bytes body = encode(sample_attest_request());
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, body.size() / 2, body.size() - 1}) {
    auto r = decode_attest_request(ByteSpan(body.data(), n));
    EXPECT_FALSE(r) << n;
  }
  Bytes trailing = encode(sample_challenge_request());
  trailing.push_back(0);
  EXPECT_FALSE(decode_challenge_request(trailing));
}

// Writes the fuzz_protocol seed corpus (type byte + body) when WARDEN_FUZZ_SEED_DIR is set:
//   WARDEN_FUZZ_SEED_DIR=fuzz/corpus/fuzz_protocol build/tests/unit/attest/attest_protocol_test
TEST(ProtocolMessages, WriteFuzzSeeds) {
  const char* dir = std::getenv("WARDEN_FUZZ_SEED_DIR");
  if (dir == nullptr) GTEST_SKIP() << "WARDEN_FUZZ_SEED_DIR not set";
  std::vector<Bytes> bodies = {
      encode(sample_enroll_request()),    encode(sample_enroll_response()),
      encode(sample_activate_request()),  encode(sample_activate_response()),
      encode(sample_challenge_request()), encode(sample_challenge_response()),
      encode(sample_attest_request()),    encode(sample_attest_response()),
      encode(sample_token_request()),     encode(sample_token_response()),
      encode(sample_revoke_request()),    encode(sample_revoke_response()),
      encode(sample_error_response())};
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    std::ofstream out(std::string(dir) + "/seed_" + std::to_string(i), std::ios::binary);
    out.put(static_cast<char>(i));
    out.write(reinterpret_cast<const char*>(bodies[i].data()),  // NOLINT: byte I/O
              static_cast<std::streamsize>(bodies[i].size()));
  }
}

}  // namespace
}  // namespace warden::protocol
