// Mints and verifications per second for Warden's JWT and CWT (ES256), one core.
#include <benchmark/benchmark.h>

#include "attest/token/cwt.h"
#include "attest/token/dpop.h"
#include "attest/token/jwt.h"
#include "platform/base/clock.h"

namespace {

using namespace warden::token;  // NOLINT(google-build-using-namespace)

constexpr std::int64_t kNow = 1'800'000'000;

struct Setup {
  warden::SystemRandom random;
  EcSigner signer = EcSigner::generate(random, "bench").value();
  KeySet keys = [this] {
    KeySet k;
    k.add(signer.public_jwk());
    return k;
  }();
  Claims claims = [] {
    Claims c;
    c.iss = "https://issuer.warden.test";
    c.sub = "spiffe://warden.test/web";
    c.aud = {"https://api.warden.test"};
    c.iat = kNow;
    c.exp = kNow + 300;
    c.device_id = "dev-1";
    WorkloadSelectors w;
    w.uid = 1000;
    w.systemd_unit = "web.service";
    w.executable_digest = "sha256:ab";
    c.workload = w;
    return c;
  }();
};

Setup& setup() {
  static Setup s;
  return s;
}

void BM_JwtMint(benchmark::State& state) {
  auto& s = setup();
  for (auto _ : state) benchmark::DoNotOptimize(mint_jwt(s.signer, kTypWorkload, s.claims));
  state.SetItemsProcessed(state.iterations());
}

void BM_JwtVerify(benchmark::State& state) {
  auto& s = setup();
  auto token = mint_jwt(s.signer, kTypWorkload, s.claims).value();
  JwtVerifyOptions options;
  options.checks.now = kNow + 1;
  for (auto _ : state) {
    auto v = verify_jwt(token, s.keys, options);
    if (!v) state.SkipWithError("verify failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_CwtMint(benchmark::State& state) {
  auto& s = setup();
  for (auto _ : state) benchmark::DoNotOptimize(mint_cwt(s.signer, s.claims));
  state.SetItemsProcessed(state.iterations());
}

void BM_CwtVerify(benchmark::State& state) {
  auto& s = setup();
  auto token = mint_cwt(s.signer, s.claims).value();
  ClaimChecks checks;
  checks.now = kNow + 1;
  for (auto _ : state) {
    auto v = verify_cwt(token, s.keys, checks);
    if (!v) state.SkipWithError("verify failed");
  }
  state.SetItemsProcessed(state.iterations());
}

// The issuer's share of POST /v1/token besides minting: the proof's embedded JWK becomes a key,
// then its signature and claims are checked.
void BM_ProofVerify(benchmark::State& state) {
  auto& s = setup();
  ProofRequest request{"POST", "https://issuer.warden.test/v1/token", std::nullopt, std::nullopt};
  auto proof = create_proof(s.signer, request, kNow, s.random).value();
  ProofCheck check;
  check.htm = "POST";
  check.htu = "https://issuer.warden.test/v1/token";
  check.now = kNow + 1;
  for (auto _ : state) {
    ReplayCache replay(4, 300);
    if (!verify_proof(proof, check, replay)) state.SkipWithError("verify failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_JwkToKey(benchmark::State& state) {
  auto& s = setup();
  auto json = s.signer.public_jwk().to_json();
  for (auto _ : state) benchmark::DoNotOptimize(Jwk::from_json(json));
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_JwtMint);
BENCHMARK(BM_JwtVerify);
BENCHMARK(BM_CwtMint);
BENCHMARK(BM_CwtVerify);
BENCHMARK(BM_ProofVerify);
BENCHMARK(BM_JwkToKey);

}  // namespace

BENCHMARK_MAIN();
