// Admin-supplied policy TOML, [[workload]] tables: parse never crashes; a parsed policy answers
// a request without crashing.
#include <cstdint>
#include <string_view>

#include "issuer/workload_policy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto p = warden::issuer::parse_workload_policy(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!p) return 0;
  warden::protocol::WorkloadSelectors s;
  s.uid = 1000;
  s.systemd_unit = "web.service";
  s.image_digest = "sha256:aaaa";
  std::vector<std::string> scopes{"read"};
  (void)warden::issuer::authorize_workload(*p, {&s, "edge", "https://api.test", &scopes});
  return 0;
}
