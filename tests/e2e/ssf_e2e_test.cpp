// Relying parties learn of revocations: a Shared Signals receiver (tests/e2e/ssf_receiver.py,
// python3-jwcrypto against the issuer's JWKS) registered by the operator gets a verified SET for
// each way a device's tokens die (posture change on the TPM, admin revoke), gets what was sent
// while it was down once it is back, and gets an event once after the issuer was killed right
// after the revocation; a poll stream gets the same events and acknowledges them; introspection
// turns inactive.
#include <sys/socket.h>

#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "tests/e2e/agent_fixture.h"

namespace warden {
namespace {
using namespace e2e;  // NOLINT(google-build-using-namespace): the fixture's helpers

constexpr const char* kSessionRevoked =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
constexpr const char* kPython = "/usr/bin/python3";  // Debian's, which has jwcrypto

std::vector<boost::json::object> json_lines(const std::string& text) {
  std::vector<boost::json::object> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto end = text.find('\n', pos);
    const auto line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? text.size() : end + 1;
    if (line.empty()) continue;
    auto obj = json::parse_object(line);
    if (obj) out.push_back(*obj);
  }
  return out;
}

class SsfE2ETest : public AgentE2ETest {
 protected:
  void SetUp() override {
    AgentE2ETest::SetUp();
    if (HasFatalFailure()) return;
    // The issuer again, with an admin socket and loopback push receivers allowed.
    issuer_.stop();
    std::ofstream(dir_.path() / "issuer.toml", std::ios::app)
        << "[admin]\nsocket = \"" << admin_socket().string() << "\"\n"
        << "[ssf]\nallow_http_loopback = true\npush_backoff_initial_ms = 100\n"
        << "push_backoff_max_ms = 400\n";
    start_issuer();
    if (HasFatalFailure()) return;
    receiver_port_ = test::free_tcp_port();
    auto made = admin("POST", "/admin/v1/ssf/receivers", R"({"name":"rp-e2e"})");
    ASSERT_TRUE(made.contains("token")) << json::serialize(made) << issuer_log();
    receiver_token_ = std::string(made.at("token").as_string());
  }

  void TearDown() override {
    if (receiver_.running()) receiver_.stop();
    AgentE2ETest::TearDown();
  }

  std::filesystem::path admin_socket() const { return dir_.path() / "issuer-admin.sock"; }
  std::filesystem::path received_file() const { return dir_.path() / "received.jsonl"; }
  std::string issuer_log() const { return slurp(dir_.path() / "issuer.log"); }
  std::string base_url() const { return "https://localhost:" + std::to_string(port_); }

  boost::json::object admin(const std::string& method, const std::string& path,
                            const std::string& body = "") {
    std::vector<std::string> argv{"curl", "-sS", "--unix-socket", admin_socket().string(),
                                  "-X",   method};
    if (!body.empty())
      argv.insert(argv.end(), {"-H", "content-type: application/json", "--data-binary", body});
    argv.push_back("http://localhost" + path);
    auto out = test::run_command(argv);
    EXPECT_EQ(out.exit_code, 0) << out.out;
    auto obj = json::parse_object(out.out);
    return obj ? *obj : boost::json::object{};
  }

  /// A request as the receiver makes it: its bearer token.
  Result<net::Response> as_receiver(const std::string& method, const std::string& target,
                                    const std::string& content_type, const std::string& body) {
    return client()->request(method, target, content_type, to_bytes(body),
                             {{"authorization", "Bearer " + receiver_token_}});
  }

  boost::json::object create_stream(const std::string& method, const std::string& endpoint) {
    boost::json::object delivery{{"method", method}};
    if (!endpoint.empty()) {
      delivery["endpoint_url"] = endpoint;
      delivery["authorization_header"] = "Bearer push-secret";
    }
    boost::json::object body{
        {"delivery", delivery},
        {"events_requested",
         boost::json::array{kSessionRevoked,
                            "https://schemas.openid.net/secevent/caep/event-type/"
                            "device-compliance-change"}}};
    auto r = as_receiver("POST", "/ssf/streams", "application/json", json::serialize(body));
    EXPECT_TRUE(r && (r->status == 201U || r->status == 200U))
        << (r ? to_string(r->body) : r.error().message);
    auto obj = r ? json::parse_object(to_string(r->body)) : Result<boost::json::object>{};
    EXPECT_TRUE(obj && obj->contains("stream_id"));
    return obj ? *obj : boost::json::object{};
  }

  void start_receiver() {
    receiver_ = test::ChildProcess::spawn(
        {kPython, std::string(WARDEN_SOURCE_DIR) + "/tests/e2e/ssf_receiver.py", "push", "--port",
         std::to_string(receiver_port_), "--jwks", base_url() + "/.well-known/jwks.json", "--ca",
         (dir_.path() / "pki/ca.crt").string(), "--issuer", base_url(), "--out",
         received_file().string(), "--authorization", "Bearer push-secret"},
        {}, dir_.path() / "receiver.log");
    ASSERT_TRUE(test::wait_for(
        [&] {
          return slurp(dir_.path() / "receiver.log").find("listening") != std::string::npos ||
                 !receiver_.running();
        },
        std::chrono::seconds(10)));
    ASSERT_TRUE(receiver_.running()) << slurp(dir_.path() / "receiver.log");
  }

  std::vector<boost::json::object> received() { return json_lines(slurp(received_file())); }

  /// Verified SETs (no refused ones) of `type` about device `device`.
  std::vector<boost::json::object> sets_about(const std::string& type, const std::string& device) {
    std::vector<boost::json::object> out;
    for (auto& r : received()) {
      EXPECT_FALSE(r.contains("error")) << json::serialize(r);
      if (!r.contains("events") || !r.at("events").as_object().contains(type)) continue;
      if (json::serialize(r.at("sub_id")).find(device) == std::string::npos) continue;
      out.push_back(r);
    }
    return out;
  }

  bool introspect_active(const std::string& token) {
    auto r = as_receiver("POST", "/oauth/introspect", "application/x-www-form-urlencoded",
                         "token=" + token);
    EXPECT_TRUE(r && r->status == 200U) << (r ? to_string(r->body) : r.error().message);
    auto obj = r ? json::parse_object(to_string(r->body)) : Result<boost::json::object>{};
    EXPECT_TRUE(obj && obj->contains("active"));
    return obj && obj->at("active").as_bool();
  }

  std::string device_id() {
    auto devices = admin("GET", "/admin/v1/devices");
    const auto& list = devices.at("devices").as_array();
    EXPECT_EQ(list.size(), 1U);
    return list.empty() ? "" : std::string(list[0].at("id").as_string());
  }

  int receiver_port_ = 0;
  std::string receiver_token_;
  test::ChildProcess receiver_;
};

TEST_F(SsfE2ETest, APostureChangeReachesAPushReceiverAsAVerifiedSet) {
  start_receiver();
  create_stream("urn:ietf:rfc:8935",
                "http://127.0.0.1:" + std::to_string(receiver_port_) + "/events");
  start_agent();
  auto tok = curl_json("/v1/token", token_body(300));
  ASSERT_TRUE(tok.contains("token")) << json::serialize(tok) << agent_log();
  const std::string token(tok.at("token").as_string());
  const std::string jti(tok.at("jti").as_string());
  EXPECT_TRUE(introspect_active(token));
  const std::string device = device_id();

  // The container PCR moves without a container: the agent revokes everything and reports it.
  const auto t0 = std::chrono::steady_clock::now();
  auto extend =
      test::run_command({"tpm2_pcrextend", "15:sha256=" + std::string(64, 'e')}, tpm_->tools_env());
  ASSERT_EQ(extend.exit_code, 0) << extend.out;
  ASSERT_TRUE(test::wait_for([&] { return !sets_about(kSessionRevoked, device).empty(); },
                             std::chrono::seconds(10)))
      << slurp(received_file()) << agent_log() << issuer_log();
  std::printf("pcr extend -> verified SET at the receiver: %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - t0)
                                         .count()));
  const auto sets = sets_about(kSessionRevoked, device);
  EXPECT_EQ(sets[0].at("iss").as_string(), base_url());
  EXPECT_FALSE(introspect_active(token));
}

TEST_F(SsfE2ETest, AReceiverThatWasDownGetsTheEventOnceWhenBackAndAKilledIssuerSendsItOnce) {
  create_stream("urn:ietf:rfc:8935",
                "http://127.0.0.1:" + std::to_string(receiver_port_) + "/events");
  start_agent();
  auto tok = curl_json("/v1/token", token_body(300));
  ASSERT_TRUE(tok.contains("token")) << json::serialize(tok) << agent_log();
  const std::string device = device_id();
  EXPECT_EQ(agent_.stop(SIGTERM, std::chrono::milliseconds(15000)), 0) << agent_log();

  // The receiver is down: the admin's revocation is kept; the issuer is killed right after it.
  auto revoked = admin("PUT", "/admin/v1/devices/" + device + "/state", R"({"state":"revoked"})");
  ASSERT_FALSE(revoked.contains("error")) << json::serialize(revoked);
  ::kill(issuer_.pid(), SIGKILL);
  issuer_.stop();
  start_issuer();
  start_receiver();
  ASSERT_TRUE(test::wait_for([&] { return !sets_about(kSessionRevoked, device).empty(); },
                             std::chrono::seconds(10)))
      << slurp(received_file()) << issuer_log();
  // Nothing twice: give a duplicate time to arrive, then count by jti.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::set<std::string> jtis;
  for (const auto& s : sets_about(kSessionRevoked, device)) {
    EXPECT_TRUE(jtis.insert(std::string(s.at("jti").as_string())).second)
        << "sent twice: " << json::serialize(s);
  }
}

TEST_F(SsfE2ETest, APollStreamGetsTheEventsAndTheirAcknowledgementEndsThem) {
  auto stream = create_stream("urn:ietf:rfc:8936", "");
  ASSERT_TRUE(stream.contains("stream_id"));
  const std::string stream_id(stream.at("stream_id").as_string());
  start_agent();
  const std::string device = device_id();
  EXPECT_EQ(agent_.stop(SIGTERM, std::chrono::milliseconds(15000)), 0) << agent_log();
  auto revoked = admin("PUT", "/admin/v1/devices/" + device + "/state", R"({"state":"revoked"})");
  ASSERT_FALSE(revoked.contains("error")) << json::serialize(revoked);

  auto poll = [&](const std::string& body) {
    auto r = as_receiver("POST", "/ssf/poll/" + stream_id, "application/json", body);
    EXPECT_TRUE(r && r->status == 200U) << (r ? to_string(r->body) : r.error().message);
    return r ? to_string(r->body) : std::string("{}");
  };
  const std::string first = poll(R"({"maxEvents":10,"returnImmediately":true})");
  std::ofstream(dir_.path() / "poll.json") << first;
  auto verified = test::run_command(
      {"sh", "-c",
       std::string(kPython) + " " + WARDEN_SOURCE_DIR +
           "/tests/e2e/ssf_receiver.py verify --jwks " + base_url() +
           "/.well-known/jwks.json --ca " + (dir_.path() / "pki/ca.crt").string() + " --issuer " +
           base_url() + " < " + (dir_.path() / "poll.json").string()});
  ASSERT_EQ(verified.exit_code, 0) << verified.out << first;
  const auto sets = json_lines(verified.out);
  ASSERT_FALSE(sets.empty()) << first;
  boost::json::array acks;
  bool revoked_seen = false;
  for (const auto& s : sets) {
    acks.push_back(s.at("jti"));
    revoked_seen |= s.at("events").as_object().contains(kSessionRevoked);
  }
  EXPECT_TRUE(revoked_seen) << verified.out;
  // Acknowledged, they are not served again.
  auto after = json::parse_object(poll(json::serialize(
      boost::json::object{{"ack", acks}, {"maxEvents", 10}, {"returnImmediately", true}})));
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->at("sets").as_object().empty()) << json::serialize(*after);
}

}  // namespace
}  // namespace warden
