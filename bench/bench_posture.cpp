// Posture monitor: latency from a change to the callback, and the monitor's idle CPU, against a
// private swtpm and a cgroupfs stand-in (directories this process creates). Run:
// build/bench/bench_posture
#include <sys/resource.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "agent/posture/container_log.h"
#include "agent/posture/posture.h"
#include "agent/posture/tpm_backends.h"
#include "platform/base/log.h"
#include "tests/support/process.h"
#include "tests/support/swtpm.h"

namespace {

namespace fs = std::filesystem;
namespace posture = warden::agent::posture;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// The time each change reached the callback.
class Arrivals {
 public:
  posture::Monitor::Callback callback() {
    return [this](const posture::Change& change) {
      std::lock_guard lock(mutex_);
      last_ = change;
      at_ = Clock::now();
      ++count_;
      cv_.notify_all();
    };
  }
  std::uint64_t count() {
    std::lock_guard lock(mutex_);
    return count_;
  }
  /// Waits for the change after `seen` matching `source`; its arrival time.
  std::optional<Clock::time_point> wait_after(std::uint64_t seen, posture::Source source) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, 5s, [&] { return count_ > seen && last_.source == source; })) {
      return std::nullopt;
    }
    return at_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  posture::Change last_;
  Clock::time_point at_;
  std::uint64_t count_ = 0;
};

void report_percentiles(benchmark::State& state, std::vector<double> ms) {
  if (ms.empty()) return;
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[static_cast<std::size_t>(q * static_cast<double>(ms.size() - 1))];
  };
  state.counters["p50_ms"] = at(0.50);
  state.counters["p99_ms"] = at(0.99);
  state.counters["max_ms"] = ms.back();
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// Container stop -> kRevokeWorkload callback; with arg 1 the stop is first measured (CEL append
/// + extend of the container PCR on swtpm), as the agent does.
void BM_ContainerStopLatency(benchmark::State& state) {
  const bool measured = state.range(0) == 1;
  warden::test::TempDir dir("bench-posture");
  const fs::path cgroupfs = dir.path() / "cgroup";
  fs::create_directories(cgroupfs / "system.slice");
  std::ofstream(cgroupfs / "cgroup.controllers") << "cpu\n";
  fs::create_directories(dir.path() / "state");
  std::unique_ptr<warden::test::Swtpm> swtpm;
  std::unique_ptr<posture::TpmPcrExtender> extender;
  std::unique_ptr<posture::ContainerEventLog> log;
  if (measured) {
    swtpm = warden::test::Swtpm::start();
    extender = std::make_unique<posture::TpmPcrExtender>(warden::tpm::Tpm(swtpm->tcti()));
    log = posture::ContainerEventLog::open(
              {.path = dir.path() / "state" / "containers.cel", .pcr = 14}, *extender)
              .value();
  }
  Arrivals arrivals;
  posture::MonitorOptions options;
  options.cgroupfs_root = cgroupfs;
  options.state_dir = dir.path() / "state";
  options.container_log = log.get();
  auto monitor = posture::Monitor::start(options, arrivals.callback()).value();
  std::vector<double> samples;
  unsigned n = 0;
  for (auto _ : state) {
    char id[65];
    std::snprintf(id, sizeof id, "%064x", ++n);
    const fs::path scope = cgroupfs / "system.slice" / ("docker-" + std::string(id) + ".scope");
    auto seen = arrivals.count();
    fs::create_directory(scope);
    if (!arrivals.wait_after(seen, posture::Source::kContainer)) state.SkipWithError("no start");
    seen = arrivals.count();
    const auto stopped = Clock::now();
    fs::remove(scope);
    auto at = arrivals.wait_after(seen, posture::Source::kContainer);
    if (!at) {
      state.SkipWithError("no stop");
      break;
    }
    samples.push_back(ms_between(stopped, *at));
  }
  report_percentiles(state, samples);
}
BENCHMARK(BM_ContainerStopLatency)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(300)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

/// tpm2 PCR extend -> kPcr callback, polling every 100 ms.
void BM_PcrChangeLatency(benchmark::State& state) {
  auto swtpm = warden::test::Swtpm::start();
  warden::tpm::Tpm tpm(swtpm->tcti());
  posture::TpmStateProbe probe(tpm, warden::PcrSelection::parse("sha256:0-9").value());
  Arrivals arrivals;
  posture::MonitorOptions options;
  options.tpm = &probe;
  options.pcr_poll_interval = 100ms;
  auto monitor = posture::Monitor::start(options, arrivals.callback()).value();
  std::vector<double> samples;
  const warden::Bytes digest(32, 7);
  for (auto _ : state) {
    const auto seen = arrivals.count();
    if (!tpm.extend_pcr(5, warden::TpmAlg::kSha256, digest)) state.SkipWithError("extend");
    const auto extended = Clock::now();
    auto at = arrivals.wait_after(seen, posture::Source::kPcr);
    if (!at) {
      state.SkipWithError("no change");
      break;
    }
    samples.push_back(ms_between(extended, *at));
    monitor->rebaseline();
  }
  report_percentiles(state, samples);
}
BENCHMARK(BM_PcrChangeLatency)->Iterations(50)->Unit(benchmark::kMillisecond)->UseRealTime();

/// One TpmStateProbe::read (connect, PCR_Read of 12 sha256 PCRs, ReadClock, close): the cost of
/// every TPM poll.
void BM_TpmProbeRead(benchmark::State& state) {
  auto swtpm = warden::test::Swtpm::start();
  posture::TpmStateProbe probe(warden::tpm::Tpm(swtpm->tcti()),
                               warden::PcrSelection::parse("sha256:0-9,10,14").value());
  for (auto _ : state) {
    auto reading = probe.read();
    if (!reading) state.SkipWithError(reading.error().message.c_str());
    benchmark::DoNotOptimize(reading);
  }
}
BENCHMARK(BM_TpmProbeRead)->Unit(benchmark::kMicrosecond);

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return secs(usage.ru_utime) + secs(usage.ru_stime);
}

/// Process CPU while only the monitor runs (this thread sleeps): every source on, a cgroupfs
/// stand-in with 200 directories watched. Args: seconds, TPM source on (1) or off (0), TPM and
/// IMA poll interval in ms.
void BM_IdleCpu(benchmark::State& state) {
  auto swtpm = warden::test::Swtpm::start();
  warden::test::TempDir dir("bench-posture");
  const fs::path cgroupfs = dir.path() / "cgroup";
  for (int i = 0; i < 200; ++i) {
    fs::create_directories(cgroupfs / "system.slice" / ("unit" + std::to_string(i) + ".service"));
  }
  std::ofstream(cgroupfs / "cgroup.controllers") << "cpu\n";
  fs::create_directories(dir.path() / "securityfs" / "ima");
  std::ofstream(dir.path() / "securityfs" / "ima" / "runtime_measurements_count") << "1234\n";
  fs::create_directories(dir.path() / "state");
  std::ofstream(dir.path() / "agent.toml") << "[agent]\n";
  posture::TpmStateProbe probe(warden::tpm::Tpm(swtpm->tcti()),
                               warden::PcrSelection::parse("sha256:0-9,10,14").value());
  Arrivals arrivals;
  posture::MonitorOptions options;
  options.cgroupfs_root = cgroupfs;
  options.securityfs_root = dir.path() / "securityfs";
  options.state_dir = dir.path() / "state";
  options.config_file = dir.path() / "agent.toml";
  options.tpm = state.range(1) == 1 ? &probe : nullptr;
  options.pcr_poll_interval = std::chrono::milliseconds(state.range(2));
  options.ima_poll_interval = std::chrono::milliseconds(state.range(2));
  const auto seconds = state.range(0);
  for (auto _ : state) {
    auto monitor = posture::Monitor::start(options, arrivals.callback()).value();
    const double cpu0 = cpu_seconds();
    const auto wall0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    const double cpu = cpu_seconds() - cpu0;
    const double wall = std::chrono::duration<double>(Clock::now() - wall0).count();
    state.counters["cpu_percent_of_core"] = 100.0 * cpu / wall;
    state.counters["tpm_polls"] = static_cast<double>(monitor->stats().tpm_polls);
    state.counters["cpu_ms_per_tpm_poll"] =
        1000.0 * cpu / static_cast<double>(std::max<std::uint64_t>(1, monitor->stats().tpm_polls));
    state.counters["ima_polls"] = static_cast<double>(monitor->stats().ima_polls);
    state.counters["changes"] = static_cast<double>(arrivals.count());
  }
}
BENCHMARK(BM_IdleCpu)
    ->Args({10, 1, 100})
    ->Args({10, 0, 100})
    ->Args({10, 1, 200})
    ->Args({10, 1, 1000})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  warden::log::init("bench_posture", "error");
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
