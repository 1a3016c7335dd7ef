#pragma once
// Workload identity from the kernel, never from what the caller says: SO_PEERCRED of an accepted
// Unix socket, a pidfd taken at accept time (defeats pid reuse), /proc/PID/cgroup parsed into a
// systemd unit and a container id, and the executable's path and sha256.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "platform/base/error.h"
#include "platform/os/cgroup_path.h"
#include "platform/os/unique_fd.h"

namespace warden::os {

/// container_runtime of a process in a PID namespace other than the host's, or a mount namespace
/// other than the host's outside any systemd unit, whose cgroup no runtime shape names
/// (container_shapes()). Its container_id names the namespaces, so no two such containers, nor
/// one and the host, share an identity; only a policy rule that names it matches it.
inline constexpr std::string_view kUnidentifiedRuntime = "unidentified";

/// Inode numbers of a process's namespaces; 0 where unreadable.
struct Namespaces {
  ino_t pid = 0;
  ino_t mnt = 0;
};

/// The selectors a policy can match a workload on.
struct Selectors {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  ///< supplementary groups (/proc/PID/status "Groups:")
  std::string systemd_unit;
  std::string container_id;
  std::string container_runtime;
  std::string pod_uid;
  std::string exe_path;
  std::string exe_sha256;  ///< lower-case hex; empty when the executable could not be read
};

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

/// SO_PEERCRED of a connected Unix socket.
Result<PeerCredentials> peer_credentials(int socket_fd);

/// Sets SO_PASSCRED on a listening Unix stream socket, so that the kernel attaches the sending
/// process's pid, uid and gid to every chunk written to the sockets it accepts. Set on the
/// listener, not after accept: accepted sockets inherit it, and bytes a client sends before
/// accept carry credentials too (the kernel attaches them while the socket is not yet accepted).
Status enable_sender_credentials(int listening_fd);

/// One recvmsg() on a socket with SO_PASSCRED: the bytes and the process that wrote them. A
/// stream socket never returns the bytes of two different senders in one call.
struct ReceivedChunk {
  ssize_t size = 0;  ///< as recv(): < 0 with errno set, 0 at end of stream
  pid_t sender = 0;  ///< the writer's pid (thread group id); 0 when the kernel attached none
};
ReceivedChunk receive_with_sender(int socket_fd, void* data, std::size_t size);

/// The inode of the socket at the other end of the connected Unix socket `socket_fd`
/// (NETLINK_SOCK_DIAG, UDIAG_SHOW_PEER): the client's end of an accepted connection.
Result<ino_t> unix_peer_inode(int socket_fd);

/// Whether the processes that hold a socket are the workload it was identified as.
enum class HolderVerdict {
  kSame,             ///< every holder has the expected selectors
  kIdentityChanged,  ///< the identified process itself no longer has them (it exec'd)
  kShared,           ///< another process holds it, or no process does (handed on)
};
struct HolderCheck {
  HolderVerdict verdict = HolderVerdict::kSame;
  std::string detail;  ///< for a refusal: which process, and what differs
};

/// True when two selector sets name the same workload (the pid aside).
bool same_workload(const Selectors& a, const Selectors& b);

/// An owned pidfd (pidfd_open); closes on destruction.
class Pidfd {
 public:
  static Result<Pidfd> open(pid_t pid);
  Pidfd() = default;

  /// True while the process the pidfd refers to has not exited (zombies count as exited).
  [[nodiscard]] bool alive() const;
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  Pidfd(int fd, pid_t pid) : fd_(fd), pid_(pid) {}
  UniqueFd fd_;
  pid_t pid_ = 0;
};

/// containerd's default state directory (its `state` setting).
inline constexpr const char* kContainerdState = "/run/containerd";

/// Whether containerd records the task `task` ran by its runc shim: the directory
/// <containerd_state>/io.containerd.runtime.v2.task/<namespace>/<id>, which containerd creates
/// before runc makes the cgroup and removes when the task is deleted.
bool containerd_task_exists(const std::filesystem::path& containerd_state,
                            const ContainerdTaskName& task);

/// Resolves selectors for a peer. Thread-safe. The executable digest is cached by
/// (dev, inode, mtime, size) so that a busy workload costs one stat per connection.
class WorkloadIdentityResolver {
 public:
  /// `containerd_state`: where containerd_task_exists() looks for tasks of `ctr run` containers.
  explicit WorkloadIdentityResolver(std::filesystem::path proc_root = "/proc",
                                    std::filesystem::path containerd_state = kContainerdState);

  /// SO_PEERCRED + pidfd_open on an accepted socket, then resolve().
  Result<Selectors> resolve_socket(int socket_fd);

  /// Reads /proc for `creds.pid`, then checks through `pidfd` that the process is still the one
  /// the credentials named; an exited (or reused) pid is an error, never a wrong identity.
  Result<Selectors> resolve(const PeerCredentials& creds, const Pidfd& pidfd);

  /// At the moment of the call, finds every process whose file table holds the socket
  /// `socket_inode` (the client end of a connection; unix_peer_inode) and checks that each has
  /// the selectors `expected` (uid and gid are the effective ones, as SO_PEERCRED reports) and
  /// that at least one holds it. Only processes whose effective uid is `expected.uid` are
  /// searched (stat of /proc/PID): another uid could only hold the socket if a holder handed it
  /// over. Every thread with a file table of its own is searched. Cost: one fstatat per process,
  /// then one readlink per descriptor of that uid's processes (docs/PERFORMANCE.md).
  /// Not seen: a descriptor in flight in an SCM_RIGHTS message (docs/threat-model.md).
  Result<HolderCheck> check_socket_holders(ino_t socket_inode, const Selectors& expected);

  /// The fallback when the client's end of the socket cannot be found (it lives in another
  /// network namespace, where socket diag does not reach: a container's): checks only that the
  /// process identified at connect, `expected.pid`, still has the selectors `expected`. Sharing
  /// the socket with another process is not seen (docs/threat-model.md).
  Result<HolderCheck> check_connected_process(const Selectors& expected);

 private:
  Result<std::string> exe_digest(int exe_fd, const std::string& exe);
  /// Reads the selectors of the process whose /proc directory is open as `pid_dir`.
  Result<Selectors> read_selectors(int pid_dir, const std::string& where);
  void mark_unidentified_container(int pid_dir, Selectors& s) const;

  std::filesystem::path proc_root_;
  std::filesystem::path containerd_state_;
  Namespaces host_;
  using FileKey = std::tuple<dev_t, ino_t, std::int64_t, std::int64_t, std::int64_t>;
  std::mutex mutex_;
  std::map<FileKey, std::string> digests_;
};

}  // namespace warden::os
