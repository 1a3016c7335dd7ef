#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <grp.h>
#include <iterator>
#include <poll.h>
#include <sched.h>
#include <thread>
#include <tuple>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "agent/api/handlers.h"
#include "agent/api/local_server.h"
#include "agent/api/refusal_budget.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"
#include "tests/support/fake_workload_service.h"
#include "tests/support/process.h"

namespace warden::agent::api {
namespace {

int connect_unix(const std::filesystem::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {  // NOLINT
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

/// Sends `request` and reads until the server closes.
std::string exchange(const std::filesystem::path& path, const std::string& request) {
  const int fd = connect_unix(path);
  if (fd < 0) return "connect failed";
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

std::string request(std::string_view method, std::string_view target, std::string_view body = "",
                    bool spiffe = true) {
  std::string r =
      std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: localhost\r\n";
  if (spiffe) r += "workload.spiffe.io: true\r\n";
  r += "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  return r + std::string(body);
}

unsigned status_of(const std::string& response) {
  if (response.size() < 12) return 0;
  return static_cast<unsigned>(std::stoi(response.substr(9, 3)));
}

boost::json::value body_of(const std::string& response) {
  const auto pos = response.find("\r\n\r\n");
  return boost::json::parse(response.substr(pos + 4));
}

std::string keep_alive_get_for_test(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n\r\n";
}

class LocalApiTest : public ::testing::Test {
 protected:
  void SetUp() override { start(0666); }
  void start(mode_t admin_mode, const std::function<void(LocalServerOptions&)>& tweak = {}) {
    LocalServerOptions o;
    o.workload_socket = dir_.path() / "workload.sock";
    o.admin_socket = dir_.path() / "admin.sock";
    o.admin_socket_mode = admin_mode;
    if (tweak) tweak(o);
    auto s = LocalServer::start(io_, o, service_, resolver_, bus_);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    server_ = std::move(*s);
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    boost::asio::post(io_, [this] {
      server_->stop();
      io_.stop();
    });
    thread_.join();
  }
  std::filesystem::path workload() const { return dir_.path() / "workload.sock"; }
  std::filesystem::path admin() const { return dir_.path() / "admin.sock"; }

  ::warden::test::TempDir dir_;
  boost::asio::io_context io_;
  test::FakeWorkloadService service_;
  os::WorkloadIdentityResolver resolver_;
  EventBus bus_;
  std::unique_ptr<LocalServer> server_;
  std::thread thread_;
};

TEST(LocalApiErrors, TheIssuersRefusalsAre403Not500) {
  // audience_mismatch from the workload policy answered 500 (issue 28).
  for (const auto code : {ErrorCode::kAudienceMismatch, ErrorCode::kAlgorithmNotAllowed,
                          ErrorCode::kUntrusted, ErrorCode::kExpired, ErrorCode::kReplay,
                          ErrorCode::kPolicyViolation, ErrorCode::kPermissionDenied}) {
    const auto reply = error_reply(Error{code, "refused", 0, 0});
    EXPECT_EQ(reply.status, 403u) << to_string(code);
    EXPECT_NE(reply.body.find(std::string(to_string(code))), std::string::npos) << reply.body;
  }
  EXPECT_EQ(error_reply(Error{ErrorCode::kTpm, "tpm gone", 0, 0}).status, 500u);
}

TEST_F(LocalApiTest, MissingSpiffeHeaderIs400) {
  const auto r = exchange(workload(), request("GET", "/v1/identity", "", false));
  EXPECT_EQ(status_of(r), 400u) << r;
  EXPECT_EQ(body_of(r).at("error").as_string(), "missing_spiffe_header");
}

TEST_F(LocalApiTest, BodyOverLimitIs413) {
  const std::string body(64 * 1024 + 1, 'x');
  const auto r = exchange(workload(), request("POST", "/v1/token", body));
  EXPECT_EQ(status_of(r), 413u) << r.substr(0, 200);
  EXPECT_EQ(body_of(r).at("error").as_string(), "payload_too_large");
}

TEST_F(LocalApiTest, MalformedJsonIs400WithReason) {
  const auto r = exchange(workload(), request("POST", "/v1/token", "{\"audience\": "));
  EXPECT_EQ(status_of(r), 400u) << r;
  const auto b = body_of(r);
  EXPECT_EQ(b.at("error").as_string(), "bad_request");
  EXPECT_NE(std::string(b.at("reason").as_string()).find("invalid JSON"), std::string::npos);
  const auto wrong =
      exchange(workload(), request("POST", "/v1/token", R"({"audience":"a","scopes":[1]})"));
  EXPECT_EQ(status_of(wrong), 400u);
  const auto fmt =
      exchange(workload(), request("POST", "/v1/token", R"({"audience":"a","format":"xml"})"));
  EXPECT_EQ(status_of(fmt), 400u);
}

TEST_F(LocalApiTest, IdentityIsTheKernelsView) {
  const auto r = exchange(workload(), request("GET", "/v1/identity"));
  ASSERT_EQ(status_of(r), 200u) << r;
  const auto b = body_of(r).as_object();
  EXPECT_EQ(b.at("pid").to_number<pid_t>(), getpid());
  EXPECT_EQ(b.at("uid").to_number<uid_t>(), getuid());
  EXPECT_EQ(b.at("gid").to_number<gid_t>(), getgid());
  EXPECT_EQ(b.at("exe_path").as_string(), std::filesystem::read_symlink("/proc/self/exe").string());
  EXPECT_EQ(b.at("exe_sha256").as_string().size(), 64u);
  for (auto k : {"systemd_unit", "container_id", "container_runtime", "pod_uid"}) {
    EXPECT_TRUE(b.contains(k)) << k;
  }
}

TEST_F(LocalApiTest, TokenAndProofShapes) {
  auto r =
      exchange(workload(),
               request("POST", "/v1/token",
                       R"({"audience":"https://rp","scopes":["a","b"],"ttl":60,"format":"cwt"})"));
  ASSERT_EQ(status_of(r), 200u) << r;
  auto b = body_of(r).as_object();
  EXPECT_EQ(b.at("token").as_string(), "eyJ.fake.token");
  EXPECT_EQ(b.at("token_type").as_string(), "DPoP");
  EXPECT_EQ(b.at("jti").as_string(), "jti-1");
  EXPECT_EQ(b.at("expires_at").to_number<std::int64_t>(), 1'900'000'000);
  EXPECT_EQ(service_.synced().last_token.audience, "https://rp");
  EXPECT_EQ(service_.synced().last_token.scopes.size(), 2u);
  EXPECT_EQ(service_.synced().last_token.ttl->count(), 60);
  EXPECT_EQ(*service_.synced().last_token.format, TokenFormat::kCwt);
  EXPECT_EQ(service_.synced().last_caller.pid, getpid());

  r = exchange(workload(),
               request("POST", "/v1/proof", R"({"jti":"j","htm":"GET","htu":"https://rp/x"})"));
  ASSERT_EQ(status_of(r), 200u) << r;
  EXPECT_EQ(body_of(r).at("proof").as_string(), "eyJ.fake.proof");
  r = exchange(workload(), request("POST", "/v1/proof", R"({"jti":"j","htm":"GET"})"));
  EXPECT_EQ(status_of(r), 400u);

  r = exchange(workload(), request("GET", "/v1/secrets/db"));
  ASSERT_EQ(status_of(r), 200u) << r;
  EXPECT_EQ(body_of(r).at("value").as_string(), "aHVudGVyMg==");
  r = exchange(workload(), request("GET", "/v1/secrets/nope"));
  EXPECT_EQ(status_of(r), 404u);
  EXPECT_EQ(body_of(r).at("error").as_string(), "not_found");
}

TEST_F(LocalApiTest, AdminRoutesOnlyOnAdminSocket) {
  auto r = exchange(workload(), request("GET", "/v1/status"));
  EXPECT_EQ(status_of(r), 404u);
  r = exchange(workload(),
               request("PUT", "/v1/secrets/db", R"({"value":"aGk=","allow":[{"uid":0}]})"));
  EXPECT_EQ(status_of(r), 405u);
  r = exchange(admin(), request("GET", "/v1/status"));
  ASSERT_EQ(status_of(r), 200u) << r;
  EXPECT_EQ(body_of(r).at("state").as_string(), "serving");
  EXPECT_EQ(body_of(r).at("pending_revocation_reports").as_int64(), 0);
  r = exchange(admin(), request("PUT", "/v1/secrets/db",
                                R"({"value":"aGk=","allow":[{"uid":0,"exe_sha256":"ab"}]})"));
  EXPECT_EQ(status_of(r), 201u) << r;
  EXPECT_EQ(service_.synced().sealed_allow, 1u);
  // 129 bytes: more than a TPM sealed object holds, refused before it reaches locked memory.
  const std::string too_big = base64_encode(Bytes(129, 'x'));
  r = exchange(admin(), request("PUT", "/v1/secrets/db",
                                R"({"value":")" + too_big + R"(","allow":[{"uid":0}]})"));
  EXPECT_EQ(status_of(r), 400u) << r;
  EXPECT_NE(r.find("1..128 bytes, found 129"), std::string::npos) << r;
  r = exchange(admin(), request("POST", "/v1/revoke", R"({"reason":"test"})"));
  EXPECT_EQ(status_of(r), 200u) << r;
  EXPECT_EQ(service_.synced().revoked_reason, "test");
  r = exchange(admin(), request("POST", "/v1/reattest", ""));
  EXPECT_EQ(status_of(r), 202u) << r;
}

TEST_F(LocalApiTest, KeepAliveServesSeveralRequests) {
  const int fd = connect_unix(workload());
  ASSERT_GE(fd, 0);
  std::string one = "GET /v1/identity HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n\r\n";
  std::string both = one + one;
  ASSERT_EQ(::send(fd, both.data(), both.size(), MSG_NOSIGNAL), static_cast<ssize_t>(both.size()));
  std::string out;
  char buf[4096];
  while (true) {
    std::size_t count = 0;
    for (std::size_t p = 0; (p = out.find("HTTP/1.1 200", p)) != std::string::npos; ++p) ++count;
    if (count == 2 && out.rfind("}") == out.size() - 1) break;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0) << out;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
}

TEST_F(LocalApiTest, WatchStreamReceivesBroadcastLines) {
  const int fd = connect_unix(workload());
  ASSERT_GE(fd, 0);
  const std::string req = "GET /v1/watch HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[4096];
  auto read_until = [&](std::string_view needle) {
    while (out.find(needle) == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return false;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  };
  ASSERT_TRUE(read_until(R"({"type":"watching"})"));
  EXPECT_NE(out.find("Transfer-Encoding: chunked"), std::string::npos) << out;
  bus_.publish(R"({"type":"token_rotated","jti":"a"})");
  bus_.publish(R"({"type":"posture_changed"})");
  ASSERT_TRUE(read_until(R"({"type":"posture_changed"})"));
  EXPECT_NE(out.find(R"({"type":"token_rotated","jti":"a"})"), std::string::npos);
  ::close(fd);
}

TEST_F(LocalApiTest, AdminSocketRefusesOtherUids) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to setuid(65534)";
  std::filesystem::permissions(dir_.path(), std::filesystem::perms(0755));
  // The test server made the admin socket 0666, so the filesystem lets nobody connect: the
  // accept-time uid check must refuse. Then 0660 must refuse at connect.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    const auto r = exchange(admin(), request("GET", "/v1/status"));
    if (status_of(r) != 403) _exit(11);
    if (body_of(r).at("error").as_string() != "permission_denied") _exit(12);
    if (status_of(exchange(workload(), request("GET", "/v1/identity"))) != 200) _exit(13);
    ::chmod(admin().c_str(), 0666);  // fails as nobody: fine, the parent restricts it below
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);

  ASSERT_EQ(::chmod(admin().c_str(), 0660), 0);
  const pid_t child2 = fork();
  ASSERT_GE(child2, 0);
  if (child2 == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    const int fd = connect_unix(admin());
    _exit(fd < 0 && errno == EACCES ? 0 : 14);
  }
  waitpid(child2, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(LocalApiTest, ErrorsAreErrorAndReasonOnly) {
  for (const auto& [r, status, code] :
       {std::tuple{exchange(workload(), request("GET", "/v1/nope")), 404u, "not_found"},
        std::tuple{exchange(workload(), request("GET", "/v1/token")), 405u, "method_not_allowed"},
        std::tuple{exchange(workload(), request("POST", "/v1/watch")), 405u, "method_not_allowed"},
        std::tuple{exchange(workload(), request("GET", "/v1/secrets/..")), 400u, "bad_request"},
        std::tuple{exchange(workload(), request("POST", "/v1/token", R"({"audience":"a","x":1})")),
                   400u, "bad_request"}}) {
    EXPECT_EQ(status_of(r), status) << r;
    const auto b = body_of(r).as_object();
    EXPECT_EQ(b.size(), 2u) << r;
    EXPECT_EQ(b.at("error").as_string(), code) << r;
    EXPECT_FALSE(b.at("reason").as_string().empty()) << r;
    EXPECT_NE(r.find("Content-Type: application/json"), std::string::npos) << r;
  }
}

TEST_F(LocalApiTest, HeaderMustBeExactlyTrueOnEveryRoute) {
  for (auto target : {"/v1/identity", "/v1/watch", "/v1/secrets/db"}) {
    const auto r = exchange(workload(), request("GET", target, "", false));
    EXPECT_EQ(status_of(r), 400u) << target;
  }
  const auto r = exchange(workload(),
                          "GET /v1/identity HTTP/1.1\r\nHost: x\r\n"
                          "workload.spiffe.io: false\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(r), 400u) << r;
  EXPECT_EQ(status_of(exchange(admin(), request("GET", "/v1/status", "", false))), 400u);
}

TEST_F(LocalApiTest, BodyOfExactlyTheCapIsRead) {
  // 64 KiB is allowed (then rejected as JSON), one byte more is 413.
  const std::string body(64 * 1024, ' ');
  const auto r = exchange(workload(), request("POST", "/v1/token", body));
  EXPECT_EQ(status_of(r), 400u) << r.substr(0, 200);
  EXPECT_EQ(body_of(r).at("error").as_string(), "bad_request");
}

TEST_F(LocalApiTest, AdminGroupMemberIsAdmitted) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to change uid and groups";
  boost::asio::post(io_, [this] {
    server_->stop();
    io_.stop();
  });
  thread_.join();
  io_.restart();
  server_.reset();
  LocalServerOptions o;
  o.workload_socket = workload();
  o.admin_socket = admin();
  o.admin_socket_mode = 0660;
  o.admin_gid = 4242;  // stands for the "warden" group
  auto s = LocalServer::start(io_, o, service_, resolver_, bus_);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  server_ = std::move(*s);
  thread_ = std::thread([this] { io_.run(); });
  std::filesystem::permissions(dir_.path(), std::filesystem::perms(0755));

  struct stat st {};
  ASSERT_EQ(::stat(admin().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, 4242u);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const gid_t groups[] = {4242};
    if (setgroups(1, groups) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    const auto r = exchange(admin(), request("GET", "/v1/status"));
    _exit(status_of(r) == 200 ? 0 : 11);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(LocalApiJson, EveryByteIsEscapedAtEveryOffsetOfALongString) {
  // The writer skips clean runs eight bytes at a time: a byte to escape must be found wherever
  // it sits in a word, and bytes next to the escape classes must pass unescaped.
  for (const char c : std::string("\"\\\n\x01\x1f\x7f !#[]~", 13)) {
    for (std::size_t at = 0; at < 40; ++at) {
      std::string reason(40, 'a');
      reason[at] = c;
      const auto reply = error_reply(400, "x", reason);
      const auto v = boost::json::parse(reply.body).as_object();
      EXPECT_EQ(v.at("reason").as_string(), reason) << "byte " << int(c) << " at " << at;
      const bool escaped = c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
      EXPECT_EQ(reply.body.size(), std::string(R"({"error":"x","reason":""})").size() + 40 +
                                       (escaped ? (c == '"' || c == '\\' ? 1 : 5) : 0))
          << reply.body;
    }
  }
}

TEST(LocalApiJson, ErrorReplyEscapesQuotesBackslashesAndControlBytes) {
  const std::string reason = std::string("a\"b\\c\n\x01\x1f d") + std::string(1, '\0') + "\xc3\xa9";
  const auto reply = error_reply(400, "bad_request", reason);
  const auto v = boost::json::parse(reply.body).as_object();
  EXPECT_EQ(v.at("reason").as_string(), reason);
  EXPECT_EQ(v.at("error").as_string(), "bad_request");
  EXPECT_EQ(reply.body.find('\n'), std::string::npos) << reply.body;
}

TEST_F(LocalApiTest, SocketModesApplied) {
  struct stat st {};
  ASSERT_EQ(::stat(workload().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
}

std::string keep_alive_get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n\r\n";
}

/// Reads one reply whose body is a JSON object: up to the closing brace.
std::string read_json_reply(int fd) {
  std::string out;
  char buf[1024];
  while (out.empty() || out.back() != '}') {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

/// Sends a keep-alive request and reads its reply.
std::string keep_alive_exchange(int fd, const std::string& target) {
  const std::string req = keep_alive_get(target);
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return "send failed";
  }
  return read_json_reply(fd);
}

TEST_F(LocalApiTest, EachConnectionHasAThreadOfItsOwn) {
  // Four connections held open at once, one token request each, none on the accepting thread.
  std::vector<int> fds;
  const std::string req =
      "POST /v1/token HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n"
      "Content-Length: 16\r\n\r\n{\"audience\":\"a\"}";
  for (int i = 0; i < 4; ++i) {
    fds.push_back(connect_unix(workload()));
    ASSERT_GE(fds.back(), 0);
    ASSERT_EQ(::send(fds.back(), req.data(), req.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(req.size()));
  }
  for (const int fd : fds) {
    std::string out;
    char buf[4096];
    while (out.empty() || out.back() != '}') {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      ASSERT_GT(n, 0) << out;
      out.append(buf, static_cast<std::size_t>(n));
    }
    EXPECT_EQ(status_of(out), 200u) << out;
  }
  const auto threads = service_.synced().token_threads;
  EXPECT_EQ(threads.size(), 4U);
  EXPECT_EQ(threads.count(thread_.get_id()), 0U);
  for (const int fd : fds) ::close(fd);
}

TEST_F(LocalApiTest, IdleConnectionIsClosedAfterTheTimeout) {
  TearDown();
  server_.reset();
  io_.restart();
  start(0666, [](LocalServerOptions& o) { o.idle_timeout = std::chrono::milliseconds(300); });
  const int fd = connect_unix(workload());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(status_of(keep_alive_exchange(fd, "/v1/identity")), 200u);
  // Nothing more is sent: the server ends the connection (a read sees the end, not a timeout).
  timeval tv{5, 0};
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  const auto t0 = std::chrono::steady_clock::now();
  char c = 0;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0) << std::strerror(errno);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(200));
  ::close(fd);
}

TEST_F(LocalApiTest, ConnectionsOverTheLimitAreClosedAtAccept) {
  TearDown();
  server_.reset();
  io_.restart();
  start(0666, [](LocalServerOptions& o) { o.max_connections = 2; });
  std::vector<int> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(connect_unix(workload()));
    ASSERT_GE(held.back(), 0);
    ASSERT_EQ(status_of(keep_alive_exchange(held.back(), "/v1/identity")), 200u);
  }
  const int third = connect_unix(workload());
  ASSERT_GE(third, 0);
  // Closed at accept, unanswered: the send fails if the close came first, else the read ends.
  const auto refused = keep_alive_exchange(third, "/v1/identity");
  EXPECT_TRUE(refused.empty() || refused == "send failed") << refused;
  ::close(third);
  // A slot frees when a connection ends: a new one is then served.
  ::close(held[0]);
  bool served = false;
  for (int attempt = 0; attempt < 200 && !served; ++attempt) {
    const int fd = connect_unix(workload());
    served = fd >= 0 && status_of(keep_alive_exchange(fd, "/v1/identity")) == 200u;
    if (fd >= 0) ::close(fd);
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(served);
  ::close(held[1]);
}

TEST(LocalApiIdentity, APeerSlowToIdentifyHoldsUpNoOtherConnection) {
  // A first-seen executable is hashed while its connection is identified: for a large binary that
  // takes a while, and it must not stall the accept loop for every other workload. Here this
  // process's "executable" (under a fake /proc) is a FIFO, so identifying it blocks until the test
  // opens the FIFO's other end; meanwhile a child process must be served.
  ::warden::test::TempDir proc;
  const auto fifo = proc.path() / "exe-fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto fake_pid = [&](pid_t pid, const std::filesystem::path& exe) {
    const auto dir = proc.path() / std::to_string(pid);
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "cgroup") << "0::/user.slice/user-0.slice/session-1.scope\n";
    std::ofstream(dir / "status") << "Name:\ttest\nGroups:\t\n";
    std::filesystem::create_symlink(exe, dir / "exe");
  };
  fake_pid(::getpid(), fifo);
  std::ofstream(proc.path() / "exe-file") << "a small executable";

  ::warden::test::TempDir dir;
  boost::asio::io_context io;
  test::FakeWorkloadService service;
  os::WorkloadIdentityResolver resolver(proc.path());
  EventBus bus;
  LocalServerOptions o;
  o.workload_socket = dir.path() / "workload.sock";
  auto server = LocalServer::start(io, o, service, resolver, bus);
  ASSERT_TRUE(server.has_value()) << server.error().message;
  std::thread io_thread([&] { io.run(); });

  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c = 0;
    ::close(go[1]);
    if (::read(go[0], &c, 1) != 1) ::_exit(3);
    const int fd = connect_unix(o.workload_socket);
    if (fd < 0) ::_exit(4);
    const timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::_exit(status_of(keep_alive_exchange(fd, "/v1/identity")) == 200u ? 0 : 1);
  }
  ::close(go[0]);
  fake_pid(child, proc.path() / "exe-file");

  const int blocked = connect_unix(o.workload_socket);
  ASSERT_GE(blocked, 0);
  const timeval bound{15, 0};  // a failure below ends the test instead of hanging it
  ::setsockopt(blocked, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound));
  const std::string req = keep_alive_get("/v1/identity");
  EXPECT_EQ(::send(blocked, req.data(), req.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(req.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // its identification has begun
  EXPECT_EQ(::write(go[1], "g", 1), 1);
  // No ASSERT until the FIFO is opened below: the server's shutdown waits for the blocked thread.
  int status = -1;
  if (!::warden::test::wait_for([&] { return ::waitpid(child, &status, WNOHANG) == child; },
                                std::chrono::seconds(15))) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the other workload was not served while this one was being identified (status " << status
      << ")";
  char c = 0;
  EXPECT_EQ(::recv(blocked, &c, 1, MSG_DONTWAIT), -1) << "answered before it was identified";

  // The "executable" ends (empty): identification completes and the request is answered.
  const int writer = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  EXPECT_GE(writer, 0) << std::strerror(errno);
  if (writer >= 0) ::close(writer);
  const std::string reply = read_json_reply(blocked);
  EXPECT_EQ(status_of(reply), 200u) << reply;
  ::close(blocked);
  ::close(go[1]);
  boost::asio::post(io, [&] {
    (*server)->stop();
    io.stop();
  });
  io_thread.join();
}

TEST_F(LocalApiTest, ShutdownWithOpenConnectionsAndWatchStreams) {
  // Idle keep-alive connections (each on its thread) and watch streams when the server goes.
  std::vector<int> fds;
  const std::string watch = "GET /v1/watch HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n\r\n";
  const std::string identity =
      "GET /v1/identity HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n\r\n";
  for (int i = 0; i < 4; ++i) {
    fds.push_back(connect_unix(workload()));
    ASSERT_GE(fds.back(), 0);
    // Watch streams on even connections; one keep-alive request on odd ones (so that all four
    // are accepted, not waiting in the backlog, when the server goes).
    const std::string& req = i % 2 == 0 ? watch : identity;
    ASSERT_EQ(::send(fds.back(), req.data(), req.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(req.size()));
    std::string out;
    char buf[1024];
    while (out.find(i % 2 == 0 ? "watching" : "}") == std::string::npos) {
      const ssize_t n = ::recv(fds.back(), buf, sizeof(buf), 0);
      ASSERT_GT(n, 0) << out;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  TearDown();
  server_.reset();  // returns once every connection thread has ended
  // Watch streams end on the io_context: their last chunk is written as it runs on.
  io_.restart();
  io_.run_for(std::chrono::seconds(5));
  // Every connection is closed by the server: a read sees the end (after the stream's last chunk).
  for (std::size_t i = 0; i < fds.size(); ++i) {
    const int fd = fds[i];
    char buf[1024];
    ssize_t n = 0;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
    }
    EXPECT_EQ(n, 0) << "connection " << i << ": " << std::strerror(errno);
    ::close(fd);
  }
  io_.restart();
  start(0666);
}

TEST(LocalApiLifetime, WatchStreamOutlivingServerAndBusLeavesBothAlone) {
  // wardend destroys the server, then the bus, then the io_context a watch stream still waits on.
  ::warden::test::TempDir dir;
  auto io = std::make_unique<boost::asio::io_context>();
  test::FakeWorkloadService service;
  os::WorkloadIdentityResolver resolver;
  auto bus = std::make_unique<EventBus>();
  LocalServerOptions o;
  o.workload_socket = dir.path() / "workload.sock";
  auto server = LocalServer::start(*io, o, service, resolver, *bus);
  ASSERT_TRUE(server.has_value()) << server.error().message;
  std::thread runner([&] { io->run(); });
  const int fd = connect_unix(o.workload_socket);
  ASSERT_GE(fd, 0);
  const std::string watch = "GET /v1/watch HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n\r\n";
  ASSERT_EQ(::send(fd, watch.data(), watch.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(watch.size()));
  std::string out;
  char buf[1024];
  while (out.find("watching") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0) << out;
    out.append(buf, static_cast<std::size_t>(n));
  }
  boost::asio::post(*io, [&] { io->stop(); });  // as a signal would, before stop() runs
  runner.join();
  server->reset();
  bus.reset();
  io->restart();
  io->run_for(std::chrono::milliseconds(200));  // the stream runs on without its bus
  io.reset();  // destroys the waiting stream: under ASan, touching the bus here would be caught
  while (::recv(fd, buf, sizeof(buf), 0) > 0) {
  }
  char c = 0;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0);
  ::close(fd);
}

// ---- issue 28: API input bugs ----------------------------------------------------------------

TEST_F(LocalApiTest, TtlOrUidOf2To63OrMoreIs400NotAClosedConnection) {
  // Boost.JSON keeps these as uint64; converting them to int64 threw and ended the connection.
  for (const char* ttl : {"9223372036854775808", "18446744073709551615"}) {
    const auto r = exchange(
        workload(),
        request("POST", "/v1/token", std::string(R"({"audience":"a","ttl":)") + ttl + "}"));
    EXPECT_EQ(status_of(r), 400u) << r;
    EXPECT_EQ(body_of(r).at("error").as_string(), "bad_request") << r;
  }
  for (const char* field : {"uid", "gid"}) {
    const auto r = exchange(admin(), request("PUT", "/v1/secrets/db",
                                             std::string(R"({"value":"aGk=","allow":[{")") + field +
                                                 R"(":9223372036854775808}]})"));
    EXPECT_EQ(status_of(r), 400u) << r;
  }
  EXPECT_TRUE(service_.synced().sealed_name.empty());
  // Still served: the largest ttl the API takes (capped by the agent's max later).
  const auto r =
      exchange(workload(), request("POST", "/v1/token", R"({"audience":"a","ttl":4294967295})"));
  EXPECT_EQ(status_of(r), 200u) << r;
}

/// Sends `raw` and reads until the server closes: every reply it gave.
std::string raw_exchange(const std::filesystem::path& path, const std::string& raw) {
  return exchange(path, raw);
}

TEST_F(LocalApiTest, TransferEncodingOtherThanChunkedIsRefusedAndWhatFollowsIsNotARequest) {
  const std::string hidden = keep_alive_get_for_test("/v1/secrets/db");
  const std::string head =
      "POST /v1/token HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\nTransfer-Encoding: ";
  for (const auto& [coding, status] :
       {std::pair{"identity", 400u}, std::pair{"gzip", 501u}, std::pair{"x-unknown", 501u},
        std::pair{"gzip, chunked", 501u}, std::pair{"chunked, identity", 400u}}) {
    const auto r = raw_exchange(workload(), head + coding + "\r\n\r\n" + hidden);
    EXPECT_EQ(status_of(r), status) << coding << ": " << r;
    // One answer, and the connection closed: the request hidden in the body was never read.
    EXPECT_EQ(r.find("HTTP/1.1", 1), std::string::npos) << coding << ": " << r;
    EXPECT_EQ(r.find("aHVudGVyMg=="), std::string::npos) << coding << ": " << r;
  }
  // Chunked alone is HTTP/1.1 and still works.
  const std::string body = R"({"audience":"a"})";
  char size[8];
  std::snprintf(size, sizeof(size), "%zx", body.size());
  const auto ok = raw_exchange(workload(), head + "chunked\r\nConnection: close\r\n\r\n" + size +
                                               "\r\n" + body + "\r\n0\r\n\r\n");
  EXPECT_EQ(status_of(ok), 200u) << ok;
}

TEST_F(LocalApiTest, TheSpiffeHeaderMustAppearExactlyOnce) {
  const auto twice = exchange(workload(),
                              "GET /v1/identity HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n"
                              "workload.spiffe.io: true\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(twice), 400u) << twice;
  EXPECT_EQ(body_of(twice).at("error").as_string(), "missing_spiffe_header");
  const auto mixed = exchange(workload(),
                              "GET /v1/identity HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n"
                              "workload.spiffe.io: false\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(mixed), 400u) << mixed;
}

TEST_F(LocalApiTest, ASecretTheCallerMayNotReadLooksLikeNoSuchSecret) {
  SelectorMatch someone_else;
  someone_else.uid = 4242;
  service_.allow_only(someone_else);
  const auto forbidden = exchange(workload(), request("GET", "/v1/secrets/db"));
  const auto missing = exchange(workload(), request("GET", "/v1/secrets/nope"));
  EXPECT_EQ(status_of(forbidden), 404u) << forbidden;
  EXPECT_EQ(body_of(forbidden).at("error").as_string(), "not_found");
  EXPECT_EQ(body_of(missing).at("error").as_string(), "not_found");
  // The same sentence but for the name the caller gave.
  std::string a(body_of(forbidden).at("reason").as_string());
  std::string b(body_of(missing).at("reason").as_string());
  a.replace(a.find("db"), 2, "nope");
  EXPECT_EQ(a, b);
}

TEST_F(LocalApiTest, SecretNamesOf128CharactersPassAnd129AreRefused) {
  // The fake knows only "db": 404 means the name got through the HTTP layer.
  auto r = exchange(workload(), request("GET", "/v1/secrets/" + std::string(128, 'n')));
  EXPECT_EQ(status_of(r), 404u) << r;
  r = exchange(workload(), request("GET", "/v1/secrets/" + std::string(129, 'n')));
  EXPECT_EQ(status_of(r), 400u) << r;
  EXPECT_EQ(body_of(r).at("error").as_string(), "bad_request");
  r = exchange(admin(), request("PUT", "/v1/secrets/" + std::string(128, 'n'),
                                R"({"value":"aGk=","allow":[{"uid":0}]})"));
  EXPECT_EQ(status_of(r), 201u) << r;
  r = exchange(admin(), request("PUT", "/v1/secrets/" + std::string(129, 'n'),
                                R"({"value":"aGk=","allow":[{"uid":0}]})"));
  EXPECT_EQ(status_of(r), 400u) << r;
}

TEST_F(LocalApiTest, TheAgentsOwnUidUsesTheAdminSocketAfterDroppingRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to bind as root and connect as another uid";
  // As wardend does: bound by root, served as the service account (here nobody), admin group
  // root. The socket file must let the account in, and so must the uid check.
  TearDown();
  server_.reset();
  io_.restart();
  start(0660, [](LocalServerOptions& o) {
    o.admin_gid = 0;
    o.agent_uid = 65534;
  });
  std::filesystem::permissions(dir_.path(), std::filesystem::perms(0755));
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    const auto r = exchange(admin(), request("GET", "/v1/status"));
    _exit(status_of(r) == 200 ? 0 : r == "connect failed" ? 11 : 12);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "11: the socket file refused the agent's uid; 12: the "
                                       "uid check did";
}

// ---- issue 28: the exec race on workload identity --------------------------------------------

/// The attack: a process makes a socket and forks; the child connects (so SO_PEERCRED names it)
/// and execs an allowed binary; the parent, another program of the same uid, holds the same
/// socket. How the request gets written varies by round.
enum class Attack {
  kParentWritesAtOnce,     ///< the parent writes as soon as the child is connected
  kParentWritesAfterExec,  ///< the parent writes once the child runs the allowed binary
  kChildWritesBeforeExec,  ///< the child writes, execs; the parent only reads the answer
};

bool wait_until(const std::function<bool()>& cond) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    sched_yield();
  }
  return true;
}

/// One round; true when the parent read a 200 (the credential).
bool attack_once(const std::filesystem::path& socket_path, const std::string& req, Attack how,
                 const std::string& allowed_exe) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);  // inherited across exec on purpose
  if (fd < 0) return false;
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(fd);
    return false;
  }
  if (child == 0) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(1);  // NOLINT
    if (how == Attack::kChildWritesBeforeExec &&
        ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      _exit(2);
    }
    ::execl(allowed_exe.c_str(), "sleep", "30", static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::string exe_link = "/proc/" + std::to_string(child) + "/exe";
  const auto execd = [&] {
    std::error_code ec;
    return std::filesystem::read_symlink(exe_link, ec).string() == allowed_exe;
  };
  bool ready = false;
  if (how == Attack::kParentWritesAtOnce) {
    ready = wait_until([&] {
      sockaddr_un peer{};
      socklen_t len = sizeof(peer);
      return ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0;  // NOLINT
    });
  } else {
    ready = wait_until(execd);
  }
  bool won = false;
  if (ready) {
    const timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const bool sent =
        how == Attack::kChildWritesBeforeExec ||
        ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
    if (sent) won = status_of(read_json_reply(fd)) == 200u;
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(fd);
  return won;
}

struct RaceResult {
  int rounds = 0;
  int wins = 0;
};

/// Runs `rounds` attacks as uid/gid 65534 in a child process (the server runs as root here, and
/// only the peer's uid is searched for holders).
RaceResult race_as_nobody(const std::filesystem::path& socket_path, const std::string& req,
                          int rounds, const std::string& allowed_exe) {
  int out[2];
  if (::pipe(out) != 0) return {};
  const pid_t runner = ::fork();
  if (runner == 0) {
    ::close(out[0]);
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    RaceResult r;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    for (; r.rounds < rounds && std::chrono::steady_clock::now() < deadline; ++r.rounds) {
      const auto how = static_cast<Attack>(r.rounds % 3);
      if (attack_once(socket_path, req, how, allowed_exe)) ++r.wins;
    }
    const ssize_t w = ::write(out[1], &r, sizeof(r));
    _exit(w == static_cast<ssize_t>(sizeof(r)) ? 0 : 1);
  }
  ::close(out[1]);
  RaceResult r;
  if (runner > 0 && ::read(out[0], &r, sizeof(r)) != static_cast<ssize_t>(sizeof(r))) r = {};
  ::close(out[0]);
  if (runner > 0) ::waitpid(runner, nullptr, 0);
  return r;
}

std::string sha256_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto hasher = ossl::Hasher::create(ossl::Hash::kSha256);
  hasher->update(ByteSpan(reinterpret_cast<const std::uint8_t*>(bytes.data()),  // NOLINT
                          bytes.size()));
  return hex_encode(hasher->finish());
}

class LocalApiExecRace : public LocalApiTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run the attacker as another uid";
    LocalApiTest::SetUp();
    std::filesystem::permissions(dir_.path(), std::filesystem::perms(0755));
    sleep_ = std::filesystem::canonical("/usr/bin/sleep").string();
    // As a secret sealed to {uid, exe_path, exe_sha256} or a policy rule with exe_digest.
    SelectorMatch m;
    m.uid = 65534;
    m.exe_path = sleep_;
    m.exe_sha256 = sha256_file(sleep_);
    service_.allow_only(m);
  }
  void expect_no_wins(const std::string& req) {
    const auto r = race_as_nobody(workload(), req, kRounds, sleep_);
    EXPECT_EQ(r.rounds, kRounds) << "the attacker did not finish its rounds in time";
    EXPECT_EQ(r.wins, 0) << "of " << r.rounds << " rounds";
  }
  static constexpr int kRounds = 1000;
  std::string sleep_;
};

std::string close_request(std::string_view method, std::string_view target, std::string_view body) {
  return request(method, target, body);
}

TEST_F(LocalApiExecRace, NeverWinsASecret) {
  expect_no_wins(close_request("GET", "/v1/secrets/db", ""));
}

TEST_F(LocalApiExecRace, NeverWinsAToken) {
  expect_no_wins(close_request("POST", "/v1/token", R"({"audience":"a"})"));
}

TEST_F(LocalApiExecRace, NeverWinsAProof) {
  expect_no_wins(
      close_request("POST", "/v1/proof", R"({"jti":"j","htm":"GET","htu":"https://r/"})"));
}

TEST_F(LocalApiExecRace, AMatchingCallerStillGetsItsCredentialAndSoDoesItsForkedTwin) {
  // The holder check must not refuse the workload itself, alone or sharing the socket with a
  // fork of the same program. Allowed here: nobody running this test binary.
  SelectorMatch m;
  m.uid = 65534;
  m.exe_path = std::filesystem::read_symlink("/proc/self/exe").string();
  service_.allow_only(m);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    if (status_of(exchange(workload(), request("GET", "/v1/secrets/db"))) != 200) _exit(11);
    const int fd = connect_unix(workload());
    if (fd < 0) _exit(12);
    const pid_t twin = fork();  // holds the socket too, same program and uid
    if (twin == 0) {
      ::pause();
      _exit(0);
    }
    const std::string req = request("POST", "/v1/token", R"({"audience":"a"})");
    const bool sent =
        ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
    const unsigned got = sent ? status_of(read_json_reply(fd)) : 0;
    ::kill(twin, SIGKILL);
    ::waitpid(twin, nullptr, 0);
    _exit(got == 200 ? 0 : 13);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(LocalApiExecRace, TheRefusalsSayWhy) {
  // One round of each, read back: a foreign writer is shared_socket; a child that wrote and then
  // exec'd, with its parent still holding the socket, is shared_socket or identity_changed.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    const pid_t c = fork();
    if (c == 0) {
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", workload().c_str());
      if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(1);  // NOLINT
      ::execl(sleep_.c_str(), "sleep", "30", static_cast<char*>(nullptr));
      _exit(127);
    }
    const std::string exe_link = "/proc/" + std::to_string(c) + "/exe";
    wait_until([&] {
      std::error_code ec;
      return std::filesystem::read_symlink(exe_link, ec).string() == sleep_;
    });
    const std::string req = request("GET", "/v1/secrets/db");
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    const std::string reply = read_json_reply(fd);
    ::kill(c, SIGKILL);
    ::waitpid(c, nullptr, 0);
    _exit(status_of(reply) == 403 && reply.find("\"shared_socket\"") != std::string::npos ? 0 : 11);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// ---- Limits, deadlines and what a watcher sees (issue 28) ----

/// A child process running `body` as uid and gid 65534 with no supplementary groups; its exit
/// code is what `body` returns (100: the uid change failed).
pid_t fork_as_nobody(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
  ::_exit(body());
}

/// The child's exit code, or -1 (signalled, or killed when still running after `timeout`).
int wait_child(pid_t pid, std::chrono::seconds timeout) {
  int status = 0;
  if (!::warden::test::wait_for([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Waits for one byte on `fd` for at most `timeout`.
bool wait_byte(int fd, std::chrono::seconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count() * 1000)) != 1) return false;
  char c = 0;
  return ::read(fd, &c, 1) == 1;
}

/// Reads from a watch stream until `needle` arrives (false when the stream ends first).
bool read_until(int fd, std::string& out, std::string_view needle) {
  char buf[4096];
  while (out.find(needle) == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

int open_watch(const std::filesystem::path& socket, std::string& out) {
  const int fd = connect_unix(socket);
  if (fd < 0) return -1;
  const timeval bound{15, 0};  // a failure ends the test instead of hanging it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound));
  const std::string req = keep_alive_get("/v1/watch");
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()) ||
      !read_until(fd, out, R"({"type":"watching"})")) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(LocalApiTest, AUidAtItsShareLocksOutNeitherOtherUidsNorTheAdminSocket) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to setuid(65534)";
  TearDown();
  server_.reset();
  io_.restart();
  start(0666, [](LocalServerOptions& o) {
    o.max_connections = 6;
    o.max_connections_per_uid = 4;
    o.admin_max_connections = 2;
  });
  std::filesystem::permissions(dir_.path(), std::filesystem::perms(0755));
  int ready[2];
  int go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  // nobody opens its share of idle connections (each served once, so each is accepted and
  // counted), and one more, which is closed at accept.
  const pid_t child = fork_as_nobody([&] {
    std::vector<int> held;
    for (int i = 0; i < 4; ++i) {
      held.push_back(connect_unix(workload()));
      if (held.back() < 0 || status_of(keep_alive_exchange(held.back(), "/v1/identity")) != 200)
        return 1;
    }
    const int over = connect_unix(workload());
    if (over < 0) return 2;
    const auto refused = keep_alive_exchange(over, "/v1/identity");
    if (!refused.empty() && refused != "send failed") return 3;
    // On the admin socket (its mode lets nobody connect here) nobody may hold only what is not
    // root's reserve: one of the two. Accepted in order, so the second is the one closed.
    const int admin_idle = connect_unix(admin());
    const int admin_over = connect_unix(admin());
    if (admin_idle < 0 || admin_over < 0) return 6;
    const timeval bound{15, 0};
    ::setsockopt(admin_over, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound));
    char c = 0;
    if (::recv(admin_over, &c, 1, 0) != 0) return 7;
    if (::write(ready[1], "r", 1) != 1) return 4;
    if (::read(go[0], &c, 1) != 1) return 5;
    return 0;
  });
  ASSERT_GE(child, 0);
  ASSERT_TRUE(wait_byte(ready[0], std::chrono::seconds(15)));
  EXPECT_EQ(server_->connections().workload, 4u);
  EXPECT_EQ(server_->connections().admin, 1u);
  // Root's workload request is served beside nobody's four.
  int fd = connect_unix(workload());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(status_of(keep_alive_exchange(fd, "/v1/identity")), 200u);
  // Root takes the socket's last slot too: the workload socket is full, the admin socket not.
  const int last = connect_unix(workload());
  ASSERT_GE(last, 0);
  EXPECT_EQ(status_of(keep_alive_exchange(last, "/v1/identity")), 200u);
  EXPECT_EQ(server_->connections().workload, 6u);
  // And root's admin request takes the admin pool's last slot, its reserve.
  const auto r = exchange(admin(), request("GET", "/v1/status"));
  EXPECT_EQ(status_of(r), 200u) << r;
  ::close(fd);
  ::close(last);
  EXPECT_EQ(::write(go[1], "g", 1), 1);
  EXPECT_EQ(wait_child(child, std::chrono::seconds(15)), 0);
  for (const int p : {ready[0], ready[1], go[0], go[1]}) ::close(p);
  // Every share is given back once its connections end.
  EXPECT_TRUE(::warden::test::wait_for(
      [&] {
        const auto c = server_->connections();
        return c.workload == 0 && c.admin == 0;
      },
      std::chrono::seconds(5)));
}

TEST_F(LocalApiTest, SlowSenderIsClosedAtTheRequestDeadline) {
  TearDown();
  server_.reset();
  io_.restart();
  // The idle timeout (per read) alone would never close this sender: it sends a byte far more
  // often than that.
  start(0666, [](LocalServerOptions& o) {
    o.idle_timeout = std::chrono::milliseconds(60'000);
    o.request_timeout = std::chrono::milliseconds(300);
  });
  const int fd = connect_unix(workload());
  ASSERT_GE(fd, 0);
  const std::string head = "GET /v1/identity HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  // One header byte every 20 ms, for at most 10 s: the server must end the connection first.
  bool closed = false;
  for (int i = 0; i < 500 && !closed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the sender's pace
    char c = 0;
    const ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      closed = true;
    } else if (n > 0) {
      ADD_FAILURE() << "a reply to a request that never ended";
      break;
    } else {
      closed = ::send(fd, "x", 1, MSG_NOSIGNAL) != 1;
    }
  }
  EXPECT_TRUE(closed);
  ::close(fd);
  EXPECT_TRUE(::warden::test::wait_for([&] { return server_->connections().workload == 0; },
                                       std::chrono::seconds(5)));
}

TEST_F(LocalApiTest, WatchStreamIsReleasedAsSoonAsItsPeerCloses) {
  std::string out;
  const int fd = open_watch(workload(), out);
  ASSERT_GE(fd, 0) << out;
  EXPECT_EQ(server_->connections().watching, 1u);
  EXPECT_EQ(server_->connections().workload, 1u);
  ::close(fd);
  // No event is published: the stream sees its peer's end on the socket itself.
  EXPECT_TRUE(::warden::test::wait_for(
      [&] {
        const auto c = server_->connections();
        return c.watching == 0 && c.workload == 0;
      },
      std::chrono::seconds(5)));
}

TEST_F(LocalApiTest, WatchStreamsPerUidAreLimited) {
  TearDown();
  server_.reset();
  io_.restart();
  start(0666, [](LocalServerOptions& o) { o.max_watch_per_uid = 2; });
  std::vector<int> watches;
  for (int i = 0; i < 2; ++i) {
    std::string out;
    watches.push_back(open_watch(workload(), out));
    ASSERT_GE(watches.back(), 0) << out;
  }
  const int fd = connect_unix(workload());
  ASSERT_GE(fd, 0);
  const auto r = keep_alive_exchange(fd, "/v1/watch");
  EXPECT_EQ(status_of(r), 429u) << r;
  EXPECT_EQ(body_of(r).at("error").as_string(), "limit_exceeded");
  ::close(fd);
  EXPECT_EQ(server_->connections().watching, 2u);
  for (const int w : watches) ::close(w);
  EXPECT_TRUE(::warden::test::wait_for([&] { return server_->connections().watching == 0; },
                                       std::chrono::seconds(5)));
}

TEST(WatchEvents, EachWatcherSeesItsOwnEventsAndOnlyThePublicFormOfTheRest) {
  const Watcher nobody{false, 65534, "", "w-nobody"};
  const Watcher admin{true, 0, "", "w-root"};
  Event mine;
  mine.line = "mine";
  mine.uid = 65534;
  Event device;
  device.line = "revoked: laptop lost";
  device.public_line = "revoked";
  Event container;
  container.line = "container abc gone";
  container.container_id = "abc";
  EXPECT_EQ(*mine.visible_to(nobody), "mine");
  EXPECT_EQ(*device.visible_to(nobody), "revoked");
  EXPECT_EQ(container.visible_to(nobody), nullptr);
  EXPECT_EQ(*container.visible_to(admin), "container abc gone");
  EXPECT_EQ(*device.visible_to(admin), "revoked: laptop lost");
  Watcher inside = nobody;
  inside.container_id = "abc";
  EXPECT_EQ(*container.visible_to(inside), "container abc gone");
  Event token;  // every owner field must match
  token.line = "token of w-root";
  token.uid = 65534;
  token.workload = "w-root";
  EXPECT_EQ(token.visible_to(nobody), nullptr);
}

TEST_F(LocalApiTest, AWatcherSeesNeitherAnotherUidsEventsNorAdminReasons) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to setuid(65534)";
  std::filesystem::permissions(dir_.path(), std::filesystem::perms(0755));
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  int result[2];
  ASSERT_EQ(::pipe(result), 0);
  const pid_t child = fork_as_nobody([&] {
    std::string out;
    const int fd = open_watch(workload(), out);
    if (fd < 0) return 1;
    if (::write(ready[1], "r", 1) != 1) return 2;
    if (!read_until(fd, out, R"({"event":"end"})")) return 3;
    // The parent checks what arrived.
    const auto n = ::write(result[1], out.data(), out.size());
    return n == static_cast<ssize_t>(out.size()) ? 0 : 4;
  });
  ASSERT_GE(child, 0);
  ::close(result[1]);
  std::string admin_out;
  const int admin_fd = open_watch(admin(), admin_out);
  ASSERT_GE(admin_fd, 0);
  std::string root_out;
  const int root_fd = open_watch(workload(), root_out);
  ASSERT_GE(root_fd, 0);
  ASSERT_TRUE(wait_byte(ready[0], std::chrono::seconds(15)));

  Event nobodys;
  nobodys.line = R"({"event":"token_revoked","detail":"jti-of-nobody"})";
  nobodys.uid = 65534;
  bus_.publish(nobodys);
  Event roots;
  roots.line = R"({"event":"workload_revoked","detail":"container-of-root"})";
  roots.uid = 0;
  roots.container_id = "container-of-root";
  bus_.publish(roots);
  Event revoked;
  revoked.line = R"({"event":"revoked","detail":"admin: laptop lost"})";
  revoked.public_line = R"({"event":"revoked","detail":""})";
  bus_.publish(revoked);
  bus_.publish(std::string(R"({"event":"end"})"));

  std::string seen;
  char buf[4096];
  for (ssize_t n; (n = ::read(result[0], buf, sizeof(buf))) > 0;)
    seen.append(buf, static_cast<std::size_t>(n));
  EXPECT_EQ(wait_child(child, std::chrono::seconds(15)), 0) << seen;
  EXPECT_NE(seen.find("jti-of-nobody"), std::string::npos) << seen;
  EXPECT_NE(seen.find(R"({"event":"revoked","detail":""})"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("container-of-root"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("laptop lost"), std::string::npos) << seen;

  // Root on the workload socket is a workload like any other; the admin socket sees it all.
  ASSERT_TRUE(read_until(root_fd, root_out, R"({"event":"end"})"));
  EXPECT_EQ(root_out.find("jti-of-nobody"), std::string::npos) << root_out;
  EXPECT_EQ(root_out.find("laptop lost"), std::string::npos) << root_out;
  ASSERT_TRUE(read_until(admin_fd, admin_out, R"({"event":"end"})"));
  for (auto needle : {"jti-of-nobody", "container-of-root", "admin: laptop lost"}) {
    EXPECT_NE(admin_out.find(needle), std::string::npos) << needle << " in " << admin_out;
  }
  ::close(root_fd);
  ::close(admin_fd);
  ::close(ready[0]);
  ::close(ready[1]);
  ::close(result[0]);
}

/// Refuses every token request except root's.
class RootOnlyService : public test::FakeWorkloadService {
 public:
  Result<TokenResponse> token(const os::Selectors& caller, const TokenRequest& request) override {
    if (caller.uid == 0) return test::FakeWorkloadService::token(caller, request);
    refused_.fetch_add(1);
    return fail(ErrorCode::kPolicyViolation,
                "token: no policy for uid " + std::to_string(caller.uid));
  }
  std::atomic<std::size_t> refused_{0};
};

TEST(RefusalBudget, AUidOverItsBudgetGets429WithoutReachingTheService) {
  RootOnlyService inner;
  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  RefusalBudget budget(inner, {.burst = 3, .per_second = 1, .max_uids = 2}, [&] { return now; });
  os::Selectors nobody;
  nobody.uid = 65534;
  os::Selectors root;
  const TokenRequest req{"a", {}, std::nullopt, std::nullopt};
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(budget.token(nobody, req).error().code, ErrorCode::kPolicyViolation);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(budget.token(nobody, req).error().code, ErrorCode::kLimitExceeded);
    EXPECT_TRUE(budget.token(root, req).has_value());
  }
  EXPECT_EQ(inner.refused_.load(), 3u);
  EXPECT_EQ(budget.stats().over_budget, 50u);
  // One second refills one refusal.
  now += std::chrono::seconds(1);
  EXPECT_EQ(budget.token(nobody, req).error().code, ErrorCode::kPolicyViolation);
  EXPECT_EQ(budget.token(nobody, req).error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(inner.refused_.load(), 4u);
  // However many uids are refused, the buckets stay bounded (newcomers share one).
  for (uid_t u = 1000; u < 1100; ++u) {
    os::Selectors s;
    s.uid = u;
    (void)budget.token(s, req);
  }
  EXPECT_LE(budget.stats().buckets, 2u);
}

TEST(RefusalBudget, AFloodingUidGets429sWhileAnotherUidIsServed) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to setuid(65534)";
  ::warden::test::TempDir dir;
  std::filesystem::permissions(dir.path(), std::filesystem::perms(0755));
  boost::asio::io_context io;
  RootOnlyService inner;
  RefusalBudget budget(inner, {.burst = 5, .per_second = 1});
  os::WorkloadIdentityResolver resolver;
  EventBus bus;
  LocalServerOptions o;
  o.workload_socket = dir.path() / "workload.sock";
  auto server = LocalServer::start(io, o, budget, resolver, bus);
  ASSERT_TRUE(server.has_value()) << server.error().message;
  std::thread io_thread([&] { io.run(); });
  const std::string token =
      "POST /v1/token HTTP/1.1\r\nHost: x\r\nworkload.spiffe.io: true\r\n"
      "Content-Length: 16\r\n\r\n{\"audience\":\"a\"}";
  auto ask = [&](int fd) {
    if (::send(fd, token.data(), token.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(token.size()))
      return 0u;
    return status_of(read_json_reply(fd));
  };
  int started[2];
  int stop[2];
  int result[2];
  for (int* p : {started, stop, result}) ASSERT_EQ(::pipe(p), 0);
  // nobody: refused requests back to back on one connection until told to stop (at most 5,000),
  // then writes how many it sent and how many got 429.
  const pid_t child = fork_as_nobody([&] {
    const int fd = connect_unix(o.workload_socket);
    if (fd < 0) return 1;
    int sent = 0;
    int limited = 0;
    for (pollfd p{stop[0], POLLIN, 0}; sent < 5000 && ::poll(&p, 1, 0) == 0; ++sent) {
      const unsigned st = ask(fd);
      if (st == 429) ++limited;
      if (st != 429 && st != 403) return 2;
      if (sent == 10 && ::write(started[1], "s", 1) != 1) return 3;
    }
    const std::string counts = std::to_string(sent) + " " + std::to_string(limited);
    return ::write(result[1], counts.data(), counts.size()) > 0 ? 0 : 4;
  });
  ASSERT_GE(child, 0);
  ::close(result[1]);
  ASSERT_TRUE(wait_byte(started[0], std::chrono::seconds(15)));
  // Root, meanwhile: every request served.
  const int fd = connect_unix(o.workload_socket);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(ask(fd), 200u) << i;
  ::close(fd);
  EXPECT_EQ(::write(stop[1], "x", 1), 1);
  EXPECT_EQ(wait_child(child, std::chrono::seconds(60)), 0);
  char buf[64] = {};
  ASSERT_GT(::read(result[0], buf, sizeof(buf) - 1), 0);
  int sent = 0;
  int limited = 0;
  ASSERT_EQ(std::sscanf(buf, "%d %d", &sent, &limited), 2) << buf;
  EXPECT_GT(limited, 0) << sent;
  // The service saw only the refusals nobody's budget allowed, the rest were 429 at the door.
  EXPECT_EQ(inner.refused_.load(), static_cast<std::size_t>(sent - limited));
  EXPECT_EQ(budget.stats().over_budget, static_cast<std::uint64_t>(limited));
  for (int* p : {started, stop}) {
    ::close(p[0]);
    ::close(p[1]);
  }
  ::close(result[0]);
  boost::asio::post(io, [&] {
    (*server)->stop();
    io.stop();
  });
  io_thread.join();
}

}  // namespace
}  // namespace warden::agent::api
