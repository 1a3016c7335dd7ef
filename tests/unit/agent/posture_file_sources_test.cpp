// WatchedFiles (config and policy files) and StateDirSource on a temporary directory and a fake
// watcher: events are delivered by the test, as inotify would.

#include <fstream>

#include <gtest/gtest.h>

#include "agent/posture/own_writes.h"
#include "agent/posture/state_dir_source.h"
#include "agent/posture/watched_files.h"
#include "tests/support/process.h"
#include "tests/unit/agent/posture_fakes.h"

namespace warden::agent::posture {
namespace {

namespace fs = std::filesystem;
using test::FakeClock;
using test::FakeDirWatcher;
using test::FakeObserver;
using test::file_event;

void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

struct WatchedFilesTest : ::testing::Test {
  warden::test::TempDir dir{"warden-posture-unit"};
  FakeDirWatcher watcher;
  FakeClock clock;
  FakeObserver observer;
  WatchedFiles files{watcher, observer, clock.now()};
};

TEST_F(WatchedFilesTest, ConfigChangeIsReportedOncePerNewContent) {
  const auto config = dir.path() / "agent.toml";
  write(config, "a = 1\n");
  ASSERT_TRUE(files.add(config, Trigger::kConfigChanged));
  files.rebaseline();
  EXPECT_EQ(watcher.kinds.at(dir.path()), os::WatchKind::kFiles);
  const int id = watcher.id_of(dir.path());
  write(config, "a = 2\n");
  files.on_event(file_event(id, "agent.toml"));
  files.on_event(file_event(id, "agent.toml"));
  ASSERT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kConfigChanged});
  EXPECT_EQ(observer.seen[0].subject, config.string());
  EXPECT_EQ(observer.seen[0].old_value.rfind("sha256:", 0), 0U);
}

TEST_F(WatchedFilesTest, PolicyFileRemovedIsReportedAbsentAndOtherFilesIgnored) {
  const auto policy = dir.path() / "policy.json";
  write(policy, "{}");
  ASSERT_TRUE(files.add(policy, Trigger::kPolicyFileChanged));
  files.rebaseline();
  const int id = watcher.id_of(dir.path());
  write(dir.path() / "other", "x");
  files.on_event(file_event(id, "other"));
  EXPECT_TRUE(observer.seen.empty());
  fs::remove(policy);
  files.on_event(file_event(id, "policy.json"));
  ASSERT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kPolicyFileChanged});
  EXPECT_EQ(observer.seen[0].new_value, "absent");
}

TEST_F(WatchedFilesTest, ContentBackAtTheReferenceIsNotAChangeAndRescanChecksEveryFile) {
  const auto policy = dir.path() / "policy.json";
  write(policy, "{}");
  ASSERT_TRUE(files.add(policy, Trigger::kPolicyFileChanged));
  files.rebaseline();
  write(policy, "{\"x\":1}");
  write(policy, "{}");
  files.rescan();
  EXPECT_TRUE(observer.seen.empty());
  write(policy, "{\"x\":1}");
  files.rescan();
  EXPECT_EQ(observer.seen.size(), 1U);
}

TEST_F(WatchedFilesTest, UnwatchableParentIsAnError) {
  watcher.missing.insert(dir.path() / "nowhere");
  EXPECT_FALSE(files.add(dir.path() / "nowhere" / "agent.toml", Trigger::kConfigChanged));
}

struct StateDirSourceTest : ::testing::Test {
  StateDirSourceTest() {
    fs::create_directories(state() / "keys");
    write(state() / "device.json", "{}");
    write(state() / "keys" / "blob", "sealed");
  }
  [[nodiscard]] fs::path state() const { return dir.path() / "state"; }
  void start() {
    ASSERT_TRUE(source.start());
    source.rebaseline();
  }
  warden::test::TempDir dir{"warden-posture-unit"};
  FakeDirWatcher watcher;
  FakeClock clock;
  OwnWrites own_writes{clock.now()};
  FakeObserver observer;
  Counters counters;
  StateDirSource source{dir.path() / "state", watcher, own_writes, observer, counters, clock.now()};
};

TEST_F(StateDirSourceTest, TamperedBlobIsReported) {
  start();
  EXPECT_EQ(watcher.kinds.at(state() / "keys"), os::WatchKind::kTree);
  write(state() / "keys" / "blob", "forged");
  source.on_event(file_event(watcher.id_of(state() / "keys"), "blob"));
  ASSERT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kStateFileChanged});
  EXPECT_EQ(observer.seen[0].subject, (state() / "keys" / "blob").string());
}

TEST_F(StateDirSourceTest, AnnouncedWriteMovesTheReference) {
  start();
  own_writes.expect(state() / "device.json");
  write(state() / "device.json", "{\"v\":2}");
  const int id = watcher.id_of(state());
  source.on_event(file_event(id, "device.json"));
  EXPECT_TRUE(observer.seen.empty());
  EXPECT_EQ(counters.suppressed_own_writes, 1U);
  source.on_event(file_event(id, "device.json"));  // same content again: the new reference
  EXPECT_TRUE(observer.seen.empty());
}

TEST_F(StateDirSourceTest, CreatedFilesWaitForTheirWriteAndTemporariesAreIgnored) {
  start();
  const int id = watcher.id_of(state());
  write(state() / "new", "x");
  auto created = file_event(id, "new");
  created.created = true;
  source.on_event(created);
  EXPECT_TRUE(observer.seen.empty());
  write(state() / ".device.json.AbC123", "partial");
  source.on_event(file_event(id, ".device.json.AbC123"));
  EXPECT_TRUE(observer.seen.empty());
  source.on_event(file_event(id, "new"));  // closed after writing
  EXPECT_EQ(observer.seen.size(), 1U);
}

TEST_F(StateDirSourceTest, StateDirRemovedIsReported) {
  start();
  os::FsEvent gone;
  gone.watch = watcher.id_of(state());
  gone.self_gone = true;
  source.on_event(gone);
  ASSERT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kStateDirGone});
  EXPECT_EQ(observer.seen[0].old_value, "present");
}

TEST_F(StateDirSourceTest, NewSubdirectoryIsWatchedButNotDeeperThanTwoLevels) {
  start();
  fs::create_directories(state() / "sub" / "deeper");
  write(state() / "sub" / "file", "x");
  auto added = file_event(watcher.id_of(state()), "sub");
  added.is_dir = true;
  added.created = true;
  source.on_event(added);
  EXPECT_NE(watcher.id_of(state() / "sub"), -1);
  EXPECT_EQ(watcher.id_of(state() / "sub" / "deeper"), -1);
  EXPECT_EQ(observer.seen.size(), 1U);  // sub/file, unknown before
}

TEST_F(StateDirSourceTest, RescanFindsRemovedFiles) {
  start();
  fs::remove(state() / "keys" / "blob");
  source.rescan();
  ASSERT_EQ(observer.seen.size(), 1U);
  EXPECT_EQ(observer.seen[0].new_value, "absent");
}

}  // namespace
}  // namespace warden::agent::posture
