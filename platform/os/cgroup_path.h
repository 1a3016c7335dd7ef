#pragma once
// cgroup paths as /proc/PID/cgroup and cgroupfs show them, parsed into a systemd unit and a
// container. Pure functions: no file access.

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace warden::os {

/// A cgroup path of the kNamespaced shape: containerd namespace and container id.
struct ContainerdTaskName {
  std::string ns;
  std::string id;
  /// The container id reported for it: "<namespace>/<id>" (ids are unique per namespace only).
  [[nodiscard]] std::string container_id() const { return ns + "/" + id; }
};

/// What /proc/PID/cgroup says about a process. Empty strings where nothing was recognised.
struct CgroupIdentity {
  std::string systemd_unit;       ///< "foo.service", "user@1000.service/app.slice/x.scope"
  std::string container_id;       ///< lower-case hex id as the runtime names it
  std::string container_runtime;  ///< "docker", "containerd", "cri-o", "podman", "kubepods"
  std::string pod_uid;            ///< Kubernetes pod uid (dashes restored), when under kubepods
  /// Set when no shape but kNamespaced matched: a container only if containerd records the task.
  std::optional<ContainerdTaskName> containerd_task;
};

/// How a runtime names a container's cgroup directory.
enum class ShapeForm {
  kScope,       ///< "<prefix><hex id>.scope" (systemd cgroup driver)
  kDirectory,   ///< "<prefix><64 hex id>" under `parent` (cgroupfs driver)
  kNamedScope,  ///< "<prefix><name>.scope" under `parent`: the id is the machine name
  /// "/<namespace>/<id>" at the root of the hierarchy (containerd's default for `ctr run`): any
  /// two-level path has this shape, so parse_cgroup() reports it only as a candidate
  /// (CgroupIdentity::containerd_task); it is a container when containerd's own record of the task
  /// exists (os::containerd_task_exists(), workload_identity.h).
  kNamespaced,
};

/// `parent` of a kDirectory shape that stands for a Kubernetes pod directory ("pod<uid>" under
/// kubepods).
inline constexpr std::string_view kPodParent = "pod<uid>";

/// One runtime's path shape for one cgroup driver.
struct ContainerShape {
  std::string_view runtime;  ///< reported as CgroupIdentity::container_runtime
  std::string_view driver;   ///< for docs: "systemd", "cgroupfs"
  ShapeForm form;
  std::string_view prefix;
  std::string_view parent;   ///< required parent directory; empty: any
  std::string_view example;  ///< a path the runtime creates, "<id>" standing for the id
};

/// Every shape recognised, in the order they are tried.
std::span<const ContainerShape> container_shapes();

/// Parses the contents of /proc/PID/cgroup (v2 "0::/path" line preferred, v1 lines otherwise).
/// Unknown layouts yield an empty identity.
CgroupIdentity parse_cgroup(std::string_view proc_cgroup);

/// A container as its cgroup scope directory names it.
struct ContainerScope {
  std::string id;
  std::string runtime;
};

/// "/<namespace>/<id>" with both names as containerd allows them (letters, digits, '_', '-', '.';
/// a letter or digit first; at most 76 characters), e.g. "/default/web"; nullopt otherwise.
std::optional<ContainerdTaskName> containerd_task_name(std::string_view cgroup_path);

/// The container whose scope the cgroup directory `rel` (relative to the cgroupfs root, no
/// leading slash) is; none for directories inside a container (its own sub-cgroups) or unrelated
/// to one.
std::optional<ContainerScope> container_scope(const std::string& rel);

}  // namespace warden::os
