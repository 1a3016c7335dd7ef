#pragma once
// The end-to-end fixture: real processes, warden-issuer (HTTPS, SQLite) + wardend on a per-test
// swtpm, and curl as the workload on the agent's Unix socket. Shared by the e2e test files.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <grp.h>
#include <map>
#include <memory>
#include <pwd.h>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "attest/token/dpop.h"
#include "attest/token/json.h"
#include "attest/token/jwk.h"
#include "attest/token/jwt.h"
#include "attest/token/status_list.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"
#include "platform/net/https_client.h"
#include "tests/support/process.h"
#include "tests/support/swtpm.h"

namespace warden::e2e {

inline constexpr const char* kAudience = "https://api.example";
/// Granted only by a rule with an image selector (container tests).
inline constexpr const char* kImageAudience = "https://by-image.example";

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class NotifySocket {
 public:
  explicit NotifySocket(const std::filesystem::path& path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);  // NOLINT
    timeval tv{0, 100'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~NotifySocket() { ::close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  std::string receive() {
    char buf[512];
    const auto n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  int fd_ = -1;
};

class AgentE2ETest : public test::SwtpmTest {
 protected:
  void SetUp() override {
    SwtpmTest::SetUp();
    ::chmod(dir_.path().c_str(), 0755);  // nobody must reach the workload socket
    const auto pki = test::run_command({std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki",
                                        (dir_.path() / "pki").string()});
    ASSERT_EQ(pki.exit_code, 0) << pki.out;
    port_ = test::free_tcp_port();
    std::ofstream(dir_.path() / "policy.toml")
        << "version = \"e2e.1\"\n\n[[workload]]\nname = \"root\"\naudiences = [\"" << kAudience
        << "\"]\nscopes = [\"read\"]\nmax_ttl = 600\n[workload.match]\nuid = 0\n"
        << "\n[[workload]]\nname = \"podman-client\"\naudiences = [\"" << kAudience
        << "\"]\nscopes = [\"read\"]\nmax_ttl = 600\n[workload.match]\nuid = 0\n"
        << "container = \"podman\"\nimage_ref = \"localhost/warden-e2e-client:*\"\n"
        << "\n[[workload]]\nname = \"docker-client\"\naudiences = [\"" << kAudience
        << "\"]\nscopes = [\"read\"]\nmax_ttl = 600\n[workload.match]\nuid = 0\n"
        << "container = \"docker\"\nimage_ref = \"localhost/warden-e2e-client:*\"\n"
        // ctr records no image: only a rule without an image selector can name its containers.
        << "\n[[workload]]\nname = \"ctr-client\"\naudiences = [\"" << kAudience
        << "\"]\nscopes = [\"read\"]\nmax_ttl = 600\n[workload.match]\nuid = 0\n"
        << "container = \"containerd\"\n"
        << "\n[[workload]]\nname = \"ctr-by-image\"\naudiences = [\"" << kImageAudience
        << "\"]\nscopes = [\"read\"]\nmax_ttl = 600\n[workload.match]\nuid = 0\n"
        << "container = \"containerd\"\nimage_ref = \"*\"\n";
    std::ofstream(dir_.path() / "issuer.toml")
        << "issuer_url = \"https://localhost:" << port_ << "\"\n"
        << "policy_file = \"" << (dir_.path() / "policy.toml").string() << "\"\n"
        << "[listen]\naddress = \"127.0.0.1\"\nport = " << port_ << "\nthreads = 2\n"
        << "[tls]\ncert_file = \"" << (dir_.path() / "pki/server.crt").string()
        << "\"\nkey_file = \"" << (dir_.path() / "pki/server.key").string() << "\"\n"
        << "[store]\nsqlite_path = \"" << (dir_.path() / "issuer.db").string() << "\"\n"
        << "[tokens]\ndevice_token_ttl_s = 3600\nkey_dir = \"" << (dir_.path() / "keys").string()
        << "\"\n[enrollment]\nmanufacturer_ca_files = [\"" << tpm_->ca_cert().string() << "\", \""
        << tpm_->issuer_cert().string() << "\"]\n";
    std::filesystem::create_directories(dir_.path() / "securityfs");
    std::filesystem::create_directories(dir_.path() / "cgroup");
    write_agent_config(dir_.path() / "cgroup");
    start_issuer();
  }

  /// The agent's configuration, watching containers under `cgroupfs_root`.
  /// `posture_extra`: more `[posture]` lines (a runtime's private record directories).
  void write_agent_config(const std::filesystem::path& cgroupfs_root,
                          const std::string& posture_extra = "") {
    std::ofstream(agent_config()) << "[issuer]\nurl = \"https://localhost:" << port_
                                  << "\"\nca_file = \"" << (dir_.path() / "pki/ca.crt").string()
                                  << "\"\n"
                                  << "[tpm]\ntcti = \"" << tpm_->tcti() << "\"\n"
                                  << "[agent]\nstate_dir = \"" << (dir_.path() / "state").string()
                                  << "\"\nlog_level = \"debug\"\n"
                                  << "[api]\nworkload_socket = \"" << workload_socket().string()
                                  << "\"\nadmin_socket = \""
                                  << (dir_.path() / "admin.sock").string()
                                  << "\"\nadmin_group = \"root\"\n"
                                  << "[posture]\nsecurityfs_root = \""
                                  << (dir_.path() / "securityfs").string()
                                  << "\"\ncgroupfs_root = \"" << cgroupfs_root.string() << "\"\n"
                                  << posture_extra;
  }

  std::filesystem::path agent_config() const { return dir_.path() / "agent.toml"; }
  std::filesystem::path workload_socket() const { return dir_.path() / "workload.sock"; }

  std::unique_ptr<net::HttpsClient> client() const {
    net::ClientOptions o;
    o.ca_file = dir_.path() / "pki/ca.crt";
    o.connect_timeout = std::chrono::milliseconds(1000);
    auto c = net::HttpsClient::create("https://localhost:" + std::to_string(port_), o);
    EXPECT_TRUE(c) << c.error().message;
    return std::move(*c);
  }

  void start_issuer() {
    issuer_ = test::ChildProcess::spawn({std::string(WARDEN_BINARY_DIR) + "/issuer/warden-issuer",
                                         "--config", (dir_.path() / "issuer.toml").string()},
                                        {}, dir_.path() / "issuer.log");
    ASSERT_TRUE(test::wait_for(
        [&] {
          auto r = client()->request("GET", "/readyz", "", {});
          return (r && r->status == 200U) || !issuer_.running();
        },
        std::chrono::milliseconds(20000)));
    ASSERT_TRUE(issuer_.running()) << slurp(dir_.path() / "issuer.log");
  }

  // Starts wardend and waits for READY=1 (it is serving).
  // `prefix` runs before wardend and execs it (e.g. prlimit), so the child's pid stays wardend's.
  void start_agent(std::map<std::string, std::string> env = {},
                   std::vector<std::string> prefix = {}) {
    const auto notify_path = dir_.path() / ("notify" + std::to_string(++agent_runs_) + ".sock");
    notify_ = std::make_unique<NotifySocket>(notify_path);
    ::chmod(notify_path.c_str(), 0666);  // an agent that switched users still notifies
    env["NOTIFY_SOCKET"] = notify_path.string();
    prefix.insert(prefix.end(), {std::string(WARDEN_BINARY_DIR) + "/agent/wardend", "--config",
                                 agent_config().string()});
    agent_ = test::ChildProcess::spawn(prefix, env, dir_.path() / "agent.log");
    notified_.clear();
    ASSERT_TRUE(wait_notified("READY=1")) << agent_log();
    ASSERT_TRUE(agent_.running()) << agent_log();
    EXPECT_NE(notified_.find("STATUS=serving"), std::string::npos) << notified_;
  }

  std::string agent_log() const { return slurp(dir_.path() / "agent.log"); }

  bool wait_notified(const std::string& what) {
    return test::wait_for(
               [&] {
                 notified_ += notify_->receive();
                 return notified_.find(what) != std::string::npos || !agent_.running();
               },
               std::chrono::milliseconds(60000)) &&
           notified_.find(what) != std::string::npos;
  }

  test::CommandOutput curl(const std::filesystem::path& socket, const std::string& path,
                           const std::string& body, const std::string& as_user = "") {
    std::vector<std::string> argv;
    if (!as_user.empty())
      argv = {"setpriv", "--reuid=" + as_user, "--regid=nogroup", "--clear-groups"};
    argv.insert(argv.end(), {"curl", "-sS", "--unix-socket", socket.string(), "-H",
                             "workload.spiffe.io: true"});
    if (!body.empty())
      argv.insert(argv.end(), {"-H", "content-type: application/json", "--data-binary", body});
    argv.push_back("http://localhost" + path);
    return test::run_command(argv);
  }

  boost::json::object curl_json(const std::string& path, const std::string& body,
                                const std::string& as_user = "") {
    auto out = curl(workload_socket(), path, body, as_user);
    EXPECT_EQ(out.exit_code, 0) << out.out;
    auto obj = json::parse_object(out.out);
    EXPECT_TRUE(obj) << out.out;
    return obj ? *obj : boost::json::object{};
  }

  token::KeySet issuer_jwks() {
    auto r = client()->request("GET", "/.well-known/jwks.json", "", {});
    EXPECT_TRUE(r && r->status == 200U);
    auto set = token::KeySet::from_json(to_string(r->body));
    EXPECT_TRUE(set) << set.error().message;
    return *set;
  }

  test::TempDir dir_{"warden-agent-e2e"};
  int port_ = 0;
  int agent_runs_ = 0;
  test::ChildProcess issuer_;
  test::ChildProcess agent_;
  std::unique_ptr<NotifySocket> notify_;
  std::string notified_;
};

inline std::string token_body(int ttl, const std::string& audience = kAudience) {
  return std::string("{\"audience\":\"") + audience +
         "\",\"scopes\":[\"read\"],\"ttl\":" + std::to_string(ttl) + "}";
}

}  // namespace warden::e2e
