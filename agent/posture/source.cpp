#include "agent/posture/source.h"

#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"

namespace warden::agent::posture {

MonitorStats Counters::snapshot() const {
  MonitorStats s;
  for (std::size_t i = 0; i < kSourceCount; ++i) s.changes_by_source[i] = by_source[i];
  for (std::size_t i = 0; i < kActionCount; ++i) s.changes_by_action[i] = by_action[i];
  s.tpm_polls = tpm_polls;
  s.tpm_errors = tpm_errors;
  s.ima_polls = ima_polls;
  s.inotify_events = inotify_events;
  s.overflows = overflows;
  s.cgroup_watches = cgroup_watches;
  s.cgroup_watch_limit_hits = cgroup_watch_limit_hits;
  s.containers_running = containers_running;
  s.container_log_appends = container_log_appends;
  s.container_log_errors = container_log_errors;
  s.suppressed_own_writes = suppressed_own_writes;
  return s;
}

std::string file_state(const std::filesystem::path& path) {
  auto bytes = read_file(path);
  if (!bytes) {
    return bytes.error().code == ErrorCode::kNotFound ? kAbsent
                                                      : "unreadable: " + bytes.error().message;
  }
  return "sha256:" + hex_encode(ossl::sha256(*bytes));
}

std::string join(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "/" + std::string(name);
}

unsigned depth_of(const std::string& rel) {
  if (rel.empty()) return 0;
  unsigned n = 1;
  for (char c : rel) n += c == '/' ? 1 : 0;
  return n;
}

bool is_new(std::map<std::string, std::string>& reported, const std::string& key,
            const std::string& reference, const std::string& current) {
  if (current == reference) {
    reported.erase(key);
    return false;
  }
  auto [it, inserted] = reported.try_emplace(key, current);
  if (!inserted && it->second == current) return false;
  it->second = current;
  return true;
}

}  // namespace warden::agent::posture
