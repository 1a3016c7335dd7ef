#include <sys/stat.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "agent/posture/container_log.h"
#include "agent/posture/image_lookup.h"
#include "agent/posture/posture.h"
#include "agent/posture/tpm_backends.h"
#include "attest/cel/cel.h"
#include "attest/pcr_values.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/tpm/tpm.h"
#include "tests/support/process.h"
#include "tests/support/swtpm.h"

namespace warden::agent::posture {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::TempDir;

constexpr auto kDeadline = 5s;
const std::string kDockerId(64, 'a');
const std::string kPodmanId = std::string(32, 'b') + std::string(32, 'c');
const std::string kKubeId = std::string(64, 'd');

/// Collects changes from the monitor thread; tests wait on a predicate with a deadline.
class Changes {
 public:
  Monitor::Callback callback() {
    return [this](const Change& change) {
      std::lock_guard lock(mutex_);
      changes_.push_back(change);
      cv_.notify_all();
    };
  }
  /// The first change (after `from`) matching `pred`, waiting up to kDeadline.
  template <class Pred>
  std::optional<Change> wait(Pred pred, std::size_t from = 0) {
    std::unique_lock lock(mutex_);
    std::optional<Change> found;
    cv_.wait_for(lock, kDeadline, [&] {
      for (std::size_t i = from; i < changes_.size(); ++i) {
        if (pred(changes_[i])) {
          found = changes_[i];
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::optional<Change> wait_source(Source source, std::size_t from = 0) {
    return wait([&](const Change& c) { return c.source == source; }, from);
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return changes_.size();
  }
  std::size_t count(Source source) {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(
        changes_.begin(), changes_.end(), [&](const Change& c) { return c.source == source; }));
  }
  std::vector<Change> all() {
    std::lock_guard lock(mutex_);
    return changes_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Change> changes_;
};

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

void write_atomic(const fs::path& path, const std::string& text) {
  ASSERT_TRUE(write_file_atomic(
      path, ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), 0600));
}

class PostureMonitor : public test::SwtpmTest {
 protected:
  void SetUp() override {
    SwtpmTest::SetUp();
    fs::create_directories(cgroupfs_);
    fs::create_directories(state_);
    fs::create_directories(etc_);
  }

  tpm::Tpm tpm() const { return tpm::Tpm(tpm_->tcti()); }

  MonitorOptions monitor_options() {
    MonitorOptions o;
    o.cgroupfs_root = cgroupfs_;
    o.state_dir = state_;
    o.pcr_poll_interval = 100ms;
    o.ima_poll_interval = 100ms;
    return o;
  }

  std::unique_ptr<Monitor> start(MonitorOptions o) {
    auto monitor = Monitor::start(std::move(o), changes_.callback());
    EXPECT_TRUE(monitor) << monitor.error().message;
    return monitor ? std::move(*monitor) : nullptr;
  }

  void extend(unsigned pcr, char fill) {
    auto out = test::run_command(
        {"tpm2_pcrextend", std::to_string(pcr) + ":sha256=" + std::string(64, fill)},
        tpm_->tools_env());
    ASSERT_EQ(out.exit_code, 0) << out.out;
  }

  TempDir dir_{"warden-posture"};
  fs::path cgroupfs_ = dir_.path() / "cgroup";
  fs::path state_ = dir_.path() / "state";
  fs::path etc_ = dir_.path() / "etc";
  Changes changes_;
};

TEST_F(PostureMonitor, ContainerStartIsLoggedAndStopRevokesTheWorkload) {
  write_text(cgroupfs_ / "cgroup.controllers", "cpu memory pids\n");
  TpmPcrExtender extender(tpm());
  auto log = ContainerEventLog::open({.path = state_ / "containers.cel", .pcr = 14}, extender);
  ASSERT_TRUE(log) << log.error().message;
  // What dockerd writes when it creates the container, before starting it.
  const fs::path docker_root = dir_.path() / "docker";
  fs::create_directories(docker_root / "containers" / kDockerId);
  write_text(docker_root / "containers" / kDockerId / "config.v2.json",
             R"({"ID":")" + kDockerId + R"(","Image":"sha256:)" + std::string(64, 'e') +
                 R"(","Config":{"Image":"nginx:1.25","Env":[]}})");
  auto o = monitor_options();
  o.container_log = log->get();
  o.image_lookup = docker_image_lookup(docker_root);
  auto monitor = start(o);
  ASSERT_TRUE(monitor);

  const fs::path docker = cgroupfs_ / "system.slice" / ("docker-" + kDockerId + ".scope");
  fs::create_directories(docker);
  auto started = changes_.wait([](const Change& c) { return c.workload == kDockerId; });
  ASSERT_TRUE(started);
  EXPECT_EQ(started->source, Source::kContainer);
  EXPECT_EQ(started->action, Action::kNone);
  EXPECT_EQ(started->runtime, "docker");
  EXPECT_EQ(started->cgroup_path, "system.slice/docker-" + kDockerId + ".scope");

  // Rootless podman nests its scope deep under the user manager.
  const fs::path podman = cgroupfs_ / "user.slice" / "user-1000.slice" / "user@1000.service" /
                          "user.slice" / ("libpod-" + kPodmanId + ".scope");
  fs::create_directories(podman / "container");  // the container's own sub-cgroup is not one
  auto podman_started = changes_.wait([](const Change& c) { return c.workload == kPodmanId; });
  ASSERT_TRUE(podman_started);
  EXPECT_EQ(podman_started->runtime, "podman");

  fs::remove(docker);
  auto stopped = changes_.wait([](const Change& c) { return c.action == Action::kRevokeWorkload; });
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->source, Source::kContainer);
  EXPECT_EQ(stopped->workload, kDockerId);
  EXPECT_EQ(stopped->subject, kDockerId);

  // The stop is reported first and measured right after.
  ASSERT_TRUE(
      test::wait_for([&] { return monitor->stats().container_log_appends == 3; }, kDeadline));
  // The log on disk replays to the container PCR.
  auto bytes = read_file(state_ / "containers.cel");
  ASSERT_TRUE(bytes);
  auto records = attest::cel::decode(*bytes);
  ASSERT_TRUE(records) << records.error().message;
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[0].content.container_id, kDockerId);
  EXPECT_EQ((*records)[0].content.cgroup_path, "/system.slice/docker-" + kDockerId + ".scope");
  EXPECT_EQ((*records)[0].content.image_ref, "nginx:1.25");
  EXPECT_EQ((*records)[0].content.image_digest, "sha256:" + std::string(64, 'e'));
  EXPECT_EQ((*records)[2].content.image_ref, "nginx:1.25");  // the stop names the same image
  EXPECT_EQ((*records)[1].content.image_ref, "");            // podman: not exposed here
  EXPECT_EQ((*records)[2].content.event, attest::cel::ContainerEvent::kStop);
  attest::PcrValues zero;
  zero.init_bank(TpmAlg::kSha256);
  auto replayed = attest::cel::replay(*records, zero, {.pcr = 14});
  ASSERT_TRUE(replayed);
  EXPECT_TRUE(replayed->problems.empty());
  auto pcr = extender.read(14, TpmAlg::kSha256);
  ASSERT_TRUE(pcr);
  EXPECT_EQ(hex_encode(*pcr), hex_encode(*replayed->pcrs.get(TpmAlg::kSha256, 14)));
  EXPECT_NE(hex_encode(*pcr), std::string(64, '0'));
  EXPECT_EQ(monitor->stats().containers_running, 1u);
  // Writing the log is the agent's own doing, never tampering.
  EXPECT_EQ(changes_.count(Source::kStateFile), 0u);
}

TEST_F(PostureMonitor, CgroupV1ContainerIsSeenOnceAcrossHierarchies) {
  fs::create_directories(cgroupfs_ / "memory");
  fs::create_directories(cgroupfs_ / "pids");
  auto monitor = start(monitor_options());
  ASSERT_TRUE(monitor);
  fs::create_directories(cgroupfs_ / "pids" / "docker" / kDockerId);
  fs::create_directories(cgroupfs_ / "memory" / "docker" / kDockerId);
  fs::create_directories(cgroupfs_ / "memory" / "kubepods" / "burstable" /
                         "pod0b6e5c4d-1111-2222-3333-444455556666" / kKubeId);
  auto docker = changes_.wait([](const Change& c) { return c.workload == kDockerId; });
  ASSERT_TRUE(docker);
  EXPECT_EQ(docker->runtime, "docker");
  auto kube = changes_.wait([](const Change& c) { return c.workload == kKubeId; });
  ASSERT_TRUE(kube);
  EXPECT_EQ(kube->runtime, "kubepods");
  fs::remove_all(cgroupfs_ / "memory" / "kubepods");
  auto stopped = changes_.wait([](const Change& c) { return c.action == Action::kRevokeWorkload; });
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->workload, kKubeId);
  EXPECT_EQ(changes_.count(Source::kContainer), 3u);
}

TEST_F(PostureMonitor, ContainersRunningAtStartAreLoggedOnceAcrossRestarts) {
  write_text(cgroupfs_ / "cgroup.controllers", "");
  fs::create_directories(cgroupfs_ / "system.slice" / ("docker-" + kDockerId + ".scope"));
  TpmPcrExtender extender(tpm());
  {
    auto log = ContainerEventLog::open({.path = state_ / "containers.cel", .pcr = 14}, extender);
    ASSERT_TRUE(log);
    auto o = monitor_options();
    o.container_log = log->get();
    auto monitor = start(o);
    ASSERT_TRUE(changes_.wait([](const Change& c) { return c.workload == kDockerId; }));
  }
  // The agent restarts: the log replays to the PCR and already lists the container.
  auto log = ContainerEventLog::open({.path = state_ / "containers.cel", .pcr = 14}, extender);
  ASSERT_TRUE(log);
  EXPECT_EQ((*log)->records().size(), 1u);
  auto o = monitor_options();
  o.container_log = log->get();
  auto monitor = start(o);
  fs::remove(cgroupfs_ / "system.slice" / ("docker-" + kDockerId + ".scope"));
  ASSERT_TRUE(changes_.wait([](const Change& c) { return c.action == Action::kRevokeWorkload; }));
  ASSERT_TRUE(test::wait_for([&] { return (*log)->records().size() == 2; }, kDeadline));
  EXPECT_EQ(changes_.count(Source::kContainer), 2u);
}

TEST_F(PostureMonitor, ContainerGoneWhileTheAgentWasDownIsLoggedAsStopped) {
  write_text(cgroupfs_ / "cgroup.controllers", "");
  const fs::path scope = cgroupfs_ / "system.slice" / ("crio-" + kDockerId + ".scope");
  fs::create_directories(scope);
  TpmPcrExtender extender(tpm());
  {
    auto log = ContainerEventLog::open({.path = state_ / "containers.cel", .pcr = 14}, extender);
    ASSERT_TRUE(log);
    auto o = monitor_options();
    o.container_log = log->get();
    auto monitor = start(o);
    ASSERT_TRUE(changes_.wait([](const Change& c) { return c.runtime == "cri-o"; }));
    // The start must be in the log before the agent "goes down".
    ASSERT_TRUE(test::wait_for([&] { return (*log)->records().size() == 1; }, kDeadline));
  }
  fs::remove(scope);
  auto log = ContainerEventLog::open({.path = state_ / "containers.cel", .pcr = 14}, extender);
  ASSERT_TRUE(log);
  auto o = monitor_options();
  o.container_log = log->get();
  auto monitor = start(o);
  auto stopped = changes_.wait([](const Change& c) { return c.action == Action::kRevokeWorkload; });
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->workload, kDockerId);
  EXPECT_EQ(stopped->cgroup_path, "system.slice/crio-" + kDockerId + ".scope");
  ASSERT_TRUE(test::wait_for([&] { return (*log)->records().size() == 2; }, kDeadline));
  EXPECT_TRUE((*log)->running().empty());
}

TEST_F(PostureMonitor, CgroupWatchLimitIsCounted) {
  write_text(cgroupfs_ / "cgroup.controllers", "");
  fs::create_directories(cgroupfs_ / "a.slice" / "b.slice" / "c.slice");
  auto o = monitor_options();
  o.max_cgroup_watches = 2;
  auto monitor = start(o);
  ASSERT_TRUE(monitor);
  EXPECT_EQ(monitor->stats().cgroup_watches, 2u);
  EXPECT_GE(monitor->stats().cgroup_watch_limit_hits, 1u);
}

TEST_F(PostureMonitor, ContainerLogRefusesResettablePcrs) {
  TpmPcrExtender extender(tpm());
  for (unsigned pcr : {16u, 23u}) {
    auto log = ContainerEventLog::open({.path = state_ / "c.cel", .pcr = pcr}, extender);
    ASSERT_FALSE(log);
    EXPECT_NE(log.error().message.find("reset"), std::string::npos) << log.error().message;
  }
  auto allowed = ContainerEventLog::open(
      {.path = state_ / "c.cel", .pcr = 16, .allow_resettable_pcr = true}, extender);
  EXPECT_TRUE(allowed);
}

TEST_F(PostureMonitor, NewImaEntriesAskForReattestation) {
  const fs::path securityfs = dir_.path() / "securityfs";
  fs::create_directories(securityfs / "ima");
  write_text(securityfs / "ima" / "runtime_measurements_count", "41\n");
  auto o = monitor_options();
  o.securityfs_root = securityfs;
  auto monitor = start(o);
  ASSERT_TRUE(monitor);
  write_text(securityfs / "ima" / "runtime_measurements_count", "44\n");
  auto change = changes_.wait_source(Source::kIma);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->action, Action::kReattest);
  EXPECT_EQ(change->old_value, "41");
  EXPECT_EQ(change->new_value, "44");
}

// With the TPM polled at the same interval, IMA rides on the TPM's timer: still polled each time.
TEST_F(PostureMonitor, ImaPolledOnTheTpmTimerStillSeesNewEntries) {
  const fs::path securityfs = dir_.path() / "securityfs";
  fs::create_directories(securityfs / "ima");
  write_text(securityfs / "ima" / "runtime_measurements_count", "7\n");
  auto selection = PcrSelection::parse("sha256:0-9");
  ASSERT_TRUE(selection);
  TpmStateProbe probe(tpm(), *selection);
  auto o = monitor_options();
  o.securityfs_root = securityfs;
  o.tpm = &probe;
  auto monitor = start(o);
  ASSERT_TRUE(monitor);
  ASSERT_TRUE(test::wait_for([&] { return monitor->stats().ima_polls >= 3; }, kDeadline));
  write_text(securityfs / "ima" / "runtime_measurements_count", "8\n");
  auto change = changes_.wait_source(Source::kIma);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->new_value, "8");
  const auto stats = monitor->stats();
  EXPECT_LE(stats.ima_polls, stats.tpm_polls + 1);
  EXPECT_GE(stats.ima_polls + 1, stats.tpm_polls);
}

TEST_F(PostureMonitor, BootPcrExtendRevokesEverythingWithinThePollInterval) {
  auto selection = PcrSelection::parse("sha256:0-9");
  ASSERT_TRUE(selection);
  TpmStateProbe probe(tpm(), *selection);
  auto o = monitor_options();
  o.tpm = &probe;
  auto monitor = start(o);
  ASSERT_TRUE(monitor);
  extend(4, '4');
  auto change = changes_.wait_source(Source::kPcr);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->action, Action::kRevokeAll);
  EXPECT_EQ(change->subject, "pcr sha256:4");
  EXPECT_EQ(change->old_value, std::string(64, '0'));
  EXPECT_NE(change->new_value, change->old_value);
  EXPECT_GE(monitor->stats().tpm_polls, 1u);
}

// Container starts move the container PCR as the log says; an extend the log does not explain
// (root writing to the PCR behind the agent's back) revokes everything.
TEST_F(PostureMonitor, ContainerPcrExtendedBehindTheLogRevokesEverything) {
  write_text(cgroupfs_ / "cgroup.controllers", "cpu memory pids\n");
  TpmPcrExtender extender(tpm());
  auto log = ContainerEventLog::open({.path = state_ / "containers.cel", .pcr = 15}, extender);
  ASSERT_TRUE(log) << log.error().message;
  auto selection = PcrSelection::parse("sha256:0-9,15");
  ASSERT_TRUE(selection);
  TpmStateProbe probe(tpm(), *selection);
  auto o = monitor_options();
  o.tpm = &probe;
  o.container_log = log->get();
  auto monitor = start(o);
  ASSERT_TRUE(monitor);

  fs::create_directories(cgroupfs_ / "system.slice" / ("docker-" + kDockerId + ".scope"));
  ASSERT_TRUE(changes_.wait([](const Change& c) { return c.workload == kDockerId; }));
  // Several polls with the log's own extend in place: nothing is reported for the PCR.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(changes_.count(Source::kPcr), 0u);

  extend(15, 'f');
  auto change = changes_.wait_source(Source::kPcr);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->action, Action::kRevokeAll);
  EXPECT_EQ(change->subject, "pcr sha256:15 (container log)");
  EXPECT_EQ(change->old_value, (*log)->expected_value().at(TpmAlg::kSha256));
  EXPECT_NE(change->new_value, change->old_value);
}

TEST_F(PostureMonitor, ImaPcrExtendAsksForReattestation) {
  auto selection = PcrSelection::parse("sha256:0-9,10");
  ASSERT_TRUE(selection);
  TpmStateProbe probe(tpm(), *selection);
  auto o = monitor_options();
  o.tpm = &probe;
  auto monitor = start(o);
  ASSERT_TRUE(monitor);
  extend(10, 'a');
  auto change = changes_.wait_source(Source::kPcr);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->subject, "pcr sha256:10");
  EXPECT_EQ(change->action, Action::kReattest);
}

TEST_F(PostureMonitor, ResetCountChangeRevokesEverything) {
  auto selection = PcrSelection::parse("sha256:0-9");
  ASSERT_TRUE(selection);
  TpmStateProbe probe(tpm(), *selection);
  auto o = monitor_options();
  o.tpm = &probe;
  auto monitor = start(o);
  ASSERT_TRUE(monitor);
  tpm_->power_cycle();
  auto change = changes_.wait_source(Source::kResetCount);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->action, Action::kRevokeAll);
  EXPECT_EQ(change->subject, "resetCount");
}

/// A TpmStateProbe that follows the swtpm to the new port restart() gives it.
class FollowingProbe final : public TpmProbe {
 public:
  FollowingProbe(test::Swtpm& swtpm, PcrSelection selection)
      : swtpm_(&swtpm), selection_(std::move(selection)) {}
  Result<Reading> read() override {
    return TpmStateProbe(tpm::Tpm(swtpm_->tcti()), selection_).read();
  }

 private:
  test::Swtpm* swtpm_;
  PcrSelection selection_;
};

TEST_F(PostureMonitor, KilledTpmRevokesEverythingAndItsReturnAsksForReattestation) {
  auto selection = PcrSelection::parse("sha256:0-9");
  ASSERT_TRUE(selection);
  FollowingProbe probe(*tpm_, *selection);
  auto o = monitor_options();
  o.tpm = &probe;
  auto monitor = start(o);
  ASSERT_TRUE(monitor);
  tpm_->kill();
  auto lost = changes_.wait_source(Source::kTpm);
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->action, Action::kRevokeAll);
  EXPECT_EQ(lost->old_value, "reachable");
  EXPECT_EQ(lost->new_value.rfind("unreachable", 0), 0u) << lost->new_value;
  const auto seen = changes_.size();
  tpm_->restart();
  auto back = changes_.wait_source(Source::kTpm, seen);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->action, Action::kReattest);
  EXPECT_EQ(back->new_value, "reachable");
  EXPECT_GE(monitor->stats().tpm_errors, 1u);
}

TEST_F(PostureMonitor, EditedConfigAndPolicyFilesAskForReattestation) {
  write_text(etc_ / "agent.toml", "[agent]\n");
  write_text(etc_ / "policy.json", "{}");
  auto o = monitor_options();
  o.config_file = etc_ / "agent.toml";
  o.watched_files = {etc_ / "policy.json"};
  auto monitor = start(o);
  ASSERT_TRUE(monitor);
  write_text(etc_ / "agent.toml", "[agent]\nlog_level = \"debug\"\n");
  auto config = changes_.wait_source(Source::kConfig);
  ASSERT_TRUE(config);
  EXPECT_EQ(config->action, Action::kReattest);
  EXPECT_EQ(config->subject, (etc_ / "agent.toml").string());
  EXPECT_EQ(config->old_value.rfind("sha256:", 0), 0u);
  // Editors replace files by rename.
  write_atomic(etc_ / "policy.json", "{\"allow\": []}");
  auto policy = changes_.wait_source(Source::kPolicy);
  ASSERT_TRUE(policy);
  EXPECT_EQ(policy->action, Action::kReattest);
  fs::remove(etc_ / "policy.json");
  auto removed = changes_.wait([](const Change& c) { return c.new_value == "absent"; });
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->source, Source::kPolicy);
}

TEST_F(PostureMonitor, TamperedStateFileRevokesEverythingButOwnWritesDoNot) {
  write_atomic(state_ / "sealed.blob", "sealed v1");
  write_atomic(state_ / "ak.blob", "ak");
  auto monitor = start(monitor_options());
  ASSERT_TRUE(monitor);

  monitor->expect_state_write(state_ / "sealed.blob");
  write_atomic(state_ / "sealed.blob", "sealed v2");
  monitor->expect_state_write(state_ / "ak.blob");
  fs::remove(state_ / "ak.blob");
  ASSERT_TRUE(
      test::wait_for([&] { return monitor->stats().suppressed_own_writes == 2; }, kDeadline));

  // Someone else rewrites the blob in place: tampering against the agent's own last write.
  write_text(state_ / "sealed.blob", "sealed by mallory");
  auto change = changes_.wait_source(Source::kStateFile);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->action, Action::kRevokeAll);
  EXPECT_EQ(change->subject, (state_ / "sealed.blob").string());
  EXPECT_NE(change->old_value, change->new_value);
  EXPECT_EQ(changes_.count(Source::kStateFile), 1u);

  // A file planted where the agent wrote nothing is tampering too.
  write_text(state_ / "ak.blob", "planted");
  auto planted = changes_.wait(
      [](const Change& c) { return c.source == Source::kStateFile && c.old_value == "absent"; });
  ASSERT_TRUE(planted);
}

TEST_F(PostureMonitor, RebaselineStopsRepeatsAndMovesTheReference) {
  auto selection = PcrSelection::parse("sha256:0-9");
  ASSERT_TRUE(selection);
  TpmStateProbe probe(tpm(), *selection);
  auto o = monitor_options();
  o.tpm = &probe;
  auto monitor = start(o);
  ASSERT_TRUE(monitor);
  extend(7, '7');
  auto first = changes_.wait_source(Source::kPcr);
  ASSERT_TRUE(first);
  const auto polls = monitor->stats().tpm_polls;
  // Several polls later the same difference has not been reported again.
  ASSERT_TRUE(test::wait_for([&] { return monitor->stats().tpm_polls >= polls + 4; }, kDeadline));
  EXPECT_EQ(changes_.count(Source::kPcr), 1u);

  monitor->rebaseline();
  const auto seen = changes_.size();
  extend(7, '8');
  auto second = changes_.wait_source(Source::kPcr, seen);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->old_value, first->new_value);
  EXPECT_NE(second->new_value, first->new_value);
}

// The probe reads only ReadClock and one PCR while pcrUpdateCounter stands still; an extend of
// any polled PCR (16 and 23 do not move the counter) still shows at the very next read.
TEST_F(PostureMonitor, EveryPolledPcrExtendShowsInTheNextProbeRead) {
  auto selection = PcrSelection::parse("sha256:0-9,10,14,16,23");
  ASSERT_TRUE(selection);
  TpmStateProbe probe(tpm(), *selection);
  auto previous = probe.read();
  ASSERT_TRUE(previous) << previous.error().message;
  ASSERT_EQ(previous->pcrs.size(), 14u);
  for (unsigned pcr : {0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 14u, 16u, 23u}) {
    SCOPED_TRACE("PCR " + std::to_string(pcr));
    const std::string key = pcr_key(TpmAlg::kSha256, pcr);
    ASSERT_TRUE(probe.read());  // an idle poll in between
    extend(pcr, 'e');
    auto current = probe.read();
    ASSERT_TRUE(current) << current.error().message;
    for (const auto& [k, value] : current->pcrs) {
      if (k == key) {
        EXPECT_NE(value, previous->pcrs.at(k));
      } else {
        EXPECT_EQ(value, previous->pcrs.at(k)) << k;
      }
    }
    previous = std::move(current);
  }
  // Idle polls did not read every PCR: one full read at the start, one per extend.
  EXPECT_EQ(probe.stats().full_reads, 1u + 12u);
}

TEST_F(PostureMonitor, EachPolledPcrExtendIsReported) {
  auto selection = PcrSelection::parse("sha256:0-9,14,16,23");
  ASSERT_TRUE(selection);
  TpmStateProbe probe(tpm(), *selection);
  auto o = monitor_options();
  o.tpm = &probe;
  auto monitor = start(o);
  ASSERT_TRUE(monitor);
  for (unsigned pcr : {0u, 3u, 9u, 14u, 16u, 23u}) {
    const std::string subject = "pcr " + pcr_key(TpmAlg::kSha256, pcr);
    const auto seen = changes_.size();
    extend(pcr, 'c');
    auto change = changes_.wait([&](const Change& c) { return c.subject == subject; }, seen);
    ASSERT_TRUE(change) << subject;
    EXPECT_EQ(change->action, Action::kRevokeAll);
    EXPECT_EQ(changes_.count(Source::kPcr), seen + 1) << subject;
  }
}

TEST_F(PostureMonitor, ContainerLogExpectedValueFollowsAppendsAndReopens) {
  TpmPcrExtender extender(tpm());
  const ContainerLogOptions options{.path = state_ / "containers.cel", .pcr = 14};
  auto log = ContainerEventLog::open(options, extender);
  ASSERT_TRUE(log) << log.error().message;
  auto pcr14 = [&] { return hex_encode(extender.read(14, TpmAlg::kSha256).value()); };
  EXPECT_EQ((*log)->expected_value().at(TpmAlg::kSha256), std::string(64, '0'));
  for (char id : {'1', '2'}) {
    attest::cel::ContainerContent content{attest::cel::ContainerEvent::kStart,
                                          std::string(64, id),
                                          "",
                                          "",
                                          "docker",
                                          "/system.slice/x.scope"};
    ASSERT_TRUE((*log)->append(content));
    EXPECT_EQ((*log)->expected_value().at(TpmAlg::kSha256), pcr14());
  }
  log->reset();
  // The agent restarts: the log replays from zero to the PCR and is kept.
  auto reopened = ContainerEventLog::open(options, extender);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ((*reopened)->records().size(), 2u);
  EXPECT_EQ((*reopened)->expected_value().at(TpmAlg::kSha256), pcr14());
  reopened->reset();
  // The PCR moved without the log: a new log starts from the PCR's value.
  extend(14, '1');
  auto fresh = ContainerEventLog::open(options, extender);
  ASSERT_TRUE(fresh) << fresh.error().message;
  EXPECT_EQ((*fresh)->records().size(), 0u);
  EXPECT_EQ((*fresh)->expected_value().at(TpmAlg::kSha256), pcr14());
}

TEST_F(PostureMonitor, ContainerLogIsOwnerOnlyWhateverTheUmask) {
  // The log names every container started on the host: no other local user may read it.
  TpmPcrExtender extender(tpm());
  const mode_t old_umask = ::umask(0);
  const ContainerLogOptions options{.path = state_ / "containers.cel", .pcr = 14};
  auto log = ContainerEventLog::open(options, extender);
  ASSERT_TRUE(log) << log.error().message;
  auto mode = [&] {
    return std::filesystem::status(options.path).permissions() & std::filesystem::perms::all;
  };
  EXPECT_EQ(mode(), std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  attest::cel::ContainerContent content{attest::cel::ContainerEvent::kStart,
                                        std::string(64, 'a'),
                                        "",
                                        "",
                                        "docker",
                                        "/system.slice/x.scope"};
  ASSERT_TRUE((*log)->append(content));
  EXPECT_EQ(mode(), std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  ::umask(old_umask);
}

TEST_F(PostureMonitor, UnreachableTpmAtStartIsAnError) {
  auto selection = PcrSelection::parse("sha256:0-9");
  ASSERT_TRUE(selection);
  tpm_->kill();
  TpmStateProbe probe(tpm(), *selection);
  auto o = monitor_options();
  o.tpm = &probe;
  auto monitor = Monitor::start(o, changes_.callback());
  ASSERT_FALSE(monitor);
  EXPECT_EQ(monitor.error().code, ErrorCode::kUnavailable) << monitor.error().message;
}

}  // namespace
}  // namespace warden::agent::posture
