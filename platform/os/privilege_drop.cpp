#include "platform/os/privilege_drop.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <grp.h>
#include <pwd.h>
#include <system_error>
#include <unistd.h>

namespace warden::os {
namespace {

constexpr unsigned kKept[] = {CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE};

bool kept(unsigned cap) {
  for (unsigned k : kKept) {
    if (k == cap) return true;
  }
  return false;
}

Error sys_error(const std::string& what) {
  const int e = errno;
  return Error{e == EPERM ? ErrorCode::kPermissionDenied : ErrorCode::kInternal,
               "privilege drop: " + what + ": " + std::strerror(e)};
}

std::size_t thread_count() {
  std::size_t n = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++n;
  }
  return n;
}

unsigned last_cap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  unsigned n = CAP_LAST_CAP;
  in >> n;
  return n;
}

Status set_kept_caps() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  for (unsigned cap : kKept) {
    data[CAP_TO_INDEX(cap)].effective |= CAP_TO_MASK(cap);
    data[CAP_TO_INDEX(cap)].permitted |= CAP_TO_MASK(cap);
  }
  if (::syscall(SYS_capset, &header, data) != 0)
    return fail(sys_error("capset(CAP_DAC_READ_SEARCH CAP_SYS_PTRACE)"));
  return ok();
}

// Checks what the kernel now says: the uid stuck, root cannot be regained, exactly the kept
// capabilities are effective.
Status verify(const ServiceAccount& account) {
  uid_t r = 0, e = 0, s = 0;
  if (::getresuid(&r, &e, &s) != 0 || r != account.uid || e != account.uid || s != account.uid) {
    return fail(ErrorCode::kInternal, "privilege drop: expected uid " +
                                          std::to_string(account.uid) + " in every slot, found " +
                                          std::to_string(r) + "/" + std::to_string(e) + "/" +
                                          std::to_string(s));
  }
  if (::setuid(0) == 0)
    return fail(ErrorCode::kInternal, "privilege drop: uid 0 could be regained");
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  if (::syscall(SYS_capget, &header, data) != 0) return fail(sys_error("capget"));
  for (unsigned cap = 0; cap <= last_cap(); ++cap) {
    const bool on = (data[CAP_TO_INDEX(cap)].effective & CAP_TO_MASK(cap)) != 0;
    if (on != kept(cap)) {
      return fail(ErrorCode::kInternal, "privilege drop: capability " + std::to_string(cap) +
                                            (on ? " still effective" : " missing"));
    }
  }
  return ok();
}

}  // namespace

Result<ServiceAccount> find_service_account(const std::string& name) {
  if (name.empty())
    return fail(ErrorCode::kInvalidArgument, "agent.user: expected a user name, found \"\"");
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  const int rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    return fail(ErrorCode::kNotFound,
                "agent.user: no user \"" + name + "\" on this system" +
                    (rc != 0 ? std::string(" (") + std::strerror(rc) + ")" : std::string()) +
                    "; create it (packaging/: systemd-sysusers wardend.conf) or change the key");
  }
  ServiceAccount account{name, pw.pw_uid, pw.pw_gid, {}};
  int n = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(n));
  while (::getgrouplist(name.c_str(), account.gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<std::size_t>(n));
  }
  groups.resize(static_cast<std::size_t>(n));
  // The TPM device (/dev/tpmrm0) is group tss, as in the unit's SupplementaryGroups=tss.
  group gr{};
  group* tss = nullptr;
  if (::getgrnam_r("tss", &gr, buf.data(), buf.size(), &tss) == 0 && tss != nullptr &&
      std::find(groups.begin(), groups.end(), tss->gr_gid) == groups.end()) {
    groups.push_back(tss->gr_gid);
  }
  account.groups = std::move(groups);
  return account;
}

Status hand_over_state_dir(const std::filesystem::path& dir, const ServiceAccount& account) {
  auto give = [&](const std::filesystem::path& p) -> Status {
    if (::fchownat(AT_FDCWD, p.c_str(), account.uid, account.gid, AT_SYMLINK_NOFOLLOW) != 0)
      return fail(sys_error("chown " + p.string() + " to " + account.name));
    return ok();
  };
  WARDEN_TRY_STATUS(give(dir));
  std::error_code ec;
  for (const auto& sub : {dir, dir / "secrets"}) {
    for (std::filesystem::directory_iterator it(sub, ec), end; !ec && it != end; it.increment(ec)) {
      WARDEN_TRY_STATUS(give(it->path()));
    }
    if (ec && ec != std::errc::no_such_file_or_directory) {
      return fail(ErrorCode::kIo, "privilege drop: list " + sub.string() + ": " + ec.message());
    }
    ec.clear();
  }
  return ok();
}

Status drop_privileges(const ServiceAccount& account) {
  if (::getuid() == account.uid && ::geteuid() == account.uid) return ok();
  if (::geteuid() != 0) {
    return fail(ErrorCode::kPermissionDenied,
                "privilege drop: agent.user = \"" + account.name +
                    "\" needs wardend started as root (or as that user); running as uid " +
                    std::to_string(::geteuid()));
  }
  if (const auto n = thread_count(); n != 1) {
    return fail(ErrorCode::kInternal, "privilege drop: expected 1 thread, found " +
                                          std::to_string(n) +
                                          " (capabilities are per thread: drop before any starts)");
  }
  // Nothing regained through a bounding set, an exec or an ambient set.
  for (unsigned cap = 0; cap <= last_cap(); ++cap) {
    if (!kept(cap) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return fail(sys_error("drop capability " + std::to_string(cap) + " from the bounding set"));
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
    return fail(sys_error("clear the ambient capabilities"));
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return fail(sys_error("PR_SET_KEEPCAPS"));
  if (::setgroups(account.groups.size(), account.groups.data()) != 0)
    return fail(sys_error("setgroups"));
  if (::setresgid(account.gid, account.gid, account.gid) != 0)
    return fail(sys_error("setresgid " + std::to_string(account.gid)));
  if (::setresuid(account.uid, account.uid, account.uid) != 0)
    return fail(sys_error("setresuid " + std::to_string(account.uid)));
  WARDEN_TRY_STATUS(set_kept_caps());
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return fail(sys_error("PR_SET_KEEPCAPS off"));
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(sys_error("PR_SET_NO_NEW_PRIVS"));
  return verify(account);
}

}  // namespace warden::os
