#pragma once
// wardend started as root outside systemd (scripts/demo, an operator's shell) becomes the
// unprivileged `agent.user` once everything that needs root is open, keeping exactly the two
// capabilities the systemd unit grants (systemd/wardend.service): CAP_DAC_READ_SEARCH (IMA and
// boot logs in securityfs, other users' /proc entries) and CAP_SYS_PTRACE (other users'
// /proc/PID/exe, to hash a workload's executable).

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "platform/base/error.h"

namespace warden::os {

/// The account wardend switches to.
struct ServiceAccount {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;              ///< the user's primary group
  std::vector<gid_t> groups;  ///< supplementary: the user's groups, plus "tss" when it exists
};

/// Looks `name` up in the user database. kNotFound (naming the user) when there is no such user.
Result<ServiceAccount> find_service_account(const std::string& name);

/// Gives the state directory, its secrets/ subdirectory and the files in both to `account`, so
/// that it keeps working after the switch (a root-run agent may have created them). Symlinks are
/// changed themselves, never followed.
Status hand_over_state_dir(const std::filesystem::path& dir, const ServiceAccount& account);

/// Switches uid, gid and supplementary groups to `account` and keeps only CAP_DAC_READ_SEARCH and
/// CAP_SYS_PTRACE (effective and permitted; bounding set, inheritable and ambient sets cleared of
/// everything else), then sets no_new_privs. Capabilities belong to threads: call before any
/// thread starts (kInternal otherwise: a broken invariant of the caller). When already running as
/// `account` (started by systemd with User=) nothing changes. kPermissionDenied when not root and
/// not `account`.
Status drop_privileges(const ServiceAccount& account);

}  // namespace warden::os
