// Introspection (form parsing, every active:false case), authorization-server metadata and the
// status list's cache validators, against a real SQLite store, signing keys and IssuerService.
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "attest/token/jwt.h"
#include "attest/token/signer.h"
#include "attest/token/status_list.h"
#include "issuer/http/router.h"
#include "issuer/http/routes.h"
#include "issuer/oauth/introspection.h"
#include "issuer/oauth/metadata.h"
#include "issuer/service.h"
#include "issuer/signing_keys.h"
#include "platform/base/encoding.h"
#include "tests/support/process.h"
#include "tests/support/test_issuer.h"

namespace warden::issuer {
namespace {

using oauth::form_decode;
using oauth::IntrospectionLimits;
using oauth::parse_introspection_form;

TEST(IntrospectionFormTest, DecodesPercentAndPlusAndIgnoresTheHint) {
  EXPECT_EQ(*form_decode("a%2Eb+c%2b%7e"), "a.b c+~");
  auto token = parse_introspection_form("token_type_hint=access_token&token=ab%2Ecd.ef&x=1", {});
  ASSERT_TRUE(token) << token.error().message;
  EXPECT_EQ(*token, "ab.cd.ef");
  EXPECT_EQ(*parse_introspection_form("&&token=x&", {}), "x");
}

TEST(IntrospectionFormTest, RefusesBadEncodingMissingRepeatedAndOversizedTokens) {
  for (const char* body : {"token=ab%", "token=ab%4", "token=%zz", "token=%4g"}) {
    auto r = parse_introspection_form(body, {});
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, ErrorCode::kMalformed) << body;
  }
  EXPECT_EQ(parse_introspection_form("", {}).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(parse_introspection_form("token=", {}).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(parse_introspection_form("token_type_hint=x", {}).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(parse_introspection_form("token=a&token=a", {}).error().code, ErrorCode::kMalformed);
  // A name is decoded before it is compared: "tok%65n" is "token".
  EXPECT_EQ(parse_introspection_form("token=a&tok%65n=b", {}).error().code, ErrorCode::kMalformed);

  IntrospectionLimits limits;
  limits.max_token_bytes = 4;
  EXPECT_TRUE(parse_introspection_form("token=abcd", limits));
  EXPECT_EQ(parse_introspection_form("token=abcde", limits).error().code,
            ErrorCode::kLimitExceeded);
  EXPECT_TRUE(parse_introspection_form("token=%61%62%63%64", limits));  // 12 raw, 4 decoded
  EXPECT_EQ(parse_introspection_form("token=%61%62%63%64%65", limits).error().code,
            ErrorCode::kLimitExceeded);
  limits.max_params = 3;
  EXPECT_EQ(parse_introspection_form("a=1&b=2&c=3&token=x", limits).error().code,
            ErrorCode::kLimitExceeded);
}

class OAuthTest : public ::testing::Test {
 protected:
  static constexpr std::int64_t kNow = 1'800'000'000;

  void SetUp() override {
    config_.issuer_url = "https://issuer.test:8443";
    auto issuer = test::open_test_issuer(dir_.path(), config_, clock_, random_);
    ASSERT_TRUE(issuer) << issuer.error().message;
    store_ = std::move(issuer->store);
    keys_ = std::move(issuer->keys);
    service_ = std::move(issuer->service);
    auto signer = token::EcSigner::from_key(keys_->current_key(), keys_->current_kid());
    ASSERT_TRUE(signer) << signer.error().message;
    signer_ = std::make_unique<token::EcSigner>(std::move(*signer));
    add_device("dev-1");
  }

  void add_device(const std::string& id) {
    Device d;
    d.id = id;
    d.ek_public_hash = "ek-" + id;
    d.ak_public = Bytes{1, 2, 3};
    d.ak_name = Bytes{4, 5};
    d.created_at = kNow - 1000;
    auto added = store_->add_device(d);
    ASSERT_TRUE(added) << added.error().message;
  }

  token::Claims claims(const std::string& jti) {
    token::Claims c;
    c.iss = config_.issuer_url;
    c.sub = "dev-1";
    c.aud = {"https://rp.test"};
    c.iat = kNow - 10;
    c.nbf = kNow - 10;
    c.exp = kNow + 290;
    c.jti = jti;
    c.scope = "read write";
    c.cnf = token::Confirmation{std::string("jkt-thumbprint"), std::nullopt};
    c.status = token::StatusRef{3, config_.issuer_url + "/v1/status/1"};
    c.device_id = "dev-1";
    token::WorkloadSelectors w;
    w.systemd_unit = "app.service";
    c.workload = w;
    return c;
  }

  /// Signs `c` as the issuer does and records the token (unless `record` is false).
  std::string mint(const token::Claims& c, bool record = true,
                   std::string_view typ = token::kTypWorkload) {
    auto jwt = token::mint_jwt(*signer_, typ, c);
    EXPECT_TRUE(jwt) << jwt.error().message;
    if (record) {
      TokenRecord r{*c.jti, *c.sub, "1", 3, *c.iat, *c.exp, false};
      EXPECT_TRUE(store_->add_token(r));
    }
    return *jwt;
  }

  oauth::Introspection introspect(std::string_view token) {
    if (!introspector_) introspector_.emplace(*service_->oauth_sources());
    auto r = introspector_->introspect(token);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : oauth::Introspection{};
  }

  void expect_inactive(std::string_view token, std::string_view why) {
    auto r = introspect(token);
    EXPECT_FALSE(r.active) << why;
    EXPECT_NE(r.why_inactive.find(why), std::string::npos) << r.why_inactive;
    EXPECT_EQ(oauth::Introspector::to_json(r), R"({"active":false})");
  }

  test::TempDir dir_{"warden-oauth"};
  FakeClock clock_{kNow};
  SystemRandom random_;
  IssuerConfig config_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<IssuerService> service_;
  std::unique_ptr<token::EcSigner> signer_;
  std::optional<oauth::Introspector> introspector_;
};

TEST_F(OAuthTest, ActiveTokenAnswersItsClaimsAsDPoP) {
  auto r = introspect(mint(claims("jti-1")));
  ASSERT_TRUE(r.active) << r.why_inactive;
  auto body = boost::json::parse(oauth::Introspector::to_json(r)).as_object();
  EXPECT_EQ(body.at("active"), true);
  EXPECT_EQ(body.at("token_type"), "DPoP");
  EXPECT_EQ(body.at("iss").as_string(), config_.issuer_url);
  EXPECT_EQ(body.at("sub"), "dev-1");
  EXPECT_EQ(body.at("jti"), "jti-1");
  EXPECT_EQ(body.at("scope"), "read write");
  EXPECT_EQ(body.at("exp"), kNow + 290);
  EXPECT_EQ(body.at("iat"), kNow - 10);
  EXPECT_EQ(body.at("nbf"), kNow - 10);
  EXPECT_EQ(body.at("cnf").as_object().at("jkt"), "jkt-thumbprint");
  EXPECT_TRUE(body.contains("aud"));
  EXPECT_TRUE(body.contains("status"));
  EXPECT_EQ(body.at("warden_device_id"), "dev-1");
  EXPECT_EQ(body.at("warden_workload").as_object().at("systemd_unit"), "app.service");
}

TEST_F(OAuthTest, SignatureTypIssuerAndTimeFailuresAreInactive) {
  std::string token = mint(claims("jti-sig"));
  std::string tampered = token;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  expect_inactive(tampered, "");
  // Signed by a key the issuer never published (same kid, so found but not matching).
  auto other = token::EcSigner::generate(random_, signer_->kid());
  ASSERT_TRUE(other);
  auto foreign = token::mint_jwt(*other, token::kTypWorkload, claims("jti-sig"));
  expect_inactive(*foreign, "");
  auto unknown_kid = token::EcSigner::generate(random_, "no-such-kid");
  expect_inactive(*token::mint_jwt(*unknown_kid, token::kTypWorkload, claims("jti-sig")), "");
  // Not a workload token (a status list or device result typ), another iss.
  auto typ = claims("jti-typ");
  expect_inactive(mint(typ, true, token::kTypDeviceResult), "typ");
  auto iss = claims("jti-iss");
  iss.iss = "https://elsewhere.test";
  expect_inactive(mint(iss), "iss");
  // Time: expired a second ago, valid only from a second ahead (no leeway).
  auto expired = claims("jti-exp");
  expired.exp = kNow - 1;
  expect_inactive(mint(expired), "");
  auto early = claims("jti-nbf");
  early.nbf = kNow + 1;
  expect_inactive(mint(early), "");
  // Not a JWS at all: a CWT is binary, garbage is garbage.
  expect_inactive("oA", "not a compact JWS");
  expect_inactive("a.b.c", "");
  expect_inactive(token + ".x", "not a compact JWS");
}

TEST_F(OAuthTest, TimeBoundariesFollowTheClock) {
  std::string token = mint(claims("jti-clock"));
  EXPECT_TRUE(introspect(token).active);
  clock_.set(kNow + 290);  // exp == now: no longer valid
  expect_inactive(token, "");
}

TEST_F(OAuthTest, RecordAndDeviceStateDecide) {
  expect_inactive(mint(claims("jti-unrecorded"), false), "unknown jti");

  std::string revoked = mint(claims("jti-revoked"));
  ASSERT_TRUE(store_->mark_token_revoked("jti-revoked"));
  expect_inactive(revoked, "token revoked");

  auto other_device = claims("jti-other");
  other_device.sub = "dev-2";  // the token says dev-2, its record dev-1
  std::string forged = token::mint_jwt(*signer_, token::kTypWorkload, other_device).value();
  ASSERT_TRUE(store_->add_token({"jti-other", "dev-1", "1", 4, kNow - 10, kNow + 290, false}));
  expect_inactive(forged, "another device");

  std::string live = mint(claims("jti-live"));
  EXPECT_TRUE(introspect(live).active);
  // Revoked, then enabled again: tokens issued at or before revoked_at stay dead.
  ASSERT_TRUE(store_->revoke_device("dev-1", kNow - 10));
  expect_inactive(live, "device revoked");
  ASSERT_TRUE(store_->set_device_state("dev-1", DeviceState::kEnabled));
  expect_inactive(live, "device revoked after the token was issued");
  auto later = claims("jti-later");
  later.iat = kNow - 9;
  EXPECT_TRUE(introspect(mint(later)).active);

  ASSERT_TRUE(store_->remove_device("dev-1"));
  expect_inactive(mint(claims("jti-gone")), "device removed");
}

TEST_F(OAuthTest, AKeyRotatedElsewhereIsFoundByAReloadAtMostOnceASecond) {
  // Another replica rotated: this process's cached set lacks the new key until it reloads.
  auto rotated = token::EcSigner::generate(random_, "rotated-kid");
  ASSERT_TRUE(rotated);
  auto stale =
      std::make_shared<const token::KeySet>(*token::KeySet::from_json(*service_->jwks_json()));
  token::KeySet fresh_set = *stale;
  fresh_set.add(rotated->public_jwk());
  auto fresh = std::make_shared<const token::KeySet>(std::move(fresh_set));
  int reloads = 0;
  oauth::Sources sources = *service_->oauth_sources();
  sources.published_keys = [&](bool reload) -> Result<std::shared_ptr<const token::KeySet>> {
    if (!reload) return reloads > 0 ? fresh : stale;
    ++reloads;
    return fresh;
  };
  oauth::Introspector introspector(std::move(sources));
  auto minted = [&](const std::string& jti) {
    auto c = claims(jti);
    EXPECT_TRUE(store_->add_token({jti, "dev-1", "1", 5, *c.iat, *c.exp, false}));
    return *token::mint_jwt(*rotated, token::kTypWorkload, c);
  };
  EXPECT_TRUE(introspector.introspect(minted("jti-rot-1"))->active);
  EXPECT_EQ(reloads, 1);
  auto unknown = token::EcSigner::generate(random_, "unknown-kid");
  const std::string junk = *token::mint_jwt(*unknown, token::kTypWorkload, claims("jti-u"));
  EXPECT_FALSE(introspector.introspect(junk)->active);  // same second: no reload
  EXPECT_FALSE(introspector.introspect(junk)->active);
  EXPECT_EQ(reloads, 1);
  clock_.advance(std::chrono::seconds(1));
  EXPECT_FALSE(introspector.introspect(junk)->active);
  EXPECT_EQ(reloads, 2);
}

TEST_F(OAuthTest, StoreFailuresAreNoAnswer) {
  oauth::Sources sources = *service_->oauth_sources();
  sources.published_keys = [](bool) -> Result<std::shared_ptr<const token::KeySet>> {
    return fail(ErrorCode::kUnavailable, "store down");
  };
  oauth::Introspector introspector(std::move(sources));
  auto r = introspector.introspect(mint(claims("jti-down")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

TEST_F(OAuthTest, MetadataNamesAbsoluteEndpointsAndNoGrant) {
  auto text = oauth::authorization_server_metadata("https://issuer.test:8443/");
  ASSERT_TRUE(text) << text.error().message;
  auto m = boost::json::parse(*text).as_object();
  EXPECT_EQ(m.at("issuer"), "https://issuer.test:8443/");
  EXPECT_EQ(m.at("jwks_uri"), "https://issuer.test:8443/.well-known/jwks.json");
  EXPECT_EQ(m.at("introspection_endpoint"), "https://issuer.test:8443/oauth/introspect");
  EXPECT_EQ(m.at("introspection_endpoint_auth_methods_supported"),
            (boost::json::array{"Bearer", "tls_client_auth"}));
  for (const char* absent : {"token_endpoint", "authorization_endpoint", "response_types_supported",
                             "grant_types_supported"}) {
    EXPECT_FALSE(m.contains(absent)) << absent;
  }
  EXPECT_EQ(oauth::authorization_server_metadata("").error().code, ErrorCode::kUnavailable);
  EXPECT_FALSE(oauth::authorization_server_metadata("http://issuer.test"));
  EXPECT_FALSE(oauth::authorization_server_metadata("https://issuer.test?x=1"));
}

TEST(OAuthConfigTest, StatusListAndOAuthBlocksParseAndAreChecked) {
  auto defaults = parse_config("");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->status_list.max_age_s, 2U);
  EXPECT_EQ(defaults->status_list.ttl_s, 2U);
  EXPECT_TRUE(defaults->oauth.introspection);
  auto set = parse_config(
      "[status_list]\nmax_age_s = 0\nttl_s = 30\n[oauth]\nintrospection = false\n"
      "max_token_bytes = 4096\n");
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->status_list.max_age_s, 0U);
  EXPECT_EQ(set->status_list.ttl_s, 30U);
  EXPECT_FALSE(set->oauth.introspection);
  EXPECT_EQ(set->oauth.max_token_bytes, 4096U);
  EXPECT_FALSE(parse_config("[status_list]\nttl_s = 0\n"));
  EXPECT_FALSE(parse_config("[oauth]\nmax_token_bytes = 10\n"));
  EXPECT_FALSE(parse_config("[status_list]\nmax_age = 3\n"));  // unknown key
}

// ---- Over the router ---------------------------------------------------------------------------

class OAuthRouterTest : public OAuthTest {
 protected:
  void SetUp() override {
    OAuthTest::SetUp();
    if (HasFatalFailure()) return;
    auto sources = *service_->oauth_sources();
    sources.authenticate = [](std::string_view authorization) -> Result<std::string> {
      if (authorization == "Bearer receiver-secret") return std::string("rp-1");
      if (authorization == "Bearer store-down") {
        return fail(ErrorCode::kUnavailable, "store down");
      }
      return fail(ErrorCode::kPermissionDenied, "unknown receiver");
    };
    http::register_oauth_routes(table_, std::move(sources), config_.oauth, {});
  }

  http::Response post(const std::string& body, std::string authorization,
                      std::string content_type = "application/x-www-form-urlencoded") {
    http::Request r;
    r.method = "POST";
    r.target = "/oauth/introspect";
    r.content_type = std::move(content_type);
    r.authorization = std::move(authorization);
    r.body = to_bytes(body);
    return table_.dispatch(r);
  }

  http::RouteTable table_;
};

TEST_F(OAuthRouterTest, IntrospectionNeedsAKnownBearerOrAnAdmin) {
  const std::string body = "token=" + mint(claims("jti-r1"));
  auto none = post(body, "");
  EXPECT_EQ(none.status, 401U);
  EXPECT_EQ(none.headers.at("www-authenticate"), R"(Bearer realm="warden-issuer")");
  auto wrong = post(body, "Bearer guessed");
  EXPECT_EQ(wrong.status, 401U);
  EXPECT_EQ(wrong.headers.at("www-authenticate"),
            R"(Bearer realm="warden-issuer", error="invalid_token")");
  EXPECT_EQ(boost::json::parse(wrong.body).as_object().at("error"), "invalid_token");
  EXPECT_EQ(post(body, "Bearer store-down").status, 503U);

  auto ok = post(body, "Bearer receiver-secret");
  ASSERT_EQ(ok.status, 200U) << ok.body;
  EXPECT_EQ(ok.content_type, "application/json");
  EXPECT_EQ(ok.headers.at("cache-control"), "no-store");
  EXPECT_EQ(boost::json::parse(ok.body).as_object().at("active"), true);

  http::Request admin;
  admin.method = "POST";
  admin.target = "/oauth/introspect";
  admin.content_type = "Application/X-WWW-Form-Urlencoded; charset=UTF-8";
  admin.body = to_bytes(body);
  admin.peer.socket_uid = 0;
  EXPECT_EQ(table_.dispatch(admin).status, 200U);
  admin.peer.socket_uid.reset();
  admin.peer.client_cert_verified = true;
  EXPECT_EQ(table_.dispatch(admin).status, 200U);
  admin.peer.client_cert_verified = false;
  admin.peer.loopback = true;  // loopback alone is no admin without the config's say-so
  EXPECT_EQ(table_.dispatch(admin).status, 401U);
}

TEST_F(OAuthRouterTest, BadRequestsGetOAuthErrors) {
  const std::string auth = "Bearer receiver-secret";
  auto json = post(R"({"token":"x"})", auth, "application/json");
  EXPECT_EQ(json.status, 415U);
  EXPECT_EQ(boost::json::parse(json.body).as_object().at("error"), "invalid_request");
  EXPECT_EQ(post("token=%zz", auth).status, 400U);
  EXPECT_EQ(post("nothing=here", auth).status, 400U);
  EXPECT_EQ(post("token=" + std::string(config_.oauth.max_token_bytes + 1, 'a'), auth).status,
            413U);
  auto inactive = post("token=not-a-token", auth);
  EXPECT_EQ(inactive.status, 200U);
  EXPECT_EQ(inactive.body, R"({"active":false})");
  const auto* route = table_.find("POST", "/oauth/introspect");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->max_body, 3 * config_.oauth.max_token_bytes + 1024);
}

class RouterTest : public OAuthTest {
 protected:
  http::Response get(std::string target, std::string if_none_match = "") {
    if (!router_) router_ = std::make_unique<http::Router>(*service_, metrics_, options_);
    http::Request r;
    r.method = "GET";
    r.target = std::move(target);
    r.if_none_match = std::move(if_none_match);
    return router_->handle(r);
  }
  http::Metrics metrics_;
  http::RouterOptions options_;
  std::unique_ptr<http::Router> router_;
};

TEST_F(RouterTest, MetadataIsServedWithTheConfiguredIssuer) {
  auto r = get("/.well-known/oauth-authorization-server");
  ASSERT_EQ(r.status, 200U) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  auto m = boost::json::parse(r.body).as_object();
  EXPECT_EQ(m.at("issuer"), "https://issuer.test:8443");
  EXPECT_EQ(m.at("introspection_endpoint"), "https://issuer.test:8443/oauth/introspect");
  // The service's own introspection route admits no bearer until receivers are wired in.
  http::Request post;
  post.method = "POST";
  post.target = "/oauth/introspect";
  post.authorization = "Bearer anything";
  EXPECT_EQ(router_->handle(post).status, 401U);
}

TEST_F(RouterTest, StatusListEtagChangesOnlyWhenABitFlips) {
  auto first = get("/v1/status/1");
  ASSERT_EQ(first.status, 200U) << first.body;
  EXPECT_EQ(first.headers.at("cache-control"), "max-age=2");
  const std::string etag = first.headers.at("etag");
  ASSERT_GE(etag.size(), 3U);
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(etag.back(), '"');
  // The ttl claim is the configured one.
  auto jws = token::decode_jws(first.body);
  ASSERT_TRUE(jws);
  EXPECT_EQ(jws->payload.at("ttl"), 2);

  clock_.advance(std::chrono::seconds(5));  // time alone re-signs nothing
  auto same = get("/v1/status-lists/1");
  EXPECT_EQ(same.headers.at("etag"), etag);
  EXPECT_EQ(same.body, first.body);

  for (const std::string& header : {etag, "W/" + etag, "\"other\", " + etag, std::string("*")}) {
    auto not_modified = get("/v1/status/1", header);
    EXPECT_EQ(not_modified.status, 304U) << header;
    EXPECT_TRUE(not_modified.body.empty());
    EXPECT_EQ(not_modified.headers.at("etag"), etag);
    EXPECT_EQ(not_modified.headers.at("cache-control"), "max-age=2");
  }
  EXPECT_EQ(get("/v1/status/1", "\"other\"").status, 200U);

  ASSERT_TRUE(store_->set_status_bit("1", 3, true));
  auto flipped = get("/v1/status/1", etag);
  ASSERT_EQ(flipped.status, 200U);
  EXPECT_NE(flipped.headers.at("etag"), etag);
  auto keys = token::KeySet::from_json(*service_->jwks_json());
  auto list = token::verify_status_list_jwt(flipped.body, *keys, clock_.unix_now());
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_EQ(*list->get(3), token::kStatusInvalid);
  EXPECT_EQ(get("/v1/status/1", flipped.headers.at("etag")).status, 304U);

  // An unchanged list is signed again after a minute, so its exp stays far ahead.
  clock_.advance(std::chrono::seconds(61));
  auto resigned = get("/v1/status/1");
  EXPECT_NE(resigned.headers.at("etag"), flipped.headers.at("etag"));
  EXPECT_EQ(token::decode_jws(resigned.body)->payload.at("iat"), clock_.unix_now());
}

class ConfiguredCachingTest : public RouterTest {
 protected:
  void SetUp() override {
    config_.status_list.max_age_s = 7;
    config_.status_list.ttl_s = 9;
    RouterTest::SetUp();
  }
};

TEST_F(ConfiguredCachingTest, HeadersAndTtlFollowTheConfig) {
  auto r = get("/v1/status/1");
  ASSERT_EQ(r.status, 200U);
  EXPECT_EQ(r.headers.at("cache-control"), "max-age=7");
  EXPECT_EQ(token::decode_jws(r.body)->payload.at("ttl"), 9);
}

}  // namespace
}  // namespace warden::issuer
