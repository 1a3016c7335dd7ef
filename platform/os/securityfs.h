#pragma once
// What the posture monitor reads from securityfs.

#include <cstdint>
#include <filesystem>

#include "platform/base/error.h"

namespace warden::os {

/// <securityfs_root>/ima/runtime_measurements_count: the number of IMA measurements so far.
std::filesystem::path ima_count_path(const std::filesystem::path& securityfs_root);

/// False when the kernel exposes no IMA count under `securityfs_root` (IMA off).
bool ima_available(const std::filesystem::path& securityfs_root);

/// The IMA measurement count. Errors: unreadable (kNotFound, kIo), not a decimal (kMalformed).
Result<std::uint64_t> read_ima_count(const std::filesystem::path& securityfs_root);

}  // namespace warden::os
