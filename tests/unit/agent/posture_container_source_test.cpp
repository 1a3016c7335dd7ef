// ContainerSource on a directory tree shaped like cgroupfs and a fake watcher: events are
// delivered by the test, as inotify would.

#include <fstream>

#include <gtest/gtest.h>

#include "agent/posture/container_log.h"
#include "agent/posture/container_source.h"
#include "agent/posture/image_lookup.h"
#include "tests/support/process.h"
#include "tests/unit/agent/posture_fakes.h"

namespace warden::agent::posture {
namespace {

namespace fs = std::filesystem;
using test::dir_event;
using test::FakeClock;
using test::FakeDirWatcher;
using test::FakeObserver;
using test::FakePcrExtender;

const std::string kId(64, 'a');
const std::string kOtherId(64, 'b');
const std::string kScope = "docker-" + kId + ".scope";
const std::string kOtherScope = "docker-" + kOtherId + ".scope";

struct ContainerSourceTest : ::testing::Test {
  ContainerSourceTest() {
    fs::create_directories(root() / "system.slice");
    std::ofstream(root() / "cgroup.controllers") << "cpu memory\n";
  }
  [[nodiscard]] fs::path root() const { return dir.path() / "cgroup"; }
  ContainerSource& make(ContainerEventLog* log = nullptr, std::size_t max_watches = 8192) {
    ContainerSource::Options options{root(), log, {}, max_watches, 12, {}};
    source.emplace(std::move(options), watcher, own_writes, observer, counters, clock.now());
    return *source;
  }
  std::unique_ptr<ContainerEventLog> open_log() {
    ContainerLogOptions options;
    options.path = dir.path() / "containers.cel";
    options.pcr = 15;
    return ContainerEventLog::open(options, extender).value();
  }
  int slice_watch() const { return watcher.id_of(root() / "system.slice"); }

  warden::test::TempDir dir{"warden-posture-unit"};
  FakeDirWatcher watcher;
  FakeClock clock;
  OwnWrites own_writes{clock.now()};
  FakeObserver observer;
  Counters counters;
  FakePcrExtender extender;
  std::optional<ContainerSource> source;
};

TEST_F(ContainerSourceTest, ContainerRunningAtStartIsReportedAsStarted) {
  fs::create_directories(root() / "system.slice" / kScope);
  ASSERT_TRUE(make().start());
  ASSERT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kContainerStarted});
  const auto& o = observer.seen[0];
  EXPECT_EQ(o.subject, kId);
  EXPECT_EQ(o.workload, kId);
  EXPECT_EQ(o.runtime, "docker");
  EXPECT_EQ(o.cgroup_path, "system.slice/" + kScope);
  EXPECT_EQ(o.old_value, "absent");
  EXPECT_EQ(o.new_value, "running");
  EXPECT_EQ(counters.containers_running, 1U);
}

TEST_F(ContainerSourceTest, StartAndStopAreReportedAndMeasured) {
  auto log = open_log();
  ASSERT_TRUE(make(log.get()).start());
  fs::create_directories(root() / "system.slice" / kScope);
  source->on_event(dir_event(slice_watch(), kScope, true));
  ASSERT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kContainerStarted});
  EXPECT_EQ(log->records().size(), 1U);
  EXPECT_EQ(log->running().count(kId), 1U);
  ASSERT_TRUE(log->running_container(kId));
  EXPECT_EQ(log->running_container(kId)->container_id, kId);
  EXPECT_FALSE(log->running_container("other"));
  fs::remove(root() / "system.slice" / kScope);
  source->on_event(dir_event(slice_watch(), kScope, false));
  ASSERT_EQ(observer.triggers(),
            (std::vector<Trigger>{Trigger::kContainerStarted, Trigger::kContainerStopped}));
  EXPECT_EQ(observer.seen[1].new_value, "stopped");
  EXPECT_EQ(log->records().size(), 2U);
  EXPECT_TRUE(log->running().empty());
  EXPECT_FALSE(log->running_container(kId));  // its last record is the stop
  EXPECT_EQ(counters.container_log_appends, 2U);
  EXPECT_EQ(counters.containers_running, 0U);
  // The log's writes were announced as the agent's own.
  EXPECT_TRUE(own_writes.consume(log->path().lexically_normal()));
}

TEST_F(ContainerSourceTest, AContainersOwnSubCgroupsAreNotContainers) {
  ASSERT_TRUE(make().start());
  fs::create_directories(root() / "system.slice" / kScope / "init");
  source->on_event(dir_event(slice_watch(), kScope, true));
  EXPECT_EQ(observer.seen.size(), 1U);
  EXPECT_EQ(watcher.id_of(root() / "system.slice" / kScope), -1);  // not watched
}

TEST_F(ContainerSourceTest, DirectoriesCreatedBeforeTheirWatchAreScanned) {
  ASSERT_TRUE(make().start());
  fs::create_directories(root() / "machine.slice" / kScope);
  source->on_event(dir_event(watcher.id_of(root()), "machine.slice", true));
  ASSERT_EQ(observer.seen.size(), 1U);
  EXPECT_EQ(observer.seen[0].cgroup_path, "machine.slice/" + kScope);
}

TEST_F(ContainerSourceTest, RemovingAParentStopsEveryContainerBelowIt) {
  fs::create_directories(root() / "system.slice" / kScope);
  fs::create_directories(root() / "system.slice" / kOtherScope);
  ASSERT_TRUE(make().start());
  source->on_event(dir_event(watcher.id_of(root()), "system.slice", false));
  EXPECT_EQ(observer.triggers(),
            (std::vector<Trigger>{Trigger::kContainerStarted, Trigger::kContainerStarted,
                                  Trigger::kContainerStopped, Trigger::kContainerStopped}));
}

TEST_F(ContainerSourceTest, WatchLimitIsCountedAndTheDirectorySkipped) {
  ASSERT_TRUE(make(nullptr, 1).start());  // the root is the one watch
  EXPECT_EQ(counters.cgroup_watches, 1U);
  EXPECT_GE(counters.cgroup_watch_limit_hits, 1U);
  EXPECT_EQ(slice_watch(), -1);
}

TEST_F(ContainerSourceTest, IgnoredWatchIsForgotten) {
  ASSERT_TRUE(make().start());
  EXPECT_EQ(counters.cgroup_watches, 2U);
  os::FsEvent ignored;
  ignored.watch = slice_watch();
  ignored.ignored = true;
  source->on_event(ignored);
  EXPECT_EQ(counters.cgroup_watches, 1U);
  source->on_event(dir_event(ignored.watch, kScope, true));  // a stale id: nothing
  EXPECT_TRUE(observer.seen.empty());
}

TEST_F(ContainerSourceTest, RescanFindsWhatAppearedAndDisappearedUnseen) {
  fs::create_directories(root() / "system.slice" / kScope);
  ASSERT_TRUE(make().start());
  fs::remove(root() / "system.slice" / kScope);
  fs::create_directories(root() / "system.slice" / kOtherScope);
  source->rescan();
  ASSERT_EQ(observer.seen.size(), 3U);
  EXPECT_EQ(observer.seen[1].trigger, Trigger::kContainerStarted);
  EXPECT_EQ(observer.seen[1].subject, kOtherId);
  EXPECT_EQ(observer.seen[2].trigger, Trigger::kContainerStopped);
  EXPECT_EQ(observer.seen[2].subject, kId);
}

TEST_F(ContainerSourceTest, LoggedContainerStillRunningAtStartIsNotReportedAgain) {
  auto log = open_log();
  ASSERT_TRUE(log->append(
      {attest::cel::ContainerEvent::kStart, kId, "", "", "docker", "/system.slice/" + kScope}));
  fs::create_directories(root() / "system.slice" / kScope);
  ASSERT_TRUE(make(log.get()).start());
  EXPECT_TRUE(observer.seen.empty());
  EXPECT_EQ(log->records().size(), 1U);
  EXPECT_EQ(counters.containers_running, 1U);
}

TEST_F(ContainerSourceTest, LoggedContainerGoneAtStartIsReportedAndLoggedAsStopped) {
  auto log = open_log();
  ASSERT_TRUE(log->append(
      {attest::cel::ContainerEvent::kStart, kId, "", "", "docker", "/system.slice/" + kScope}));
  ASSERT_TRUE(make(log.get()).start());
  ASSERT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kContainerStopped});
  EXPECT_EQ(observer.seen[0].cgroup_path, "system.slice/" + kScope);
  EXPECT_TRUE(log->running().empty());
}

TEST_F(ContainerSourceTest, FailedMeasurementIsCountedAndStillReported) {
  auto log = open_log();
  ASSERT_TRUE(make(log.get()).start());
  extender.fail_extends = true;
  fs::create_directories(root() / "system.slice" / kScope);
  source->on_event(dir_event(slice_watch(), kScope, true));
  EXPECT_EQ(observer.seen.size(), 1U);
  EXPECT_EQ(counters.container_log_errors, 1U);
  EXPECT_FALSE(own_writes.consume(log->path().lexically_normal()));  // expectation withdrawn
}

TEST_F(ContainerSourceTest, UnwatchableRootIsAnError) {
  watcher.missing.insert(root());
  EXPECT_FALSE(make().start());
}

TEST_F(ContainerSourceTest, CgroupV1WatchesOneHierarchy) {
  fs::remove(root() / "cgroup.controllers");
  fs::create_directories(root() / "memory" / "docker" / kId);
  fs::create_directories(root() / "pids" / "docker" / kId);
  ASSERT_TRUE(make().start());
  ASSERT_EQ(observer.seen.size(), 1U);
  EXPECT_EQ(observer.seen[0].cgroup_path, "memory/docker/" + kId);
  EXPECT_EQ(watcher.id_of(root() / "pids"), -1);
}

// The shape of podman 4.3's containers.json (overlay driver), taken from `podman create`.
TEST(PodmanImageLookup, ReadsTheContainersStorageRecord) {
  warden::test::TempDir dir{"warden-podman-storage"};
  const std::string id = "34d4a1488c2b2a654a9c20aa0012206d374ffa7b42920a9832bf1ae53ff504aa";
  const std::string image = "15af28b59d6d7f4e0310d9594fe41f9d48730cdd1817e337bb817c08aa721fcc";
  std::filesystem::create_directories(dir.path() / "overlay-containers");
  std::ofstream(dir.path() / "overlay-containers" / "containers.json")
      << R"([{"id":"0000","names":["other"],"image":"1111","metadata":"{}"},)"
      << R"({"id":")" << id << R"(","names":["wtest"],"image":")" << image
      << R"(","layer":"c727","metadata":"{\"image-name\":\"localhost/warden-busybox:test\",)"
      << R"(\"image-id\":\")" << image
      << R"(\",\"name\":\"wtest\"}","created":"2026-12-07T09:19:03Z"}])";
  const auto lookup = podman_image_lookup(dir.path());
  auto info = lookup("podman", id);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->reference, "localhost/warden-busybox:test");
  EXPECT_EQ(info->digest, "sha256:" + image);
  EXPECT_FALSE(lookup("docker", id));  // another runtime's container
  EXPECT_FALSE(lookup("podman", std::string(64, 'f')));
  const auto runtimes = runtime_image_lookup();
  EXPECT_FALSE(runtimes("containerd", id));

  for (const char* garbage : {"", "{", "{\"id\":1}", "[1,2,3]", "[{\"id\":\"x\"}]"}) {
    std::ofstream(dir.path() / "overlay-containers" / "containers.json") << garbage;
    EXPECT_FALSE(lookup("podman", id)) << garbage;
  }
}

}  // namespace
}  // namespace warden::agent::posture
