#include "platform/os/cgroup_path.h"

#include <array>
#include <span>
#include <vector>

namespace warden::os {
namespace {
// The one place that knows runtime path shapes. Each example is a path the runtime really
// creates (docs/posture.md lists them; tests/unit/platform/workload_identity_test.cpp parses each).
// Helper cgroups beside a container are not containers: podman's "libpod_parent/conmon" and
// "libpod-conmon-<id>.scope", CRI-O's "crio-conmon-<id>.scope" (their ids are not hex).
constexpr std::array<ContainerShape, 11> kShapes{{
    {"docker", "systemd", ShapeForm::kScope, "docker-", "", "/system.slice/docker-<id>.scope"},
    {"docker", "cgroupfs", ShapeForm::kDirectory, "", "docker", "/docker/<id>"},
    {"podman", "systemd", ShapeForm::kScope, "libpod-", "", "/machine.slice/libpod-<id>.scope"},
    {"podman", "systemd (rootless)", ShapeForm::kScope, "libpod-", "",
     "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-<id>.scope/container"},
    {"podman", "cgroupfs", ShapeForm::kDirectory, "libpod-", "libpod_parent",
     "/libpod_parent/libpod-<id>"},
    {"containerd", "systemd", ShapeForm::kScope, "cri-containerd-", "",
     "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<pod_>.slice/"
     "cri-containerd-<id>.scope"},
    {"cri-o", "systemd", ShapeForm::kScope, "crio-", "",
     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<pod_>.slice/"
     "crio-<id>.scope"},
    {"cri-o", "cgroupfs", ShapeForm::kDirectory, "crio-", kPodParent,
     "/kubepods/besteffort/pod<pod>/crio-<id>"},
    {"kubepods", "cgroupfs", ShapeForm::kDirectory, "", kPodParent,
     "/kubepods/burstable/pod<pod>/<id>"},
    {"containerd", "cgroupfs (ctr)", ShapeForm::kNamespaced, "", "", "/<namespace>/<id>"},
    {"systemd-nspawn", "systemd", ShapeForm::kNamedScope, "machine-", "machine.slice",
     "/machine.slice/machine-<name>.scope"},
}};

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

bool parent_matches(const std::vector<std::string_view>& parts, std::size_t i,
                    std::string_view parent, bool under_kubepods) {
  if (parent.empty()) return true;
  if (i == 0) return false;
  if (parent == kPodParent) {
    const std::string_view p = parts[i - 1];
    return under_kubepods && p.size() > 3 && p.substr(0, 3) == "pod";
  }
  return parts[i - 1] == parent;
}

/// The id path component `i` names under `shape`, or empty.
std::string_view shape_id(const ContainerShape& shape, const std::vector<std::string_view>& parts,
                          std::size_t i, bool under_kubepods) {
  const std::string_view c = parts[i];
  if (!parent_matches(parts, i, shape.parent, under_kubepods)) return {};
  switch (shape.form) {
    case ShapeForm::kScope:
      return scoped_id(c, shape.prefix);
    case ShapeForm::kDirectory: {
      if (c.substr(0, shape.prefix.size()) != shape.prefix) return {};
      const std::string_view id = c.substr(shape.prefix.size());
      return id.size() == 64 && is_hex(id) ? id : std::string_view{};
    }
    case ShapeForm::kNamedScope: {
      if (c.substr(0, shape.prefix.size()) != shape.prefix || !ends_with(c, ".scope")) return {};
      return c.substr(shape.prefix.size(), c.size() - shape.prefix.size() - 6);
    }
    case ShapeForm::kNamespaced:
      return {};  // ambiguous by shape: containerd_task_name(), confirmed by the caller
  }
  return {};
}

/// Whether path component `i` names a container (the last match wins).
void match_container(const std::vector<std::string_view>& parts, std::size_t i, bool under_kubepods,
                     CgroupIdentity& out) {
  for (const auto& shape : container_shapes()) {
    if (auto id = shape_id(shape, parts, i, under_kubepods); !id.empty()) {
      out.container_id = std::string(id);
      out.container_runtime = std::string(shape.runtime);
      return;
    }
  }
}

// containerd's identifier rule (pkg/identifiers): alphanumerics, '_', '-', '.', the first
// alphanumeric, at most 76 characters.
bool is_containerd_name(std::string_view s) {
  if (s.empty() || s.size() > 76) return false;
  const auto alnum = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  };
  if (!alnum(s[0])) return false;
  for (char c : s) {
    if (!alnum(c) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

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
    match_container(parts, i, under_kubepods, out);
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
  const std::string_view unit_path = !v2_path.empty() && v2_path != "/" ? v2_path : systemd_v1_path;
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
  if (out.container_id.empty() && out.systemd_unit.empty()) {
    out.containerd_task = containerd_task_name(unit_path);
    for (std::string_view path : v1_paths) {
      if (out.containerd_task) break;
      out.containerd_task = containerd_task_name(path);
    }
  }
  return out;
}

std::optional<ContainerdTaskName> containerd_task_name(std::string_view cgroup_path) {
  const auto parts = split_path(cgroup_path);
  if (cgroup_path.substr(0, 1) != "/" || parts.size() != 2) return std::nullopt;
  if (!is_containerd_name(parts[0]) || !is_containerd_name(parts[1])) return std::nullopt;
  // Directories the host's own managers create at the top are never containerd namespaces.
  if (ends_with(parts[0], ".slice") || ends_with(parts[0], ".scope") ||
      ends_with(parts[0], ".service")) {
    return std::nullopt;
  }
  return ContainerdTaskName{std::string(parts[0]), std::string(parts[1])};
}

std::span<const ContainerShape> container_shapes() { return kShapes; }

std::optional<ContainerScope> container_scope(const std::string& rel) {
  auto identity = parse_cgroup("0::/" + rel);
  if (identity.container_id.empty()) return std::nullopt;
  const auto slash = rel.rfind('/');
  if (slash != std::string::npos) {
    auto parent = parse_cgroup("0::/" + rel.substr(0, slash));
    if (parent.container_id == identity.container_id) return std::nullopt;
  }
  return ContainerScope{identity.container_id, identity.container_runtime};
}

}  // namespace warden::os
