// RFC 7662 introspection over the real HTTPS server and the real IssuerService (SQLite store,
// signing keys): keep-alive TLS 1.3 clients post tokens the issuer signed and recorded, at a
// paced offered load (latency from each request's scheduled send time, so a stall counts
// against every request queued behind it) and then as fast as they can. Each request verifies
// an ES256 signature and reads the token's and the device's records. Callers are loopback
// admins here; a receiver's bearer check (one SHA-256 and one lookup) is not included.
// Usage: bench_introspection [seconds=5] [offered req/s=2000] [clients=8] [threads=2]
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "attest/token/jwt.h"
#include "attest/token/signer.h"
#include "issuer/http/server.h"
#include "issuer/service.h"
#include "issuer/signing_keys.h"
#include "platform/net/https_client.h"
#include "tests/support/process.h"

namespace {
using namespace warden;
using Steady = std::chrono::steady_clock;

constexpr int kTokens = 1000;

struct Outcome {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  double sent_p50_ms = 0;  ///< from the actual send, not the schedule
  double sent_p99_ms = 0;
  double cpu_us = 0;  ///< process CPU (server and clients) per request
  std::size_t failures = 0;
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

/// `offered` requests/s in total (0: each client as fast as it can).
Outcome drive(std::uint16_t port, const std::filesystem::path& ca,
              const std::vector<std::string>& bodies, int clients, double offered,
              std::chrono::seconds duration) {
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(clients));
  std::vector<std::vector<double>> from_send(static_cast<std::size_t>(clients));
  std::atomic<std::size_t> failures{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(clients));
  Steady::time_point start;
  const std::map<std::string, std::string> no_headers;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      net::ClientOptions o;
      o.ca_file = ca;
      auto c = net::HttpsClient::create("https://localhost:" + std::to_string(port), o);
      if (!c) {
        ++failures;
        return;
      }
      const auto post = [&](const std::string& body) {
        return (*c)->request("POST", "/oauth/introspect", "application/x-www-form-urlencoded",
                             ByteSpan(reinterpret_cast<const std::uint8_t*>(body.data()),  // NOLINT
                                      body.size()),
                             no_headers);
      };
      (void)post(bodies[0]);  // connect and handshake before the clock starts
      while (!go) std::this_thread::yield();
      auto& mine = latencies[static_cast<std::size_t>(i)];
      auto& mine_sent = from_send[static_cast<std::size_t>(i)];
      const auto end = start + duration;
      const auto interval =
          offered > 0 ? std::chrono::duration<double>(clients / offered) : std::chrono::seconds(0);
      // Clients start staggered over one interval so that the load is even.
      auto scheduled = start + std::chrono::duration_cast<Steady::duration>(interval * i / clients);
      for (auto n = static_cast<std::size_t>(i);; n += static_cast<std::size_t>(clients)) {
        if (offered > 0) {
          if (scheduled >= end) break;
          std::this_thread::sleep_until(scheduled);
        } else {
          scheduled = Steady::now();
          if (scheduled >= end) break;
        }
        const auto sent = Steady::now();
        auto r = post(bodies[n % bodies.size()]);
        if (!r || r->status != 200 ||
            warden::to_string(r->body).find("\"active\":true") == std::string::npos) {
          ++failures;
        } else {
          const auto done = Steady::now();
          mine.push_back(std::chrono::duration<double, std::milli>(done - scheduled).count());
          mine_sent.push_back(std::chrono::duration<double, std::milli>(done - sent).count());
        }
        scheduled += std::chrono::duration_cast<Steady::duration>(interval);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  start = Steady::now() + std::chrono::milliseconds(10);
  const double cpu0 = cpu_seconds();
  go = true;
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Steady::now() - start).count();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Outcome out;
  out.failures = failures;
  if (all.empty()) return out;
  out.per_second = static_cast<double>(all.size()) / seconds;
  out.cpu_us = (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(all.size());
  out.p50_ms = all[all.size() / 2];
  out.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  out.max_ms = all.back();
  std::vector<double> sent;
  for (auto& l : from_send) sent.insert(sent.end(), l.begin(), l.end());
  std::sort(sent.begin(), sent.end());
  out.sent_p50_ms = sent[sent.size() / 2];
  out.sent_p99_ms = sent[std::min(sent.size() - 1, sent.size() * 99 / 100)];
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
  const double offered = argc > 2 ? std::atof(argv[2]) : 2000;
  const int clients = argc > 3 ? std::atoi(argv[3]) : 8;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  spdlog::set_level(spdlog::level::warn);
  test::TempDir dir("warden-bench-introspection");
  const auto pki = test::run_command(
      {std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki", dir.path().string()});
  if (pki.exit_code != 0) {
    (void)std::fprintf(stderr, "make-test-pki failed: %s\n", pki.out.c_str());
    return 1;
  }
  issuer::IssuerConfig config;
  config.listen.address = "127.0.0.1";
  config.listen.port = 0;
  config.listen.threads = static_cast<std::size_t>(threads);
  config.tls.cert_file = (dir.path() / "server.crt").string();
  config.tls.key_file = (dir.path() / "server.key").string();
  config.admin.socket = "";
  config.admin.allow_unauthenticated_loopback = true;  // the clients are admins
  config.issuer_url = "https://localhost";

  auto store = issuer::open_sqlite_store((dir.path() / "issuer.db").string());
  if (!store || !(*store)->migrate()) {
    (void)std::fprintf(stderr, "store failed\n");
    return 1;
  }
  SystemClock clock;
  SystemRandom random;
  auto keys = issuer::SigningKeys::open(dir.path() / "keys", **store, clock);
  if (!keys) {
    (void)std::fprintf(stderr, "%s\n", keys.error().message.c_str());
    return 1;
  }
  issuer::IssuerService::Options so;
  so.config = &config;
  so.store = store->get();
  so.keys = keys->get();
  so.clock = &clock;
  so.random = &random;
  so.nonce_key = SecretBytes(Bytes(32, 0x42));
  so.issuer_url = config.issuer_url;
  auto service = issuer::IssuerService::create(std::move(so));
  if (!service) {
    (void)std::fprintf(stderr, "%s\n", service.error().message.c_str());
    return 1;
  }

  // Tokens as the issuer mints them, for 100 devices, with their records.
  auto signer = token::EcSigner::from_key((*keys)->current_key(), (*keys)->current_kid());
  const std::int64_t now = clock.unix_now();
  std::vector<std::string> bodies;
  for (int d = 0; d < 100; ++d) {
    issuer::Device dev;
    dev.id = "dev-" + std::to_string(d);
    dev.ek_public_hash = "ek-" + dev.id;
    dev.ak_public = Bytes{1};
    dev.ak_name = Bytes{2};
    dev.created_at = now;
    if (!(*store)->add_device(dev)) return 1;
  }
  for (int i = 0; i < kTokens; ++i) {
    token::Claims c;
    c.iss = config.issuer_url;
    c.sub = "dev-" + std::to_string(i % 100);
    c.aud = {"https://payments.example"};
    c.iat = now;
    c.nbf = now;
    c.exp = now + 3600;
    c.jti = "jti-" + std::to_string(i);
    c.scope = "read write";
    c.cnf = token::Confirmation{std::string(43, 'k'), std::nullopt};
    c.status = token::StatusRef{static_cast<std::uint64_t>(i), config.issuer_url + "/v1/status/1"};
    c.device_id = c.sub;
    token::WorkloadSelectors w;
    w.uid = 1000;
    w.systemd_unit = "payments.service";
    w.executable_digest = std::string(64, 'e');
    c.workload = w;
    auto jwt = token::mint_jwt(*signer, token::kTypWorkload, c);
    if (!jwt || !(*store)->add_token(
                    {*c.jti, *c.sub, "1", static_cast<std::uint64_t>(i), now, *c.exp, false})) {
      return 1;
    }
    bodies.push_back("token=" + *jwt);
  }

  auto server = issuer::http::HttpsServer::create(config, **service);
  if (!server) {
    (void)std::fprintf(stderr, "%s\n", server.error().message.c_str());
    return 1;
  }
  (*server)->start();
  (void)std::printf(
      "POST /oauth/introspect, %d keep-alive clients, %d server threads, %d s, token %zu B\n",
      clients, threads, seconds, bodies[0].size() - 6);
  (void)std::printf("latency from each request's scheduled time; \"sent\": from its actual send\n");
  (void)std::printf("%-14s %10s %10s %10s %10s %12s %12s %12s %9s\n", "offered req/s", "req/s",
                    "p50 ms", "p99 ms", "max ms", "sent p50 ms", "sent p99 ms", "CPU us/req",
                    "failures");
  for (double load : {offered, 0.0}) {
    const auto o = drive((*server)->port(), dir.path() / "ca.crt", bodies, clients, load,
                         std::chrono::seconds(seconds));
    (void)std::printf("%-14s %10.0f %10.2f %10.2f %10.2f %12.2f %12.2f %12.0f %9zu\n",
                      load > 0 ? std::to_string(static_cast<int>(load)).c_str() : "max",
                      o.per_second, o.p50_ms, o.p99_ms, o.max_ms, o.sent_p50_ms, o.sent_p99_ms,
                      o.cpu_us, o.failures);
  }
  (*server)->stop();
  return 0;
}
