#include "platform/os/securityfs.h"

#include <charconv>
#include <string>
#include <string_view>

#include "platform/base/bytes.h"
#include "platform/base/file.h"

namespace warden::os {

std::filesystem::path ima_count_path(const std::filesystem::path& securityfs_root) {
  return securityfs_root / "ima" / "runtime_measurements_count";
}

bool ima_available(const std::filesystem::path& securityfs_root) {
  std::error_code ec;
  return std::filesystem::exists(ima_count_path(securityfs_root), ec);
}

Result<std::uint64_t> read_ima_count(const std::filesystem::path& securityfs_root) {
  const auto path = ima_count_path(securityfs_root);
  auto bytes = read_file(path, 64);
  if (!bytes) return fail(bytes.error().context("IMA count"));
  const std::string owned = ::warden::to_string(ByteSpan(*bytes));
  std::string_view text = owned;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::uint64_t count = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    return fail(ErrorCode::kMalformed, "IMA count: expected a decimal number in " + path.string() +
                                           ", found \"" + std::string(text) + "\"");
  }
  return count;
}

}  // namespace warden::os
