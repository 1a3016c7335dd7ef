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
#include <memory>
#include <optional>
#include <poll.h>
#include <unistd.h>
#include <vector>

#include "platform/os/unique_fd.h"
#include "platform/os/workload_identity.h"

namespace warden::os {
namespace {

std::string errno_text() { return std::strerror(errno); }

using Dir = std::unique_ptr<DIR, int (*)(DIR*)>;

/// The directory open as `fd`, which then owns it; empty when `fd` is (or fdopendir fails).
Dir open_dir(UniqueFd fd) {
  DIR* d = fd.get() >= 0 ? ::fdopendir(fd.get()) : nullptr;
  if (d != nullptr) (void)fd.release();
  return Dir(d, ::closedir);
}

/// Whether the file table listed by the open directory `fd_dir` (/proc/PID/fd) holds `target`
/// ("socket:[inode]").
bool table_holds(UniqueFd fd_dir, std::string_view target) {
  const Dir dir = open_dir(std::move(fd_dir));
  DIR* d = dir.get();
  if (d == nullptr) return false;
  bool found = false;
  std::array<char, 64> link{};
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const ssize_t n = ::readlinkat(::dirfd(d), e->d_name, link.data(), link.size());
    if (n > 0 && std::string_view(link.data(), static_cast<std::size_t>(n)) == target) {
      found = true;
      break;
    }
  }
  return found;
}

bool all_digits(const char* name) {
  if (*name == '\0') return false;
  for (; *name != '\0'; ++name) {
    if (*name < '0' || *name > '9') return false;
  }
  return true;
}

/// Whether the process open as `pid_dir` (pid `pid`) holds `target` in its file table or in the
/// table of any of its threads that has one of its own (clone without CLONE_FILES, unshare).
bool process_holds(int pid_dir, pid_t pid, std::string_view target) {
  if (table_holds(UniqueFd(::openat(pid_dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)), target))
    return true;
  const Dir tasks =
      open_dir(UniqueFd(::openat(pid_dir, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
  DIR* d = tasks.get();
  if (d == nullptr) return false;
  bool found = false;
  while (const dirent* e = ::readdir(d)) {
    if (!all_digits(e->d_name)) continue;
    const auto tid = static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10));
    if (tid == pid) continue;
    // Threads that share the leader's table (the usual case) were searched above.
    if (::syscall(SYS_kcmp, pid, tid, KCMP_FILES, 0, 0) == 0) continue;
    const std::string fd_path = std::string(e->d_name) + "/fd";
    if (table_holds(
            UniqueFd(::openat(::dirfd(d), fd_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)),
            target)) {
      found = true;
      break;
    }
  }
  return found;
}

}  // namespace

Result<HolderCheck> WorkloadIdentityResolver::check_socket_holders(ino_t socket_inode,
                                                                   const Selectors& expected) {
  const std::string target = "socket:[" + std::to_string(socket_inode) + "]";
  UniqueFd proc_fd(::open(proc_root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (proc_fd.get() < 0) {
    return fail(ErrorCode::kIo,
                "workload identity: cannot open " + proc_root_.string() + ": " + errno_text());
  }
  const Dir closer = open_dir(std::move(proc_fd));
  DIR* proc = closer.get();
  if (proc == nullptr) {
    return fail(ErrorCode::kIo, "workload identity: cannot list " + proc_root_.string());
  }
  std::size_t holders = 0;
  while (const dirent* e = ::readdir(proc)) {
    if (!all_digits(e->d_name)) continue;
    // /proc/PID itself is owned by the effective uid even when the process is not dumpable.
    // fstatat first, as the cheapest filter: most processes are another uid's.
    struct stat st {};
    if (::fstatat(::dirfd(proc), e->d_name, &st, 0) != 0 || st.st_uid != expected.uid) continue;
    // The directory stays bound to this process: if it exits, reads through it fail rather than
    // reach a process that reused the pid (whose uid is checked again through it).
    const UniqueFd dir(::openat(::dirfd(proc), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) continue;  // exited
    if (::fstat(dir.get(), &st) != 0 || st.st_uid != expected.uid) continue;
    const auto pid = static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10));
    if (!process_holds(dir.get(), pid, target)) continue;
    ++holders;
    const std::string where = (proc_root_ / e->d_name).string();
    auto s = read_selectors(dir.get(), where);
    const bool peer = pid == expected.pid;
    if (!s) {
      return HolderCheck{peer ? HolderVerdict::kIdentityChanged : HolderVerdict::kShared,
                         "process " + std::to_string(pid) + " holds the socket and cannot be " +
                             "identified (" + s.error().message + ")"};
    }
    if (!same_workload(*s, expected)) {
      if (peer) {
        return HolderCheck{HolderVerdict::kIdentityChanged,
                           "process " + std::to_string(pid) + " is now " + s->exe_path + " (uid " +
                               std::to_string(s->uid) + "), identified at connect as " +
                               expected.exe_path + " (uid " + std::to_string(expected.uid) + ")"};
      }
      return HolderCheck{HolderVerdict::kShared, "process " + std::to_string(pid) + " (" +
                                                     s->exe_path +
                                                     ") also holds the socket and is another "
                                                     "workload"};
    }
  }
  if (holders == 0) {
    return HolderCheck{HolderVerdict::kShared, "no process of uid " + std::to_string(expected.uid) +
                                                   " holds the socket's client end (handed over)"};
  }
  return HolderCheck{};
}

}  // namespace warden::os
