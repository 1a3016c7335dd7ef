#include "platform/os/cgroupfs.h"

namespace warden::os {

namespace fs = std::filesystem;

std::string cgroup_v1_hierarchy(const fs::path& cgroupfs_root) {
  std::error_code ec;
  if (fs::exists(cgroupfs_root / "cgroup.controllers", ec)) return "";
  for (const char* hierarchy : {"memory", "pids", "cpu,cpuacct", "systemd", "unified"}) {
    if (fs::is_directory(cgroupfs_root / hierarchy, ec)) return hierarchy;
  }
  return "";
}

std::vector<std::string> subdirectories(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec) || it->is_symlink(type_ec)) continue;
    names.push_back(it->path().filename().string());
  }
  return names;
}

}  // namespace warden::os
