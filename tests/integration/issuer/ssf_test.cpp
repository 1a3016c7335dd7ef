// The Shared Signals transmitter through the issuer's router, on a real service and SQLite
// store: receivers (admin API), stream management with bearer authentication and isolation,
// revocations that write their events in their own transaction, poll delivery with acks, SETs
// that verify against the JWKS, and the push queue.
#include <gtest/gtest.h>

#include "attest/token/json.h"
#include "attest/token/jwk.h"
#include "attest/token/jwt.h"
#include "attest/token/set.h"
#include "issuer/http/router.h"
#include "issuer/service.h"
#include "issuer/ssf/events.h"
#include "issuer/ssf/streams.h"
#include "issuer/store/sql.h"
#include "tests/support/process.h"

namespace warden::issuer {
namespace {

namespace bj = boost::json;
using http::Request;
using http::Response;

constexpr std::string_view kRevoked = token::kEventSessionRevoked;
constexpr std::string_view kCompliance = token::kEventDeviceComplianceChange;

class SsfTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }

  void open() {
    router_.reset();
    service_.reset();
    auto store = open_sqlite_store((dir_.path() / "issuer.db").string());
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    ASSERT_TRUE(store_->migrate());
    auto keys = SigningKeys::open(dir_.path() / "keys", *store_, clock_);
    ASSERT_TRUE(keys) << keys.error().message;
    keys_ = std::move(*keys);
    IssuerService::Options o;
    o.config = &config_;
    o.store = store_.get();
    o.keys = keys_.get();
    o.clock = &clock_;
    o.random = &random_;
    o.nonce_key = SecretBytes(Bytes(32, 0x42));
    o.issuer_url = "https://issuer.test:8443";
    o.on_events_committed = [this] { ++wakeups_; };
    auto service = IssuerService::create(std::move(o));
    ASSERT_TRUE(service) << service.error().message;
    service_ = std::move(*service);
    http::RouterOptions ro;
    ro.allow_unauthenticated_loopback = true;
    router_ = std::make_unique<http::Router>(*service_, metrics_, ro);
  }

  Response call(std::string method, std::string target, std::string body = {},
                std::string authorization = {}) {
    Request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.content_type = "application/json";
    r.authorization = std::move(authorization);
    r.body = Bytes(body.begin(), body.end());
    r.peer.loopback = true;
    return router_->handle(r);
  }

  std::string add_receiver(const std::string& name) {
    Response r = call("POST", "/admin/v1/ssf/receivers", R"({"name":")" + name + "\"}");
    EXPECT_EQ(r.status, 201U) << r.body;
    auto o = json::parse_object(r.body);
    EXPECT_TRUE(o);
    return "Bearer " + std::string(json::get_string(*o, "token").value_or(""));
  }

  std::string create_stream(const std::string& auth, const std::string& body) {
    Response r = call("POST", "/ssf/streams", body, auth);
    EXPECT_EQ(r.status, 201U) << r.body;
    auto o = json::parse_object(r.body);
    return o ? std::string(json::get_string(*o, "stream_id").value_or("")) : "";
  }

  std::string poll_stream(const std::string& auth) {
    return create_stream(auth,
                         R"({"delivery":{"method":"urn:ietf:rfc:8936"},"events_requested":[")" +
                             std::string(kRevoked) + R"(",")" + std::string(kCompliance) +
                             R"(","urn:example:unknown"]})");
  }

  void add_device(const std::string& id, std::int64_t tokens) {
    Device d;
    d.id = id;
    d.ek_public_hash = "ek-" + id;
    d.ak_public = {1};
    d.ak_name = {2};
    d.last_verdict = "accept";
    d.created_at = clock_.unix_now();
    ASSERT_TRUE(store_->add_device(d));
    for (std::int64_t i = 0; i < tokens; ++i) {
      ASSERT_TRUE(store_->add_token({id + "-t" + std::to_string(i), id, "1",
                                     static_cast<std::uint64_t>(100 + i), clock_.unix_now(),
                                     clock_.unix_now() + 300, false}));
    }
  }

  struct Polled {
    bj::object sets;
    bool more = false;
  };
  Polled poll(const std::string& auth, const std::string& stream, const std::string& body = "{}") {
    Response r = call("POST", "/ssf/poll/" + stream, body, auth);
    EXPECT_EQ(r.status, 200U) << r.body;
    auto o = json::parse_object(r.body);
    if (!o) return {};
    Polled p;
    if (const auto* sets = json::get_object(*o, "sets")) p.sets = *sets;
    p.more = o->at("moreAvailable").as_bool();
    return p;
  }

  // The SET's payload, verified against the issuer's JWKS as a receiver would.
  bj::object verified(const bj::value& jwt) {
    auto jwks = service_->jwks_json();
    EXPECT_TRUE(jwks);
    auto keys = token::KeySet::from_json(*jwks);
    EXPECT_TRUE(keys);
    auto jws = token::decode_jws(jwt.as_string());
    EXPECT_TRUE(jws);
    if (!jws || !keys) return {};
    EXPECT_EQ(json::get_string(jws->header, "typ"), "secevent+jwt");
    auto key = keys->find(json::get_string(jws->header, "kid").value_or(""), token::Alg::kEs256);
    EXPECT_TRUE(key);
    if (!key) return {};
    auto ok = token::verify_jws_with(jwt.as_string(), **key, {token::Alg::kEs256});
    EXPECT_TRUE(ok) << ok.error().message;
    return ok ? ok->payload : bj::object{};
  }

  test::TempDir dir_{"warden-ssf"};
  IssuerConfig config_;
  FakeClock clock_;
  SystemRandom random_;
  http::Metrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<IssuerService> service_;
  std::unique_ptr<http::Router> router_;
  int wakeups_ = 0;
};

TEST_F(SsfTest, ConfigurationDocumentAdvertisesTheEndpoints) {
  Response r = call("GET", "/.well-known/ssf-configuration");
  ASSERT_EQ(r.status, 200U);
  auto o = json::parse_object(r.body);
  ASSERT_TRUE(o);
  EXPECT_EQ(json::get_string(*o, "spec_version"), "1_0");
  EXPECT_EQ(json::get_string(*o, "issuer"), "https://issuer.test:8443");
  EXPECT_EQ(json::get_string(*o, "jwks_uri"), "https://issuer.test:8443/.well-known/jwks.json");
  EXPECT_EQ(json::get_string(*o, "configuration_endpoint"), "https://issuer.test:8443/ssf/streams");
  EXPECT_EQ(json::get_string(*o, "status_endpoint"), "https://issuer.test:8443/ssf/status");
  EXPECT_EQ(json::get_string(*o, "verification_endpoint"), "https://issuer.test:8443/ssf/verify");
  EXPECT_EQ(json::serialize(o->at("delivery_methods_supported")),
            R"(["urn:ietf:rfc:8935","urn:ietf:rfc:8936"])");
  EXPECT_EQ(json::serialize(o->at("authorization_schemes")),
            R"([{"spec_urn":"urn:ietf:rfc:6750"}])");
}

TEST_F(SsfTest, ReceiversAreRegisteredListedWithoutTokensAndRemoved) {
  const std::string auth = add_receiver("rp1");
  EXPECT_EQ(auth.size(), 7U + 43U);  // 32 bytes, base64url
  EXPECT_EQ(call("POST", "/admin/v1/ssf/receivers", R"({"name":"rp1"})").status, 409U);
  EXPECT_EQ(call("POST", "/admin/v1/ssf/receivers", R"({"name":"bad name!"})").status, 400U);
  EXPECT_EQ(call("POST", "/admin/v1/ssf/receivers", R"({"nom":"x"})").status, 400U);
  Response list = call("GET", "/admin/v1/ssf/receivers");
  ASSERT_EQ(list.status, 200U);
  EXPECT_NE(list.body.find("\"rp1\""), std::string::npos);
  EXPECT_EQ(list.body.find(auth.substr(7)), std::string::npos);
  EXPECT_EQ(list.body.find("token"), std::string::npos);
  // Audited, and only the token's hash is stored.
  auto audit = store_->query_audit({});
  ASSERT_TRUE(audit);
  ASSERT_FALSE(audit->empty());
  EXPECT_EQ(audit->front().action, "admin.ssf_receiver");
  EXPECT_EQ(audit->front().reasons_json.find(auth.substr(7)), std::string::npos);
  EXPECT_FALSE(*store_->find_ssf_receiver(auth.substr(7)));

  const std::string stream = poll_stream(auth);
  EXPECT_EQ(call("DELETE", "/admin/v1/ssf/receivers/rp1").status, 204U);
  EXPECT_EQ(call("DELETE", "/admin/v1/ssf/receivers/rp1").status, 404U);
  EXPECT_EQ(call("GET", "/ssf/streams", "", auth).status, 401U);
  EXPECT_EQ(store_->get_ssf_stream(stream)->status, "disabled");
}

TEST_F(SsfTest, StreamsNeedTheReceiversTokenAndStayItsOwn) {
  const std::string a = add_receiver("rp-a");
  const std::string b = add_receiver("rp-b");
  Response none = call("GET", "/ssf/streams");
  EXPECT_EQ(none.status, 401U);
  EXPECT_EQ(none.headers["www-authenticate"].rfind("Bearer", 0), 0U);
  EXPECT_EQ(call("GET", "/ssf/streams", "", "Bearer wrong").status, 401U);
  EXPECT_EQ(call("GET", "/ssf/streams", "", "Basic abc").status, 401U);

  const std::string stream = poll_stream(a);
  ASSERT_FALSE(stream.empty());
  Response got = call("GET", "/ssf/streams?stream_id=" + stream, "", a);
  ASSERT_EQ(got.status, 200U);
  auto config = json::parse_object(got.body);
  ASSERT_TRUE(config);
  EXPECT_EQ(json::get_string(*config, "aud"), "rp-a");
  // Unknown types are not delivered (SSF 1.0: delivered = requested ∩ supported).
  EXPECT_EQ(json::serialize(config->at("events_delivered")),
            "[\"" + std::string(kRevoked) + "\",\"" + std::string(kCompliance) + "\"]");
  EXPECT_EQ(json::get_string(config->at("delivery").as_object(), "endpoint_url"),
            "https://issuer.test:8443/ssf/poll/" + stream);

  // Receiver b sees none of it.
  EXPECT_EQ(call("GET", "/ssf/streams?stream_id=" + stream, "", b).status, 404U);
  EXPECT_EQ(call("GET", "/ssf/streams", "", b).body, "[]");
  EXPECT_EQ(
      call("PATCH", "/ssf/streams", R"({"stream_id":")" + stream + R"(","description":"x"})", b)
          .status,
      404U);
  EXPECT_EQ(call("DELETE", "/ssf/streams?stream_id=" + stream, "", b).status, 404U);
  EXPECT_EQ(call("GET", "/ssf/status?stream_id=" + stream, "", b).status, 404U);
  EXPECT_EQ(call("POST", "/ssf/verify", R"({"stream_id":")" + stream + "\"}", b).status, 404U);
  EXPECT_EQ(call("POST", "/ssf/poll/" + stream, "{}", b).status, 404U);

  // PATCH changes what it names; PUT replaces the whole configuration.
  Response patched =
      call("PATCH", "/ssf/streams", R"({"stream_id":")" + stream + R"(","description":"mine"})", a);
  ASSERT_EQ(patched.status, 200U) << patched.body;
  EXPECT_NE(patched.body.find(std::string(kCompliance)), std::string::npos);
  EXPECT_NE(patched.body.find("\"mine\""), std::string::npos);
  Response replaced = call("PUT", "/ssf/streams",
                           R"({"stream_id":")" + stream + R"(","events_requested":[")" +
                               std::string(kRevoked) + R"("]})",
                           a);
  ASSERT_EQ(replaced.status, 200U) << replaced.body;
  EXPECT_EQ(replaced.body.find("\"mine\""), std::string::npos);
  EXPECT_EQ(store_->get_ssf_stream(stream)->events_delivered,
            std::vector<std::string>{std::string(kRevoked)});

  // Status.
  Response paused =
      call("POST", "/ssf/status", R"({"stream_id":")" + stream + R"(","status":"paused"})", a);
  ASSERT_EQ(paused.status, 200U) << paused.body;
  EXPECT_NE(call("GET", "/ssf/status?stream_id=" + stream, "", a).body.find("\"paused\""),
            std::string::npos);
  EXPECT_EQ(call("POST", "/ssf/status", R"({"stream_id":")" + stream + R"(","status":"asleep"})", a)
                .status,
            400U);
  EXPECT_EQ(call("DELETE", "/ssf/streams?stream_id=" + stream, "", a).status, 204U);
  EXPECT_EQ(call("GET", "/ssf/streams?stream_id=" + stream, "", a).status, 404U);
}

TEST_F(SsfTest, BadStreamRequestsAreRefusedClearly) {
  const std::string a = add_receiver("rp");
  auto refused = [&](const std::string& body) {
    Response r = call("POST", "/ssf/streams", body, a);
    EXPECT_EQ(r.status, 400U) << body << " -> " << r.body;
    return r.body;
  };
  refused("{not json");
  refused("[]");
  refused(R"({"unknown":1})");
  refused(R"({"stream_id":"chosen"})");
  refused(R"({"delivery":{"method":"urn:example:carrier-pigeon"}})");
  refused(R"({"delivery":"push"})");
  refused(R"({"events_requested":"all"})");
  refused(R"({"delivery":{"method":"urn:ietf:rfc:8935"}})");
  EXPECT_NE(
      refused(R"({"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"http://rp.example/x"}})")
          .find("https"),
      std::string::npos);
  // http to loopback only with ssf.allow_http_loopback.
  refused(R"({"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"http://127.0.0.1:9/x"}})");
  refused(R"({"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"https://u@rp.example/x"}})");
  refused(R"({"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"https://rp.example/",)"
          R"("authorization_header":"a\r\nX-Injected: 1"}})");
  EXPECT_FALSE(create_stream(a, R"({"delivery":{"method":"urn:ietf:rfc:8935",)"
                                R"("endpoint_url":"https://rp.example/events"}})")
                   .empty());
  EXPECT_EQ(call("GET", "/ssf/status", "", a).status, 400U);  // no stream_id

  // At most max_streams_per_receiver.
  config_.ssf.max_streams_per_receiver = 2;
  open();
  const std::string b = add_receiver("rp2");
  poll_stream(b);
  poll_stream(b);
  EXPECT_EQ(call("POST", "/ssf/streams", "{}", b).status, 413U);
}

TEST_F(SsfTest, HttpLoopbackPushNeedsTheConfigAndALoopbackHost) {
  using ssf::Transmitter;
  EXPECT_TRUE(Transmitter::check_push_url("https://rp.example:8443/ssf", false));
  EXPECT_FALSE(Transmitter::check_push_url("http://127.0.0.1:8080/ssf", false));
  EXPECT_TRUE(Transmitter::check_push_url("http://127.0.0.1:8080/ssf", true));
  EXPECT_TRUE(Transmitter::check_push_url("http://127.9.8.7/ssf", true));
  EXPECT_TRUE(Transmitter::check_push_url("http://[::1]:9/ssf", true));
  EXPECT_TRUE(Transmitter::check_push_url("http://localhost:9/ssf", true));
  EXPECT_FALSE(Transmitter::check_push_url("http://127.0.0.1.evil.example/ssf", true));
  EXPECT_FALSE(Transmitter::check_push_url("http://10.0.0.1/ssf", true));
  EXPECT_FALSE(Transmitter::check_push_url("http://localhost@evil.example/", true));
  EXPECT_FALSE(Transmitter::check_push_url("ftp://rp.example/", true));
  EXPECT_FALSE(Transmitter::check_push_url("https://" + std::string(3000, 'a'), true));
}

TEST_F(SsfTest, AdminRevocationIsPolledAsVerifiedSetsUntilAcknowledged) {
  const std::string a = add_receiver("rp");
  const std::string stream = poll_stream(a);
  add_device("dev-1", 2);
  const int before = wakeups_;
  ASSERT_TRUE(service_->admin_set_device_state("dev-1", "revoked", "tester"));
  EXPECT_GT(wakeups_, before);  // the push worker is woken after the commit

  Polled p = poll(a, stream);
  ASSERT_EQ(p.sets.size(), 4U);  // two sessions, the device's sessions, compliance
  EXPECT_FALSE(p.more);
  std::map<std::string, int> types;
  std::vector<std::string> jtis;
  for (const auto& kv : p.sets) {
    const bj::object claims = verified(kv.value());
    EXPECT_EQ(json::get_string(claims, "jti"), std::string(kv.key()));
    EXPECT_EQ(json::get_string(claims, "iss"), "https://issuer.test:8443");
    EXPECT_EQ(json::get_string(claims, "aud"), "rp");
    const auto* events = json::get_object(claims, "events");
    ASSERT_NE(events, nullptr);
    ASSERT_EQ(events->size(), 1U);
    const auto& [type, event] = *events->begin();
    ++types[std::string(type)];
    EXPECT_EQ(json::get_string(event.as_object(), "initiating_entity"), "admin");
    EXPECT_EQ(json::get_int(event.as_object(), "event_timestamp"), clock_.unix_now());
    const auto* sub = json::get_object(claims, "sub_id");
    ASSERT_NE(sub, nullptr);
    EXPECT_EQ(json::get_string(*sub, "format"), "complex");
    if (type == kCompliance) {
      EXPECT_EQ(json::get_string(event.as_object(), "previous_status"), "compliant");
      EXPECT_EQ(json::get_string(event.as_object(), "current_status"), "not-compliant");
    }
    if (const auto* session = json::get_object(*sub, "session")) {
      EXPECT_EQ(json::get_string(*session, "id").value_or("").rfind("dev-1-t", 0), 0U);
    }
    jtis.emplace_back(kv.key());
  }
  EXPECT_EQ(types[std::string(kRevoked)], 3);
  EXPECT_EQ(types[std::string(kCompliance)], 1);

  // Not acknowledged: the same SETs (same jti) again. maxEvents bounds a poll.
  clock_.advance(std::chrono::seconds(5));
  Polled again = poll(a, stream, R"({"maxEvents":1,"returnImmediately":true})");
  ASSERT_EQ(again.sets.size(), 1U);
  EXPECT_TRUE(again.more);
  EXPECT_EQ(std::string(again.sets.begin()->key()), jtis.front());

  // Acknowledged (one as an error): gone. Another stream's jti is ignored.
  Polled acked = poll(a, stream,
                      R"({"ack":[")" + jtis[0] + R"(",")" + jtis[1] + R"(",")" + jtis[2] +
                          R"(","other-1"],"setErrs":{")" + jtis[3] +
                          R"(":{"err":"invalid_key","description":"x"}}})");
  EXPECT_TRUE(acked.sets.empty());
  EXPECT_FALSE(acked.more);

  // Enabling the device is a compliance change too.
  ASSERT_TRUE(service_->admin_set_device_state("dev-1", "enabled", "tester"));
  Polled enabled = poll(a, stream);
  ASSERT_EQ(enabled.sets.size(), 1U);
  const bj::object claims = verified(enabled.sets.begin()->value());
  EXPECT_NE(json::serialize(claims).find(R"("current_status":"compliant")"), std::string::npos);

  // Bad poll bodies.
  EXPECT_EQ(call("POST", "/ssf/poll/" + stream, R"({"ack":"x"})", a).status, 400U);
  EXPECT_EQ(call("POST", "/ssf/poll/" + stream, R"({"maxEvents":-1})", a).status, 400U);
  EXPECT_EQ(call("POST", "/ssf/poll/" + stream, R"({"wait":true})", a).status, 400U);
}

TEST_F(SsfTest, VerificationEventGoesToItsStreamOnly) {
  const std::string a = add_receiver("rp");
  const std::string s1 = poll_stream(a);
  const std::string s2 = poll_stream(a);
  EXPECT_EQ(call("POST", "/ssf/verify", R"({"stream_id":")" + s1 + R"(","state":"abc"})", a).status,
            204U);
  EXPECT_TRUE(poll(a, s2).sets.empty());
  Polled p = poll(a, s1);
  ASSERT_EQ(p.sets.size(), 1U);
  const bj::object claims = verified(p.sets.begin()->value());
  const auto* events = json::get_object(claims, "events");
  ASSERT_NE(events, nullptr);
  const auto* v = json::get_object(*events, token::kEventVerification);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(json::get_string(*v, "state"), "abc");
  EXPECT_EQ(json::serialize(claims.at("sub_id")), R"({"format":"opaque","id":")" + s1 + "\"}");
}

// A revocation whose event cannot be written does not happen: the same transaction.
TEST_F(SsfTest, RevocationsFailWholeWhenTheirEventsCannotBeWritten) {
  add_device("dev-1", 1);
  {
    auto c = sql::connect_sqlite((dir_.path() / "issuer.db").string());
    ASSERT_TRUE(c);
    ASSERT_TRUE((*c)->exec_script("ALTER TABLE ssf_events RENAME TO ssf_events_away;"));
  }
  EXPECT_FALSE(service_->admin_set_device_state("dev-1", "revoked", "tester"));
  EXPECT_FALSE(service_->admin_delete_device("dev-1", "tester"));
  auto device = store_->get_device("dev-1");
  ASSERT_TRUE(device);
  EXPECT_EQ(device->state, DeviceState::kEnabled);
  EXPECT_FALSE(store_->get_token("dev-1-t0")->revoked);
  {
    auto c = sql::connect_sqlite((dir_.path() / "issuer.db").string());
    ASSERT_TRUE(c);
    ASSERT_TRUE((*c)->exec_script("ALTER TABLE ssf_events_away RENAME TO ssf_events;"));
  }
  ASSERT_TRUE(service_->admin_delete_device("dev-1", "tester"));
  EXPECT_EQ(store_->get_device("dev-1").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(store_->get_token("dev-1-t0")->revoked);
}

TEST_F(SsfTest, PushQueueHandsOutSignedSetsWithTheStreamsEndpoint) {
  const std::string a = add_receiver("rp");
  const std::string stream =
      create_stream(a, R"({"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":)"
                       R"("https://rp.example/events","authorization_header":"Bearer rp-own"},)"
                       R"("events_requested":[")" +
                           std::string(kRevoked) + R"("]})");
  add_device("dev-1", 1);
  ASSERT_TRUE(service_->admin_delete_device("dev-1", "tester"));
  ssf::Transmitter* t = service_->ssf();
  ASSERT_NE(t, nullptr);
  const std::int64_t now = clock_.unix_now();
  auto items = t->claim("replica-1", now, 30, 10);
  ASSERT_TRUE(items) << items.error().message;
  ASSERT_EQ(items->size(), 1U);  // the stream's head only: order per stream
  const ssf::PushItem& item = items->front();
  EXPECT_EQ(item.stream_id, stream);
  EXPECT_EQ(item.endpoint_url, "https://rp.example/events");
  EXPECT_EQ(item.authorization, "Bearer rp-own");
  EXPECT_EQ(item.attempts, 0U);
  const bj::object claims = verified(bj::value(item.set_jwt));
  EXPECT_EQ(json::get_string(claims, "jti"), ssf::set_jti(stream, item.seq));
  EXPECT_TRUE(t->claim("replica-2", now, 30, 10)->empty());  // leased

  // A failure keeps the head; the re-sent SET keeps its jti.
  ASSERT_TRUE(t->failed(item, now + 2, "503"));
  EXPECT_TRUE(t->claim("replica-2", now + 1, 30, 10)->empty());
  auto retry = t->claim("replica-2", now + 2, 30, 10);
  ASSERT_EQ(retry->size(), 1U);
  EXPECT_EQ(retry->front().seq, item.seq);
  EXPECT_EQ(retry->front().attempts, 1U);
  const bj::object again = verified(bj::value(retry->front().set_jwt));
  EXPECT_EQ(json::get_string(again, "jti"), json::get_string(claims, "jti"));
  ASSERT_TRUE(t->delivered(retry->front(), now + 3));
  auto next = t->claim("replica-2", now + 3, 30, 10);
  ASSERT_EQ(next->size(), 1U);  // the device's own session-revoked
  EXPECT_GT(next->front().seq, item.seq);
}

TEST_F(SsfTest, DisabledTransmitterHasNoRoutesButRevocationsStillWork) {
  config_.ssf.enabled = false;
  open();
  EXPECT_EQ(service_->ssf(), nullptr);
  EXPECT_EQ(call("GET", "/.well-known/ssf-configuration").status, 404U);
  EXPECT_EQ(call("GET", "/ssf/streams", "", "Bearer x").status, 404U);
  add_device("dev-1", 1);
  ASSERT_TRUE(service_->admin_set_device_state("dev-1", "revoked", "tester"));
  EXPECT_TRUE(store_->get_token("dev-1-t0")->revoked);
}

}  // namespace
}  // namespace warden::issuer
