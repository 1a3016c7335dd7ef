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

/// Podman's record of a container in containers-storage:
/// <storage_root>/<driver>-containers/containers.json (driver overlay, vfs or btrfs), written at
/// `podman create`. reference = the "image-name" of the container's metadata, digest =
/// "sha256:" + its "image" (the image id, as docker reports it). Answers only for runtime
/// "podman"; the file is parsed under limits (16 MiB).
ImageLookup podman_image_lookup(std::filesystem::path storage_root = "/var/lib/containers/storage");

/// The lookup of every runtime above, each on its default path.
ImageLookup runtime_image_lookup();

}  // namespace warden::agent::posture
