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

/// containerd's record of a task: the OCI bundle's config.json,
/// <containerd_state>/io.containerd.runtime.v2.task/<namespace>/<id>/config.json, for container id
/// "<namespace>/<id>" (as the agent names ctr containers). reference = the CRI annotation
/// "io.kubernetes.cri.image-name"; containerd's image metadata lives in its bolt database, which
/// is not read, so digest stays empty. Plain `ctr run` writes no such annotation: nullopt, the
/// image is unknown and rules with image selectors do not match. Answers only for runtime
/// "containerd"; the file is parsed under limits (1 MiB).
ImageLookup containerd_image_lookup(std::filesystem::path containerd_state = "/run/containerd");

/// Where each runtime keeps its records (config posture.docker_root, posture.containerd_state).
struct RuntimeRoots {
  std::filesystem::path docker_root = "/var/lib/docker";
  std::filesystem::path podman_storage = "/var/lib/containers/storage";
  std::filesystem::path containerd_state = "/run/containerd";
};

/// The lookup of every runtime above, on `roots`.
ImageLookup runtime_image_lookup(const RuntimeRoots& roots = {});

}  // namespace warden::agent::posture
