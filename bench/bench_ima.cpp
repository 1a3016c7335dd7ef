// IMA replay: a 100,000-entry ima-ng binary list, parsed and replayed in the sha1 and sha256
// banks (kernel >= 5.8 rule). Target: under 100 ms on one core (docs/PERFORMANCE.md).
#include <string>

#include <benchmark/benchmark.h>

#include "attest/ima/ima.h"
#include "platform/base/openssl.h"

namespace {

using warden::Bytes;
using warden::ByteWriter;

Bytes make_list(std::size_t n) {
  ByteWriter w;
  for (std::size_t i = 0; i < n; ++i) {
    std::string path = "/usr/lib/x86_64-linux-gnu/lib" + std::to_string(i) + ".so.1";
    Bytes digest = warden::ossl::sha256(warden::to_bytes(path));
    ByteWriter data;
    data.u32le(static_cast<std::uint32_t>(8 + digest.size()))
        .bytes(std::string_view("sha256:"))
        .u8(0)
        .bytes(digest);
    data.u32le(static_cast<std::uint32_t>(path.size() + 1)).bytes(path).u8(0);
    Bytes hash = *warden::ossl::digest(warden::ossl::Hash::kSha1, data.data());
    w.u32le(10).bytes(hash).u32le(6).bytes(std::string_view("ima-ng"));
    w.u32le(static_cast<std::uint32_t>(data.data().size())).bytes(data.data());
  }
  return std::move(w).take();
}

const Bytes& list() {
  static const Bytes l = make_list(100'000);
  return l;
}

void BM_ImaParseAndReplay100k(benchmark::State& state) {
  const Bytes& l = list();
  for (auto _ : state) {
    auto entries = warden::attest::ima::parse_binary(l);
    auto r = warden::attest::ima::replay(*entries, warden::attest::ima::initial_state());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * 100'000);
}
BENCHMARK(BM_ImaParseAndReplay100k)->Unit(benchmark::kMillisecond);

void BM_ImaParse100k(benchmark::State& state) {
  const Bytes& l = list();
  for (auto _ : state) {
    auto entries = warden::attest::ima::parse_binary(l);
    benchmark::DoNotOptimize(entries);
  }
}
BENCHMARK(BM_ImaParse100k)->Unit(benchmark::kMillisecond);

void BM_ImaReplay100k(benchmark::State& state) {
  auto entries = warden::attest::ima::parse_binary(list());
  for (auto _ : state) {
    auto r = warden::attest::ima::replay(*entries, warden::attest::ima::initial_state());
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ImaReplay100k)->Unit(benchmark::kMillisecond);

// Views over the list (no per-entry allocation), as the issuer parses uploads.
void BM_ImaParseView100k(benchmark::State& state) {
  const Bytes& l = list();
  for (auto _ : state) {
    auto entries = warden::attest::ima::parse_binary_view(l);
    benchmark::DoNotOptimize(entries);
  }
}
BENCHMARK(BM_ImaParseView100k)->Unit(benchmark::kMillisecond);

void BM_ImaReplayView100k(benchmark::State& state) {
  auto entries = warden::attest::ima::parse_binary_view(list());
  for (auto _ : state) {
    auto r = warden::attest::ima::replay(*entries, warden::attest::ima::initial_state());
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ImaReplayView100k)->Unit(benchmark::kMillisecond);

// The issuer's path for a quote over sha256 only: views, sha256 bank, template hashes checked.
void BM_ImaIssuerSha256Only100k(benchmark::State& state) {
  const Bytes& l = list();
  warden::attest::ima::ReplayOptions options;
  options.banks = {warden::TpmAlg::kSha256};
  for (auto _ : state) {
    auto entries = warden::attest::ima::parse_binary_view(l);
    auto r =
        warden::attest::ima::replay(*entries, warden::attest::ima::initial_state(options), options);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * 100'000);
}
BENCHMARK(BM_ImaIssuerSha256Only100k)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
