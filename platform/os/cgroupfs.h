#pragma once
// What the posture monitor reads from cgroupfs: which hierarchy holds the container scopes, and
// the directories below one.

#include <filesystem>
#include <string>
#include <vector>

namespace warden::os {

/// "" on cgroup v2 (cgroup.controllers at the root). On cgroup v1, where every controller
/// hierarchy repeats the container directories, the one to watch ("memory", "pids", ...), or ""
/// when none is mounted.
std::string cgroup_v1_hierarchy(const std::filesystem::path& cgroupfs_root);

/// The names of the subdirectories of `dir` (symlinks excluded); empty when it is unreadable or
/// gone.
std::vector<std::string> subdirectories(const std::filesystem::path& dir);

}  // namespace warden::os
