// Fault tests with real processes (issue 25): wardend SIGKILLed at seeded random points, its
// revocations across a kill, and a hostile local load on the workload socket. The kill points are
// the injected faults (a seeded delay before SIGKILL), not waits for time to pass.
//
//   WARDEN_FAULT_ITERATIONS=200 WARDEN_FAULT_SEED=7 ctest -R agent_fault   (long mode)
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "agent/state_store.h"
#include "tests/e2e/agent_fixture.h"

namespace warden {
namespace {
using namespace e2e;  // NOLINT(google-build-using-namespace): the fixture's helpers

unsigned env_number(const char* name, unsigned fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? static_cast<unsigned>(std::strtoul(v, nullptr, 10))
                                    : fallback;
}

/// What one look at the state directory after a kill found.
struct StateCheck {
  std::vector<std::string> torn;  ///< files that exist but do not parse
  std::size_t temporaries = 0;    ///< ".name.XXXXXX" files a kill left before their rename
};

StateCheck check_state(const std::filesystem::path& dir) {
  StateCheck c;
  if (!std::filesystem::exists(dir)) return c;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const auto name = e.path().filename().string();
    if (name.starts_with(".")) {
      ++c.temporaries;
      continue;
    }
    auto data = read_file(e.path());
    if (!data) {
      c.torn.push_back(e.path().string() + ": " + data.error().message);
      continue;
    }
    Status ok = Status();
    if (name == "enrollment") {
      auto r = agent::parse_enrollment(*data);
      if (!r) ok = fail(std::move(r).error());
    } else if (name == "binding.key") {
      auto r = agent::parse_binding_key(*data);
      if (!r) ok = fail(std::move(r).error());
    } else if (name.ends_with(".sealed")) {
      auto r = agent::parse_sealed_secret(*data);
      if (!r) ok = fail(std::move(r).error());
    }
    if (!ok) c.torn.push_back(e.path().string() + ": " + ok.error().message);
  }
  return c;
}

class AgentFaultTest : public AgentE2ETest {
 protected:
  void SetUp() override {
    AgentE2ETest::SetUp();
    seed_ = env_number("WARDEN_FAULT_SEED", 25);
    iterations_ = env_number("WARDEN_FAULT_ITERATIONS", 6);
    rng_.seed(seed_);
    std::cout << "fault: seed " << seed_ << ", " << iterations_ << " iterations\n";
  }

  /// wardend without waiting for READY: it is to be killed at some point of its start.
  void spawn_agent() {
    agent_ = test::ChildProcess::spawn(
        {std::string(WARDEN_BINARY_DIR) + "/agent/wardend", "--config", agent_config().string()},
        {}, dir_.path() / "agent.log");
  }

  void kill_agent_after(std::chrono::microseconds delay) {
    std::this_thread::sleep_for(delay);  // the fault's seeded point
    agent_.stop(SIGKILL, std::chrono::milliseconds(5000));
  }

  std::chrono::microseconds random_delay(unsigned max_ms) {
    return std::chrono::microseconds(
        std::uniform_int_distribution<unsigned>(0, max_ms * 1000)(rng_));
  }

  test::CommandOutput admin(const std::string& path, const std::string& body) {
    return curl(dir_.path() / "admin.sock", path, body);
  }

  unsigned seed_ = 0;
  unsigned iterations_ = 0;
  std::mt19937 rng_;
};

// Priority 1 of issue 25: SIGKILL at a seeded random point while the agent starts and attests,
// issues a token, or seals a secret. After every
// kill each state file is the old or the new one (parses), and a restarted agent serves again.
TEST_F(AgentFaultTest, SigkillAtRandomPointsLeavesOldOrNewStateAndTheAgentServesAgain) {
  const auto state = dir_.path() / "state";
  std::size_t temporaries = 0;
  unsigned killed_in[3] = {0, 0, 0};
  for (unsigned i = 0; i < iterations_; ++i) {
    const auto phase = static_cast<unsigned>(rng_() % 3);
    ++killed_in[phase];
    SCOPED_TRACE("iteration " + std::to_string(i) + " phase " + std::to_string(phase) + " seed " +
                 std::to_string(seed_));
    if (phase == 0) {
      spawn_agent();
      kill_agent_after(random_delay(1500));
    } else {
      start_agent();
      auto workload = phase == 1
                          ? test::ChildProcess::spawn(
                                {"curl", "-sS", "--unix-socket", workload_socket().string(), "-H",
                                 "workload.spiffe.io: true", "-H", "content-type: application/json",
                                 "--data-binary", token_body(300), "http://localhost/v1/token"},
                                {}, dir_.path() / "workload.log")
                          : test::ChildProcess::spawn(
                                {"curl", "-sS", "-X", "PUT", "--unix-socket",
                                 (dir_.path() / "admin.sock").string(), "-H",
                                 "workload.spiffe.io: true", "-H", "content-type: application/json",
                                 "--data-binary", R"({"value":"aHVudGVyMg==","allow":[{"uid":0}]})",
                                 "http://localhost/v1/secrets/s" + std::to_string(i % 4)},
                                {}, dir_.path() / "workload.log");
      kill_agent_after(random_delay(phase == 1 ? 300 : 600));
      workload.stop(SIGKILL, std::chrono::milliseconds(1000));
    }
    const auto found = check_state(state);
    EXPECT_TRUE(found.torn.empty()) << ::testing::PrintToString(found.torn);
    temporaries = std::max(temporaries, found.temporaries);

    start_agent();
    auto tok = curl_json("/v1/token", token_body(300));
    ASSERT_TRUE(tok.contains("token")) << json::serialize(tok) << agent_log();
    agent_.stop(SIGKILL, std::chrono::milliseconds(5000));
    ASSERT_FALSE(HasFatalFailure());
  }
  std::cout << "fault: kills in start " << killed_in[0] << ", token " << killed_in[1] << ", seal "
            << killed_in[2] << "; most leftover temporaries at once " << temporaries << "\n";
  EXPECT_EQ(temporaries, 0U) << "a kill between mkstemp and rename left temporaries";
}

// The first enrollment killed at a seeded point: the restarted agent either serves, or (killed
// after the issuer recorded the device but before the enrollment file was written) says why in
// its status and keeps the state directory clean.
TEST_F(AgentFaultTest, SigkillDuringTheFirstEnrollmentServesOrSaysWhy) {
  spawn_agent();
  kill_agent_after(random_delay(400));
  const auto found = check_state(dir_.path() / "state");
  EXPECT_TRUE(found.torn.empty()) << ::testing::PrintToString(found.torn);
  spawn_agent();
  std::string status;
  ASSERT_TRUE(test::wait_for(
      [&] {
        status = admin("/v1/status", "").out;
        return status.find("\"state\":\"serving\"") != std::string::npos ||
               status.find("already enrolled") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << status << agent_log();
  std::cout << "fault: after a kill in the first enrollment: " << status << "\n";
  EXPECT_TRUE(agent_.running());
}

// A revocation is acknowledged only once it holds: SIGKILL right after the admin's revoke is
// answered, and the restarted agent neither proves for nor serves the token it had revoked.
TEST_F(AgentFaultTest, RevocationAcknowledgedBeforeSigkillHoldsAfterRestart) {
  for (unsigned i = 0; i < std::max(1U, iterations_ / 3); ++i) {
    start_agent();
    auto tok = curl_json("/v1/token", token_body(300));
    ASSERT_TRUE(tok.contains("token")) << json::serialize(tok) << agent_log();
    const std::string jwt(tok.at("token").as_string());
    const std::string jti(tok.at("jti").as_string());
    auto revoked = admin("/v1/revoke", R"({"reason":"fault test"})");
    ASSERT_NE(revoked.out.find("\"revoked\":true"), std::string::npos) << revoked.out;
    agent_.stop(SIGKILL, std::chrono::milliseconds(5000));

    start_agent();
    auto proof = curl_json(
        "/v1/proof", "{\"jti\":\"" + jti + "\",\"htm\":\"GET\",\"htu\":\"https://api.example/r\"}");
    EXPECT_FALSE(proof.contains("proof")) << json::serialize(proof);
    auto again = curl_json("/v1/token", token_body(300));
    if (again.contains("jti")) {
      EXPECT_NE(again.at("jti").as_string(), jti);
    }

    // The relying party's view: the issuer's status list marks the revoked token.
    token::JwtVerifyOptions vo;
    vo.checks.now = unix_now();
    vo.checks.audience = std::string(kAudience);
    auto verified = token::verify_jwt(jwt, issuer_jwks(), vo);
    ASSERT_TRUE(verified && verified->claims.status);
    const std::string& uri = verified->claims.status->uri;
    const std::string path = uri.substr(uri.find("/v1/"));
    EXPECT_TRUE(test::wait_for(
        [&] {
          auto r = client()->request("GET", path, "", {});
          if (!r || r->status != 200U) return false;
          auto list = token::verify_status_list_jwt(to_string(r->body), issuer_jwks(), unix_now());
          return list && !token::check_status(verified->claims, *list);
        },
        std::chrono::seconds(15)))
        << "the issuer never learnt of a revocation the agent had acknowledged\n"
        << agent_log();
    agent_.stop(SIGKILL, std::chrono::milliseconds(5000));
  }
}

int connect_unix(const std::filesystem::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {  // NOLINT
    ::close(fd);
    return -1;
  }
  return fd;
}

long rss_kib(pid_t pid) {
  std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// Priority 5: 1,000 connections from one uid: silent ones, slowloris (a header byte now and
// then), and clients that send requests and never read. Another uid is still served, the
// per-uid limit holds, and the agent's memory stays bounded.
TEST_F(AgentFaultTest, HostileLocalLoadLeavesOtherWorkloadsServed) {
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, 4096);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &nofile), 0);
  std::filesystem::permissions(dir_.path(), std::filesystem::perms(0755));
  start_agent();
  const long rss_before = rss_kib(agent_.pid());

  std::vector<int> fds;
  const std::string request =
      "POST /v1/token HTTP/1.1\r\nHost: l\r\nworkload.spiffe.io: true\r\n"
      "content-type: application/json\r\ncontent-length: " +
      std::to_string(token_body(300).size()) + "\r\n\r\n" + token_body(300);
  for (int i = 0; i < 1000; ++i) {
    const int fd = connect_unix(workload_socket());
    if (fd < 0) continue;
    fds.push_back(fd);
    if (i % 3 == 1) {
      (void)!::send(fd, "GET /v1/identity HTTP/1.1\r\nHo", 29, MSG_NOSIGNAL);  // slowloris
    } else if (i % 3 == 2) {
      for (int k = 0; k < 8; ++k) (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    }
  }
  // Another uid, while all of that is open.
  const auto start = std::chrono::steady_clock::now();
  auto theirs = curl(workload_socket(), "/v1/identity", "", "nobody");
  const auto other_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
  EXPECT_EQ(theirs.exit_code, 0) << theirs.out;
  EXPECT_NE(theirs.out.find("\"uid\":"), std::string::npos) << theirs.out;

  // The per-uid limit (128 by default) holds: the rest of the flood was closed by the agent.
  std::size_t closed = 0;
  for (const int fd : fds) {
    char b;
    const auto n = ::recv(fd, &b, 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) ++closed;
  }
  const long rss_during = rss_kib(agent_.pid());
  std::cout << "fault: flood of " << fds.size() << " connections, " << closed
            << " closed by the agent; another uid served in " << other_ms << " ms; RSS "
            << rss_before << " -> " << rss_during << " KiB\n";
  EXPECT_GE(closed, fds.size() - 128 - 16) << "more than the per-uid limit were kept open";
  EXPECT_LT(rss_during - rss_before, 64 * 1024) << "memory grew with the flood";
  for (const int fd : fds) ::close(fd);

  // And the flooding uid itself is served again once its connections are gone.
  auto tok = curl_json("/v1/token", token_body(300));
  EXPECT_TRUE(tok.contains("token")) << json::serialize(tok);
  EXPECT_TRUE(agent_.running()) << agent_log();
}

}  // namespace
}  // namespace warden
