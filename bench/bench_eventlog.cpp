// Parse + replay of a ~50 KB crypto-agile firmware event log (sha1+sha256): the arch-linux sample
// log (tests/data/eventlog) with its events repeated until the log exceeds 50 KB.
#include <fstream>
#include <string>

#include <benchmark/benchmark.h>

#include "attest/eventlog/eventlog.h"

namespace {

warden::Bytes build_log() {
  std::ifstream in(std::string(WARDEN_SOURCE_DIR) + "/tests/data/eventlog/event-arch-linux.bin",
                   std::ios::binary);
  warden::Bytes base((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto log = warden::attest::eventlog::parse(base);
  if (!log || log->events.size() < 2) return base;
  const std::size_t first_end = log->events[1].offset;
  warden::Bytes out;
  out.reserve(64 << 10);
  out.insert(out.end(), base.begin(), base.end());
  while (out.size() < 50 * 1024)
    out.insert(out.end(), base.begin() + static_cast<std::ptrdiff_t>(first_end), base.end());
  return out;
}

void BM_EventLogParseReplay(benchmark::State& state) {
  const warden::Bytes log = build_log();
  std::size_t events = 0;
  for (auto _ : state) {
    auto parsed = warden::attest::eventlog::parse(log);
    if (!parsed) state.SkipWithError(parsed.error().message.c_str());
    auto r = warden::attest::eventlog::replay(*parsed);
    benchmark::DoNotOptimize(r);
    events = parsed->events.size();
  }
  state.counters["bytes"] = static_cast<double>(log.size());
  state.counters["events"] = static_cast<double>(events);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(log.size()));
}
BENCHMARK(BM_EventLogParseReplay)->Unit(benchmark::kMicrosecond);

void BM_EventLogDigestCheck(benchmark::State& state) {
  const warden::Bytes log = build_log();
  auto parsed = warden::attest::eventlog::parse(log);
  for (auto _ : state) benchmark::DoNotOptimize(warden::attest::eventlog::check_digests(*parsed));
}
BENCHMARK(BM_EventLogDigestCheck)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
