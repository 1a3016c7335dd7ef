#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "attest/token/cwt.h"
#include "attest/token/dpop.h"
#include "attest/token/jwt.h"
#include "attest/token/status_list.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::token {
namespace {

/// Deterministic randomness for tests.
class CounterRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override {
    for (auto& b : out) b = static_cast<std::uint8_t>(0x5a ^ (counter_++ * 31U));
  }

 private:
  unsigned counter_ = 1;
};

Bytes hex(std::string_view h) { return hex_decode(h).value(); }

constexpr std::int64_t kNow = 1'800'000'000;

Claims sample_claims() {
  Claims c;
  c.iss = "https://issuer.warden.test";
  c.sub = "spiffe://warden.test/workload/web";
  c.aud = {"https://api.warden.test"};
  c.iat = kNow;
  c.nbf = kNow;
  c.exp = kNow + 600;
  c.jti = "jti-1";
  c.scope = "read write";
  c.status = StatusRef{7, "https://issuer.warden.test/status/1"};
  c.device_id = "dev-42";
  c.attestation = AttestationResult{true, "policy-3", Bytes(32, 0xab)};
  c.workload = WorkloadSelectors{1000,        "web.service", "c0ffee", "registry.test/web:1",
                                 "sha256:aa", "sha256:bb"};
  return c;
}

struct Fixture : ::testing::Test {
  CounterRandom random;
  EcSigner signer = EcSigner::generate(random, "k1").value();
  KeySet keys = [this] {
    KeySet k;
    k.add(signer.public_jwk());
    return k;
  }();
  JwtVerifyOptions options() const {
    JwtVerifyOptions o;
    o.checks.now = kNow + 10;
    o.checks.audience = "https://api.warden.test";
    return o;
  }
};

/// Signs a JWS with any OpenSSL key (for verify-only algorithms).
std::string sign_with(EVP_PKEY* key, std::string_view alg, const EVP_MD* md, std::string_view kid,
                      const boost::json::object& payload) {
  boost::json::object header{{"alg", alg}, {"kid", kid}, {"typ", "at+jwt"}};
  std::string input =
      base64url_encode(json::serialize(header)) + "." + base64url_encode(json::serialize(payload));
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key), 1);
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, to_bytes(input).data(), input.size()), 1);
  Bytes sig(len);
  Bytes in = to_bytes(input);
  EXPECT_EQ(EVP_DigestSign(ctx.get(), sig.data(), &len, in.data(), in.size()), 1);
  sig.resize(len);
  if (alg == "ES384") sig = ossl::ecdsa_der_to_raw(sig, 48).value();
  return input + "." + base64url_encode(sig);
}

TEST(StatusListTest, DraftVectorsOneAndTwoBits) {
  auto one = StatusList::create(1, 16).value();
  for (std::uint64_t i : {0U, 3U, 4U, 5U, 7U, 8U, 9U, 13U, 15U}) ASSERT_TRUE(one.set(i, 1));
  EXPECT_EQ(one.bytes(), hex("b9a3"));
  EXPECT_EQ(hex_encode(one.compress().value()), "78dadbb918000217015d");
  EXPECT_EQ(base64url_encode(one.compress().value()), "eNrbuRgAAhcBXQ");
  EXPECT_EQ(one.get(1).value(), 0);
  EXPECT_EQ(one.get(15).value(), 1);

  auto two = StatusList::from_compressed(2, hex("78da3be9f2130003df0207")).value();
  EXPECT_EQ(two.bytes(), hex("c944f9"));
  EXPECT_EQ(two.size(), 12U);
  // c9 = 11 00 10 01 -> idx0=1 idx1=2 idx2=0 idx3=3
  EXPECT_EQ(two.get(0).value(), 1);
  EXPECT_EQ(two.get(1).value(), 2);
  EXPECT_EQ(two.get(2).value(), 0);
  EXPECT_EQ(two.get(3).value(), 3);
  ASSERT_TRUE(two.clear(3));
  EXPECT_EQ(two.get(3).value(), 0);
  EXPECT_FALSE(two.set(0, 4));
  EXPECT_FALSE(two.get(12));
}

TEST(StatusListTest, ZipBombAndGarbageRefused) {
  auto big = StatusList::create(8, 1 << 20).value();
  auto z = big.compress().value();
  EXPECT_LT(z.size(), 2048U);
  auto r = StatusList::from_compressed(8, z, 64 * 1024);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(StatusList::from_compressed(1, hex("0011223344")).error().code, ErrorCode::kMalformed);
  EXPECT_FALSE(StatusList::from_compressed(3, z));
}

TEST(CwtTest, Rfc8392AppendixA3VerifiesWithA23Key) {
  Bytes cwt = hex(
      "d28443a10126a104524173796d6d657472696345434453413235365850a70175636f61703a2f2f61732e6578616d"
      "706c652e636f6d02656572696b77037818636f61703a2f2f6c696768742e6578616d706c652e636f6d041a5612ae"
      "b0051a5610d9f0061a5610d9f007420b7158405427c1ff28d23fbad1f29c4c7c6a555e601d6fa29f9179bc3d7438"
      "bacaca5acd08c8d4d4f96131680c429a01f85951ecee743a52b9b63632c57209120e1c9e30");
  boost::json::object jwk{
      {"kty", "EC"},
      {"crv", "P-256"},
      {"kid", "AsymmetricECDSA256"},
      {"x",
       base64url_encode(hex("143329cce7868e416927599cf65a34f3ce2ffda55a7eca69ed8919a394d42f0f"))},
      {"y",
       base64url_encode(hex("60f7f1a780d8a783bfb7a2dd6b2796e8128dbbcef9d3d168db9529971a36e7b9"))}};
  KeySet keys;
  keys.add(Jwk::from_json(jwk).value());

  auto msg = decode_cose_sign1(cwt).value();
  Bytes tbs = sig_structure(msg.protected_bytes, {}, msg.payload);
  EXPECT_EQ(tbs.size(), 99U);
  EXPECT_EQ(hex_encode(tbs).substr(0, 34), "846a5369676e61747572653143a1012640");

  ClaimChecks checks;
  checks.now = 1443944944 + 100;
  checks.audience = "coap://light.example.com";
  auto verified = verify_cwt(cwt, keys, checks);
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(verified->claims.iss, "coap://as.example.com");
  EXPECT_EQ(verified->claims.sub, "erikw");
  EXPECT_EQ(verified->claims.exp, 1444064944);
  EXPECT_EQ(verified->claims.jti, to_string(hex("0b71")));

  checks.now = 1444064944 + 3600;
  EXPECT_EQ(verify_cwt(cwt, keys, checks).error().code, ErrorCode::kExpired);

  Bytes tampered = cwt;
  tampered[tampered.size() - 1] ^= 1;
  checks.now = 1443944944 + 100;
  EXPECT_EQ(verify_cwt(tampered, keys, checks).error().code, ErrorCode::kBadSignature);
}

TEST_F(Fixture, CwtRoundTripWithCnfAndEat) {
  auto pop = EcSigner::generate(random, "pop").value();
  Claims c = sample_claims();
  c.cnf = Confirmation{std::nullopt, pop.public_jwk()};
  c.eat_nonce = Bytes(16, 0x11);
  c.ueid = hex("01deadbeefcafe0102");
  c.eat_profile = std::string(kEatProfile);
  c.measres = {MeasurementResults{"warden-tpm", {{"boot", 1}, {"ima", 2}}}};
  auto cwt = mint_cwt(signer, c).value();
  EXPECT_EQ(cwt[0], 0xd2);
  auto v = verify_cwt(cwt, keys, options().checks);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->claims.cnf->jkt, pop.public_jwk().thumbprint());
  EXPECT_EQ(v->claims.measres, c.measres);
  EXPECT_EQ(v->claims.ueid, c.ueid);
  EXPECT_EQ(v->claims.workload, c.workload);
  EXPECT_EQ(v->claims.attestation, c.attestation);
  EXPECT_EQ(v->claims.status, c.status);
  ClaimChecks wrong = options().checks;
  wrong.audience = "other";
  EXPECT_EQ(verify_cwt(cwt, keys, wrong).error().code, ErrorCode::kAudienceMismatch);
  KeySet empty;
  EXPECT_EQ(verify_cwt(cwt, empty, options().checks).error().code, ErrorCode::kUnknownKey);
}

TEST(CwtTest, HostileCborRefused) {
  // Indefinite-length array, deep nesting, oversized length, truncation.
  EXPECT_FALSE(decode_cose_sign1(hex("d29f40a04040ff")));
  Bytes deep(200, 0x81);
  deep.push_back(0x00);
  EXPECT_FALSE(decode_cose_sign1(deep));
  EXPECT_FALSE(decode_cose_sign1(hex("d2845bffffffffffffffff")));
  EXPECT_FALSE(decode_cose_sign1(hex("d28443a10126a0")));
  EXPECT_FALSE(decode_cose_sign1(hex("")));
}

TEST_F(Fixture, JwtRoundTripAllClaims) {
  Claims c = sample_claims();
  c.cnf = Confirmation{"abc", std::nullopt};
  auto jwt = mint_jwt(signer, kTypWorkload, c).value();
  auto o = options();
  o.typ = "at+jwt";
  auto v = verify_jwt(jwt, keys, o);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(json::get_string(v->header, "kid"), "k1");
  EXPECT_EQ(v->claims.sub, c.sub);
  EXPECT_EQ(v->claims.cnf->jkt, "abc");
  EXPECT_EQ(v->claims.workload, c.workload);
  EXPECT_EQ(v->claims.attestation, c.attestation);
  EXPECT_EQ(v->claims.status, c.status);
}

TEST_F(Fixture, JwtRejections) {
  Claims c = sample_claims();
  auto jwt = mint_jwt(signer, kTypWorkload, c).value();
  auto o = options();

  auto at = [&](std::int64_t now) {
    auto x = o;
    x.checks.now = now;
    return verify_jwt(jwt, keys, x);
  };
  EXPECT_EQ(at(kNow + 600 + 61).error().code, ErrorCode::kExpired);
  EXPECT_TRUE(at(kNow + 600 + 59));
  EXPECT_EQ(at(kNow - 61).error().code, ErrorCode::kNotYetValid);

  auto aud = o;
  aud.checks.audience = "https://elsewhere";
  EXPECT_EQ(verify_jwt(jwt, keys, aud).error().code, ErrorCode::kAudienceMismatch);

  auto other = EcSigner::generate(random, "k2").value();
  KeySet wrong;
  wrong.add(other.public_jwk());
  EXPECT_EQ(verify_jwt(jwt, wrong, o).error().code, ErrorCode::kUnknownKey);
  auto forged = mint_jwt(other, kTypWorkload, c).value();
  auto dot = forged.rfind('.');
  std::string spliced = jwt.substr(0, jwt.rfind('.')) + forged.substr(dot);
  EXPECT_EQ(verify_jwt(spliced, keys, o).error().code, ErrorCode::kBadSignature);

  auto with_header = [&](const boost::json::object& h) {
    return base64url_encode(json::serialize(h)) + jwt.substr(jwt.find('.'));
  };
  EXPECT_EQ(verify_jwt(with_header({{"alg", "none"}, {"kid", "k1"}}), keys, o).error().code,
            ErrorCode::kAlgorithmNotAllowed);
  EXPECT_EQ(verify_jwt(with_header({{"alg", "HS256"}, {"kid", "k1"}}), keys, o).error().code,
            ErrorCode::kAlgorithmNotAllowed);
  EXPECT_EQ(verify_jwt(with_header({{"alg", "ES384"}, {"kid", "k1"}}), keys, o).error().code,
            ErrorCode::kAlgorithmNotAllowed);
  EXPECT_EQ(verify_jwt(with_header({{"alg", "ES256"}, {"kid", "k1"}, {"crit", {"exp"}}}), keys, o)
                .error()
                .code,
            ErrorCode::kMalformed);
  EXPECT_EQ(verify_jwt("a.b.c", keys, o).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(verify_jwt(jwt + "=", keys, o).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(verify_jwt(jwt + ".x", keys, o).error().code, ErrorCode::kMalformed);
  auto typ = o;
  typ.typ = "dpop+jwt";
  EXPECT_FALSE(verify_jwt(jwt, keys, typ));
}

// EC thumbprints are computed once per distinct key (kept with the parsed key) and must equal
// RFC 7638's hash of the required members, however the key was made.
TEST(JwkTest, EcThumbprintIsTheRfc7638HashOfTheRequiredMembers) {
  CounterRandom random;
  auto signer = EcSigner::generate(random, "ec").value();
  auto expected = base64url_encode(
      ossl::sha256(to_bytes(json::serialize(signer.public_jwk().required_members()))));
  EXPECT_EQ(signer.public_jwk().thumbprint(), expected);
  auto parsed = Jwk::from_json(signer.public_jwk().to_json()).value();
  EXPECT_EQ(parsed.thumbprint(), expected);
  auto again = Jwk::from_json(signer.public_jwk().required_members()).value();  // from the cache
  EXPECT_EQ(again.thumbprint(), expected);
  auto other = EcSigner::generate(random, "other").value();
  EXPECT_NE(Jwk::from_json(other.public_jwk().to_json()).value().thumbprint(), expected);
}

TEST(JwkTest, Rfc7638ThumbprintAndJwksRoundTrip) {
  boost::json::object rsa{
      {"kty", "RSA"},
      {"n",
       "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
       "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
       "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
       "bFTWhAI4vMQ"
       "Fh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"},
      {"e", "AQAB"},
      {"alg", "RS256"},
      {"kid", "2011-04-29"}};
  auto jwk = Jwk::from_json(rsa).value();
  EXPECT_EQ(jwk.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");

  KeySet set;
  set.add(jwk);
  CounterRandom random;
  set.add(EcSigner::generate(random, "ec").value().public_jwk());
  auto text = set.to_json();
  auto back = KeySet::from_json(text).value();
  ASSERT_EQ(back.keys().size(), 2U);
  EXPECT_EQ(back.keys()[1].thumbprint(), set.keys()[1].thumbprint());
  EXPECT_EQ(back.find("2011-04-29", Alg::kRs256).value()->kty(), "RSA");
  EXPECT_EQ(back.find("2011-04-29", Alg::kEs256).error().code, ErrorCode::kAlgorithmNotAllowed);
  EXPECT_EQ(back.find("nope", Alg::kEs256).error().code, ErrorCode::kUnknownKey);

  // Private members, symmetric keys, off-curve points and garbage are refused or skipped.
  EXPECT_FALSE(KeySet::from_json(R"({"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]})"));
  // A full-size point off the curve (the RFC 8392 example key with its y changed).
  boost::json::object off_curve{
      {"kty", "EC"},
      {"crv", "P-256"},
      {"x",
       base64url_encode(hex("143329cce7868e416927599cf65a34f3ce2ffda55a7eca69ed8919a394d42f0f"))},
      {"y",
       base64url_encode(hex("60f7f1a780d8a783bfb7a2dd6b2796e8128dbbcef9d3d168db9529971a36e7b8"))}};
  EXPECT_EQ(Jwk::from_json(off_curve).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(KeySet::from_json(R"({"keys":[{"kty":"oct","k":"AAAA"}]})").value().keys().size(), 0U);
  EXPECT_FALSE(KeySet::from_json("[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]"));
  EXPECT_FALSE(KeySet::from_json("{"));
}

TEST(JwtVerifyTest, Es384EdDsaRs256) {
  boost::json::object payload{{"sub", "x"}, {"exp", kNow + 60}};
  JwtVerifyOptions o;
  o.checks.now = kNow;
  struct Case {
    const char* type;
    const char* param;
    const char* alg;
    const EVP_MD* md;
  };
  for (const Case& c :
       {Case{"EC", "P-384", "ES384", EVP_sha384()}, Case{"ED25519", nullptr, "EdDSA", nullptr},
        Case{"RSA", nullptr, "RS256", EVP_sha256()}}) {
    EVP_PKEY* raw = nullptr;
    if (std::string_view(c.type) == "EC") {
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", c.param);
    } else if (std::string_view(c.type) == "RSA") {
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048));
    } else {
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    }
    ossl::PKey key(raw);
    KeySet keys;
    keys.add(Jwk::from_pkey(key.get(), c.alg).value());
    auto jwt = sign_with(key.get(), c.alg, c.md, c.alg, payload);
    auto v = verify_jwt(jwt, KeySet::from_json(keys.to_json()).value(), o);
    EXPECT_TRUE(v) << c.alg << ": " << v.error().message;
  }
}

TEST_F(Fixture, DpopProofCreateVerifyReplay) {
  auto pop = EcSigner::generate(random, "pop").value();
  std::string token = "access.token.value";
  ProofRequest req{"POST", "https://issuer.warden.test/token", token, std::nullopt};
  auto proof = create_proof(pop, req, kNow, random).value();
  ReplayCache cache(4, 300);
  ProofCheck check{"POST", "https://issuer.warden.test/token", {},          kNow + 2, 300, 5,
                   token,  pop.public_jwk().thumbprint(),      std::nullopt};
  auto v = verify_proof(proof, check, cache);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->jkt, pop.public_jwk().thumbprint());
  EXPECT_EQ(verify_proof(proof, check, cache).error().code, ErrorCode::kReplay);

  auto fresh = [&] { return create_proof(pop, req, kNow, random).value(); };
  auto bad = check;
  bad.htm = "GET";
  EXPECT_EQ(verify_proof(fresh(), bad, cache).error().code, ErrorCode::kProofMismatch);
  bad = check;
  bad.htu = "https://issuer.warden.test/other";
  EXPECT_EQ(verify_proof(fresh(), bad, cache).error().code, ErrorCode::kProofMismatch);
  bad = check;
  bad.access_token = "another";
  EXPECT_EQ(verify_proof(fresh(), bad, cache).error().code, ErrorCode::kProofMismatch);
  bad = check;
  bad.expected_jkt = signer.public_jwk().thumbprint();
  EXPECT_EQ(verify_proof(fresh(), bad, cache).error().code, ErrorCode::kProofMismatch);
  bad = check;
  bad.now = kNow + 1000;
  EXPECT_EQ(verify_proof(fresh(), bad, cache).error().code, ErrorCode::kProofMismatch);
  // A normal JWT is not a proof.
  auto jwt = mint_jwt(pop, kTypWorkload, sample_claims()).value();
  EXPECT_EQ(verify_proof(jwt, check, cache).error().code, ErrorCode::kProofMismatch);
}

TEST(ReplayCacheTest, BoundedAndExpiring) {
  ReplayCache cache(2, 10);
  EXPECT_TRUE(cache.check_and_insert("a", 100));
  EXPECT_TRUE(cache.check_and_insert("b", 101));
  EXPECT_EQ(cache.check_and_insert("c", 102).error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(cache.check_and_insert("a", 105).error().code, ErrorCode::kReplay);
  EXPECT_TRUE(cache.check_and_insert("c", 111));  // a expired
  EXPECT_LE(cache.size(), 2U);
}

TEST_F(Fixture, StatusListTokensAndRevocation) {
  auto list = StatusList::create(1, 1024).value();
  ASSERT_TRUE(list.set(7, kStatusInvalid));
  StatusListToken meta{"https://issuer.warden.test/status/1", kNow, kNow + 3600, 300};
  auto jwt = mint_status_list_jwt(signer, list, meta).value();
  auto from_jwt = verify_status_list_jwt(jwt, keys, kNow + 1, meta.sub).value();
  EXPECT_EQ(from_jwt.get(7).value(), 1);
  auto cwt = mint_status_list_cwt(signer, list, meta).value();
  auto from_cwt = verify_status_list_cwt(cwt, keys, kNow + 1, meta.sub).value();
  EXPECT_EQ(from_cwt.bytes(), list.bytes());
  EXPECT_EQ(verify_status_list_jwt(jwt, keys, kNow + 7200).error().code, ErrorCode::kExpired);
  EXPECT_FALSE(verify_status_list_jwt(jwt, keys, kNow, std::string("https://other")));

  Claims c = sample_claims();
  EXPECT_EQ(check_status(c, from_jwt).error().code, ErrorCode::kRevoked);
  c.status->idx = 8;
  EXPECT_TRUE(check_status(c, from_jwt));
  // A workload JWT is not a status list token.
  EXPECT_FALSE(verify_status_list_jwt(mint_jwt(signer, kTypWorkload, c).value(), keys, kNow));
}

TEST(SignerTest, PemRoundTripAndDeterministicGeneration) {
  CounterRandom a;
  CounterRandom b;
  auto s1 = EcSigner::generate(a).value();
  auto s2 = EcSigner::generate(b).value();
  EXPECT_EQ(s1.public_jwk().thumbprint(), s2.public_jwk().thumbprint());
  EXPECT_EQ(s1.kid(), s1.public_jwk().thumbprint());
  auto pem = s1.private_key_pem().value();
  auto s3 = EcSigner::from_pem(pem, "x").value();
  EXPECT_EQ(s3.public_jwk().thumbprint(), s1.public_jwk().thumbprint());
  auto sig = s3.sign(to_bytes("hello")).value();
  EXPECT_EQ(sig.size(), 64U);
  EXPECT_TRUE(s1.public_jwk().verify(Alg::kEs256, to_bytes("hello"), sig));
}

}  // namespace
}  // namespace warden::token
