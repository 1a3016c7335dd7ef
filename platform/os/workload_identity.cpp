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

namespace warden::os {
namespace {

bool is_hex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

/// "<prefix><id>.scope" with a hex id -> id.
std::string_view scoped_id(std::string_view component, std::string_view prefix) {
  if (component.substr(0, prefix.size()) != prefix || !ends_with(component, ".scope")) return {};
  std::string_view id = component.substr(prefix.size(), component.size() - prefix.size() - 6);
  return is_hex(id) && id.size() >= 12 ? id : std::string_view{};
}

struct ScopePattern {
  std::string_view prefix;
  std::string_view runtime;
};
constexpr std::array<ScopePattern, 4> kScopePatterns{{
    {"docker-", "docker"},
    {"cri-containerd-", "containerd"},
    {"crio-", "cri-o"},
    {"libpod-", "podman"},
}};

void parse_path(std::string_view path, CgroupIdentity& out) {
  const auto parts = split_path(path);
  bool under_kubepods = false;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string_view c = parts[i];
    if (c == "kubepods" || c == "kubepods.slice") under_kubepods = true;
    // Pod uid: "kubepods-burstable-pod<uid>.slice" (v2, dashes as underscores) or "pod<uid>" (v1).
    if (under_kubepods && out.pod_uid.empty()) {
      const auto pos = c.rfind("pod");
      if (c.substr(0, 3) == "pod" && c.size() > 3 && c.find('.') == std::string_view::npos) {
        out.pod_uid = std::string(c.substr(3));
      } else if (pos != std::string_view::npos && ends_with(c, ".slice") && pos > 0 &&
                 c[pos - 1] == '-') {
        std::string uid(c.substr(pos + 3, c.size() - pos - 3 - 6));
        for (char& ch : uid) {
          if (ch == '_') ch = '-';
        }
        out.pod_uid = uid;
      }
    }
    for (const auto& pattern : kScopePatterns) {
      if (auto id = scoped_id(c, pattern.prefix); !id.empty()) {
        out.container_id = std::string(id);
        out.container_runtime = std::string(pattern.runtime);
      }
    }
    // v1 layouts: "/docker/<64hex>" and "/kubepods/<qos>/pod<uid>/<64hex>".
    if (out.container_id.empty() && is_hex(c) && c.size() == 64 && i > 0) {
      if (parts[i - 1] == "docker") {
        out.container_id = std::string(c);
        out.container_runtime = "docker";
      } else if (under_kubepods) {
        out.container_id = std::string(c);
        out.container_runtime = "kubepods";
      }
    }
  }
  // systemd unit: the first .service or .scope; under user@N.service the whole user-manager path.
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string_view c = parts[i];
    if (!ends_with(c, ".service") && !ends_with(c, ".scope")) continue;
    std::string unit(c);
    if (c.substr(0, 5) == "user@" && ends_with(c, ".service")) {
      for (std::size_t j = i + 1; j < parts.size(); ++j) {
        unit += '/';
        unit += parts[j];
      }
    }
    out.systemd_unit = std::move(unit);
    break;
  }
}

std::string errno_text() { return std::strerror(errno); }

/// Closes a descriptor on scope exit.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

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

CgroupIdentity parse_cgroup(std::string_view proc_cgroup) {
  std::string_view v2_path;
  std::string_view systemd_v1_path;
  std::vector<std::string_view> v1_paths;
  std::size_t start = 0;
  while (start < proc_cgroup.size()) {
    std::size_t end = proc_cgroup.find('\n', start);
    if (end == std::string_view::npos) end = proc_cgroup.size();
    const std::string_view line = proc_cgroup.substr(start, end - start);
    start = end + 1;
    const auto first = line.find(':');
    if (first == std::string_view::npos) continue;
    const auto second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, first);
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const std::string_view path = line.substr(second + 1);
    if (id == "0" && controllers.empty()) {
      v2_path = path;
    } else if (controllers == "name=systemd") {
      systemd_v1_path = path;
    } else {
      v1_paths.push_back(path);
    }
  }
  CgroupIdentity out;
  // Hybrid hosts: the v2 line may be just "/" while v1 hierarchies carry the real path.
  if (!v2_path.empty()) parse_path(v2_path, out);
  if (out.systemd_unit.empty() && out.container_id.empty() && !systemd_v1_path.empty()) {
    parse_path(systemd_v1_path, out);
  }
  for (std::string_view path : v1_paths) {
    if (!out.container_id.empty()) break;
    CgroupIdentity v1;
    parse_path(path, v1);
    if (!v1.container_id.empty()) {
      out.container_id = v1.container_id;
      out.container_runtime = v1.container_runtime;
      if (out.pod_uid.empty()) out.pod_uid = v1.pod_uid;
    }
  }
  return out;
}

Result<PeerCredentials> peer_credentials(int socket_fd) {
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return fail(ErrorCode::kIo, "workload identity: SO_PEERCRED failed: " + errno_text());
  }
  if (cred.pid <= 0) {
    return fail(ErrorCode::kPermissionDenied,
                "workload identity: peer has no pid (expected a process, found pid " +
                    std::to_string(cred.pid) + ")");
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

Result<Pidfd> Pidfd::open(pid_t pid) {
  const long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    return fail(ErrorCode::kNotFound, "workload identity: pidfd_open(" + std::to_string(pid) +
                                          ") failed: " + errno_text());
  }
  return Pidfd(static_cast<int>(fd), pid);
}

Pidfd::Pidfd(Pidfd&& other) noexcept : fd_(other.fd_), pid_(other.pid_) { other.fd_ = -1; }

Pidfd& Pidfd::operator=(Pidfd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    pid_ = other.pid_;
    other.fd_ = -1;
  }
  return *this;
}

Pidfd::~Pidfd() {
  if (fd_ >= 0) ::close(fd_);
}

bool Pidfd::alive() const {
  if (fd_ < 0) return false;
  // A pidfd polls readable once its process has exited (zombie or reaped).
  struct pollfd p {
    fd_, POLLIN, 0
  };
  return ::poll(&p, 1, 0) == 0;
}

WorkloadIdentityResolver::WorkloadIdentityResolver(std::filesystem::path proc_root)
    : proc_root_(std::move(proc_root)) {}

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

Status enable_sender_credentials(int listening_fd) {
  const int on = 1;
  if (::setsockopt(listening_fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0) {
    return fail(ErrorCode::kIo, "workload identity: SO_PASSCRED failed: " + errno_text());
  }
  return ok();
}

ReceivedChunk receive_with_sender(int socket_fd, void* data, std::size_t size) {
  iovec io{data, size};
  // Room for the credentials only: descriptors a client passes (SCM_RIGHTS) do not fit, and
  // the kernel then discards them instead of installing them in the agent.
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(ucred))> control{};
  msghdr msg{};
  msg.msg_iov = &io;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ReceivedChunk out;
  out.size = ::recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
  if (out.size <= 0) return out;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
        c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      ucred cred{};
      std::memcpy(&cred, CMSG_DATA(c), sizeof(cred));
      out.sender = cred.pid;
    }
  }
  return out;
}

Result<ino_t> unix_peer_inode(int socket_fd) {
  struct stat st {};
  if (::fstat(socket_fd, &st) != 0) {
    return fail(ErrorCode::kIo, "socket diag: fstat: " + errno_text());
  }
  const UniqueFd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (nl.get() < 0) return fail(ErrorCode::kIo, "socket diag: netlink socket: " + errno_text());
  struct Request {
    nlmsghdr header;
    unix_diag_req body;
  } request{};
  request.header.nlmsg_len = sizeof(request);
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.body.sdiag_family = AF_UNIX;
  request.body.udiag_states = ~0U;
  request.body.udiag_ino = static_cast<std::uint32_t>(st.st_ino);
  request.body.udiag_show = UDIAG_SHOW_PEER;
  request.body.udiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.body.udiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(nl.get(), &request, sizeof(request), 0,
               reinterpret_cast<const sockaddr*>(&kernel),  // NOLINT: the sockets API
               sizeof(kernel)) != static_cast<ssize_t>(sizeof(request))) {
    return fail(ErrorCode::kIo, "socket diag: send: " + errno_text());
  }
  std::array<std::uint8_t, 8192> reply{};
  const ssize_t n = ::recv(nl.get(), reply.data(), reply.size(), 0);
  if (n < 0) return fail(ErrorCode::kIo, "socket diag: receive: " + errno_text());
  // Parsed by hand, every length checked: the NLMSG_* macros are C casts.
  const auto size = static_cast<std::size_t>(n);
  constexpr std::size_t kHeader = (sizeof(nlmsghdr) + 3U) & ~3U;
  nlmsghdr header{};
  if (size < sizeof(header)) return fail(ErrorCode::kMalformed, "socket diag: short reply");
  std::memcpy(&header, reply.data(), sizeof(header));
  if (header.nlmsg_len > size || header.nlmsg_len < kHeader) {
    return fail(ErrorCode::kMalformed, "socket diag: bad reply length");
  }
  if (header.nlmsg_type == NLMSG_ERROR) {
    nlmsgerr err{};
    if (header.nlmsg_len >= kHeader + sizeof(err))
      std::memcpy(&err, reply.data() + kHeader, sizeof(err));
    return fail(ErrorCode::kNotFound, "socket diag: no such socket (inode " +
                                          std::to_string(st.st_ino) +
                                          "): " + std::strerror(-err.error));
  }
  if (header.nlmsg_type != SOCK_DIAG_BY_FAMILY) {
    return fail(ErrorCode::kMalformed, "socket diag: unexpected reply type");
  }
  std::size_t at = kHeader + ((sizeof(unix_diag_msg) + 3U) & ~3U);
  while (at + sizeof(rtattr) <= header.nlmsg_len) {
    rtattr attr{};
    std::memcpy(&attr, reply.data() + at, sizeof(attr));
    if (attr.rta_len < sizeof(attr) || at + attr.rta_len > header.nlmsg_len) break;
    if (attr.rta_type == UNIX_DIAG_PEER && attr.rta_len >= sizeof(attr) + sizeof(std::uint32_t)) {
      std::uint32_t peer = 0;
      std::memcpy(&peer, reply.data() + at + ((sizeof(attr) + 3U) & ~3U), sizeof(peer));
      if (peer == 0) break;
      return static_cast<ino_t>(peer);
    }
    at += (attr.rta_len + 3U) & ~3U;
  }
  return fail(ErrorCode::kNotFound, "socket diag: the socket has no peer (closed)");
}

namespace {

/// Whether the file table listed by the open directory `fd_dir` (/proc/PID/fd) holds `target`
/// ("socket:[inode]"). The directory is consumed.
bool table_holds(int fd_dir, std::string_view target) {
  DIR* d = ::fdopendir(fd_dir);
  if (d == nullptr) {
    ::close(fd_dir);
    return false;
  }
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
  ::closedir(d);
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
  const int fds = ::openat(pid_dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fds >= 0 && table_holds(fds, target)) return true;
  const int tasks = ::openat(pid_dir, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (tasks < 0) return false;
  DIR* d = ::fdopendir(tasks);
  if (d == nullptr) {
    ::close(tasks);
    return false;
  }
  bool found = false;
  while (const dirent* e = ::readdir(d)) {
    if (!all_digits(e->d_name)) continue;
    const auto tid = static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10));
    if (tid == pid) continue;
    // Threads that share the leader's table (the usual case) were searched above.
    if (::syscall(SYS_kcmp, pid, tid, KCMP_FILES, 0, 0) == 0) continue;
    const std::string fd_path = std::string(e->d_name) + "/fd";
    const int tfds = ::openat(::dirfd(d), fd_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tfds >= 0 && table_holds(tfds, target)) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

}  // namespace

Result<HolderCheck> WorkloadIdentityResolver::check_socket_holders(ino_t socket_inode,
                                                                   const Selectors& expected) {
  const std::string target = "socket:[" + std::to_string(socket_inode) + "]";
  const int proc_fd = ::open(proc_root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc_fd < 0) {
    return fail(ErrorCode::kIo,
                "workload identity: cannot open " + proc_root_.string() + ": " + errno_text());
  }
  DIR* proc = ::fdopendir(proc_fd);
  if (proc == nullptr) {
    ::close(proc_fd);
    return fail(ErrorCode::kIo, "workload identity: cannot list " + proc_root_.string());
  }
  struct DirCloser {
    DIR* d;
    ~DirCloser() { ::closedir(d); }
  } closer{proc};
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
