// TPM operation latency against a private swtpm (each iteration opens and closes the TCTI, as
// the agent does). Run: build/bench/bench_tpm
#include <cstdio>
#include <memory>
#include <stdexcept>

#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include "attest/token/signer.h"
#include "attest/tpm_policy/authorized_policy.h"
#include "platform/base/openssl.h"
#include "platform/tpm/tpm.h"
#include "tests/support/swtpm.h"

namespace {

using warden::Bytes;
using warden::PcrSelection;
namespace tp = warden::attest::tpm_policy;

/// A sealing authority's key, a secret sealed to it and an approval of the current PCR 16.
struct Authorized {
  std::shared_ptr<EVP_PKEY> key{EVP_EC_gen("P-256"), EVP_PKEY_free};
  warden::token::EcSigner signer = warden::token::EcSigner::from_key(key).value();
  Bytes authority = tp::authority_public_area(key.get()).value();
  Bytes ref = tp::epoch_policy_ref(1);
  PcrSelection selection = PcrSelection::parse("sha256:16").value();
  warden::tpm::SealedBlob sealed;
  warden::tpm::PolicyApproval approval;

  explicit Authorized(const warden::tpm::Tpm& tpm) {
    sealed = tpm.seal_authorized(authority, ref, Bytes(32, 5)).value();
    warden::attest::PcrValues values;
    values.init_bank(warden::TpmAlg::kSha256);
    const auto current = tpm.read_pcrs(selection).value();
    for (const auto& v : current) {
      if (!values.set(v.alg, v.index, v.digest)) throw std::runtime_error("PCR value");
    }
    auto approved = tp::approve(selection, values, ref, signer).value();
    approval = {approved.selection, approved.approved_policy, approved.policy_ref,
                approved.signature, std::nullopt};
  }
};

struct Fixture {
  std::unique_ptr<warden::test::Swtpm> swtpm = warden::test::Swtpm::start();
  warden::tpm::Tpm tpm{swtpm->tcti()};
  warden::tpm::AkBlob ak = tpm.create_ak().value();
  PcrSelection boot = PcrSelection::parse("sha256:0,1,2,3,4,5,6,7,10").value();
  warden::tpm::BindingKey binding = tpm.create_binding_key(ak, Bytes(32, 1)).value();
  warden::tpm::SealedBlob sealed =
      tpm.seal(PcrSelection::parse("sha256:16").value(), Bytes(32, 2)).value();
  Authorized authorized{tpm};
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_Quote(benchmark::State& state) {
  auto& f = fixture();
  const Bytes nonce(32, 3);
  for (auto _ : state) {
    auto quote = f.tpm.quote(f.ak, f.boot, nonce);
    if (!quote) state.SkipWithError(quote.error().message.c_str());
    benchmark::DoNotOptimize(quote);
  }
}
BENCHMARK(BM_Quote)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Sign(benchmark::State& state) {
  auto& f = fixture();
  const Bytes digest = warden::ossl::sha256(Bytes(10, 4));
  for (auto _ : state) {
    auto sig = f.tpm.sign(f.binding, digest);
    if (!sig) state.SkipWithError(sig.error().message.c_str());
    benchmark::DoNotOptimize(sig);
  }
}
BENCHMARK(BM_Sign)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Unseal(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    auto secret = f.tpm.unseal(f.sealed);
    if (!secret) state.SkipWithError(secret.error().message.c_str());
    benchmark::DoNotOptimize(secret);
  }
}
BENCHMARK(BM_Unseal)->Unit(benchmark::kMillisecond)->UseRealTime();

// What an approval adds to an unseal: LoadExternal, VerifySignature and PolicyAuthorize.
void BM_UnsealAuthorized(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    auto secret = f.tpm.unseal_authorized(f.authorized.sealed, f.authorized.approval);
    if (!secret) state.SkipWithError(secret.error().message.c_str());
    benchmark::DoNotOptimize(secret);
  }
}
BENCHMARK(BM_UnsealAuthorized)->Unit(benchmark::kMillisecond)->UseRealTime();

// The issuer's side of an update: PolicyPCR digest and an ES256 signature, in software.
void BM_ApprovePolicy(benchmark::State& state) {
  auto& a = fixture().authorized;
  warden::attest::PcrValues values;
  values.init_bank(warden::TpmAlg::kSha256);
  const auto boot = PcrSelection::parse("sha256:0-7").value();
  for (auto _ : state) {
    auto approved = tp::approve(boot, values, a.ref, a.signer);
    if (!approved) state.SkipWithError(approved.error().message.c_str());
    benchmark::DoNotOptimize(approved);
  }
}
BENCHMARK(BM_ApprovePolicy)->Unit(benchmark::kMicrosecond);

void BM_PcrRead24(benchmark::State& state) {
  auto& f = fixture();
  const auto all = PcrSelection::parse("sha256:0-23").value();
  for (auto _ : state) {
    auto values = f.tpm.read_pcrs(all);
    if (!values) state.SkipWithError(values.error().message.c_str());
    benchmark::DoNotOptimize(values);
  }
}
BENCHMARK(BM_PcrRead24)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_CreateAk(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    auto ak = f.tpm.create_ak();
    if (!ak) state.SkipWithError(ak.error().message.c_str());
    benchmark::DoNotOptimize(ak);
  }
}
BENCHMARK(BM_CreateAk)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);

}  // namespace

BENCHMARK_MAIN();
