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
#include "platform/base/encoding.h"
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

const char* const kPolledPcrs = "sha256:0-9,10,14";

/// The probe as it was before tpm::StatePoller, kept as the baseline: every poll opens the TCTI
/// and ESYS, reads all PCRs (2 x PCR_Read for 12) and the clock, and closes (Tpm::snapshot).
class SnapshotProbe final : public posture::TpmProbe {
 public:
  SnapshotProbe(warden::tpm::Tpm tpm, warden::PcrSelection selection)
      : tpm_(std::move(tpm)), selection_(std::move(selection)) {}
  warden::Result<Reading> read() override {
    auto snapshot = tpm_.snapshot(selection_);
    if (!snapshot) return warden::fail(std::move(snapshot).error());
    Reading reading;
    for (const auto& pcr : snapshot->pcrs) {
      reading.pcrs[posture::pcr_key(pcr.alg, pcr.index)] = warden::hex_encode(pcr.digest);
    }
    reading.reset_count = snapshot->clock.reset_count;
    reading.restart_count = snapshot->clock.restart_count;
    return reading;
  }

 private:
  warden::tpm::Tpm tpm_;
  warden::PcrSelection selection_;
};

/// Which TPM probe a benchmark polls with (its first argument where it takes one). kUnixSocket:
/// TpmStateProbe on the same swtpm state served over a Unix socket ("swtpm:path=..."), to show
/// what of a poll's cost is loopback TCP (both ends' connection setup runs in the agent's thread).
enum ProbeKind : std::int64_t { kNoTpm = 0, kSnapshot = 1, kStatePoller = 2, kUnixSocket = 3 };

std::unique_ptr<posture::TpmProbe> make_probe(std::int64_t kind, const std::string& tcti) {
  const auto selection = warden::PcrSelection::parse(kPolledPcrs).value();
  if (kind == kSnapshot) return std::make_unique<SnapshotProbe>(warden::tpm::Tpm(tcti), selection);
  if (kind == kStatePoller || kind == kUnixSocket) {
    return std::make_unique<posture::TpmStateProbe>(warden::tpm::Tpm(tcti), selection);
  }
  return nullptr;
}

/// A provisioned swtpm; for kUnixSocket its state is served again by a swtpm on Unix sockets.
struct BenchTpm {
  explicit BenchTpm(std::int64_t kind) : swtpm(warden::test::Swtpm::start()) {
    if (kind != kUnixSocket) {
      tcti = swtpm->tcti();
      return;
    }
    swtpm->kill();
    const fs::path socket = swtpm->dir() / "tpm.sock";
    unix_swtpm = warden::test::ChildProcess::spawn(
        {"swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + (swtpm->dir() / "state").string(),
         "--server", "type=unixio,path=" + socket.string(), "--ctrl",
         "type=unixio,path=" + socket.string() + ".ctrl", "--flags", "not-need-init,startup-clear"},
        {}, swtpm->dir() / "swtpm-unix.log");
    tcti = "swtpm:path=" + socket.string();
    const bool up = warden::test::wait_for(
        [&] { return warden::tpm::Tpm(tcti).probe().has_value(); }, std::chrono::seconds(10));
    if (!up) throw std::runtime_error("swtpm on " + socket.string() + " did not start");
  }
  std::unique_ptr<warden::test::Swtpm> swtpm;
  warden::test::ChildProcess unix_swtpm;
  std::string tcti;
};

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

/// tpm2 PCR extend -> kPcr callback, polling every 100 ms; arg: ProbeKind.
void BM_PcrChangeLatency(benchmark::State& state) {
  auto swtpm = warden::test::Swtpm::start();
  warden::tpm::Tpm tpm(swtpm->tcti());
  auto probe = make_probe(state.range(0), swtpm->tcti());
  Arrivals arrivals;
  posture::MonitorOptions options;
  options.tpm = probe.get();
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
BENCHMARK(BM_PcrChangeLatency)
    ->Arg(kSnapshot)
    ->Arg(kStatePoller)
    ->Iterations(50)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

/// One TpmProbe::read of 12 sha256 PCRs and the clock, the cost of every TPM poll while nothing
/// changes: arg 1 the old per-poll snapshot, arg 2 TpmStateProbe (StatePoller). Counters: TPM
/// commands and TCTI opens per read.
void BM_TpmProbeRead(benchmark::State& state) {
  BenchTpm tpm(state.range(0));
  auto probe = make_probe(state.range(0), tpm.tcti);
  for (auto _ : state) {
    auto reading = probe->read();
    if (!reading) state.SkipWithError(reading.error().message.c_str());
    benchmark::DoNotOptimize(reading);
  }
  if (auto* poller = dynamic_cast<posture::TpmStateProbe*>(probe.get())) {
    const auto stats = poller->stats();
    const auto reads = static_cast<double>(std::max<std::uint64_t>(1, stats.reads));
    state.counters["commands_per_read"] = static_cast<double>(stats.commands) / reads;
    state.counters["opens_per_read"] = static_cast<double>(stats.opens) / reads;
  } else {
    state.counters["commands_per_read"] = 3;  // PCR_Read x 2, ReadClock
    state.counters["opens_per_read"] = 1;
  }
}
BENCHMARK(BM_TpmProbeRead)
    ->Arg(kSnapshot)
    ->Arg(kStatePoller)
    ->Arg(kUnixSocket)
    ->Unit(benchmark::kMicrosecond);

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return secs(usage.ru_utime) + secs(usage.ru_stime);
}

/// Process CPU while only the monitor runs (this thread sleeps): every source on, a cgroupfs
/// stand-in with 200 directories watched. Args: seconds, TPM probe (ProbeKind: 0 no TPM source,
/// 1 the old per-poll snapshot, 2 TpmStateProbe), TPM and IMA poll interval in ms. The
/// snapshot and StatePoller runs alternate so that both see the same machine load.
void BM_IdleCpu(benchmark::State& state) {
  BenchTpm tpm(state.range(1));
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
  auto probe = make_probe(state.range(1), tpm.tcti);
  Arrivals arrivals;
  posture::MonitorOptions options;
  options.cgroupfs_root = cgroupfs;
  options.securityfs_root = dir.path() / "securityfs";
  options.state_dir = dir.path() / "state";
  options.config_file = dir.path() / "agent.toml";
  options.tpm = probe.get();
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
    ->Args({10, kSnapshot, 100})
    ->Args({10, kStatePoller, 100})
    ->Args({10, kSnapshot, 100})
    ->Args({10, kStatePoller, 100})
    ->Args({10, kNoTpm, 100})
    ->Args({10, kUnixSocket, 100})
    ->Args({10, kSnapshot, 200})
    ->Args({10, kStatePoller, 200})
    ->Args({10, kSnapshot, 1000})
    ->Args({10, kStatePoller, 1000})
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
