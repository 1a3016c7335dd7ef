// Real podman containers against a real wardend (swtpm, warden-issuer), set up as the container
// e2e test does; each iteration is a real `podman run -d`, so this is a measured program rather
// than a Google Benchmark loop. It reports:
//   - detection latency: the runtime creating the container's cgroup (inotify IN_CREATE on
//     <cgroupfs>/memory/libpod_parent, the hierarchy wardend watches on this host) to the record
//     naming the container landing in containers.cel (inotify on the state directory), p50/p99
//     over N sequential starts; also from invoking `podman run` to the record;
//   - wardend's CPU time (utime+stime from /proc/PID/stat) over a fixed interval with no
//     container running and with the N containers running, and per detected start.
//
//   bench_containers [--containers N] [--interval-s S]     (defaults 100 and 10)
// Needs root, podman and runc (scripts/bootstrap), and a kernel that can run containers.
#include <sys/inotify.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <poll.h>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/e2e/agent_fixture.h"

namespace warden {
namespace {
using namespace e2e;  // NOLINT(google-build-using-namespace): the fixture's helpers
using Clock = std::chrono::steady_clock;

constexpr const char* kImage = "localhost/warden-e2e-client:1";
int g_containers = 100;
int g_interval_s = 10;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

/// utime+stime of `pid` in seconds (/proc/PID/stat fields 14 and 15, after the parenthesised comm).
double cpu_seconds(pid_t pid) {
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// Timestamps cgroup creations under libpod_parent and every growth of containers.cel (an
/// append-only log), from one inotify descriptor on a thread of its own. A record is dated by the
/// first growth that covered its bytes, so a record written before `podman run` returns counts.
class Stopwatch {
 public:
  Stopwatch(const std::filesystem::path& cgroup_parent, const std::filesystem::path& state_dir)
      : cel_(state_dir / "containers.cel") {
    fd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    cgroup_wd_ = ::inotify_add_watch(fd_, cgroup_parent.c_str(), IN_CREATE | IN_ONLYDIR);
    state_wd_ = ::inotify_add_watch(fd_, state_dir.c_str(), IN_MODIFY | IN_CREATE | IN_MOVED_TO);
    std::error_code ec;
    growth_.emplace_back(Clock::now(), std::filesystem::file_size(cel_, ec));
    thread_ = std::thread([this] { run(); });
  }
  ~Stopwatch() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  Stopwatch(const Stopwatch&) = delete;
  Stopwatch& operator=(const Stopwatch&) = delete;
  bool ok() const { return fd_ >= 0 && cgroup_wd_ >= 0 && state_wd_ >= 0; }

  /// When the cgroup of container `id` was created and when its record reached the log.
  std::optional<std::pair<Clock::time_point, Clock::time_point>> times(const std::string& id) {
    const std::string log = slurp(cel_);
    const auto at = log.find(id);
    if (at == std::string::npos) return std::nullopt;
    std::lock_guard lock(mutex_);
    const auto c = created_.find(id);
    if (c == created_.end()) return std::nullopt;
    for (const auto& [when, size] : growth_) {
      if (size >= at + id.size()) return std::pair{c->second, when};
    }
    return std::nullopt;
  }

 private:
  void run() {
    alignas(inotify_event) char buf[4096];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const auto n = ::read(fd_, buf, sizeof(buf));
      const auto now = Clock::now();
      bool cel_changed = false;
      for (ssize_t off = 0; n > 0 && off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);  // NOLINT: kernel ABI
        const std::string name = ev->len > 0 ? std::string(ev->name) : std::string();
        if (ev->wd == cgroup_wd_ && name.rfind("libpod-", 0) == 0) {
          std::lock_guard lock(mutex_);
          created_.emplace(name.substr(7), now);
        }
        if (ev->wd == state_wd_ && name == "containers.cel") cel_changed = true;
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
      if (!cel_changed) continue;
      std::error_code ec;
      const auto size = std::filesystem::file_size(cel_, ec);
      std::lock_guard lock(mutex_);
      if (!ec) growth_.emplace_back(now, size);
    }
  }

  std::filesystem::path cel_;
  int fd_ = -1;
  int cgroup_wd_ = -1;
  int state_wd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;  // guards the two below
  std::map<std::string, Clock::time_point> created_;
  std::vector<std::pair<Clock::time_point, std::uintmax_t>> growth_;
  std::thread thread_;
};

class ContainerBench : public AgentE2ETest {
 protected:
  void SetUp() override {
    AgentE2ETest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(test::run_command({"podman", "--version"}).exit_code, 0)
        << "podman is not installed (scripts/bootstrap installs it)";
    auto image =
        test::run_command({std::string(WARDEN_SOURCE_DIR) + "/scripts/container-image", kImage});
    ASSERT_EQ(image.exit_code, 0) << image.out;
    auto probe = podman({"run", "--rm", kImage, "/usr/bin/sleep", "0"});
    ASSERT_EQ(probe.exit_code, 0) << "this kernel cannot run containers: " << probe.out;
    write_agent_config("/sys/fs/cgroup");
  }

  void TearDown() override {
    if (!started_.empty()) {
      std::vector<std::string> rm{"rm", "-f", "-t", "0"};
      rm.insert(rm.end(), started_.begin(), started_.end());
      podman(rm, std::chrono::seconds(600));
    }
    AgentE2ETest::TearDown();
  }

  // The sandbox refuses podman's default RLIMIT_NOFILE/NPROC.
  static test::CommandOutput podman(std::vector<std::string> args,
                                    std::chrono::seconds timeout = std::chrono::seconds(60)) {
    std::vector<std::string> argv{"podman"};
    if (args[0] == "run") {
      args.insert(args.begin() + 1,
                  {"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_command(argv, {}, timeout);
  }

  double agent_cpu_over(std::chrono::seconds interval) {
    const double before = cpu_seconds(agent_.pid());
    std::this_thread::sleep_for(interval);
    return cpu_seconds(agent_.pid()) - before;
  }

  std::vector<std::string> started_;
};

TEST_F(ContainerBench, DetectionLatencyAndAgentCpu) {
  start_agent();
  const std::filesystem::path parent = "/sys/fs/cgroup/memory/libpod_parent";
  std::filesystem::create_directories(parent);  // podman creates it on first use; we watch it
  Stopwatch watch(parent, dir_.path() / "state");
  ASSERT_TRUE(watch.ok());
  const auto interval = std::chrono::seconds(g_interval_s);

  const double idle_cpu = agent_cpu_over(interval);

  std::vector<double> detect_ms;
  std::vector<double> run_ms;
  const double cpu_before_starts = cpu_seconds(agent_.pid());
  const std::string prefix = "warden-bench-" + std::to_string(::getpid()) + "-";
  for (int i = 0; i < g_containers; ++i) {
    const std::string name = prefix + std::to_string(i);
    started_.push_back(name);
    const auto invoked = Clock::now();
    auto out = podman({"run", "-d", "--name", name, kImage, "/usr/bin/sleep", "3600"});
    ASSERT_EQ(out.exit_code, 0) << out.out;
    const auto id = out.out.substr(0, out.out.find('\n'));
    ASSERT_EQ(id.size(), 64U) << out.out;
    std::optional<std::pair<Clock::time_point, Clock::time_point>> t;
    ASSERT_TRUE(
        test::wait_for([&] { return (t = watch.times(id)).has_value(); }, std::chrono::seconds(30)))
        << "container " << i << " not recorded\n"
        << agent_log();
    detect_ms.push_back(ms_between(t->first, t->second));
    run_ms.push_back(ms_between(invoked, t->second));
  }
  const double start_cpu = cpu_seconds(agent_.pid()) - cpu_before_starts;

  const double busy_cpu = agent_cpu_over(interval);
  const auto listed = podman({"ps", "-q"});
  const auto running = std::count(listed.out.begin(), listed.out.end(), '\n');
  ASSERT_TRUE(agent_.running()) << agent_log();

  std::printf("containers: %d sequential podman starts (runc, cgroupfs manager)\n", g_containers);
  std::printf("detection, cgroup created -> CEL record: p50 %.1f ms  p99 %.1f ms  max %.1f ms\n",
              percentile(detect_ms, 0.5), percentile(detect_ms, 0.99), percentile(detect_ms, 1.0));
  std::printf("podman run invoked -> CEL record:        p50 %.1f ms  p99 %.1f ms\n",
              percentile(run_ms, 0.5), percentile(run_ms, 0.99));
  std::printf("wardend CPU per detected start: %.2f ms\n", 1000.0 * start_cpu / g_containers);
  std::printf("wardend CPU over %d s: %.3f s with 0 containers, %.3f s with %ld running\n",
              g_interval_s, idle_cpu, busy_cpu, static_cast<long>(running));
}

}  // namespace
}  // namespace warden

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--containers") warden::g_containers = std::max(1, std::atoi(argv[++i]));
    if (arg == "--interval-s") warden::g_interval_s = std::max(1, std::atoi(argv[++i]));
  }
  return RUN_ALL_TESTS();
}
