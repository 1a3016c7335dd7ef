// From a revocation at the issuer to a verified SET at a push receiver: the issuer's share of
// "a relying party learns of a revocation". Each round revokes one device (the transaction that
// an agent's report or the admin API runs: token rows, revocation, outbox events, on SQLite),
// the push deliverer is woken by the commit, claims the event from the store, signs nothing new
// (the SET was signed in the transaction), POSTs it over HTTPS (TLS 1.3, a fresh connection) to
// a local receiver, which verifies the SET's ES256 signature against the issuer's JWKS and
// answers 202. The agent's detection time comes before this (docs/PERFORMANCE.md).
// Usage: bench_ssf_revocation [revocations=300]
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "attest/token/json.h"
#include "attest/token/jwk.h"
#include "attest/token/jwt.h"
#include "attest/token/set.h"
#include "issuer/http/metrics.h"
#include "issuer/http/router.h"
#include "issuer/service.h"
#include "issuer/ssf/push.h"
#include "issuer/ssf/streams.h"
#include "issuer/store/sql.h"
#include "tests/integration/issuer/ssf_receiver.h"
#include "tests/support/process.h"

namespace {
using namespace warden;
using Steady = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(static_cast<double>(v.size()) * p))];
}

int die(const std::string& what) {
  (void)std::fprintf(stderr, "bench_ssf_revocation: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 300;
  spdlog::set_level(spdlog::level::warn);
  test::TempDir dir("warden-bench-ssf-rev");
  const auto pki = test::run_command(
      {std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki", dir.path().string()});
  if (pki.exit_code != 0) return die("make-test-pki failed: " + pki.out);

  auto store = issuer::open_sqlite_store((dir.path() / "issuer.db").string());
  if (!store || !(*store)->migrate()) return die("store");
  SystemClock clock;
  SystemRandom random;
  auto keys = issuer::SigningKeys::open(dir.path() / "keys", **store, clock);
  if (!keys) return die(keys.error().message);
  issuer::IssuerConfig config;
  issuer::IssuerService::Options o;
  o.config = &config;
  o.store = store->get();
  o.keys = keys->get();
  o.clock = &clock;
  o.random = &random;
  o.nonce_key = SecretBytes(Bytes(32, 0x42));
  o.issuer_url = "https://issuer.test:8443";
  auto service = issuer::IssuerService::create(std::move(o));
  if (!service) return die(service.error().message);
  auto jwks = (*service)->jwks_json();
  if (!jwks) return die(jwks.error().message);
  auto key_set = token::KeySet::from_json(*jwks);
  if (!key_set) return die(key_set.error().message);

  // The receiver: verifies each SET and records when the first one about a device arrived.
  std::mutex mutex;
  std::condition_variable arrived;
  std::map<std::string, Steady::time_point> first_seen;
  std::size_t refused = 0;
  test::Receiver rx(
      [&](const test::ReceivedPost& post) {
        auto jws = token::decode_jws(post.body);
        const token::Jwk* key = nullptr;
        if (jws) {
          auto k =
              key_set->find(json::get_string(jws->header, "kid").value_or(""), token::Alg::kEs256);
          if (k) key = *k;
        }
        Result<token::UnverifiedJws> verified = fail(ErrorCode::kUntrusted, "no key");
        if (key != nullptr)
          verified = token::verify_jws_with(post.body, *key, {token::Alg::kEs256});
        std::lock_guard lock(mutex);
        if (!verified) {
          ++refused;
          return test::ReceiverReply{test::ReceiverReply::Mode::kRespond, 400, "application/json",
                                     R"({"err":"invalid_key"})"};
        }
        const auto* sub = json::get_object(verified->payload, "sub_id");
        const std::string subject = sub != nullptr ? json::serialize(*sub) : "";
        const auto now = Steady::now();
        for (auto& [device, at] : first_seen) {
          if (at == Steady::time_point{} && subject.find(device) != std::string::npos) at = now;
        }
        arrived.notify_all();
        return test::ReceiverReply{test::ReceiverReply::Mode::kRespond, 202, {}, {}};
      },
      dir.path());

  issuer::http::Metrics metrics;
  issuer::http::RouterOptions ro;
  ro.allow_unauthenticated_loopback = true;
  issuer::http::Router router(**service, metrics, ro);
  const auto call = [&](const std::string& target, const std::string& body,
                        const std::string& authorization) {
    issuer::http::Request r;
    r.method = "POST";
    r.target = target;
    r.content_type = "application/json";
    r.authorization = authorization;
    r.body = Bytes(body.begin(), body.end());
    r.peer.loopback = true;
    return router.handle(r);
  };
  auto made = call("/admin/v1/ssf/receivers", R"({"name":"bench"})", "");
  auto made_obj = json::parse_object(made.body);
  if (made.status != 201U || !made_obj) return die("receiver: " + made.body);
  const std::string bearer =
      "Bearer " + std::string(json::get_string(*made_obj, "token").value_or(""));
  auto stream = call("/ssf/streams",
                     R"({"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":")" +
                         rx.url("/events", "localhost") + R"("},"events_requested":[")" +
                         std::string(token::kEventSessionRevoked) + R"("]})",
                     bearer);
  if (stream.status != 201U) return die("stream: " + stream.body);

  issuer::ssf::PushOptions po;
  po.owner = "bench";
  po.workers = config.ssf.push_workers;
  po.ca_file = dir.path() / "ca.crt";
  po.poll_interval = std::chrono::seconds(30);  // only the commit's wake-up starts a delivery
  issuer::ssf::PushDeliverer deliverer(*(*service)->ssf(), clock, po);
  if (auto s = deliverer.start(); !s) return die(s.error().message);
  (*service)->set_on_events_committed([&] { deliverer.notify(); });

  const auto add_device = [&](const std::string& id) {
    issuer::Device d;
    d.id = id;
    d.ek_public_hash = "ek-" + id;
    d.ak_public = {1};
    d.ak_name = {2};
    d.last_verdict = "accept";
    d.created_at = clock.unix_now();
    if (!(*store)->add_device(d)) return false;
    return static_cast<bool>(
        (*store)->add_token({id + "-t0", id, "1", static_cast<std::uint64_t>(first_seen.size()),
                             clock.unix_now(), clock.unix_now() + 300, false}));
  };
  std::vector<double> total_ms;
  std::vector<double> commit_ms;
  for (int i = -10; i < rounds; ++i) {  // the first ten warm up
    const std::string id = "bench-dev-" + std::to_string(i + 10);
    if (!add_device(id)) return die("add_device");
    {
      std::lock_guard lock(mutex);
      first_seen[id] = {};
    }
    const auto t0 = Steady::now();
    if (auto s = (*service)->admin_set_device_state(id, "revoked", "bench"); !s) {
      return die(s.error().message);
    }
    const auto t1 = Steady::now();
    std::unique_lock lock(mutex);
    if (!arrived.wait_for(lock, std::chrono::seconds(30),
                          [&] { return first_seen[id] != Steady::time_point{}; })) {
      return die("no SET about " + id + " arrived");
    }
    if (i < 0) continue;
    total_ms.push_back(std::chrono::duration<double, std::milli>(first_seen[id] - t0).count());
    commit_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  deliverer.stop();
  const auto report = [](const char* what, const std::vector<double>& ms) {
    std::printf("%-44s p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  max %6.2f ms\n", what,
                percentile(ms, 0.50), percentile(ms, 0.90), percentile(ms, 0.99),
                percentile(ms, 1.0));
  };
  std::printf(
      "revocation -> verified SET at a push receiver (SQLite, HTTPS), %d revocations, "
      "%zu refused\n",
      rounds, refused);
  report("revocation transaction (rows + events):", commit_ms);
  report("revocation -> SET verified at the receiver:", total_ms);
  return refused == 0 ? 0 : 1;
}
