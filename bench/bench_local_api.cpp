// Load driver for the agent's local API: concurrent keep-alive clients (16 by default) fetch a
// cached token over the Unix socket; the same clients drive a raw Unix-socket echo server
// (thread per connection) in the same run. Rounds alternate API and echo so that a machine whose
// load changes during the run penalises both alike; the medians are reported. Besides wall-clock
// throughput and latency it reports the server's CPU time per request (the process's CPU time
// less the clients' own threads), which is what the server code controls.
// Target: API >= half of echo throughput, p99 < 1 ms.
//
//   bench_local_api [--clients N] [--requests N] [--rounds N] [--proofs] [--connect-per-request]
//     --proofs: POST /v1/proof, each answered with a fresh ES256 proof by a software session key
//               (the daemon's default proof mode); target >= 5,000 proofs/s
//     --connect-per-request: every request on a new connection (a workload using curl or a
//               one-shot client), closed after its reply; the echo server likewise
//   bench_local_api --rss [--workloads N]   RSS of the server with N workloads connected and
//                                           their tokens cached (clients in a child process)
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <pthread.h>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "agent/api/local_server.h"
#include "agent/session_key.h"
#include "attest/token/dpop.h"
#include "attest/token/signer.h"
#include "platform/base/clock.h"

namespace {
using namespace warden;
using Clock = std::chrono::steady_clock;

/// Answers from a cache of one ~600-byte token per workload (keyed by audience), as the daemon
/// does for a workload whose token is still fresh.
class CachedTokenService : public agent::WorkloadService {
 public:
  explicit CachedTokenService(int workloads) {
    for (int i = 0; i < workloads; ++i) {
      cache_.emplace(audience(i), agent::TokenResponse{std::string(600, 'T'), "DPoP",
                                                       "jti-" + std::to_string(i), 1'900'000'000});
    }
  }
  static std::string audience(int i) { return "https://rp" + std::to_string(i) + ".example"; }

  Result<agent::TokenResponse> token(const os::Selectors&,
                                     const agent::TokenRequest& request) override {
    const auto it = cache_.find(request.audience);
    if (it == cache_.end()) return fail(ErrorCode::kNotFound, "no cached token");
    return it->second;
  }
  /// With a session key, proof() does what the daemon does in session mode: a fresh ES256 DPoP
  /// proof (new jti, iat, ath of the cached token) signed by the software key.
  void use_session_key() {
    auto k = token::EcSigner::generate(random_);
    if (k) session_key_.emplace(std::move(*k));
  }
  Result<agent::ProofResponse> proof(const os::Selectors&,
                                     const agent::ProofRequest& request) override {
    if (!session_key_) return agent::ProofResponse{"p"};
    const auto it = cache_.begin();
    auto p = token::create_proof(*session_key_,
                                 {request.htm, request.htu, it->second.token, std::nullopt},
                                 clock_.unix_now(), random_);
    if (!p) return fail(p.error());
    return agent::ProofResponse{std::move(*p)};
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
  std::map<std::string, agent::TokenResponse, std::less<>> cache_;
  SystemRandom random_;
  SystemClock clock_;
  std::optional<token::EcSigner> session_key_;
};

bool g_proofs = false;               ///< --proofs: drive POST /v1/proof instead of POST /v1/token
bool g_connect_per_request = false;  ///< --connect-per-request

int connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {  // NOLINT
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string token_request(const std::string& audience) {
  const std::string body = R"({"audience":")" + audience + R"(","ttl":300})";
  return "POST /v1/token HTTP/1.1\r\nHost: localhost\r\nworkload.spiffe.io: true\r\n"
         "Content-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

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
        if (cl == std::string::npos) return false;
        const auto len = std::stoul(buf.substr(cl + 16));
        if (buf.size() >= end + 4 + len) return buf.compare(9, 3, "200") == 0;
      }
    }
    const ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<std::size_t>(n));
  }
}

double thread_cpu_seconds(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Figures {
  double per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
  double server_cpu_us = 0;  ///< server CPU time per request
  std::size_t failures = 0;
};

/// Server CPU seconds consumed so far (sampled before and after a phase).

std::string proof_request() {
  const std::string body = R"({"jti":"jti-0","htm":"GET","htu":"https://rp0.example/resource"})";
  return "POST /v1/proof HTTP/1.1\r\nHost: localhost\r\nworkload.spiffe.io: true\r\n"
         "Content-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

Figures drive(const std::string& path, std::size_t echo_size, int clients, int per_client) {
  const std::string request =
      g_proofs && echo_size == 0 ? proof_request() : token_request(CachedTokenService::audience(0));
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(clients));
  std::atomic<std::size_t> failures{0};
  std::atomic<double> client_cpu{0};
  std::vector<std::thread> threads;
  const double cpu0 = thread_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
  const auto start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      int fd = g_connect_per_request ? -1 : connect_unix(path);
      if (!g_connect_per_request && fd < 0) {
        ++failures;
        return;
      }
      std::string buf;
      auto& mine = lat[static_cast<std::size_t>(c)];
      mine.reserve(static_cast<std::size_t>(per_client));
      for (int i = 0; i < per_client; ++i) {
        const auto t0 = Clock::now();
        if (g_connect_per_request && (fd = connect_unix(path)) < 0) {
          ++failures;
          break;
        }
        if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0 ||
            !read_reply(fd, buf, echo_size == 0 ? 0 : request.size())) {
          ++failures;
          break;
        }
        if (g_connect_per_request) {
          ::close(fd);
          fd = -1;
        }
        mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
      if (fd >= 0) ::close(fd);
      const double used = thread_cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
      double old = client_cpu.load();
      while (!client_cpu.compare_exchange_weak(old, old + used)) {
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // Server threads finish with the clients' close; give them a moment to be counted.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double cpu = thread_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0 - client_cpu.load();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  if (all.empty()) return {0, 0, 0, 0, failures.load()};
  const auto n = static_cast<double>(all.size());
  return {n / seconds, all[all.size() / 2], all[std::min(all.size() - 1, all.size() * 99 / 100)],
          cpu * 1e6 / n, failures.load()};
}

/// Raw echo server: one thread per connection, echoes whatever arrives. Threads are created
/// detached, as the API's are (with std::thread::detach, glibc 2.36 crashed now and then in
/// pthread_detach with thousands of short connections per second).
void echo_server(int listen_fd) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  for (;;) {
    const int fd = ::accept(listen_fd, nullptr, nullptr);
    if (fd < 0) break;
    pthread_t thread{};
    const int rc = pthread_create(
        &thread, &attr,
        [](void* arg) -> void* {
          const int conn = static_cast<int>(reinterpret_cast<std::intptr_t>(arg));
          char buf[8192];
          for (ssize_t n; (n = ::recv(conn, buf, sizeof(buf), 0)) > 0;) {
            if (::send(conn, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) < 0) break;
          }
          ::close(conn);
          return nullptr;
        },
        reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));  // NOLINT
    if (rc != 0) ::close(fd);
  }
  pthread_attr_destroy(&attr);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

long status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key)));
  }
  return -1;
}

struct Args {
  int clients = 16;
  int requests = 5000;
  int rounds = 3;
  bool rss = false;
  int workloads = 100;
};

/// Child: opens `n` keep-alive connections, fetches one workload's token on each, reports on
/// `ready`, and holds the connections until `release` closes.
[[noreturn]] void rss_clients(const std::string& path, int n, int ready, int release) {
  std::vector<int> fds;
  std::string buf;
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    for (int attempt = 0; attempt < 500; ++attempt) {
      const int fd = connect_unix(path);
      if (fd >= 0) {
        fds.push_back(fd);
        break;
      }
      ::usleep(10'000);
    }
    if (fds.size() != static_cast<std::size_t>(i) + 1) break;
    const std::string r = token_request(CachedTokenService::audience(i));
    if (::send(fds.back(), r.data(), r.size(), MSG_NOSIGNAL) > 0 && read_reply(fds.back(), buf, 0))
      ++ok;
  }
  const auto written = ::write(ready, &ok, sizeof(ok));
  char c = 0;
  const auto read_back = ::read(release, &c, 1);
  (void)written;
  (void)read_back;
  ::_exit(0);
}

int run_rss(const Args& args, const std::filesystem::path& dir) {
  const std::string path = (dir / "workload.sock").string();
  int ready[2];
  int release[2];
  if (::pipe(ready) != 0 || ::pipe(release) != 0) return 1;
  // Fork before any thread exists; the child only makes syscalls.
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    ::close(release[1]);
    rss_clients(path, args.workloads, ready[1], release[0]);
  }
  ::close(ready[1]);
  ::close(release[0]);
  const long base_kb = status_kb("VmRSS:");
  // As wardend: keys and unsealed secrets live in the mlock'd secure heap, counted here.
  if (auto heap = agent::init_locked_key_memory(); !heap) {
    std::fprintf(stderr, "bench: %s\n", heap.error().message.c_str());
    return 1;
  }
  boost::asio::io_context io;
  CachedTokenService service(args.workloads);
  os::WorkloadIdentityResolver resolver;
  agent::api::EventBus bus;
  agent::api::LocalServerOptions options;
  options.workload_socket = path;
  // Every client here is this uid: the per-uid share must not cap what is measured.
  options.max_connections_per_uid = options.max_connections;
  auto server = agent::api::LocalServer::start(io, options, service, resolver, bus);
  if (!server) {
    std::fprintf(stderr, "bench: %s\n", server.error().message.c_str());
    return 1;
  }
  std::thread io_thread([&] { io.run(); });
  int ok = 0;
  const auto got = ::read(ready[0], &ok, sizeof(ok));
  const long loaded_kb = status_kb("VmRSS:");
  const long hwm_kb = status_kb("VmHWM:");
  std::printf("workloads=%d served=%d (read %zd)\n", args.workloads, ok, got);
  std::printf(
      "server process RSS: %ld KiB before the API, %ld KiB with %d workloads connected "
      "and cached (peak %ld KiB); API share %ld KiB\n",
      base_kb, loaded_kb, args.workloads, hwm_kb, loaded_kb - base_kb);
  ::close(release[1]);
  ::waitpid(child, nullptr, 0);
  boost::asio::post(io, [&] {
    (*server)->stop();
    io.stop();
  });
  io_thread.join();
  return ok == args.workloads ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (a == "--clients")
      args.clients = next();
    else if (a == "--requests")
      args.requests = next();
    else if (a == "--rounds")
      args.rounds = next();
    else if (a == "--workloads")
      args.workloads = next();
    else if (a == "--rss")
      args.rss = true;
    else if (a == "--proofs")
      g_proofs = true;
    else if (a == "--connect-per-request")
      g_connect_per_request = true;
    else {
      std::fprintf(stderr, "bench_local_api: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  const auto dir =
      std::filesystem::temp_directory_path() / ("warden-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  if (args.rss) {
    const int rc = run_rss(args, dir);
    std::filesystem::remove_all(dir);
    return rc;
  }

  boost::asio::io_context io;
  CachedTokenService service(1);
  if (g_proofs) service.use_session_key();
  os::WorkloadIdentityResolver resolver;
  agent::api::EventBus bus;
  agent::api::LocalServerOptions options;
  options.workload_socket = dir / "workload.sock";
  options.max_connections_per_uid = options.max_connections;  // one uid plays every client
  auto server = agent::api::LocalServer::start(io, options, service, resolver, bus);
  if (!server) {
    std::fprintf(stderr, "bench: %s\n", server.error().message.c_str());
    return 1;
  }
  std::thread accept_thread([&] { io.run(); });
  pthread_setname_np(accept_thread.native_handle(), "api-accept");

  const std::string echo_path = (dir / "echo.sock").string();
  const int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", echo_path.c_str());
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||  // NOLINT
      ::listen(lfd, 128) != 0) {
    std::perror("bench: echo bind");
    return 1;
  }
  std::thread(echo_server, lfd).detach();

  const std::string api_path = options.workload_socket.string();
  drive(api_path, 0, args.clients, 200);  // warm-up (digest cache, pools)
  std::vector<double> api_rate, api_p50, api_p99, api_cpu, echo_rate, echo_p50, echo_p99,
      echo_cpu_us, ratio;
  std::size_t failures = 0;
  for (int r = 0; r < args.rounds; ++r) {
    const Figures api = drive(api_path, 0, args.clients, args.requests);
    const Figures echo = drive(echo_path, 1, args.clients, args.requests);
    failures += api.failures + echo.failures;
    api_rate.push_back(api.per_second);
    api_p50.push_back(api.p50_us);
    api_p99.push_back(api.p99_us);
    api_cpu.push_back(api.server_cpu_us);
    echo_rate.push_back(echo.per_second);
    echo_p50.push_back(echo.p50_us);
    echo_p99.push_back(echo.p99_us);
    echo_cpu_us.push_back(echo.server_cpu_us);
    ratio.push_back(echo.per_second > 0 ? api.per_second / echo.per_second : 0);
    std::printf(
        "round %d: api %8.0f req/s p99 %7.1f us | echo %8.0f req/s p99 %7.1f us | "
        "ratio %.2f\n",
        r + 1, api.per_second, api.p99_us, echo.per_second, echo.p99_us, ratio.back());
  }
  std::printf("clients=%d requests/client=%d rounds=%d%s (medians)\n", args.clients, args.requests,
              args.rounds, g_connect_per_request ? " connection per request" : "");
  std::printf("%s: %8.0f req/s  p50 %7.1f us  p99 %7.1f us  server CPU %5.1f us/req\n",
              g_proofs ? "api  (signed proof)" : "api  (cached token)", median(api_rate),
              median(api_p50), median(api_p99), median(api_cpu));
  std::printf(
      "echo (raw unix)    : %8.0f req/s  p50 %7.1f us  p99 %7.1f us  server CPU %5.1f "
      "us/req\n",
      median(echo_rate), median(echo_p50), median(echo_p99), median(echo_cpu_us));
  std::printf("api/echo throughput ratio: %.2f (target >= 0.50); api p99 target < 1000 us\n",
              median(ratio));
  if (failures != 0) std::printf("FAILED requests: %zu\n", failures);
  boost::asio::post(io, [&] {
    (*server)->stop();
    io.stop();
  });
  accept_thread.join();
  ::close(lfd);
  std::filesystem::remove_all(dir);
  return failures == 0 ? 0 : 1;
}
