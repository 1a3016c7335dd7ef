// Load driver for the issuer's HTTPS layer: simulated agents (one keep-alive TLS 1.3 connection
// each) drive an in-process HttpsServer over loopback. The IssuerService behind it answers at
// once, so the figures are the cost of TLS, HTTP parsing, CBOR decoding/encoding, routing and
// metrics: the ceiling the real service's work (quote verification, log replay, signing, SQLite)
// is added to. Workloads: challenge (tiny body), attest (30 KB boot log + 1,000 IMA entries),
// token (device token + DPoP proof). Usage: bench_issuer_http [seconds=5] [clients=8] [threads=2]
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "attest/protocol/messages.h"
#include "issuer/http/server.h"
#include "platform/net/https_client.h"
#include "tests/support/process.h"

namespace {
using namespace warden;
using Clock = std::chrono::steady_clock;

// Answers every call immediately with a realistic-size response.
class InstantService final : public issuer::IssuerService {
 public:
  Result<protocol::EnrollResponse> enroll(const protocol::EnrollRequest&) override {
    return protocol::EnrollResponse{};
  }
  Result<protocol::ActivateResponse> activate(std::string_view,
                                              const protocol::ActivateRequest&) override {
    return protocol::ActivateResponse{"dev"};
  }
  Result<protocol::ChallengeResponse> challenge(const protocol::ChallengeRequest&) override {
    return protocol::ChallengeResponse{Bytes(32, 9), 1'900'000'000};
  }
  Result<protocol::AttestResponse> attest(const protocol::AttestRequest& r, ByteSpan) override {
    protocol::AttestResponse res;
    res.verdict = protocol::Verdict::kPass;
    res.policy_version = "v1";
    res.device_token = Bytes(600, 7);
    res.expires_at = 1'900'000'000;
    res.ima_next_offset = r.ima ? r.ima->offset + 1000 : 0;
    return res;
  }
  Result<protocol::TokenResponse> token(const protocol::TokenRequest&,
                                        const issuer::RequestTarget&) override {
    return protocol::TokenResponse{std::string(700, 'J'), "jti-0123456789abcdef", 1'900'000'000,
                                   42};
  }
  Result<protocol::RevokeResponse> revoke(const protocol::RevokeRequest&) override {
    return protocol::RevokeResponse{};
  }
  Result<std::string> jwks_json() override { return std::string("{\"keys\":[]}"); }
  Result<std::string> status_list_jwt(std::string_view) override { return std::string("x"); }
  Status ready() override { return ok(); }
  Result<issuer::DevicePage> admin_list_devices(std::size_t, std::string_view) override {
    return issuer::DevicePage{};
  }
  Result<issuer::DeviceDetail> admin_get_device(std::string_view) override {
    return issuer::DeviceDetail{};
  }
  Status admin_set_device_state(std::string_view, std::string_view, std::string_view) override {
    return ok();
  }
  Result<issuer::PolicyVersion> admin_put_policy(std::string_view, std::string_view,
                                                 std::string_view) override {
    return issuer::PolicyVersion{};
  }
  Result<std::vector<issuer::PolicyVersion>> admin_list_policies() override {
    return std::vector<issuer::PolicyVersion>{};
  }
  Result<std::vector<issuer::AuditRecord>> admin_audit(const issuer::AuditFilter&) override {
    return std::vector<issuer::AuditRecord>{};
  }
};

Bytes attest_body() {
  protocol::AttestRequest r;
  r.device_id = "dev-0123456789abcdef";
  r.nonce = Bytes(32, 1);
  r.quote = {Bytes(145, 2), Bytes(72, 3)};
  r.pcr_selection = "sha256:0,1,2,3,4,5,6,7,9";
  r.boot_log = Bytes(30 * 1024, 4);
  // 1,000 ima-ng binary entries of ~100 bytes (pcr, sha1 template hash, name, template data).
  protocol::ImaLog ima;
  for (int i = 0; i < 1000; ++i) {
    const std::string path = "/usr/lib/x86_64-linux-gnu/lib" + std::to_string(i) + ".so";
    Bytes entry(4 + 20 + 4 + 6 + 4 + 4 + 7 + 32 + 4 + path.size() + 1, 5);
    ima.entries.insert(ima.entries.end(), entry.begin(), entry.end());
  }
  r.ima = std::move(ima);
  r.binding_key.public_area = Bytes(90, 6);
  r.binding_key.certify = {Bytes(140, 7), Bytes(72, 8)};
  r.session_key = protocol::SessionKey{std::string(150, 'k'), Bytes(72, 9)};
  return protocol::encode(r);
}

Bytes token_body() {
  protocol::TokenRequest r;
  r.device_token = Bytes(600, 1);
  r.proof = std::string(550, 'p');
  r.selectors.uid = 1000;
  r.selectors.systemd_unit = "payments.service";
  r.selectors.exe_path = "/usr/bin/payments";
  r.audience = "https://payments.example";
  r.scopes = {"read", "write"};
  r.ttl = 300;
  return protocol::encode(r);
}

struct Outcome {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
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

Outcome drive(std::uint16_t port, const std::filesystem::path& ca, std::string_view target,
              const Bytes& body, int clients, std::chrono::seconds duration) {
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(clients));
  std::atomic<std::size_t> failures{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  Clock::time_point deadline;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      net::ClientOptions o;
      o.ca_file = ca;
      auto c = net::HttpsClient::create("https://localhost:" + std::to_string(port), o);
      if (!c) {
        ++failures;
        return;
      }
      (void)(*c)->request("POST", target, protocol::kContentType, body);  // connect + handshake
      while (!go) std::this_thread::yield();
      auto& mine = latencies[static_cast<std::size_t>(i)];
      while (Clock::now() < deadline) {
        const auto t0 = Clock::now();
        auto r = (*c)->request("POST", target, protocol::kContentType, body);
        if (!r || r->status != 200) {
          ++failures;
          continue;
        }
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double cpu0 = cpu_seconds();
  const auto start = Clock::now();
  deadline = start + duration;
  go = true;
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
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
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
  const int clients = argc > 2 ? std::atoi(argv[2]) : 8;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  spdlog::set_level(spdlog::level::warn);
  test::TempDir dir("warden-bench-issuer");
  const auto pki = test::run_command(
      {std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki", dir.path().string()});
  if (pki.exit_code != 0) {
    std::fprintf(stderr, "make-test-pki failed: %s\n", pki.out.c_str());
    return 1;
  }
  issuer::IssuerConfig config;
  config.listen.address = "127.0.0.1";
  config.listen.port = 0;
  config.listen.threads = static_cast<std::size_t>(threads);
  config.tls.cert_file = (dir.path() / "server.crt").string();
  config.tls.key_file = (dir.path() / "server.key").string();
  InstantService service;
  auto server = issuer::http::HttpsServer::create(config, service);
  if (!server) {
    std::fprintf(stderr, "%s\n", server.error().message.c_str());
    return 1;
  }
  (*server)->start();

  const Bytes challenge = protocol::encode(protocol::ChallengeRequest{"dev-0123456789abcdef"});
  const Bytes attest = attest_body();
  const Bytes token = token_body();
  std::printf("issuer HTTPS layer, %d keep-alive clients, %d server threads, %d s per workload\n",
              clients, threads, seconds);
  std::printf("%-10s %10s %12s %10s %10s %12s %9s\n", "workload", "body", "req/s", "p50 ms",
              "p99 ms", "CPU us/req", "failures");
  for (const auto& [name, target, body] : {std::tuple<const char*, const char*, const Bytes*>{
                                               "challenge", "/v1/challenge", &challenge},
                                           {"token", "/v1/token", &token},
                                           {"attest", "/v1/attest", &attest}}) {
    const auto o = drive((*server)->port(), dir.path() / "ca.crt", target, *body, clients,
                         std::chrono::seconds(seconds));
    std::printf("%-10s %9zuB %12.0f %10.2f %10.2f %12.0f %9zu\n", name, body->size(), o.per_second,
                o.p50_ms, o.p99_ms, o.cpu_us, o.failures);
  }
  (*server)->stop();
  return 0;
}
