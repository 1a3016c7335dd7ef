#include "platform/os/workload_identity.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
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
  const auto dir = proc_root_ / pid_text;
  Selectors s;
  s.pid = creds.pid;
  s.uid = creds.uid;
  s.gid = creds.gid;

  std::ifstream cgroup_file(dir / "cgroup");
  if (!cgroup_file) {
    return fail(ErrorCode::kNotFound,
                "workload identity: cannot read " + (dir / "cgroup").string());
  }
  std::stringstream cgroup_text;
  cgroup_text << cgroup_file.rdbuf();
  auto cg = parse_cgroup(cgroup_text.str());
  s.systemd_unit = std::move(cg.systemd_unit);
  s.container_id = std::move(cg.container_id);
  s.container_runtime = std::move(cg.container_runtime);
  s.pod_uid = std::move(cg.pod_uid);

  std::ifstream status_file(dir / "status");
  for (std::string line; std::getline(status_file, line);) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream groups(line.substr(7));
    for (unsigned long g = 0; groups >> g;) s.groups.push_back(static_cast<gid_t>(g));
    break;
  }

  std::error_code ec;
  const auto exe = dir / "exe";
  auto target = std::filesystem::read_symlink(exe, ec);
  if (ec) {
    return fail(ErrorCode::kNotFound,
                "workload identity: cannot read " + exe.string() + ": " + ec.message());
  }
  s.exe_path = target.string();
  auto digest = exe_digest(exe);
  if (!digest) return fail(std::move(digest).error());
  s.exe_sha256 = std::move(*digest);

  // What we read may belong to a process that reused the pid: the pidfd still names the original.
  if (!pidfd.alive()) {
    return fail(ErrorCode::kNotFound,
                "workload identity: process " + pid_text + " exited while it was identified");
  }
  return s;
}

Result<std::string> WorkloadIdentityResolver::exe_digest(const std::filesystem::path& exe) {
  const int fd = ::open(exe.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail(ErrorCode::kNotFound,
                "workload identity: cannot open " + exe.string() + ": " + errno_text());
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return fail(ErrorCode::kIo, "workload identity: fstat " + exe.string() + ": " + errno_text());
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
      return fail(ErrorCode::kIo, "workload identity: read " + exe.string() + ": " + errno_text());
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

}  // namespace warden::os
