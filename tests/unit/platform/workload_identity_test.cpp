#include "platform/os/workload_identity.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sched.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"
#include "tests/support/process.h"

namespace warden::os {
namespace {

const std::string kId64 = "4c01db0b339c4c5bbbd8b7a3e4d2a0f1e3b2c1d0a9f8e7d6c5b4a3928170f6e5";

struct ExpectedIdentity {
  std::string systemd_unit;
  std::string container_id;
  std::string container_runtime;
  std::string pod_uid;
};

struct CgroupCase {
  const char* name;
  std::string input;
  ExpectedIdentity expected;
};

TEST(ParseCgroup, EveryRuntimePattern) {
  const std::vector<CgroupCase> cases = {
      {"system service", "0::/system.slice/foo.service\n", {"foo.service", "", "", ""}},
      {"init scope", "0::/init.scope\n", {"init.scope", "", "", ""}},
      {"root", "0::/\n", {}},
      {"user manager app",
       "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n",
       {"user@1000.service/app.slice/x.scope", "", "", ""}},
      {"session scope",
       "0::/user.slice/user-1000.slice/session-3.scope\n",
       {"session-3.scope", "", "", ""}},
      {"docker v2",
       "0::/system.slice/docker-" + kId64 + ".scope\n",
       {"docker-" + kId64 + ".scope", kId64, "docker", ""}},
      {"docker v1",
       "12:pids:/docker/" + kId64 + "\n11:memory:/docker/" + kId64 + "\n1:name=systemd:/docker/" +
           kId64 + "\n0::/\n",
       {"", kId64, "docker", ""}},
      {"containerd",
       "0::/system.slice/cri-containerd-" + kId64 + ".scope\n",
       {"cri-containerd-" + kId64 + ".scope", kId64, "containerd", ""}},
      {"cri-o",
       "0::/machine.slice/crio-" + kId64 + ".scope\n",
       {"crio-" + kId64 + ".scope", kId64, "cri-o", ""}},
      {"podman",
       "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kId64 +
           ".scope/container\n",
       {"user@1000.service/user.slice/libpod-" + kId64 + ".scope/container", kId64, "podman", ""}},
      {"kubepods v2",
       "0::/kubepods.slice/kubepods-burstable.slice/"
       "kubepods-burstable-pod1a2b3c4d_5e6f_7081_92a3_b4c5d6e7f809.slice/cri-containerd-" +
           kId64 + ".scope\n",
       {"cri-containerd-" + kId64 + ".scope", kId64, "containerd",
        "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809"}},
      {"kubepods v1",
       "11:memory:/kubepods/burstable/pod1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809/" + kId64 +
           "\n1:name=systemd:/kubepods/burstable/pod1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809/" + kId64 +
           "\n",
       {"", kId64, "kubepods", "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809"}},
      {"hybrid v1 systemd + empty v2",
       "1:name=systemd:/system.slice/sshd.service\n0::/\n",
       {"sshd.service", "", "", ""}},
      {"garbage", "not a cgroup file", {}},
      {"short non-hex id ignored",
       "0::/system.slice/docker-xyz.scope\n",
       {"docker-xyz.scope", "", "", ""}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto got = parse_cgroup(c.input);
    EXPECT_EQ(got.systemd_unit, c.expected.systemd_unit);
    EXPECT_EQ(got.container_id, c.expected.container_id);
    EXPECT_EQ(got.container_runtime, c.expected.container_runtime);
    EXPECT_EQ(got.pod_uid, c.expected.pod_uid);
  }
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

TEST(ParseCgroup, EveryShapeOfTheTableRecognisesItsExample) {
  ASSERT_FALSE(container_shapes().empty());
  for (const auto& shape : container_shapes()) {
    const bool named = shape.form == ShapeForm::kNamedScope;
    const std::string id = named ? "web" : kId64;
    std::string path = replace_all(std::string(shape.example), "<id>", id);
    path = replace_all(path, "<name>", id);
    path = replace_all(path, "<namespace>", "default");
    if (shape.form == ShapeForm::kNamespaced) {
      // By its path only a candidate: the caller confirms it from containerd's task records.
      SCOPED_TRACE(path);
      const auto got = parse_cgroup("4:memory:" + path + "\n1:name=systemd:" + path + "\n0::/\n");
      EXPECT_EQ(got.container_id, "");
      ASSERT_TRUE(got.containerd_task);
      EXPECT_EQ(got.containerd_task->container_id(), "default/" + id);
      EXPECT_FALSE(container_scope(path.substr(1)));
      continue;
    }
    path = replace_all(path, "<pod>", "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809");
    path = replace_all(path, "<pod_>", "1a2b3c4d_5e6f_7081_92a3_b4c5d6e7f809");
    SCOPED_TRACE(path);
    ASSERT_EQ(path.find('<'), std::string::npos);
    const auto got = parse_cgroup("0::" + path + "\n");
    EXPECT_EQ(got.container_id, id);
    EXPECT_EQ(got.container_runtime, shape.runtime);
    // The same path in every v1 hierarchy of a hybrid host, the v2 line empty.
    const auto v1 = parse_cgroup("4:memory:" + path + "\n1:name=systemd:" + path + "\n0::/\n");
    EXPECT_EQ(v1.container_id, id);
    if (path.ends_with("/container")) continue;  // a sub-cgroup of the scope, not the scope
    auto scope = container_scope(path.substr(1));
    ASSERT_TRUE(scope);
    EXPECT_EQ(scope->id, id);
    EXPECT_EQ(scope->runtime, shape.runtime);
    EXPECT_FALSE(container_scope(path.substr(1) + "/init"));
  }
}

TEST(ParseCgroup, RuntimeHelperCgroupsAreNotContainers) {
  const std::string pod = "pod1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809";
  for (const std::string& path : {
           std::string("/libpod_parent/conmon"),
           "/machine.slice/libpod-conmon-" + kId64 + ".scope",
           "/machine.slice/crio-conmon-" + kId64 + ".scope",
           "/kubepods/burstable/" + pod,
           "/docker/" + kId64.substr(0, 12),
           "/libpod_parent/libpod-" + kId64.substr(0, 40),
           "/other_parent/libpod-" + kId64,
           std::string("/system.slice/machine-web.scope"),
       }) {
    SCOPED_TRACE(path);
    EXPECT_EQ(parse_cgroup("0::" + path + "\n").container_id, "");
    EXPECT_FALSE(container_scope(path.substr(1)));
  }
}

// Copied from /proc/PID/cgroup of `podman run` (podman 4.3.1, runc 1.1.5, cgroupfs manager) on a
// Debian 12 host with cgroup v1 hybrid and no systemd.
TEST(ParseCgroup, RealPodmanOnACgroupV1HybridHost) {
  const std::string id = "34d4a1488c2b2a654a9c20aa0012206d374ffa7b42920a9832bf1ae53ff504aa";
  std::string text;
  for (const char* h : {"9:name=systemd", "8:pids", "7:blkio", "6:freezer", "5:devices", "4:memory",
                        "3:cpuset", "2:cpuacct", "1:cpu", "0:"}) {
    text += std::string(h) + ":/libpod_parent/libpod-" + id + "\n";
  }
  const auto got = parse_cgroup(text);
  EXPECT_EQ(got.container_id, id);
  EXPECT_EQ(got.container_runtime, "podman");
  EXPECT_EQ(got.systemd_unit, "");
}

// Copied from /proc/PID/cgroup of `docker run` (Debian's docker.io 20.10.24, dockerd with
// --exec-opt native.cgroupdriver=cgroupfs, runc 1.1.5) on the same hybrid host.
TEST(ParseCgroup, RealDockerCgroupfsOnACgroupV1HybridHost) {
  const std::string id = "203da3fc06fa936f1d17735c589ab1531e8895b5abd0dce51190f03b0e9a12fb";
  std::string text;
  for (const char* h : {"9:name=systemd", "8:pids", "7:blkio", "6:freezer", "5:devices", "4:memory",
                        "3:cpuset", "2:cpuacct", "1:cpu", "0:"}) {
    text += std::string(h) + ":/docker/" + id + "\n";
  }
  const auto got = parse_cgroup(text);
  EXPECT_EQ(got.container_id, id);
  EXPECT_EQ(got.container_runtime, "docker");
  EXPECT_EQ(got.systemd_unit, "");
  EXPECT_FALSE(got.containerd_task);
}

// Copied from /proc/PID/cgroup of `ctr run -d IMAGE w1` (containerd 1.6.20, runc shim v2, its
// default cgroup path /<namespace>/<id>) on the same host.
TEST(ParseCgroup, RealCtrRunIsACandidateOnly) {
  std::string text;
  for (const char* h : {"9:name=systemd", "8:pids", "7:blkio", "6:freezer", "5:devices", "4:memory",
                        "3:cpuset", "2:cpuacct", "1:cpu", "0:"}) {
    text += std::string(h) + ":/default/w1\n";
  }
  const auto got = parse_cgroup(text);
  EXPECT_EQ(got.container_id, "");
  EXPECT_EQ(got.systemd_unit, "");
  ASSERT_TRUE(got.containerd_task);
  EXPECT_EQ(got.containerd_task->ns, "default");
  EXPECT_EQ(got.containerd_task->id, "w1");
  // A pure v2 host: the same.
  EXPECT_TRUE(parse_cgroup("0::/k8s.io/web-1\n").containerd_task);
}

TEST(ParseCgroup, OnlyTwoLevelPathsOfContainerdNamesAreCtrCandidates) {
  for (const std::string& path : {
           std::string("/system.slice/foo.service"),
           std::string("/user.slice/user-1000.slice"),
           std::string("/init.scope"),
           std::string("/"),
           std::string("/default"),
           std::string("/default/w1/sub"),
           std::string("/-x/w1"),
           std::string("/default/.w1"),
           std::string("/default/w 1"),
           "/default/" + std::string(77, 'a'),
           "/docker/" + kId64,
       }) {
    SCOPED_TRACE(path);
    EXPECT_FALSE(parse_cgroup("0::" + path + "\n").containerd_task);
  }
  EXPECT_TRUE(containerd_task_name("/default/" + std::string(76, 'a')));
  EXPECT_TRUE(containerd_task_name("/libpod_parent/conmon"));  // shape alone: a candidate
}

std::string self_exe_sha256() {
  auto bytes = read_file("/proc/self/exe", 1u << 30);
  EXPECT_TRUE(bytes.has_value());
  return hex_encode(ossl::sha256(*bytes));
}

TEST(WorkloadIdentity, PeerOfSocketpairIsSelf) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  WorkloadIdentityResolver resolver;
  auto s = resolver.resolve_socket(sv[0]);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->pid, getpid());
  EXPECT_EQ(s->uid, getuid());
  EXPECT_EQ(s->gid, getgid());
  EXPECT_EQ(s->exe_path, std::filesystem::read_symlink("/proc/self/exe").string());
  EXPECT_EQ(s->exe_sha256, self_exe_sha256());
  // Second resolution hits the digest cache and gives the same answer.
  auto again = resolver.resolve_socket(sv[0]);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->exe_sha256, s->exe_sha256);
  close(sv[0]);
  close(sv[1]);
}

TEST(WorkloadIdentity, ConfigurableProcRoot) {
  test::TempDir dir;
  const auto pid_dir = dir.path() / std::to_string(getpid());
  std::filesystem::create_directories(pid_dir);
  std::ofstream(pid_dir / "cgroup") << "0::/system.slice/docker-" << kId64 << ".scope\n";
  std::filesystem::create_symlink("/proc/self/exe", pid_dir / "exe");
  WorkloadIdentityResolver resolver(dir.path());
  auto pidfd = Pidfd::open(getpid());
  ASSERT_TRUE(pidfd.has_value());
  auto s = resolver.resolve(PeerCredentials{getpid(), getuid(), getgid()}, *pidfd);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->container_id, kId64);
  EXPECT_EQ(s->container_runtime, "docker");
  EXPECT_EQ(s->exe_path, "/proc/self/exe");
  EXPECT_EQ(s->exe_sha256, self_exe_sha256());
}

TEST(WorkloadIdentity, ACtrContainerIsOneOnlyWhileContainerdRecordsItsTask) {
  test::TempDir dir;
  const auto pid_dir = dir.path() / "proc" / std::to_string(getpid());
  std::filesystem::create_directories(pid_dir);
  std::ofstream(pid_dir / "cgroup") << "4:memory:/default/w1\n1:name=systemd:/default/w1\n0::/\n";
  std::filesystem::create_symlink("/proc/self/exe", pid_dir / "exe");
  const auto state = dir.path() / "containerd";
  WorkloadIdentityResolver resolver(dir.path() / "proc", state);
  auto pidfd = Pidfd::open(getpid());
  ASSERT_TRUE(pidfd.has_value());
  const PeerCredentials creds{getpid(), getuid(), getgid()};
  auto before = resolver.resolve(creds, *pidfd);
  ASSERT_TRUE(before.has_value()) << before.error().message;
  EXPECT_EQ(before->container_runtime, "");  // no task recorded: not a ctr container

  std::filesystem::create_directories(state / "io.containerd.runtime.v2.task/default/w1");
  auto s = resolver.resolve(creds, *pidfd);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->container_id, "default/w1");
  EXPECT_EQ(s->container_runtime, "containerd");
  // Another namespace's task of the same name is not this one.
  EXPECT_FALSE(containerd_task_exists(state, {"k8s.io", "w1"}));
}

// A child that unshares `flags` (then, for a PID namespace, forks so that a process lives in
// it) and reports the host pid of the process to identify; it lives until `release` closes.
struct NamespacedChild {
  pid_t pid = 0;
  int release = -1;
};
NamespacedChild start_namespaced(int flags) {
  int ready[2];
  int hold[2];
  if (pipe(ready) != 0 || pipe(hold) != 0) return {};
  const pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    close(hold[1]);
    if (unshare(flags) != 0) _exit(1);
    pid_t target = getpid();
    if ((flags & CLONE_NEWPID) != 0) {
      target = fork();
      if (target == 0) {
        char c;
        (void)!read(hold[0], &c, 1);
        _exit(0);
      }
    }
    (void)!write(ready[1], &target, sizeof target);
    char c;
    (void)!read(hold[0], &c, 1);
    if ((flags & CLONE_NEWPID) != 0) waitpid(target, nullptr, 0);
    _exit(0);
  }
  close(ready[1]);
  close(hold[0]);
  pid_t target = 0;
  if (read(ready[0], &target, sizeof target) != sizeof target) target = 0;
  close(ready[0]);
  return {target, hold[1]};
}

TEST(WorkloadIdentity, AProcessInItsOwnNamespacesIsNeverAHostProcess) {
  if (geteuid() != 0) GTEST_SKIP() << "unshare needs root";
  WorkloadIdentityResolver resolver;
  auto identify = [&](pid_t pid) {
    auto pidfd = Pidfd::open(pid);
    EXPECT_TRUE(pidfd.has_value());
    auto s = resolver.resolve(PeerCredentials{pid, getuid(), getgid()}, *pidfd);
    EXPECT_TRUE(s.has_value()) << s.error().message;
    return s.value_or(Selectors{});
  };
  const auto self = identify(getpid());
  EXPECT_EQ(self.container_runtime, "");
  EXPECT_EQ(self.container_id, "");

  const auto mnt1 = start_namespaced(CLONE_NEWNS);
  const auto mnt2 = start_namespaced(CLONE_NEWNS);
  const auto pid1 = start_namespaced(CLONE_NEWPID);
  ASSERT_GT(mnt1.pid, 0);
  ASSERT_GT(mnt2.pid, 0);
  ASSERT_GT(pid1.pid, 0);
  const auto a = identify(mnt1.pid);
  const auto b = identify(mnt2.pid);
  const auto c = identify(pid1.pid);
  for (const auto* s : {&a, &b, &c}) {
    EXPECT_EQ(s->container_runtime, kUnidentifiedRuntime);
    EXPECT_NE(s->container_id, "");
    EXPECT_FALSE(same_workload(*s, self));
  }
  EXPECT_NE(a.container_id, b.container_id);
  EXPECT_NE(a.container_id, c.container_id);
  for (const auto& child : {mnt1, mnt2, pid1}) close(child.release);
  while (waitpid(-1, nullptr, 0) > 0) {
  }
}

TEST(WorkloadIdentity, ExitedPeerIsAnErrorNotAWrongIdentity) {
  int status = 0;
  // pidfd taken while the child lived, child exits before resolution.
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t child2 = fork();
  ASSERT_GE(child2, 0);
  if (child2 == 0) {
    char c;
    close(pipefd[1]);
    (void)!read(pipefd[0], &c, 1);
    _exit(0);
  }
  close(pipefd[0]);
  auto pidfd = Pidfd::open(child2);
  ASSERT_TRUE(pidfd.has_value());
  EXPECT_TRUE(pidfd->alive());
  close(pipefd[1]);  // child exits
  ASSERT_TRUE(test::wait_for([&] { return !pidfd->alive(); }, std::chrono::seconds(5)));
  WorkloadIdentityResolver resolver;
  auto zombie = resolver.resolve(PeerCredentials{child2, getuid(), getgid()}, *pidfd);
  EXPECT_FALSE(zombie.has_value());
  waitpid(child2, &status, 0);  // reaped: the pid may now be reused by anyone
  auto reaped = resolver.resolve(PeerCredentials{child2, getuid(), getgid()}, *pidfd);
  ASSERT_FALSE(reaped.has_value());
  EXPECT_EQ(reaped.error().code, ErrorCode::kNotFound);
}

TEST(SenderCredentials, EveryChunkNamesItsWriterAndWritersAreNeverMerged) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ASSERT_TRUE(enable_sender_credentials(sv[0]));
  ASSERT_EQ(write(sv[1], "a", 1), 1);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(write(sv[1], "b", 1) == 1 ? 0 : 1);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  char buf[16];
  auto first = receive_with_sender(sv[0], buf, sizeof(buf));
  ASSERT_EQ(first.size, 1);  // not "ab": the kernel stops at a change of writer
  EXPECT_EQ(buf[0], 'a');
  EXPECT_EQ(first.sender, getpid());
  auto second = receive_with_sender(sv[0], buf, sizeof(buf));
  ASSERT_EQ(second.size, 1);
  EXPECT_EQ(buf[0], 'b');
  EXPECT_EQ(second.sender, child);
  close(sv[0]);
  close(sv[1]);
}

TEST(SocketHolders, TheHolderItselfPassesAndAnExecdChildHoldingItToo) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);  // no CLOEXEC: the child keeps sv[1]
  auto peer = unix_peer_inode(sv[0]);
  ASSERT_TRUE(peer) << peer.error().message;
  struct stat st {};
  ASSERT_EQ(fstat(sv[1], &st), 0);
  EXPECT_EQ(*peer, st.st_ino);
  WorkloadIdentityResolver resolver;
  auto pidfd = Pidfd::open(getpid());
  ASSERT_TRUE(pidfd);
  auto self = resolver.resolve(PeerCredentials{getpid(), geteuid(), getegid()}, *pidfd);
  ASSERT_TRUE(self) << self.error().message;
  auto alone = resolver.check_socket_holders(*peer, *self);
  ASSERT_TRUE(alone) << alone.error().message;
  EXPECT_EQ(alone->verdict, HolderVerdict::kSame) << alone->detail;

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(sv[0]);
    execl("/usr/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto sleep_exe = std::filesystem::canonical("/usr/bin/sleep");
  const auto link = "/proc/" + std::to_string(child) + "/exe";
  EXPECT_TRUE(test::wait_for(
      [&] {
        std::error_code ec;
        return std::filesystem::read_symlink(link, ec) == sleep_exe;
      },
      std::chrono::seconds(5)));
  auto shared = resolver.check_socket_holders(*peer, *self);
  ASSERT_TRUE(shared) << shared.error().message;
  EXPECT_EQ(shared->verdict, HolderVerdict::kShared);
  EXPECT_NE(shared->detail.find(std::to_string(child)), std::string::npos) << shared->detail;
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  // Nobody holds it any more once this process closes its end too.
  close(sv[1]);
  auto nobody = resolver.check_socket_holders(*peer, *self);
  ASSERT_TRUE(nobody);
  EXPECT_EQ(nobody->verdict, HolderVerdict::kShared);
  close(sv[0]);
}

}  // namespace
}  // namespace warden::os
