// Load driver for the agent's local API: 16 concurrent keep-alive clients fetch a cached token
// over the Unix socket, then the same clients drive a raw Unix-socket echo server in the same run.
// Prints throughput and p50/p99 for both. Target: API >= half of echo throughput, p99 < 1 ms.
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "agent/api/local_server.h"

namespace {
using namespace warden;
using Clock = std::chrono::steady_clock;

class CachedTokenService : public agent::WorkloadService {
 public:
  Result<agent::TokenResponse> token(const os::Selectors&, const agent::TokenRequest&) override {
    return cached_;
  }
  Result<agent::ProofResponse> proof(const os::Selectors&, const agent::ProofRequest&) override {
    return agent::ProofResponse{"p"};
  }
  Result<SecretBytes> secret(const os::Selectors&, const std::string&) override {
    return fail(ErrorCode::kNotFound, "none");
  }
  Result<agent::AgentStatus> status() override { return agent::AgentStatus{}; }
  Status seal_secret(const os::Selectors&, const agent::SealRequest&) override { return ok(); }
  Status revoke(const os::Selectors&, const std::string&) override { return ok(); }
  Result<agent::AgentStatus> reattest(const os::Selectors&) override {
    return agent::AgentStatus{};
  }

 private:
  agent::TokenResponse cached_{std::string(600, 'T'), "DPoP", "jti-0123456789", 1'900'000'000};
};

int connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;  // NOLINT
  return fd;
}

const std::string kRequest =
    "POST /v1/token HTTP/1.1\r\nHost: localhost\r\nworkload.spiffe.io: true\r\n"
    "Content-Type: application/json\r\nContent-Length: 44\r\n\r\n"
    R"({"audience":"https://rp.example","ttl":300})"
    " ";

/// Reads one HTTP response (Content-Length framed), or exactly `echo_size` bytes when nonzero.
bool read_reply(int fd, std::string& buf, std::size_t echo_size) {
  buf.clear();
  char tmp[8192];
  for (;;) {
    if (echo_size != 0 && buf.size() >= echo_size) return true;
    if (echo_size == 0) {
      const auto end = buf.find("\r\n\r\n");
      if (end != std::string::npos) {
        const auto cl = buf.find("Content-Length: ");
        const auto len = std::stoul(buf.substr(cl + 16));
        if (buf.size() >= end + 4 + len) return true;
      }
    }
    const ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<std::size_t>(n));
  }
}

struct Figures {
  double per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
};

Figures drive(const std::string& path, std::size_t echo_size, int clients, int per_client) {
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(clients));
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      const int fd = connect_unix(path);
      if (fd < 0) return;
      std::string buf;
      auto& mine = lat[static_cast<std::size_t>(c)];
      mine.reserve(static_cast<std::size_t>(per_client));
      for (int i = 0; i < per_client; ++i) {
        const auto t0 = Clock::now();
        if (::send(fd, kRequest.data(), kRequest.size(), MSG_NOSIGNAL) < 0) break;
        if (!read_reply(fd, buf, echo_size)) break;
        mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
      ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  if (all.empty()) return {};
  return {static_cast<double>(all.size()) / seconds, all[all.size() / 2],
          all[std::min(all.size() - 1, all.size() * 99 / 100)]};
}

/// Raw echo server: one thread per connection, echoes whatever arrives.
void echo_server(int listen_fd) {
  for (;;) {
    const int fd = ::accept(listen_fd, nullptr, nullptr);
    if (fd < 0) return;
    std::thread([fd] {
      char buf[8192];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) {
        if (::send(fd, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) < 0) break;
      }
      ::close(fd);
    }).detach();
  }
}

}  // namespace

int main() {
  const auto dir =
      std::filesystem::temp_directory_path() / ("warden-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const int clients = 16;
  const int per_client = 5000;

  boost::asio::io_context io;
  CachedTokenService service;
  os::WorkloadIdentityResolver resolver;
  agent::api::EventBus bus(io.get_executor());
  agent::api::LocalServerOptions options;
  options.workload_socket = dir / "workload.sock";
  auto server = agent::api::LocalServer::start(io, options, service, resolver, bus);
  if (!server) {
    std::fprintf(stderr, "bench: %s\n", server.error().message.c_str());
    return 1;
  }
  std::thread io_thread([&] { io.run(); });

  const std::string echo_path = (dir / "echo.sock").string();
  const int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", echo_path.c_str());
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(lfd, 128) != 0) {  // NOLINT
    std::perror("bench: echo bind");
    return 1;
  }
  std::thread(echo_server, lfd).detach();

  drive(options.workload_socket.string(), 0, clients, 200);  // warm-up (identity, digest cache)
  const Figures api = drive(options.workload_socket.string(), 0, clients, per_client);
  const Figures echo = drive(echo_path, kRequest.size(), clients, per_client);
  std::printf("clients=%d requests/client=%d\n", clients, per_client);
  std::printf("api  (cached token): %10.0f req/s  p50 %7.1f us  p99 %7.1f us\n", api.per_second,
              api.p50_us, api.p99_us);
  std::printf("echo (raw unix)    : %10.0f req/s  p50 %7.1f us  p99 %7.1f us\n", echo.per_second,
              echo.p50_us, echo.p99_us);
  std::printf("api/echo throughput ratio: %.2f (target >= 0.50); api p99 target < 1000 us\n",
              api.per_second / echo.per_second);
  boost::asio::post(io, [&] {
    (*server)->stop();
    io.stop();
  });
  io_thread.join();
  std::filesystem::remove_all(dir);
  return 0;
}
