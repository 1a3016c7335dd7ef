// Load driver for warden-issuer with the real IssuerService (SQLite or PostgreSQL store, ES256
// keys) behind the real HTTPS server, over loopback with keep-alive clients. Setup uses a private
// swtpm: one device is enrolled (EK certificate, ActivateCredential) and attests once to get a
// device token; `evidence` more devices with the same AK are added to the store (a fleet, each
// attesting for the first time, so each upload carries its whole IMA list), and one attestation
// per device is pre-made (challenge, quote over sha256:0-7,10, certified binding key, session
// key, a 30 KB boot log and 1,000 ima-ng entries replaying to the quoted PCRs), then DPoP proofs
// are pre-signed. Measured: POST /v1/token per second and POST /v1/attest per second (each
// pre-made attestation can be sent once: nonces are single-use).
// Usage: bench_issuer_service [seconds=5] [clients=8] [evidence=64] [--store sqlite|postgres]
//                             [--tokens N (pre-signed proofs; default 20,000 per second)]
//                             [--server-threads N (default 2)]
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "attest/eventlog/eventlog.h"
#include "attest/protocol/messages.h"
#include "attest/token/dpop.h"
#include "attest/token/json.h"
#include "attest/token/signer.h"
#include "issuer/http/server.h"
#include "issuer/service.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"
#include "platform/base/pcr_selection.h"
#include "platform/net/https_client.h"
#include "platform/tpm/tpm.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/swtpm.h"

namespace {
using namespace warden;
namespace ev = attest::eventlog;
using Clock = std::chrono::steady_clock;
constexpr const char* kSelection = "sha256:0,1,2,3,4,5,6,7,10";

Bytes pem_file_to_der(const std::filesystem::path& path) {
  auto pem = read_file(path);
  auto cert = ossl::certificate_from_pem(warden::to_string(*pem));
  unsigned char* out = nullptr;
  const int len = i2d_X509(cert->get(), &out);
  Bytes der(out, out + len);
  OPENSSL_free(out);
  return der;
}

// A sha256 crypto-agile log of `events` EV_IPL events of `size` bytes in PCRs 0..7 plus
// separators; returns the log and extends the TPM as firmware would have.
Bytes boot_log(const tpm::Tpm& tpm, int events, std::size_t size, Bytes& pcr0) {
  ByteWriter w;
  ByteWriter spec;
  spec.bytes(std::string_view("Spec ID Event03\0", 16)).u32le(0).u8(0).u8(2).u8(0).u8(2).u32le(1);
  spec.u16le(0x0B).u16le(32).u8(0);
  const Bytes spec_bytes = std::move(spec).take();
  w.u32le(0).u32le(ev::kEvNoAction).bytes(Bytes(20, 0));
  w.u32le(static_cast<std::uint32_t>(spec_bytes.size())).bytes(spec_bytes);
  pcr0 = Bytes(32, 0);
  auto event = [&](unsigned pcr, std::uint32_t type, const Bytes& data) {
    const Bytes digest = ossl::sha256(data);
    w.u32le(pcr).u32le(type).u32le(1).u16le(0x0B).bytes(digest);
    w.u32le(static_cast<std::uint32_t>(data.size())).bytes(data);
    (void)tpm.extend_pcr(pcr, TpmAlg::kSha256, digest);
    if (pcr == 0) {
      Bytes cat = pcr0;
      cat.insert(cat.end(), digest.begin(), digest.end());
      pcr0 = ossl::sha256(cat);
    }
  };
  for (int i = 0; i < events; ++i) {
    Bytes data(size, static_cast<std::uint8_t>(i));
    event(static_cast<unsigned>(1 + i % 7), 0x0D /* EV_IPL */, data);
  }
  for (unsigned pcr = 0; pcr < 8; ++pcr) event(pcr, ev::kEvSeparator, Bytes(4, 0));
  return std::move(w).take();
}

Bytes tpmt_signature(const tpm::Signature& s) {
  ByteWriter w;
  w.u16be(0x0018).u16be(0x000B);
  w.tpm2b(ByteSpan(s.raw).first(32)).tpm2b(ByteSpan(s.raw).subspan(32));
  return std::move(w).take();
}

// `count` ima-ng entries (binary list, ~130 bytes each) as the kernel would log them; extends
// PCR 10's sha256 bank with each template data hash, as a >= 5.8 kernel does.
Bytes ima_list(const tpm::Tpm& tpm, int count) {
  ByteWriter list;
  for (int i = 0; i < count; ++i) {
    const std::string path = "/usr/lib/x86_64-linux-gnu/libbench" + std::to_string(i) + ".so.1";
    ByteWriter d, n, data;
    d.bytes(std::string_view("sha256:")).u8(0).bytes(ossl::sha256(to_bytes(path)));
    n.bytes(path).u8(0);
    for (const Bytes& f : {d.data(), n.data()})
      data.u32le(static_cast<std::uint32_t>(f.size())).bytes(f);
    const Bytes template_hash = *ossl::digest(ossl::Hash::kSha1, data.data());
    list.u32le(10).bytes(template_hash).u32le(6).bytes(std::string_view("ima-ng"));
    list.u32le(static_cast<std::uint32_t>(data.data().size())).bytes(data.data());
    (void)tpm.extend_pcr(10, TpmAlg::kSha256, ossl::sha256(data.data()));
  }
  return std::move(list).take();
}

struct Outcome {
  std::size_t done = 0;
  std::size_t failures = 0;
  double seconds = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double cpu_us = 0;  ///< process CPU (server and clients) per request
  std::string first_failure;
};

// Sends bodies[i] for i in [0, bodies.size()) round-robin over `clients` keep-alive connections,
// until `deadline` or the bodies run out.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

Outcome drive(std::uint16_t port, const std::filesystem::path& ca, const char* target,
              const std::vector<Bytes>& bodies, int clients, std::chrono::seconds duration) {
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> failures{0};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(clients));
  std::mutex failure_mutex;
  std::string first_failure;
  std::vector<std::unique_ptr<net::HttpsClient>> conns;
  for (int i = 0; i < clients; ++i) {
    net::ClientOptions o;
    o.ca_file = ca;
    o.io_timeout = std::chrono::milliseconds(30000);
    conns.push_back(*net::HttpsClient::create("https://localhost:" + std::to_string(port), o));
    (void)conns.back()->request("GET", "/healthz", "", {});  // connect + handshake
  }
  const double cpu0 = cpu_seconds();
  const auto start = Clock::now();
  const auto deadline = start + duration;
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      auto& mine = latencies[static_cast<std::size_t>(i)];
      while (Clock::now() < deadline) {
        const std::size_t k = next.fetch_add(1);
        if (k >= bodies.size()) break;
        const auto t0 = Clock::now();
        auto r = conns[static_cast<std::size_t>(i)]->request("POST", target, protocol::kContentType,
                                                             bodies[k]);
        if (!r || r->status != 200) {
          ++failures;
          std::lock_guard lock(failure_mutex);
          if (first_failure.empty()) {
            first_failure =
                !r ? r.error().message
                   : std::to_string(r->status) + " " +
                         protocol::to_error(*protocol::decode_error_response(r->body)).message;
          }
          continue;
        }
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  Outcome out;
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  out.done = all.size();
  if (!all.empty()) out.cpu_us = (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(all.size());
  out.failures = failures;
  out.first_failure = first_failure;
  if (!all.empty()) {
    out.p50_ms = all[all.size() / 2];
    out.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return out;
}

void print(const char* name, std::size_t body, const Outcome& o) {
  std::printf("%-8s %9zuB %8zu %10.0f %10.2f %10.2f %12.0f %9zu %s\n", name, body, o.done,
              static_cast<double>(o.done) / o.seconds, o.p50_ms, o.p99_ms, o.cpu_us, o.failures,
              o.first_failure.c_str());
}

int run(int seconds, int clients, int evidence, const std::string& backend, std::size_t token_count,
        std::size_t server_threads) {
  test::TempDir dir("warden-bench-issuer-svc");
  auto swtpm = test::Swtpm::start();
  const tpm::Tpm tpm(swtpm->tcti());
  Bytes pcr0;
  // ~30 KB of boot log: 100 events of 300 bytes.
  const Bytes log = boot_log(tpm, 100, 300 - 32 - 12, pcr0);
  const Bytes ima = ima_list(tpm, 1000);

  issuer::IssuerConfig config;
  config.listen.address = "127.0.0.1";
  config.listen.port = 0;
  config.listen.threads = server_threads;
  config.tokens.nonce_ttl_s = 3600;
  config.tokens.device_token_ttl_s = 3600;  // setup and runs (even under callgrind) fit in it
  // Every token of the run is asked for by one device: its rate must not be the bottleneck.
  config.limits.token_burst = 1'000'000;
  config.limits.token_per_minute = 60'000'000;
  const auto pki = test::run_command(
      {std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki", (dir.path() / "pki").string()});
  if (pki.exit_code != 0) return std::fprintf(stderr, "%s\n", pki.out.c_str()), 1;
  config.tls.cert_file = (dir.path() / "pki/server.crt").string();
  config.tls.key_file = (dir.path() / "pki/server.key").string();
  config.enrollment.manufacturer_ca_files = {swtpm->ca_cert().string()};
  const auto policy = dir.path() / "policy.toml";
  (void)write_file_atomic(
      policy,
      to_bytes("version = \"p1\"\n[pcrs.sha256]\n0 = \"" + hex_encode(pcr0) +
               "\"\n[[workload]]\nname = \"web\"\naudiences = [\"https://api.test\"]\n"
               "scopes = [\"read\"]\nmax_ttl = 120\n[workload.match]\nuid = 1000\n"
               "systemd_unit = \"web*.service\"\n"),
      0644);
  config.policy_file = policy.string();

  std::unique_ptr<test::Postgres> postgres;
  Result<std::unique_ptr<issuer::Store>> store =
      fail(ErrorCode::kInvalidArgument, "--store expected sqlite or postgres, found " + backend);
  if (backend == "sqlite") {
    store = issuer::open_sqlite_store((dir.path() / "issuer.db").string());
  } else if (backend == "postgres") {
    std::string why;
    postgres = test::Postgres::start(why);
    if (!postgres) return std::fprintf(stderr, "postgres: %s\n", why.c_str()), 1;
    store = issuer::open_postgres_store(postgres->create_database("bench"));
  }
  if (!store) return std::fprintf(stderr, "store: %s\n", store.error().message.c_str()), 1;
  if (!(*store)->migrate()) return std::fprintf(stderr, "store: migrate failed\n"), 1;
  SystemClock clock;
  SystemRandom random;
  auto keys = issuer::SigningKeys::open(dir.path() / "keys", **store, clock);
  if (!keys) return std::fprintf(stderr, "%s\n", keys.error().message.c_str()), 1;
  issuer::IssuerService::Options o;
  o.config = &config;
  o.store = store->get();
  o.keys = keys->get();
  o.clock = &clock;
  o.random = &random;
  o.nonce_key = SecretBytes(Bytes(32, 0x42));
  auto service = issuer::IssuerService::create(std::move(o));
  if (!service) return std::fprintf(stderr, "%s\n", service.error().message.c_str()), 1;
  auto server = issuer::http::HttpsServer::create(config, **service);
  if (!server) return std::fprintf(stderr, "%s\n", server.error().message.c_str()), 1;
  (*server)->start();
  const std::uint16_t port = (*server)->port();
  const std::string token_url = "https://localhost:" + std::to_string(port) + "/v1/token";

  // Enroll one device.
  auto ak = tpm.create_ak();
  auto ek = tpm.endorsement_key();
  if (!ak || !ek) return std::fprintf(stderr, "tpm setup failed\n"), 1;
  protocol::EnrollRequest enroll;
  enroll.ek_public = ek->public_area;
  enroll.ek_cert = ek->certificate;
  enroll.ek_chain = {pem_file_to_der(swtpm->issuer_cert())};
  enroll.ak_public = ak->public_area;
  enroll.ak_name = ak->name();
  enroll.metadata = {"bench-host", "bench-machine", std::nullopt, "bench"};
  auto enrolled = (*service)->enroll(enroll);
  if (!enrolled) return std::fprintf(stderr, "%s\n", enrolled.error().message.c_str()), 1;
  auto secret = tpm.activate_credential(*ak, enrolled->credential_blob, enrolled->encrypted_secret);
  auto proof = protocol::activation_proof(secret->view(), enrolled->enrollment_id, ak->name());
  auto activated = (*service)->activate(enrolled->enrollment_id, {enrolled->enrollment_id, *proof});
  if (!activated) return std::fprintf(stderr, "%s\n", activated.error().message.c_str()), 1;
  const std::string device = activated->device_id;

  auto session = *token::EcSigner::generate(random);
  const std::string jwk = json::serialize(session.public_jwk().to_json());
  const Bytes jkt = *base64url_decode(session.public_jwk().thumbprint());
  // The fleet: devices with the same AK (the TPM has one EK), each to attest once.
  auto enrolled_device = (*store)->get_device(device);
  std::vector<std::string> fleet;
  for (int i = 0; i < evidence; ++i) {
    issuer::Device d = *enrolled_device;
    d.id = device + "-" + std::to_string(i);
    d.ek_public_hash = hex_encode(ossl::sha256(to_bytes(d.id)));
    if (auto added = (*store)->add_device(d); !added)
      return std::fprintf(stderr, "%s\n", added.error().message.c_str()), 1;
    fleet.push_back(d.id);
  }
  auto make_attest = [&](const std::string& id) -> Bytes {
    auto c = (*service)->challenge({id});
    auto sel = PcrSelection::parse(kSelection);
    auto quote = tpm.quote(*ak, *sel, c->nonce);
    auto bk = tpm.create_binding_key(*ak, c->nonce);
    auto sig = tpm.sign(*bk, ossl::sha256(protocol::session_key_signed_bytes(c->nonce, jkt)));
    protocol::AttestRequest r;
    r.device_id = id;
    r.nonce = c->nonce;
    r.quote = {quote->attest, quote->signature};
    r.pcr_selection = kSelection;
    r.boot_log = log;
    r.binding_key = {bk->public_area, {bk->certify_attest, bk->certify_signature}};
    r.session_key = protocol::SessionKey{jwk, tpmt_signature(*sig)};
    r.ima = protocol::ImaLog{0, ima, protocol::ImaFormat::kBinary};
    return protocol::encode(r);
  };
  std::printf("setup: pre-making %d attestations with swtpm...\n", evidence);
  // The first one, in-process, gives the device token.
  const Bytes first_body = make_attest(device);
  auto first = (*service)->attest(*protocol::decode_attest_request(first_body), first_body);
  if (!first || !first->device_token) {
    std::fprintf(stderr, "first attestation did not pass: %s\n",
                 first ? (first->reasons.empty() ? "" : first->reasons.front().code.c_str())
                       : first.error().message.c_str());
    return 1;
  }
  std::vector<Bytes> attests;
  for (const std::string& id : fleet) attests.push_back(make_attest(id));
  if (token_count == 0) token_count = static_cast<std::size_t>(seconds) * 20000;
  std::printf("setup: pre-signing %zu DPoP proofs...\n", token_count);
  std::vector<Bytes> tokens;
  tokens.reserve(token_count);
  for (std::size_t i = 0; i < token_count; ++i) {
    protocol::TokenRequest r;
    r.device_token = *first->device_token;
    r.proof = *token::create_proof(session, {"POST", token_url, std::nullopt, std::nullopt},
                                   clock.unix_now(), random);
    r.selectors.uid = 1000;
    r.selectors.systemd_unit = "web-frontend.service";
    r.audience = "https://api.test";
    r.scopes = {"read"};
    r.ttl = 60;
    tokens.push_back(protocol::encode(r));
  }

  std::printf("real IssuerService (%s) behind HTTPS, %d keep-alive clients, %zu server threads\n",
              backend.c_str(), clients, server_threads);
  std::printf("%-8s %10s %8s %10s %10s %10s %12s %9s\n", "workload", "body", "done", "per s",
              "p50 ms", "p99 ms", "CPU us/req", "failures");
  const auto ca = dir.path() / "pki/ca.crt";
  const auto before = (*store)->issue_commit_stats();
  print("token", tokens.front().size(),
        drive(port, ca, "/v1/token", tokens, clients, std::chrono::seconds(seconds)));
  const auto after = (*store)->issue_commit_stats();
  if (after.commits > before.commits) {
    std::printf("token group commit: %.2f records per commit (%llu commits)\n",
                static_cast<double>(after.records - before.records) /
                    static_cast<double>(after.commits - before.commits),
                static_cast<unsigned long long>(after.commits - before.commits));
  }
  print("attest", attests.front().size(),
        drive(port, ca, "/v1/attest", attests, clients, std::chrono::seconds(seconds)));
  (*server)->stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  std::vector<int> positional;
  std::string backend = "sqlite";
  std::size_t tokens = 0;
  std::size_t server_threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--store" && i + 1 < argc) {
      backend = argv[++i];
    } else if (arg == "--tokens" && i + 1 < argc) {
      tokens = static_cast<std::size_t>(std::atol(argv[++i]));
    } else if (arg == "--server-threads" && i + 1 < argc) {
      server_threads = static_cast<std::size_t>(std::atol(argv[++i]));
    } else {
      positional.push_back(std::atoi(argv[i]));
    }
  }
  auto at = [&](std::size_t k, int fallback) {
    return positional.size() > k ? positional[k] : fallback;
  };
  return run(at(0, 5), at(1, 8), at(2, 64), backend, tokens, server_threads);
}
