#pragma once

#include <filesystem>

#include "agent/posture/posture.h"

namespace warden::agent::posture {

/// Docker's record of a container: <docker_root>/containers/<id>/config.v2.json, written when the
/// container is created (before its cgroup exists). reference = "Config.Image" as the user gave
/// it, digest = "Image" (the image id, "sha256:<hex>"). Answers only for runtime "docker"; a
/// missing, oversized (> 1 MiB) or malformed file gives nullopt. The file is root-owned but still
/// parsed under limits.
ImageLookup docker_image_lookup(std::filesystem::path docker_root = "/var/lib/docker");

}  // namespace warden::agent::posture
