// platform/os for the posture monitor: inotify, the event loop, the securityfs IMA count,
// cgroupfs listing and container scopes.

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "platform/os/cgroup_path.h"
#include "platform/os/cgroupfs.h"
#include "platform/os/event_loop.h"
#include "platform/os/inotify.h"
#include "platform/os/securityfs.h"
#include "tests/support/process.h"

namespace warden::os {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<FsEvent> drain_copy(Inotify& inotify, std::vector<std::string>* names) {
  std::vector<FsEvent> events;
  inotify.drain([&](const FsEvent& e) {
    events.push_back(e);
    names->emplace_back(e.name);
  });
  return events;
}

TEST(Inotify, ReportsDirectoriesCreatedAndRemoved) {
  test::TempDir dir("warden-os-test");
  auto inotify = Inotify::create().value();
  const int id = inotify.add(dir.path(), WatchKind::kSubdirs).value();
  EXPECT_EQ(inotify.add(dir.path(), WatchKind::kFiles).value(), id);  // same directory, same id
  fs::create_directory(dir.path() / "c");
  fs::remove(dir.path() / "c");
  std::vector<std::string> names;
  auto events = drain_copy(inotify, &names);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0].watch, id);
  EXPECT_EQ(names[0], "c");
  EXPECT_TRUE(events[0].is_dir && events[0].created && events[0].added());
  EXPECT_TRUE(events[1].is_dir && events[1].deleted && events[1].removed());
  EXPECT_EQ(inotify.drain([](const FsEvent&) {}), 0U);  // drained, does not block
}

TEST(Inotify, FilesClosedAfterWritingAndTheTreeItselfGone) {
  test::TempDir dir("warden-os-test");
  const auto tree = dir.path() / "state";
  fs::create_directory(tree);
  auto inotify = Inotify::create().value();
  const int id = inotify.add(tree, WatchKind::kTree).value();
  std::ofstream(tree / "f") << "x";
  std::vector<std::string> names;
  auto events = drain_copy(inotify, &names);
  ASSERT_GE(events.size(), 2U);
  EXPECT_TRUE(events.front().created);
  EXPECT_FALSE(events.back().created);  // IN_CLOSE_WRITE
  EXPECT_EQ(names.back(), "f");
  fs::remove_all(tree);
  names.clear();
  events = drain_copy(inotify, &names);
  bool self_gone = false;
  bool ignored = false;
  for (const auto& e : events) {
    self_gone |= e.watch == id && e.self_gone;
    ignored |= e.watch == id && e.ignored;
  }
  EXPECT_TRUE(self_gone);
  EXPECT_TRUE(ignored);
}

TEST(Inotify, MissingDirectoryIsNotFound) {
  auto inotify = Inotify::create().value();
  auto r = inotify.add("/nonexistent/warden", WatchKind::kSubdirs);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
}

TEST(EventLoop, WakeFromAnotherThreadIsReported) {
  auto loop = EventLoop::create().value();
  std::thread waker([&] { loop.wake(); });
  auto ready = loop.wait().value();
  waker.join();
  ASSERT_EQ(ready.size(), 1U);
  EXPECT_EQ(ready[0], loop.wake_id());
}

TEST(EventLoop, TimerFiresAndIsConsumed) {
  auto loop = EventLoop::create().value();
  const int timer = loop.add_timer(1ms).value();
  auto ready = loop.wait().value();
  ASSERT_EQ(ready.size(), 1U);
  EXPECT_EQ(ready[0], timer);
  loop.wake();
  ready = loop.wait().value();
  EXPECT_FALSE(ready.empty());
}

TEST(EventLoop, ReadableDescriptorIsReported) {
  test::TempDir dir("warden-os-test");
  auto loop = EventLoop::create().value();
  auto inotify = Inotify::create().value();
  ASSERT_TRUE(inotify.add(dir.path(), WatchKind::kSubdirs));
  ASSERT_TRUE(loop.add_readable(inotify.fd()));
  fs::create_directory(dir.path() / "x");
  auto ready = loop.wait().value();
  ASSERT_EQ(ready.size(), 1U);
  EXPECT_EQ(ready[0], inotify.fd());
}

TEST(EventLoop, NonPositiveIntervalIsRefused) {
  auto loop = EventLoop::create().value();
  auto r = loop.add_timer(0ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST(Securityfs, ImaCount) {
  test::TempDir dir("warden-os-test");
  EXPECT_FALSE(ima_available(dir.path()));
  EXPECT_EQ(read_ima_count(dir.path()).error().code, ErrorCode::kNotFound);
  fs::create_directory(dir.path() / "ima");
  std::ofstream(ima_count_path(dir.path())) << "1234\n";
  EXPECT_TRUE(ima_available(dir.path()));
  EXPECT_EQ(read_ima_count(dir.path()).value(), 1234U);
  std::ofstream(ima_count_path(dir.path())) << "12x\n";
  auto bad = read_ima_count(dir.path());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kMalformed);
  EXPECT_NE(bad.error().message.find("found \"12x\""), std::string::npos);
}

TEST(Cgroupfs, HierarchyAndSubdirectories) {
  test::TempDir dir("warden-os-test");
  fs::create_directories(dir.path() / "pids");
  fs::create_directories(dir.path() / "memory");
  EXPECT_EQ(cgroup_v1_hierarchy(dir.path()), "memory");
  std::ofstream(dir.path() / "cgroup.controllers") << "cpu\n";
  EXPECT_EQ(cgroup_v1_hierarchy(dir.path()), "");
  fs::create_directory_symlink(dir.path() / "pids", dir.path() / "link");
  auto names = subdirectories(dir.path());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"memory", "pids"}));
  EXPECT_TRUE(subdirectories(dir.path() / "gone").empty());
}

TEST(ContainerScope, ScopeButNotItsSubCgroups) {
  const std::string id(64, 'a');
  auto scope = container_scope("system.slice/docker-" + id + ".scope");
  ASSERT_TRUE(scope);
  EXPECT_EQ(scope->id, id);
  EXPECT_EQ(scope->runtime, "docker");
  EXPECT_FALSE(container_scope("system.slice/docker-" + id + ".scope/init"));
  EXPECT_FALSE(container_scope("system.slice"));
  auto v1 = container_scope("memory/docker/" + id);
  ASSERT_TRUE(v1);
  EXPECT_EQ(v1->runtime, "docker");
}

}  // namespace
}  // namespace warden::os
