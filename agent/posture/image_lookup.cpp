#include "agent/posture/image_lookup.h"

#include "attest/token/json.h"
#include "platform/base/file.h"

namespace warden::agent::posture {

ImageLookup docker_image_lookup(std::filesystem::path docker_root) {
  return [root = std::move(docker_root)](std::string_view runtime,
                                         std::string_view id) -> std::optional<ImageInfo> {
    if (runtime != "docker" || id.empty() || id.find('/') != std::string_view::npos) {
      return std::nullopt;
    }
    constexpr std::size_t kMaxSize = 1u << 20;
    auto bytes = read_file(root / "containers" / std::string(id) / "config.v2.json", kMaxSize);
    if (!bytes) return std::nullopt;
    auto object = json::parse_object(::warden::to_string(ByteSpan(*bytes)),
                                     {.max_size = kMaxSize, .max_depth = 32});
    if (!object) return std::nullopt;
    ImageInfo info;
    if (const auto* config = json::get_object(*object, "Config")) {
      info.reference = std::string(json::get_string(*config, "Image").value_or(""));
    }
    info.digest = std::string(json::get_string(*object, "Image").value_or(""));
    if (info.reference.empty() && info.digest.empty()) return std::nullopt;
    return info;
  };
}

ImageLookup podman_image_lookup(std::filesystem::path storage_root) {
  return [root = std::move(storage_root)](std::string_view runtime,
                                          std::string_view id) -> std::optional<ImageInfo> {
    if (runtime != "podman" || id.empty()) return std::nullopt;
    constexpr std::size_t kMaxSize = 16u << 20;
    for (const char* driver : {"overlay", "vfs", "btrfs"}) {
      auto bytes =
          read_file(root / (std::string(driver) + "-containers") / "containers.json", kMaxSize);
      if (!bytes) continue;
      auto list = json::parse(::warden::to_string(ByteSpan(*bytes)),
                              {.max_size = kMaxSize, .max_depth = 16});
      if (!list || !list->is_array()) continue;
      for (const auto& entry : list->as_array()) {
        if (!entry.is_object() || json::get_string(entry.as_object(), "id") != id) continue;
        const auto& record = entry.as_object();
        ImageInfo info;
        if (auto image = json::get_string(record, "image"); image && !image->empty()) {
          info.digest = "sha256:" + std::string(*image);
        }
        // "metadata" is itself JSON, in a string.
        if (auto meta = json::get_string(record, "metadata")) {
          if (auto m = json::parse_object(*meta, {.max_size = 64 * 1024, .max_depth = 8})) {
            info.reference = std::string(json::get_string(*m, "image-name").value_or(""));
          }
        }
        if (info.reference.empty() && info.digest.empty()) return std::nullopt;
        return info;
      }
    }
    return std::nullopt;
  };
}

ImageLookup containerd_image_lookup(std::filesystem::path containerd_state) {
  return [root = std::move(containerd_state)](std::string_view runtime,
                                              std::string_view id) -> std::optional<ImageInfo> {
    if (runtime != "containerd") return std::nullopt;
    const auto slash = id.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == id.size() ||
        id.find('/', slash + 1) != std::string_view::npos ||
        id.find("..") != std::string_view::npos) {
      return std::nullopt;
    }
    constexpr std::size_t kMaxSize = 1u << 20;
    auto bytes =
        read_file(root / "io.containerd.runtime.v2.task" / std::string(id.substr(0, slash)) /
                      std::string(id.substr(slash + 1)) / "config.json",
                  kMaxSize);
    if (!bytes) return std::nullopt;
    auto spec = json::parse_object(::warden::to_string(ByteSpan(*bytes)),
                                   {.max_size = kMaxSize, .max_depth = 32});
    if (!spec) return std::nullopt;
    const auto* annotations = json::get_object(*spec, "annotations");
    if (annotations == nullptr) return std::nullopt;
    ImageInfo info;
    info.reference =
        std::string(json::get_string(*annotations, "io.kubernetes.cri.image-name").value_or(""));
    if (info.reference.empty()) return std::nullopt;
    return info;
  };
}

ImageLookup runtime_image_lookup(const RuntimeRoots& roots) {
  return [docker = docker_image_lookup(roots.docker_root),
          podman = podman_image_lookup(roots.podman_storage),
          containerd = containerd_image_lookup(roots.containerd_state)](
             std::string_view runtime, std::string_view id) -> std::optional<ImageInfo> {
    if (runtime == "docker") return docker(runtime, id);
    if (runtime == "podman") return podman(runtime, id);
    if (runtime == "containerd") return containerd(runtime, id);
    return std::nullopt;
  };
}

}  // namespace warden::agent::posture
