#pragma once
// cgroup paths as /proc/PID/cgroup and cgroupfs show them, parsed into a systemd unit and a
// container. Pure functions: no file access.

#include <optional>
#include <string>
#include <string_view>

namespace warden::os {

/// What /proc/PID/cgroup says about a process. Empty strings where nothing was recognised.
struct CgroupIdentity {
  std::string systemd_unit;       ///< "foo.service", "user@1000.service/app.slice/x.scope"
  std::string container_id;       ///< lower-case hex id as the runtime names it
  std::string container_runtime;  ///< "docker", "containerd", "cri-o", "podman", "kubepods"
  std::string pod_uid;            ///< Kubernetes pod uid (dashes restored), when under kubepods
};

/// Parses the contents of /proc/PID/cgroup (v2 "0::/path" line preferred, v1 lines otherwise).
/// Unknown layouts yield an empty identity.
CgroupIdentity parse_cgroup(std::string_view proc_cgroup);

/// A container as its cgroup scope directory names it.
struct ContainerScope {
  std::string id;
  std::string runtime;
};

/// The container whose scope the cgroup directory `rel` (relative to the cgroupfs root, no
/// leading slash) is; none for directories inside a container (its own sub-cgroups) or unrelated
/// to one.
std::optional<ContainerScope> container_scope(const std::string& rel);

}  // namespace warden::os
