#include "platform/os/workload_identity.h"

#include <linux/inet_diag.h>
#include <linux/kcmp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <sstream>
#include <unistd.h>
#include <vector>

#include "platform/base/encoding.h"
#include "platform/base/openssl.h"
#include "platform/os/unique_fd.h"

namespace warden::os {
namespace {

std::string errno_text() { return std::strerror(errno); }

/// A /proc file under the open directory `dir` (at most 64 KiB: status and cgroup are small).
std::optional<std::string> read_small_file(int dir, const char* name) {
  const UniqueFd fd(::openat(dir, name, O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return std::nullopt;
  std::string out;
  std::array<char, 4096> buf{};
  while (out.size() < 65536) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
  return out;
}

struct StatusIds {
  uid_t euid = 0;
  gid_t egid = 0;
  std::vector<gid_t> groups;
};

/// "Uid:\treal\teffective\tsaved\tfs", "Gid:" alike, "Groups:\tg1 g2" of /proc/PID/status.
StatusIds parse_status(std::string_view status) {
  StatusIds ids;
  const auto second = [](std::string_view rest) {
    std::istringstream in{std::string(rest)};
    unsigned long real = 0;
    unsigned long effective = 0;
    in >> real >> effective;
    return effective;
  };
  std::size_t start = 0;
  while (start < status.size()) {
    std::size_t end = status.find('\n', start);
    if (end == std::string_view::npos) end = status.size();
    const std::string_view line = status.substr(start, end - start);
    start = end + 1;
    if (line.rfind("Uid:", 0) == 0) {
      ids.euid = static_cast<uid_t>(second(line.substr(4)));
    } else if (line.rfind("Gid:", 0) == 0) {
      ids.egid = static_cast<gid_t>(second(line.substr(4)));
    } else if (line.rfind("Groups:", 0) == 0) {
      std::istringstream groups{std::string(line.substr(7))};
      for (unsigned long g = 0; groups >> g;) ids.groups.push_back(static_cast<gid_t>(g));
    }
  }
  return ids;
}

}  // namespace

Result<Pidfd> Pidfd::open(pid_t pid) {
  const long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    return fail(ErrorCode::kNotFound, "workload identity: pidfd_open(" + std::to_string(pid) +
                                          ") failed: " + errno_text());
  }
  return Pidfd(static_cast<int>(fd), pid);
}

bool Pidfd::alive() const {
  if (fd_.get() < 0) return false;
  // A pidfd polls readable once its process has exited (zombie or reaped).
  struct pollfd p {
    fd_.get(), POLLIN, 0
  };
  return ::poll(&p, 1, 0) == 0;
}

namespace {
Namespaces namespaces_at(int dir_fd, const char* pid_dir) {
  Namespaces out;
  struct stat st {};
  if (::fstatat(dir_fd, (std::string(pid_dir) + "ns/pid").c_str(), &st, 0) == 0)
    out.pid = st.st_ino;
  if (::fstatat(dir_fd, (std::string(pid_dir) + "ns/mnt").c_str(), &st, 0) == 0)
    out.mnt = st.st_ino;
  return out;
}
}  // namespace

bool containerd_task_exists(const std::filesystem::path& containerd_state,
                            const ContainerdTaskName& task) {
  struct stat st {};
  const auto dir = containerd_state / "io.containerd.runtime.v2.task" / task.ns / task.id;
  return ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// PID 1's namespaces are the host's; wardend's own mount namespace is private under systemd
// (PrivateMounts=). Without access to PID 1 (no CAP_SYS_PTRACE) the agent's own stand in.
WorkloadIdentityResolver::WorkloadIdentityResolver(std::filesystem::path proc_root,
                                                   std::filesystem::path containerd_state)
    : proc_root_(std::move(proc_root)), containerd_state_(std::move(containerd_state)) {
  const std::string root = proc_root_.string() + "/";
  host_ = namespaces_at(AT_FDCWD, (root + "1/").c_str());
  if (host_.pid == 0 || host_.mnt == 0) host_ = namespaces_at(AT_FDCWD, (root + "self/").c_str());
}

Result<Selectors> WorkloadIdentityResolver::resolve_socket(int socket_fd) {
  auto creds = peer_credentials(socket_fd);
  if (!creds) return fail(std::move(creds).error());
  auto pidfd = Pidfd::open(creds->pid);
  if (!pidfd) return fail(std::move(pidfd).error());
  return resolve(*creds, *pidfd);
}

Result<Selectors> WorkloadIdentityResolver::resolve(const PeerCredentials& creds,
                                                    const Pidfd& pidfd) {
  const std::string pid_text = std::to_string(creds.pid);
  if (pidfd.pid() != creds.pid || !pidfd.alive()) {
    return fail(ErrorCode::kNotFound,
                "workload identity: process " + pid_text + " exited before it was identified");
  }
  const auto dir_path = proc_root_ / pid_text;
  const UniqueFd dir(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    return fail(ErrorCode::kNotFound,
                "workload identity: cannot open " + dir_path.string() + ": " + errno_text());
  }
  auto s = read_selectors(dir.get(), dir_path.string());
  if (!s) return s;
  // The credentials of connect() time, as the kernel recorded them for the socket.
  s->pid = creds.pid;
  s->uid = creds.uid;
  s->gid = creds.gid;
  // What we read may belong to a process that reused the pid: the pidfd still names the original.
  if (!pidfd.alive()) {
    return fail(ErrorCode::kNotFound,
                "workload identity: process " + pid_text + " exited while it was identified");
  }
  return s;
}

Result<Selectors> WorkloadIdentityResolver::read_selectors(int pid_dir, const std::string& where) {
  Selectors s;
  auto cgroup = read_small_file(pid_dir, "cgroup");
  if (!cgroup)
    return fail(ErrorCode::kNotFound, "workload identity: cannot read " + where + "/cgroup");
  auto cg = parse_cgroup(*cgroup);
  s.systemd_unit = std::move(cg.systemd_unit);
  s.container_id = std::move(cg.container_id);
  s.container_runtime = std::move(cg.container_runtime);
  s.pod_uid = std::move(cg.pod_uid);
  if (s.container_id.empty() && cg.containerd_task &&
      containerd_task_exists(containerd_state_, *cg.containerd_task)) {
    s.container_id = cg.containerd_task->container_id();
    s.container_runtime = "containerd";
  }
  if (s.container_id.empty()) mark_unidentified_container(pid_dir, s);

  if (auto status = read_small_file(pid_dir, "status")) {
    const auto ids = parse_status(*status);
    s.uid = ids.euid;
    s.gid = ids.egid;
    s.groups = ids.groups;
  }

  std::array<char, 4096> link{};
  const ssize_t n = ::readlinkat(pid_dir, "exe", link.data(), link.size());
  if (n < 0 || static_cast<std::size_t>(n) >= link.size()) {
    return fail(ErrorCode::kNotFound,
                "workload identity: cannot read " + where + "/exe: " + errno_text());
  }
  s.exe_path.assign(link.data(), static_cast<std::size_t>(n));
  const UniqueFd exe(::openat(pid_dir, "exe", O_RDONLY | O_CLOEXEC));
  if (exe.get() < 0) {
    return fail(ErrorCode::kNotFound,
                "workload identity: cannot open " + where + "/exe: " + errno_text());
  }
  auto digest = exe_digest(exe.get(), where + "/exe");
  if (!digest) return fail(std::move(digest).error());
  s.exe_sha256 = std::move(*digest);
  return s;
}

Result<HolderCheck> WorkloadIdentityResolver::check_connected_process(const Selectors& expected) {
  const std::string pid_text = std::to_string(expected.pid);
  const auto dir_path = proc_root_ / pid_text;
  const UniqueFd dir(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    return HolderCheck{HolderVerdict::kShared,
                       "process " + pid_text + " exited; its socket may be held by another"};
  }
  auto s = read_selectors(dir.get(), dir_path.string());
  if (!s || !same_workload(*s, expected)) {
    return HolderCheck{HolderVerdict::kIdentityChanged,
                       "process " + pid_text + " is no longer the workload identified at connect" +
                           (s ? " (now " + s->exe_path + ")" : " (" + s.error().message + ")")};
  }
  return HolderCheck{};
}

void WorkloadIdentityResolver::mark_unidentified_container(int pid_dir, Selectors& s) const {
  if (host_.pid == 0 || host_.mnt == 0) return;
  const Namespaces ns = namespaces_at(pid_dir, "");
  if (ns.pid == 0 || ns.mnt == 0) return;
  // A host service may have a mount namespace of its own (PrivateTmp=) but runs in its unit's
  // cgroup; a PID namespace of its own is a container whatever its cgroup.
  const bool own_pid = ns.pid != host_.pid;
  const bool own_mnt = ns.mnt != host_.mnt && s.systemd_unit.empty();
  if (!own_pid && !own_mnt) return;
  s.container_runtime = std::string(kUnidentifiedRuntime);
  s.container_id = "mnt:" + std::to_string(ns.mnt) + ",pid:" + std::to_string(ns.pid);
}

Result<std::string> WorkloadIdentityResolver::exe_digest(int fd, const std::string& exe) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return fail(ErrorCode::kIo, "workload identity: fstat " + exe + ": " + errno_text());
  }
  const FileKey key{st.st_dev, st.st_ino, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size};
  {
    std::lock_guard lock(mutex_);
    if (auto it = digests_.find(key); it != digests_.end()) return it->second;
  }
  auto hasher = ossl::Hasher::create(ossl::Hash::kSha256);
  if (!hasher) return fail(std::move(hasher).error());
  std::array<std::uint8_t, 65536> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(ErrorCode::kIo, "workload identity: read " + exe + ": " + errno_text());
    }
    if (n == 0) break;
    hasher->update(ByteSpan(buf.data(), static_cast<std::size_t>(n)));
  }
  std::string hex = hex_encode(hasher->finish());
  std::lock_guard lock(mutex_);
  if (digests_.size() > 4096) digests_.clear();  // bounded: one entry per distinct executable
  digests_.emplace(key, hex);
  return hex;
}

bool same_workload(const Selectors& a, const Selectors& b) {
  return a.uid == b.uid && a.gid == b.gid && a.groups == b.groups &&
         a.systemd_unit == b.systemd_unit && a.container_id == b.container_id &&
         a.container_runtime == b.container_runtime && a.pod_uid == b.pod_uid &&
         a.exe_path == b.exe_path && a.exe_sha256 == b.exe_sha256;
}

}  // namespace warden::os
