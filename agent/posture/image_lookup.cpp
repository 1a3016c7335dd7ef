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

}  // namespace warden::agent::posture
