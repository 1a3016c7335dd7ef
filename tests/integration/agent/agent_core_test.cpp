// The agent core against a real swtpm and the real issuer service (in process, through an
// IssuerApi adapter), with the local API on real Unix sockets and curl as the workload.
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "agent/agent.h"
#include "agent/api/event_bus.h"
#include "agent/api/local_server.h"
#include "agent/state_store.h"
#include "attest/token/cwt.h"
#include "attest/token/dpop.h"
#include "attest/token/json.h"
#include "attest/token/jwt.h"
#include "issuer/admin/admin_json.h"
#include "issuer/service.h"
#include "issuer/signing_keys.h"
#include "issuer/store/store.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/os/workload_identity.h"
#include "platform/tpm/tpm.h"
#include "tests/support/ima_list.h"
#include "tests/support/process.h"
#include "tests/support/swtpm.h"

namespace warden::agent {
namespace {

using test::run_command;

constexpr const char* kTokenUrl = "https://issuer.test:8443/v1/token";
constexpr const char* kAudience = "https://api.example";

token::JwtVerifyOptions verify_options(std::int64_t now,
                                       std::optional<std::string> audience = std::nullopt) {
  token::JwtVerifyOptions o;
  o.checks.now = now;
  o.checks.audience = std::move(audience);
  return o;
}

token::ProofCheck proof_check(std::string htm, std::string htu, std::int64_t now,
                              std::string access_token, std::optional<std::string> jkt) {
  token::ProofCheck c;
  c.htm = std::move(htm);
  c.htu = std::move(htu);
  c.now = now;
  c.access_token = std::move(access_token);
  c.expected_jkt = std::move(jkt);
  return c;
}

// A stalled issuer call: pass() waits there while held, until release().
class Gate {
 public:
  void pass() {
    std::unique_lock lock(mu_);
    if (!held_) return;
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !held_; });
  }
  void hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void wait_held() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return waiting_ > 0; });
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int waiting_ = 0;
};

// IssuerApi over the in-process IssuerService; `down` simulates an unreachable issuer.
class LocalIssuer final : public IssuerApi {
 public:
  explicit LocalIssuer(issuer::IssuerService& s) : s_(s) {}
  std::atomic<bool> down{false};

  template <class F>
  auto call(F f) -> decltype(f()) {
    if (down) return fail(ErrorCode::kUnavailable, "issuer: connection refused (test)");
    auto r = f();
    // Through the wire form, as the HTTPS client would see it.
    if (!r) return fail(protocol::to_error(protocol::error_response(r.error())));
    return r;
  }
  Result<protocol::EnrollResponse> enroll(const protocol::EnrollRequest& r) override {
    return call([&] { return s_.enroll(r); });
  }
  Result<protocol::ActivateResponse> activate(const protocol::ActivateRequest& r) override {
    return call([&] { return s_.activate(r.enrollment_id, r); });
  }
  Result<protocol::ChallengeResponse> challenge(const protocol::ChallengeRequest& r) override {
    challenges.pass();
    return call([&] { return s_.challenge(r); });
  }
  Result<protocol::AttestResponse> attest(const protocol::AttestRequest& r) override {
    return call([&] { return s_.attest(r, protocol::encode(r)); });
  }
  Result<protocol::TokenResponse> token(const protocol::TokenRequest& r) override {
    tokens.pass();
    return call([&] { return s_.token(r, {"POST", kTokenUrl}); });
  }
  Result<protocol::RevokeResponse> revoke(const protocol::RevokeRequest& r) override {
    ++revokes;
    {
      std::lock_guard lock(revoke_mu_);
      revoke_timestamps_.push_back(r.timestamp);
    }
    if (fail_revokes > 0) {
      --fail_revokes;
      return fail(revoke_failure.load(), "issuer: revoke failed (test)");
    }
    auto applied = call([&] { return s_.revoke(r); });
    if (applied) ++revokes_applied;
    return applied;
  }
  std::vector<std::uint64_t> revoke_timestamps() {
    std::lock_guard lock(revoke_mu_);
    return revoke_timestamps_;
  }
  Result<std::string> status_list(std::string_view id) override {
    return call([&] { return s_.status_list_jwt(id); });
  }
  Result<std::string> jwks() override {
    return call([&] { return s_.jwks_json(); });
  }
  [[nodiscard]] std::string token_url() const override { return kTokenUrl; }
  std::atomic<int> revokes{0};          ///< revoke calls
  std::atomic<int> revokes_applied{0};  ///< of them, accepted by the issuer
  std::atomic<int> fail_revokes{0};     ///< the next ones answered with revoke_failure
  std::atomic<ErrorCode> revoke_failure{ErrorCode::kUnavailable};
  Gate challenges;  ///< the first call of every attestation round
  Gate tokens;

 private:
  issuer::IssuerService& s_;
  std::mutex revoke_mu_;
  std::vector<std::uint64_t> revoke_timestamps_;
};

class AgentCoreTest : public test::SwtpmTest {
 protected:
  void expect_status_list_revocation_drops(std::optional<TokenFormat> format);
  /// Starts the agent and fetches a token for a workload in each container: their jtis.
  std::vector<std::string> serve_containers(const std::vector<std::string>& ids,
                                            ReportQueue::Options reports = {});
  bool revoked_at_issuer(const std::string& jti);
  void SetUp() override {
    SwtpmTest::SetUp();
    // After swtpm_setup made its CA: its notBefore is "now" to the second.
    clock_.set(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count() +
               2);
    ::chmod(dir_.path().c_str(), 0755);  // nobody must reach the workload socket
    std::filesystem::create_directories(dir_.path() / "issuer" / "keys");
    const auto policy = dir_.path() / "issuer" / "policy.toml";
    std::ofstream(policy) << "version = \"test.1\"\n\n"
                          << "[[workload]]\nname = \"root\"\naudiences = [\"" << kAudience
                          << "\"]\nscopes = [\"read\"]\nmax_ttl = 600\n"
                          << "[workload.match]\nuid = 0\n"
                          << "[[workload]]\nname = \"root-in-containers\"\naudiences = [\""
                          << kAudience << "\"]\nscopes = [\"read\"]\nmax_ttl = 600\n"
                          << "[workload.match]\nuid = 0\ncontainer = \"any\"\n";
    icfg_.store.sqlite_path = (dir_.path() / "issuer" / "issuer.db").string();
    icfg_.tokens.key_dir = (dir_.path() / "issuer" / "keys").string();
    icfg_.tokens.device_token_ttl_s = 3600;
    icfg_.enrollment.manufacturer_ca_files = {tpm_->ca_cert().string(),
                                              tpm_->issuer_cert().string()};
    icfg_.policy_file = policy.string();
    auto store = issuer::open_sqlite_store(icfg_.store.sqlite_path);
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    ASSERT_TRUE(store_->migrate());
    auto keys = issuer::SigningKeys::open(icfg_.tokens.key_dir, *store_, clock_);
    ASSERT_TRUE(keys) << keys.error().message;
    keys_ = std::move(*keys);
    auto seal = issuer::SealAuthority::open(icfg_.tokens.key_dir);
    ASSERT_TRUE(seal) << seal.error().message;
    seal_ = std::move(*seal);
    issuer::IssuerService::Options o;
    o.config = &icfg_;
    o.store = store_.get();
    o.keys = keys_.get();
    o.clock = &clock_;
    o.random = &random_;
    o.nonce_key = SecretBytes(Bytes(32, 7));
    o.issuer_url = "https://issuer.test:8443";
    o.seal_authority = seal_.get();
    auto svc = issuer::IssuerService::create(std::move(o));
    ASSERT_TRUE(svc) << svc.error().message;
    service_ = std::move(*svc);
    issuer_ = std::make_unique<LocalIssuer>(*service_);

    config_.issuer_url = "https://issuer.test:8443";
    config_.tcti = tpm_->tcti();
    config_.state_dir = dir_.path() / "state";
    config_.securityfs_root = dir_.path() / "securityfs";  // no logs: swtpm has no firmware
    config_.workload_socket = dir_.path() / "workload.sock";
    config_.admin_socket = dir_.path() / "admin.sock";
    config_.pcrs = *PcrSelection::parse("sha256:0-9,10");
  }

  void TearDown() override {
    stop_api();
    agent_.reset();
    SwtpmTest::TearDown();
  }

  void make_agent(ReportQueue::Options reports = {}) {
    AgentOptions o;
    o.config = config_;
    o.reports = reports;
    o.issuer = issuer_.get();
    o.clock = &clock_;
    o.random = &random_;
    auto a = Agent::create(std::move(o));
    ASSERT_TRUE(a) << a.error().message;
    agent_ = std::move(*a);
  }

  void start_api() {
    bus_ = std::make_unique<api::EventBus>();
    api::LocalServerOptions o;
    o.workload_socket = config_.workload_socket;
    o.admin_socket = config_.admin_socket;
    auto s = api::LocalServer::start(io_, o, *agent_, resolver_, *bus_);
    ASSERT_TRUE(s) << s.error().message;
    server_ = std::move(*s);
    io_thread_ = std::thread([this] {
      auto guard = boost::asio::make_work_guard(io_);
      io_.run();
    });
  }

  void stop_api() {
    if (!io_thread_.joinable()) return;
    boost::asio::post(io_, [this] {
      server_->stop();
      io_.stop();
    });
    io_thread_.join();
    server_.reset();
  }

  // curl as the workload, optionally as another user.
  boost::json::object curl(const std::string& path, const std::string& body,
                           const std::string& as_user = "") {
    std::vector<std::string> argv;
    if (!as_user.empty())
      argv = {"setpriv", "--reuid=" + as_user, "--regid=nogroup", "--clear-groups"};
    for (const char* a : {"curl", "-sS", "--unix-socket"}) argv.emplace_back(a);
    argv.push_back(config_.workload_socket.string());
    argv.insert(argv.end(),
                {"-H", "workload.spiffe.io: true", "-H", "content-type: application/json",
                 "--data-binary", body, "http://localhost" + path});
    auto out = run_command(argv);
    EXPECT_EQ(out.exit_code, 0) << out.out;
    auto obj = json::parse_object(out.out);
    EXPECT_TRUE(obj) << out.out;
    return obj ? *obj : boost::json::object{};
  }

  token::KeySet jwks() {
    auto text = service_->jwks_json();
    EXPECT_TRUE(text);
    auto set = token::KeySet::from_json(*text);
    EXPECT_TRUE(set);
    return *set;
  }

  test::TempDir dir_{"warden-agent"};
  FakeClock clock_{std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count()};
  SystemRandom random_;
  issuer::IssuerConfig icfg_;
  std::unique_ptr<issuer::Store> store_;
  std::unique_ptr<issuer::SigningKeys> keys_;
  std::unique_ptr<issuer::SealAuthority> seal_;
  std::unique_ptr<issuer::IssuerService> service_;
  std::unique_ptr<LocalIssuer> issuer_;
  AgentConfig config_;
  std::unique_ptr<Agent> agent_;
  boost::asio::io_context io_;
  std::unique_ptr<api::EventBus> bus_;
  os::WorkloadIdentityResolver resolver_;
  std::unique_ptr<api::LocalServer> server_;
  std::thread io_thread_;
};

const std::string kTokenBody =
    std::string("{\"audience\":\"") + kAudience + "\",\"scopes\":[\"read\"],\"ttl\":300}";

TEST_F(AgentCoreTest, EnrollsAttestsAndServesTokensBoundToTheSessionKey) {
  make_agent();
  auto started = agent_->start();
  ASSERT_TRUE(started) << started.error().message;
  EXPECT_EQ(agent_->state(), AgentState::kServing);
  start_api();

  auto tok = curl("/v1/token", kTokenBody);
  ASSERT_TRUE(tok.contains("token")) << json::serialize(tok);
  const std::string jwt(tok.at("token").as_string());
  const std::string jti(tok.at("jti").as_string());
  EXPECT_EQ(tok.at("token_type").as_string(), "DPoP");

  auto verified =
      token::verify_jwt(jwt, jwks(), verify_options(clock_.unix_now(), std::string(kAudience)));
  ASSERT_TRUE(verified) << verified.error().message;
  ASSERT_TRUE(verified->claims.cnf && verified->claims.cnf->jkt);
  EXPECT_EQ(verified->claims.jti, jti);
  EXPECT_EQ(verified->claims.device_id, agent_->device_id());

  // The same workload gets the cached token back.
  auto again = curl("/v1/token", kTokenBody);
  EXPECT_EQ(again.at("jti").as_string(), jti);

  auto proof = curl("/v1/proof", "{\"jti\":\"" + jti +
                                     "\",\"htm\":\"GET\",\"htu\":\"https://api.example/data\"}");
  ASSERT_TRUE(proof.contains("proof")) << json::serialize(proof);
  token::ReplayCache replay(16, 300);
  auto checked = token::verify_proof(std::string(proof.at("proof").as_string()),
                                     proof_check("GET", "https://api.example/data",
                                                 clock_.unix_now(), jwt, verified->claims.cnf->jkt),
                                     replay);
  EXPECT_TRUE(checked) << checked.error().message;
}

TEST_F(AgentCoreTest, AnotherUserGetsNeitherTheTokenNorAProofForIt) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  start_api();
  auto tok = curl("/v1/token", kTokenBody);
  ASSERT_TRUE(tok.contains("jti")) << json::serialize(tok);
  const std::string jti(tok.at("jti").as_string());

  auto theirs = curl("/v1/token", kTokenBody, "nobody");
  EXPECT_FALSE(theirs.contains("token")) << json::serialize(theirs);
  EXPECT_EQ(theirs.at("error").as_string(), "permission_denied") << json::serialize(theirs);

  auto proof =
      curl("/v1/proof",
           "{\"jti\":\"" + jti + "\",\"htm\":\"GET\",\"htu\":\"https://api.example/\"}", "nobody");
  EXPECT_FALSE(proof.contains("proof")) << json::serialize(proof);
  EXPECT_EQ(proof.at("error").as_string(), "permission_denied");
}

TEST_F(AgentCoreTest, RestartResumesTheEnrollment) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  const auto id = agent_->device_id();
  ASSERT_TRUE(id);
  agent_.reset();
  make_agent();
  auto started = agent_->start();
  ASSERT_TRUE(started) << started.error().message;
  EXPECT_EQ(agent_->device_id(), id);
  auto page = service_->admin_list_devices(100, "");
  ASSERT_TRUE(page);
  const std::string devices_json = issuer::admin::to_json(*page);
  auto parsed = json::parse(devices_json);
  ASSERT_TRUE(parsed);
  const auto* arr = parsed->is_array() ? &parsed->as_array()
                    : parsed->as_object().if_contains("devices")
                        ? &parsed->as_object().at("devices").as_array()
                        : nullptr;
  ASSERT_NE(arr, nullptr) << devices_json;
  EXPECT_EQ(arr->size(), 1U) << devices_json;
}

// The issuer keeps where the device's IMA list stood; a restarted agent has forgotten it and
// sends the whole list again, which must be accepted (it was refused for ever before).
TEST_F(AgentCoreTest, RestartWithAnImaListAttestsWithTheWholeList) {
  const std::filesystem::path ima_log = config_.ima_log_path();
  std::filesystem::create_directories(ima_log.parent_path());
  Bytes list;
  auto measure = [&](const std::vector<std::string>& paths) {
    const test::ImaChunk chunk = test::ima_chunk(paths);
    for (const Bytes& d : chunk.extends) {
      ASSERT_TRUE(tpm::Tpm(tpm_->tcti()).extend_pcr(10, TpmAlg::kSha256, d));
    }
    list.insert(list.end(), chunk.list.begin(), chunk.list.end());
    ASSERT_TRUE(write_file_atomic(ima_log, list, 0644));
  };
  measure({"/usr/lib/systemd/systemd", "/usr/bin/bash"});
  make_agent();
  auto started = agent_->start();
  ASSERT_TRUE(started) << started.error().message;
  measure({"/usr/bin/ls"});
  os::Selectors root;
  root.uid = 0;
  auto again = agent_->reattest(root);  // incremental: only /usr/bin/ls travels
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->state, "serving");

  agent_.reset();
  measure({"/usr/sbin/sshd"});
  make_agent();
  started = agent_->start();
  ASSERT_TRUE(started) << started.error().message;
  EXPECT_EQ(agent_->state(), AgentState::kServing);
}

TEST_F(AgentCoreTest, IssuerDownServesCachedTokensUntilTheyExpireNeverAfter) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors me;
  me.uid = 0;
  me.exe_path = "/usr/bin/workload";
  TokenRequest req{kAudience, {"read"}, std::chrono::seconds(300), std::nullopt};
  auto first = agent_->token(me, req);
  ASSERT_TRUE(first) << first.error().message;

  issuer_->down = true;
  clock_.advance(std::chrono::seconds(250));  // inside the renewal window: renewal fails
  (void)agent_->tick();
  auto cached = agent_->token(me, req);
  ASSERT_TRUE(cached) << cached.error().message;
  EXPECT_EQ(cached->jti, first->jti);
  EXPECT_TRUE(agent_->proof(me, {first->jti, "GET", "https://api.example/"}));

  clock_.advance(std::chrono::seconds(51));
  EXPECT_GE(clock_.unix_now(), first->expires_at);
  auto expired = agent_->token(me, req);
  EXPECT_FALSE(expired);
  EXPECT_FALSE(agent_->proof(me, {first->jti, "GET", "https://api.example/"}));

  issuer_->down = false;
  clock_.advance(std::chrono::seconds(600));
  (void)agent_->tick();
  EXPECT_EQ(agent_->state(), AgentState::kServing);
  auto fresh = agent_->token(me, req);
  ASSERT_TRUE(fresh) << fresh.error().message;
  EXPECT_NE(fresh->jti, first->jti);
}

TEST_F(AgentCoreTest, RevokeStopsServingAndReportsToTheIssuer) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors me;
  me.uid = 0;
  TokenRequest req{kAudience, {"read"}, std::nullopt, std::nullopt};
  auto t = agent_->token(me, req);
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_TRUE(agent_->revoke(me, "test"));
  EXPECT_EQ(agent_->state(), AgentState::kRevoked);
  EXPECT_EQ(issuer_->revokes.load(), 1);
  EXPECT_FALSE(agent_->token(me, req));
  auto p = agent_->proof(me, {t->jti, "GET", "https://api.example/"});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::kRevoked);
  // The issuer flipped the token's status bit.
  auto list = service_->status_list_jwt("1");
  ASSERT_TRUE(list) << list.error().message;
  // And a re-attestation brings the agent back.
  auto back = agent_->reattest(me);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->state, "serving");
}

TEST_F(AgentCoreTest, DeviceRevokedAtTheIssuerIsRevokedHereAtTheNextDevicePoll) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors me;
  me.uid = 0;
  TokenRequest req{kAudience, {"read"}, std::nullopt, std::nullopt};
  ASSERT_TRUE(agent_->token(me, req));
  ASSERT_TRUE(agent_->poll_device_status());  // enabled: nothing changes
  EXPECT_EQ(agent_->state(), AgentState::kServing);
  const auto id = agent_->device_id();
  ASSERT_TRUE(id);
  ASSERT_TRUE(service_->admin_set_device_state(*id, "revoked", "test admin"));
  // Before any workload asks: the agent learns it from its own poll.
  ASSERT_TRUE(agent_->poll_device_status());
  EXPECT_EQ(agent_->state(), AgentState::kRevoked);
  auto t = agent_->token(me, req);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::kRevoked);
  EXPECT_EQ(issuer_->revokes.load(), 0);  // the issuer knows already
  // Enabled again: the retry with backoff attests and serves.
  ASSERT_TRUE(service_->admin_set_device_state(*id, "enabled", "test admin"));
  clock_.advance(std::chrono::minutes(6));
  (void)agent_->tick();
  EXPECT_EQ(agent_->state(), AgentState::kServing);
}

TEST_F(AgentCoreTest, RevokedAndEnabledBetweenTwoPollsAttestsAgainAtTheNextTokenRequest) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors me;
  me.uid = 0;
  ASSERT_TRUE(agent_->token(me, TokenRequest{kAudience, {"read"}, std::nullopt, std::nullopt}));
  const auto id = agent_->device_id();
  ASSERT_TRUE(id);
  ASSERT_TRUE(service_->admin_set_device_state(*id, "revoked", "test admin"));
  ASSERT_TRUE(service_->admin_set_device_state(*id, "enabled", "test admin"));
  clock_.advance(std::chrono::seconds(2));
  // Not cached (another ttl): the issuer refuses the device token from before the revocation;
  // the agent attests again and the request is answered.
  auto t =
      agent_->token(me, TokenRequest{kAudience, {"read"}, std::chrono::seconds(30), std::nullopt});
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(agent_->state(), AgentState::kServing);
  // Revoked for good: the attempt to attest is refused and the agent revokes.
  ASSERT_TRUE(service_->admin_set_device_state(*id, "revoked", "test admin"));
  clock_.advance(std::chrono::seconds(2));
  t = agent_->token(me, TokenRequest{kAudience, {"read"}, std::chrono::seconds(20), std::nullopt});
  ASSERT_FALSE(t);
  EXPECT_EQ(agent_->state(), AgentState::kRevoked);
}

TEST_F(AgentCoreTest, SealedSecretOnlyForAllowedCallers) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors me;
  me.uid = 1234;
  SealRequest seal;
  seal.name = "db-password";
  seal.value = SecretBytes(to_bytes("hunter2"));
  SelectorMatch allow;
  allow.uid = 1234;
  seal.allow = {allow};
  auto sealed = agent_->seal_secret(me, seal);
  ASSERT_TRUE(sealed) << sealed.error().message;
  auto file = warden::read_file(config_.state_dir / "secrets" / "db-password.sealed");
  ASSERT_TRUE(file);
  EXPECT_EQ(warden::to_string(*file).find("hunter2"), std::string::npos);

  auto got = agent_->secret(me, "db-password");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(warden::to_string(got->view()), "hunter2");
  os::Selectors other;
  other.uid = 1235;
  auto refused = agent_->secret(other, "db-password");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kPermissionDenied);
  ASSERT_TRUE(agent_->revoke(me, "test"));
  EXPECT_FALSE(agent_->secret(me, "db-password"));
}

// An update as firmware would record it: `pcr` extended with SHA-256(`data`), in the TPM and in
// a crypto-agile (sha256) event log at the agent's event_log_path().
void update_boot_pcr(const std::string& tcti, const AgentConfig& config, unsigned pcr,
                     std::string_view data) {
  const Bytes digest = ossl::sha256(to_bytes(data));
  ASSERT_TRUE(tpm::Tpm(tcti).extend_pcr(pcr, TpmAlg::kSha256, digest));
  ByteWriter spec;
  spec.bytes(std::string_view("Spec ID Event03\0", 16)).u32le(0).u8(0).u8(2).u8(0).u8(2).u32le(1);
  spec.u16le(0x0B).u16le(32).u8(0);
  const Bytes spec_bytes = std::move(spec).take();
  ByteWriter w;
  w.u32le(0).u32le(0x3).bytes(Bytes(20, 0));  // EV_NO_ACTION
  w.u32le(static_cast<std::uint32_t>(spec_bytes.size())).bytes(spec_bytes);
  w.u32le(pcr).u32le(0xD).u32le(1).u16le(0x0B).bytes(digest);  // EV_IPL
  w.u32le(static_cast<std::uint32_t>(data.size())).bytes(to_bytes(data));
  std::filesystem::create_directories(config.event_log_path().parent_path());
  ASSERT_TRUE(write_file_atomic(config.event_log_path(), std::move(w).take(), 0644));
}

// Issue 26: the secret is sealed to the issuer's authority; a boot PCR update locks it until
// the issuer approves the new state at the next attestation.
TEST_F(AgentCoreTest, SealedSecretSurvivesABootPcrUpdateOnceReattested) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  EXPECT_TRUE(std::filesystem::exists(config_.state_dir / "seal.authority"));
  EXPECT_TRUE(std::filesystem::exists(config_.state_dir / "seal.approval"));
  os::Selectors me;
  me.uid = 0;
  SealRequest seal;
  seal.name = "disk-key";
  seal.value = SecretBytes(to_bytes("s3cret"));
  SelectorMatch allow;
  allow.uid = 0;
  seal.allow = {allow};
  ASSERT_TRUE(agent_->seal_secret(me, seal));
  StateStore store(config_.state_dir);
  auto stored = store.load_secret("disk-key");
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((*stored)->blob.version, 2);
  auto got = agent_->secret(me, "disk-key");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(warden::to_string(got->view()), "s3cret");

  update_boot_pcr(tpm_->tcti(), config_, 9, "kernel 6.12.1");
  auto locked = agent_->secret(me, "disk-key");
  ASSERT_FALSE(locked);
  EXPECT_EQ(locked.error().code, ErrorCode::kPolicyViolation) << locked.error().message;

  auto back = agent_->reattest(me);
  ASSERT_TRUE(back) << back.error().message;
  auto reopened = agent_->secret(me, "disk-key");
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(warden::to_string(reopened->view()), "s3cret");
}

TEST_F(AgentCoreTest, PolicyPcrSecretMigratesToTheSealingAuthorityOnFirstUnseal) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  StateStore store(config_.state_dir);
  tpm::Tpm tpm(tpm_->tcti());
  auto v1 = tpm.seal(*PcrSelection::parse("sha256:0-9"), to_bytes("old"));
  ASSERT_TRUE(v1) << v1.error().message;
  SelectorMatch allow;
  allow.uid = 0;
  ASSERT_TRUE(store.save_secret("legacy", {{allow}, *v1}));
  os::Selectors me;
  me.uid = 0;
  auto got = agent_->secret(me, "legacy");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(warden::to_string(got->view()), "old");
  auto migrated = store.load_secret("legacy");
  ASSERT_TRUE(migrated && *migrated);
  EXPECT_EQ((*migrated)->blob.version, 2);

  // Migrated, it follows approvals: an update, a re-attestation, and it unseals again.
  update_boot_pcr(tpm_->tcti(), config_, 8, "grub.cfg 2");
  EXPECT_FALSE(agent_->secret(me, "legacy"));
  ASSERT_TRUE(agent_->reattest(me));
  auto again = agent_->secret(me, "legacy");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(warden::to_string(again->view()), "old");
}

TEST_F(AgentCoreTest, PostureRevokeWorkloadDropsOnlyThatContainersTokens) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors a;
  a.uid = 0;
  a.container_id = "aaaa";
  os::Selectors b;
  b.uid = 0;
  b.container_id = "bbbb";
  TokenRequest req{kAudience, {"read"}, std::nullopt, std::nullopt};
  auto ta = agent_->token(a, req);
  auto tb = agent_->token(b, req);
  ASSERT_TRUE(ta && tb);
  posture::Change c;
  c.source = posture::Source::kContainer;
  c.action = posture::Action::kRevokeWorkload;
  c.subject = "aaaa";
  c.workload = "aaaa";
  agent_->apply(c);
  EXPECT_FALSE(agent_->proof(a, {ta->jti, "GET", "https://api.example/"}));
  EXPECT_TRUE(agent_->proof(b, {tb->jti, "GET", "https://api.example/"}));
  EXPECT_EQ(agent_->state(), AgentState::kServing);
}

TEST_F(AgentCoreTest, PostureRevokeAllWipesReportsThenReattestsWithBackoff) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors me;
  me.uid = 0;
  TokenRequest req{kAudience, {"read"}, std::nullopt, std::nullopt};
  auto t = agent_->token(me, req);
  ASSERT_TRUE(t) << t.error().message;
  posture::Change c;
  c.source = posture::Source::kResetCount;
  c.action = posture::Action::kRevokeAll;
  c.subject = "resetCount";
  c.old_value = "0";
  c.new_value = "1";
  agent_->apply(c);
  EXPECT_EQ(agent_->state(), AgentState::kRevoked);
  EXPECT_EQ(issuer_->revokes.load(), 1);
  EXPECT_FALSE(agent_->proof(me, {t->jti, "GET", "https://api.example/"}));
  EXPECT_FALSE(agent_->token(me, req));

  clock_.advance(std::chrono::seconds(5));  // past the first backoff window (<= 1 s)
  (void)agent_->tick();
  EXPECT_EQ(agent_->state(), AgentState::kServing);
  auto fresh = agent_->token(me, req);
  ASSERT_TRUE(fresh) << fresh.error().message;
  EXPECT_NE(fresh->jti, t->jti);
}

// The retry after a revocation leaves the device revoked until it passes: a workload asking
// meanwhile is told "revoked", and the lifecycle goes on to serving only with the round's success.
TEST_F(AgentCoreTest, TheRetryAfterARevocationStaysRevokedUntilItPasses) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors me;
  me.uid = 0;
  TokenRequest req{kAudience, {"read"}, std::nullopt, std::nullopt};
  posture::Change c;
  c.source = posture::Source::kResetCount;
  c.action = posture::Action::kRevokeAll;
  c.subject = "resetCount";
  agent_->apply(c);
  ASSERT_EQ(agent_->state(), AgentState::kRevoked);

  issuer_->challenges.hold();
  clock_.advance(std::chrono::seconds(5));
  std::thread retry([&] { (void)agent_->tick(); });
  issuer_->challenges.wait_held();
  EXPECT_EQ(agent_->state(), AgentState::kRevoked);
  auto during = agent_->token(me, req);
  ASSERT_FALSE(during);
  EXPECT_EQ(during.error().code, ErrorCode::kRevoked) << during.error().message;
  issuer_->challenges.release();
  retry.join();
  EXPECT_EQ(agent_->state(), AgentState::kServing);
  EXPECT_TRUE(agent_->token(me, req));
}

TEST_F(AgentCoreTest, AnUnreachableIssuerDuringTheRetryLeavesTheDeviceRevoked) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors me;
  me.uid = 0;
  ASSERT_TRUE(agent_->revoke(me, "test"));
  issuer_->down = true;
  auto again = agent_->reattest(me);
  ASSERT_FALSE(again);
  EXPECT_EQ(agent_->state(), AgentState::kRevoked);
  auto t = agent_->token(me, {kAudience, {"read"}, std::nullopt, std::nullopt});
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::kRevoked);
  // Retried with backoff as a degraded agent would be, once the issuer is back.
  issuer_->down = false;
  clock_.advance(std::chrono::minutes(6));
  (void)agent_->tick();
  EXPECT_EQ(agent_->state(), AgentState::kServing);
}

// Issue 32: the agent's lock is not held across an issuer round trip. With a token request
// waiting on a stalled issuer, the status answers and a posture change is applied at once (a
// lock held across the round trip would hang this test); the token the issuer then mints under
// the revoked device token is not handed out.
TEST_F(AgentCoreTest, AStalledTokenRequestBlocksNeitherStatusNorAPostureRevocation) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors me;
  me.uid = 0;
  TokenRequest req{kAudience, {"read"}, std::nullopt, std::nullopt};
  issuer_->tokens.hold();
  Result<TokenResponse> stalled = fail(ErrorCode::kInternal, "not run");
  std::thread workload([&] { stalled = agent_->token(me, req); });
  issuer_->tokens.wait_held();

  auto st = agent_->status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, "serving");
  posture::Change c;
  c.source = posture::Source::kPcr;
  c.action = posture::Action::kRevokeAll;
  c.subject = "pcr sha256:8";
  c.old_value = "00";
  c.new_value = "01";
  agent_->react(c);
  EXPECT_EQ(agent_->state(), AgentState::kRevoked);

  issuer_->tokens.release();
  workload.join();
  ASSERT_FALSE(stalled);
  EXPECT_EQ(stalled.error().code, ErrorCode::kRevoked) << stalled.error().message;
  EXPECT_EQ(issuer_->revokes.load(), 0);  // the report waits for follow_up()
  agent_->follow_up();
  EXPECT_EQ(issuer_->revokes.load(), 1);
}

TEST_F(AgentCoreTest, PostureReattestRefusedByPolicyRevokesEverything) {
  make_agent();
  ASSERT_TRUE(agent_->start());
  os::Selectors me;
  me.uid = 0;
  auto t = agent_->token(me, {kAudience, {"read"}, std::nullopt, std::nullopt});
  ASSERT_TRUE(t) << t.error().message;
  // PCR 0 of a fresh swtpm is all zeros: this policy refuses it.
  const std::string policy =
      "version = \"test.2\"\n[pcrs.sha256]\n0 = \"" + std::string(64, 'a') + "\"\n";
  auto put = service_->admin_put_policy("test.2", policy, "test");
  ASSERT_TRUE(put) << put.error().message;
  posture::Change c;
  c.source = posture::Source::kIma;
  c.action = posture::Action::kReattest;
  c.subject = "ima";
  agent_->apply(c);
  EXPECT_EQ(agent_->state(), AgentState::kRevoked);
  auto st = agent_->status();
  ASSERT_TRUE(st);
  EXPECT_NE(st->reason.find("pcr"), std::string::npos) << st->reason;
  EXPECT_FALSE(agent_->proof(me, {t->jti, "GET", "https://api.example/"}));
}

// A token of `format`, proofs for it until the issuer's status list marks the device revoked.
void AgentCoreTest::expect_status_list_revocation_drops(std::optional<TokenFormat> format) {
  Agent& agent = *agent_;
  ASSERT_TRUE(agent.start());
  os::Selectors me;
  me.uid = 0;
  auto t = agent.token(me, {kAudience, {"read"}, std::nullopt, format});
  ASSERT_TRUE(t) << t.error().message;
  if (format == TokenFormat::kCwt) {
    // The token field is base64url of the CWT (docs/local-api.md).
    auto raw = base64url_decode(t->token);
    ASSERT_TRUE(raw);
    ASSERT_TRUE(token::verify_cwt(*raw, jwks(), {clock_.unix_now(), 60, std::string(kAudience)}));
  }
  ASSERT_TRUE(agent.poll_status_list());
  EXPECT_TRUE(agent.proof(me, {t->jti, "GET", "https://api.example/"}));
  ASSERT_TRUE(service_->admin_set_device_state(*agent.device_id(), "revoked", "test"));
  auto polled = agent.poll_status_list();
  ASSERT_TRUE(polled) << polled.error().message;
  auto p = agent.proof(me, {t->jti, "GET", "https://api.example/"});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::kPermissionDenied);
}

TEST_F(AgentCoreTest, StatusListRevocationDropsTheTokenAndItsProofs) {
  make_agent();
  expect_status_list_revocation_drops(std::nullopt);
}

TEST_F(AgentCoreTest, StatusListRevocationDropsACwtTokenToo) {
  make_agent();
  expect_status_list_revocation_drops(TokenFormat::kCwt);
}

TEST_F(AgentCoreTest, TpmProofModeSignsProofsWithTheBindingKey) {
  config_.proof_mode = ProofMode::kTpm;
  make_agent();
  auto started = agent_->start();
  ASSERT_TRUE(started) << started.error().message;
  os::Selectors me;
  me.uid = 0;
  auto t = agent_->token(me, {kAudience, {"read"}, std::nullopt, std::nullopt});
  ASSERT_TRUE(t) << t.error().message;
  auto verified = token::verify_jwt(t->token, jwks(), verify_options(clock_.unix_now()));
  ASSERT_TRUE(verified) << verified.error().message;
  auto p = agent_->proof(me, {t->jti, "POST", "https://api.example/x"});
  ASSERT_TRUE(p) << p.error().message;
  token::ReplayCache replay(16, 300);
  EXPECT_TRUE(token::verify_proof(p->proof,
                                  proof_check("POST", "https://api.example/x", clock_.unix_now(),
                                              t->token, verified->claims.cnf->jkt),
                                  replay));
}

// ---- Revocation reports: retried until the issuer takes them --------------------------------

os::Selectors in_container(const std::string& id) {
  os::Selectors s;
  s.uid = 0;
  s.container_id = id;
  return s;
}

posture::Change container_stop(const std::string& id) {
  posture::Change c;
  c.source = posture::Source::kContainer;
  c.action = posture::Action::kRevokeWorkload;
  c.subject = id;
  c.workload = id;
  return c;
}

std::vector<std::string> AgentCoreTest::serve_containers(const std::vector<std::string>& ids,
                                                         ReportQueue::Options reports) {
  make_agent(reports);
  auto started = agent_->start();
  EXPECT_TRUE(started) << started.error().message;
  std::vector<std::string> jtis;
  for (const auto& id : ids) {
    auto t = agent_->token(in_container(id), {kAudience, {"read"}, std::nullopt, std::nullopt});
    EXPECT_TRUE(t) << t.error().message;
    jtis.push_back(t ? t->jti : "");
  }
  return jtis;
}

bool AgentCoreTest::revoked_at_issuer(const std::string& jti) {
  auto record = store_->get_token(jti);
  EXPECT_TRUE(record) << record.error().message;
  return record && record->revoked;
}

std::size_t pending_reports(Agent& agent) {
  auto st = agent.status();
  EXPECT_TRUE(st);
  return st ? st->pending_revocation_reports : 0;
}

TEST_F(AgentCoreTest, AReportTheIssuerCannotTakeIsRetriedWithBackoffUntilDelivered) {
  const auto jtis = serve_containers({"aaaa"});
  issuer_->fail_revokes = 3;
  agent_->react(container_stop("aaaa"));
  EXPECT_EQ(issuer_->revokes.load(), 0);
  // The first attempt belongs to the follow-up of the change itself, not to a later tick.
  agent_->follow_up();
  EXPECT_EQ(issuer_->revokes.load(), 1);
  EXPECT_EQ(pending_reports(*agent_), 1U);
  // The loop is asked back for the retry (first window 0.5 s), which is not due yet.
  EXPECT_LE(agent_->tick(), std::chrono::milliseconds(500));
  EXPECT_EQ(issuer_->revokes.load(), 1);
  for (int attempt = 2; attempt <= 4; ++attempt) {
    clock_.advance(std::chrono::seconds(31));  // past the longest backoff
    (void)agent_->tick();
    EXPECT_EQ(issuer_->revokes.load(), attempt);
  }
  EXPECT_EQ(issuer_->revokes_applied.load(), 1);
  EXPECT_EQ(pending_reports(*agent_), 0U);
  EXPECT_TRUE(revoked_at_issuer(jtis[0]));
  // Each attempt stamped (and signed) anew.
  const auto stamps = issuer_->revoke_timestamps();
  ASSERT_EQ(stamps.size(), 4U);
  for (std::size_t i = 1; i < stamps.size(); ++i) EXPECT_GT(stamps[i], stamps[i - 1]) << i;
  clock_.advance(std::chrono::seconds(31));
  (void)agent_->tick();
  EXPECT_EQ(issuer_->revokes.load(), 4);  // delivered once
}

TEST_F(AgentCoreTest, AReportTheIssuerAppliedBeforeCountsAsDelivered) {
  serve_containers({"aaaa"});
  issuer_->revoke_failure = ErrorCode::kReplay;
  issuer_->fail_revokes = 1;
  agent_->apply(container_stop("aaaa"));
  EXPECT_EQ(issuer_->revokes.load(), 1);
  EXPECT_EQ(pending_reports(*agent_), 0U);
  clock_.advance(std::chrono::seconds(31));
  (void)agent_->tick();
  EXPECT_EQ(issuer_->revokes.load(), 1);
}

TEST_F(AgentCoreTest, AReportTheIssuerRefusesForGoodIsDropped) {
  serve_containers({"aaaa", "bbbb"});
  issuer_->revoke_failure = ErrorCode::kBadSignature;
  issuer_->fail_revokes = 1;
  agent_->apply(container_stop("aaaa"));
  EXPECT_EQ(pending_reports(*agent_), 0U);
  // The issuer's own refusal: the device was deleted there.
  ASSERT_TRUE(service_->admin_delete_device(*agent_->device_id(), "test"));
  agent_->apply(container_stop("bbbb"));
  EXPECT_EQ(issuer_->revokes.load(), 2);
  EXPECT_EQ(issuer_->revokes_applied.load(), 0);
  EXPECT_EQ(pending_reports(*agent_), 0U);
  clock_.advance(std::chrono::seconds(31));
  (void)agent_->tick();
  EXPECT_EQ(issuer_->revokes.load(), 2);
}

TEST_F(AgentCoreTest, ARetryingReportBlocksNeitherServingNorANewReport) {
  const auto jtis = serve_containers({"aaaa"});
  issuer_->fail_revokes = 1;
  agent_->apply(container_stop("aaaa"));
  ASSERT_EQ(pending_reports(*agent_), 1U);
  // Served meanwhile, and the next change is reported at once, not after the first's backoff.
  auto b = agent_->token(in_container("bbbb"), {kAudience, {"read"}, std::nullopt, std::nullopt});
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(agent_->state(), AgentState::kServing);
  agent_->apply(container_stop("bbbb"));
  EXPECT_EQ(issuer_->revokes.load(), 2);
  EXPECT_EQ(issuer_->revokes_applied.load(), 1);
  EXPECT_EQ(pending_reports(*agent_), 1U);
  clock_.advance(std::chrono::seconds(31));
  (void)agent_->tick();
  EXPECT_EQ(issuer_->revokes_applied.load(), 2);
  EXPECT_EQ(pending_reports(*agent_), 0U);
  EXPECT_TRUE(revoked_at_issuer(jtis[0]));
  EXPECT_TRUE(revoked_at_issuer(b->jti));
}

TEST_F(AgentCoreTest, AFullReportQueueMergesIntoOneRevokingEveryTokenOfTheDevice) {
  ReportQueue::Options bound;
  bound.capacity = 2;
  const auto jtis = serve_containers({"c1", "c2", "c3", "c4", "c5"}, bound);
  issuer_->fail_revokes = 1000;
  for (const char* id : {"c1", "c2", "c3", "c4"}) agent_->apply(container_stop(id));
  EXPECT_LE(pending_reports(*agent_), 2U);
  issuer_->fail_revokes = 0;
  clock_.advance(std::chrono::seconds(31));
  (void)agent_->tick();
  EXPECT_EQ(pending_reports(*agent_), 0U);
  // No revocation lost: the merged report revoked all of the device's tokens, c5's too.
  for (const auto& jti : jtis) EXPECT_TRUE(revoked_at_issuer(jti)) << jti;
}

// A round replaces the binding key, which the issuer then takes alone: the reports signed by the
// old one go first, due or not.
TEST_F(AgentCoreTest, QueuedReportsAreSentBeforeARoundReplacesTheirKey) {
  const auto jtis = serve_containers({"aaaa"});
  os::Selectors me;
  me.uid = 0;
  issuer_->fail_revokes = 1;
  posture::Change c;
  c.source = posture::Source::kPcr;
  c.action = posture::Action::kRevokeAll;
  c.subject = "pcr sha256:8";
  agent_->apply(c);
  ASSERT_EQ(agent_->state(), AgentState::kRevoked);
  ASSERT_EQ(pending_reports(*agent_), 1U);  // its retry not due: the clock has not moved
  auto back = agent_->reattest(me);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->state, "serving");
  EXPECT_EQ(issuer_->revokes_applied.load(), 1);
  EXPECT_EQ(back->pending_revocation_reports, 0U);
  EXPECT_TRUE(revoked_at_issuer(jtis[0]));
}

// The same for the loop's device token renewal, with the report's retry not due yet.
TEST_F(AgentCoreTest, TheRenewalRoundComesAfterTheReportsItsKeySigned) {
  serve_containers({"aaaa"});
  const std::int64_t attested_at = clock_.unix_now();
  issuer_->fail_revokes = 1000;
  agent_->apply(container_stop("aaaa"));
  for (int i = 0; i < 8; ++i) {  // the retry window grows to its 30 s cap
    clock_.advance(std::chrono::seconds(31));
    (void)agent_->tick();
  }
  const int attempts = issuer_->revokes.load();
  EXPECT_EQ(attempts, 9);
  // One second before the renewal (at 2/3 of the 3600 s device token): one more failure, its
  // retry at least 15 s away.
  clock_.set(attested_at + 2399);
  (void)agent_->tick();
  EXPECT_EQ(issuer_->revokes.load(), attempts + 1);
  EXPECT_EQ(agent_->attestations(), 1U);
  issuer_->fail_revokes = 0;
  clock_.advance(std::chrono::seconds(1));
  (void)agent_->tick();
  EXPECT_EQ(agent_->attestations(), 2U);  // renewed
  EXPECT_EQ(issuer_->revokes_applied.load(), 1);
  EXPECT_EQ(pending_reports(*agent_), 0U);
}

// A container stops while a round runs: its report is queued with the binding key that the
// round then replaces, the only one the issuer keeps. Refused for it, it is signed again with
// the new key rather than lost.
TEST_F(AgentCoreTest, AReportQueuedDuringARoundThatReplacesTheKeyIsSignedAgainWithTheNewOne) {
  const auto jtis = serve_containers({"aaaa"});
  os::Selectors me;
  me.uid = 0;
  issuer_->challenges.hold();
  Result<AgentStatus> round = fail(ErrorCode::kInternal, "not run");
  std::thread admin([&] { round = agent_->reattest(me); });
  issuer_->challenges.wait_held();
  agent_->react(container_stop("aaaa"));
  issuer_->challenges.release();
  admin.join();
  ASSERT_TRUE(round) << round.error().message;
  EXPECT_EQ(agent_->attestations(), 2U);
  agent_->follow_up();
  EXPECT_EQ(issuer_->revokes.load(), 2);  // refused for the old key, then signed again
  EXPECT_EQ(issuer_->revokes_applied.load(), 1);
  EXPECT_EQ(pending_reports(*agent_), 0U);
  EXPECT_TRUE(revoked_at_issuer(jtis[0]));
}

TEST_F(AgentCoreTest, DeliverReportsDoesNotWaitBehindARunningRound) {
  serve_containers({"aaaa"});
  os::Selectors me;
  me.uid = 0;
  issuer_->challenges.hold();
  std::thread admin([&] { (void)agent_->reattest(me); });
  issuer_->challenges.wait_held();
  agent_->react(container_stop("aaaa"));
  agent_->deliver_reports();  // the round is still held at its first call
  EXPECT_EQ(issuer_->revokes_applied.load(), 1);
  EXPECT_EQ(pending_reports(*agent_), 0U);
  issuer_->challenges.release();
  admin.join();
  EXPECT_EQ(agent_->state(), AgentState::kServing);
}

}  // namespace
}  // namespace warden::agent
