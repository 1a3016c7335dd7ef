// Security Event Tokens (RFC 8417) as Shared Signals sends them: header, claims, subjects, and
// a signature that verifies against the published key set.
#include "attest/token/set.h"

#include <gtest/gtest.h>

#include "attest/token/json.h"
#include "attest/token/jwt.h"

namespace warden::token {
namespace {

TEST(SecurityEventToken, CarriesTheSsfShapeAndVerifiesAgainstTheKeySet) {
  SystemRandom random;
  EcSigner signer = EcSigner::generate(random, "k1").value();
  SecurityEvent set;
  set.iss = "https://issuer.test";
  set.iat = 1'700'000'000;
  set.jti = "stream-7";
  set.aud = "rp1";
  set.sub_id = device_subject("dev-1", std::string_view("jti-9"));
  set.event_type = std::string(kEventSessionRevoked);
  set.event["event_timestamp"] = 1'700'000'000;
  set.event["initiating_entity"] = "admin";
  auto jwt = mint_set(signer, set);
  ASSERT_TRUE(jwt) << jwt.error().message;

  KeySet keys;
  keys.add(signer.public_jwk());
  auto key = keys.find("k1", Alg::kEs256);
  ASSERT_TRUE(key);
  auto verified = verify_jws_with(*jwt, **key, {Alg::kEs256});
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(json::get_string(verified->header, "typ"), "secevent+jwt");
  EXPECT_EQ(json::get_string(verified->header, "alg"), "ES256");
  EXPECT_EQ(json::get_string(verified->header, "kid"), "k1");
  const auto& p = verified->payload;
  EXPECT_EQ(json::get_string(p, "iss"), "https://issuer.test");
  EXPECT_EQ(json::get_int(p, "iat"), 1'700'000'000);
  EXPECT_EQ(json::get_string(p, "jti"), "stream-7");
  EXPECT_EQ(json::get_string(p, "aud"), "rp1");
  EXPECT_FALSE(p.contains("exp"));  // RFC 8417: a SET is not a token to accept until expiry
  EXPECT_EQ(json::serialize(p.at("sub_id")),
            R"({"format":"complex","device":{"format":"opaque","id":"dev-1"},)"
            R"("session":{"format":"opaque","id":"jti-9"}})");
  const auto* events = json::get_object(p, "events");
  ASSERT_NE(events, nullptr);
  ASSERT_EQ(events->size(), 1U);
  const auto* event = json::get_object(*events, kEventSessionRevoked);
  ASSERT_NE(event, nullptr);
  EXPECT_EQ(json::get_string(*event, "initiating_entity"), "admin");

  // Another key does not verify it.
  EcSigner other = EcSigner::generate(random, "k1").value();
  EXPECT_FALSE(verify_jws_with(*jwt, other.public_jwk(), {Alg::kEs256}));
}

TEST(SecurityEventToken, SubjectsFollowSsfFormats) {
  EXPECT_EQ(json::serialize(opaque_subject("s1")), R"({"format":"opaque","id":"s1"})");
  EXPECT_EQ(json::serialize(device_subject("d")),
            R"({"format":"complex","device":{"format":"opaque","id":"d"}})");
}

TEST(SecurityEventToken, NeedsAnEventType) {
  SystemRandom random;
  EcSigner signer = EcSigner::generate(random, "k").value();
  EXPECT_EQ(mint_set(signer, SecurityEvent{}).error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace warden::token
