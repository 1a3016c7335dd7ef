#include "agent/token_cache.h"

#include <algorithm>

namespace warden::agent {
namespace {
// Length-prefixed fields: no value (audiences and scopes come from workloads) can make two
// distinct tuples encode alike.
void field(std::string& out, std::string_view v) {
  out.append(std::to_string(v.size()));
  out.push_back(':');
  out.append(v);
}
}  // namespace

std::string workload_identity(const os::Selectors& s) {
  std::string out;
  field(out, std::to_string(s.uid));
  field(out, std::to_string(s.gid));
  field(out, s.systemd_unit);
  field(out, s.container_runtime);
  field(out, s.container_id);
  field(out, s.pod_uid);
  field(out, s.exe_path);
  field(out, s.exe_sha256);
  return out;
}

std::string TokenCache::key(const std::string& identity, const std::string& audience,
                            std::vector<std::string> scopes, TokenFormat format,
                            std::int64_t ttl_seconds) {
  std::sort(scopes.begin(), scopes.end());
  scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
  std::string out;
  field(out, identity);
  field(out, audience);
  for (const auto& s : scopes) field(out, s);
  field(out, to_string(format));
  field(out, std::to_string(ttl_seconds));
  return out;
}

const CachedToken* TokenCache::find(const std::string& key, std::int64_t now) const {
  auto it = by_key_.find(key);
  if (it == by_key_.end() || it->second.expires_at <= now) return nullptr;
  return &it->second;
}

void TokenCache::put(const std::string& key, CachedToken token) {
  if (auto it = by_key_.find(key); it != by_key_.end()) key_of_jti_.erase(it->second.jti);
  key_of_jti_[token.jti] = key;
  by_key_[key] = std::move(token);
}

const CachedToken* TokenCache::by_jti(const std::string& jti, std::int64_t now) const {
  auto k = key_of_jti_.find(jti);
  if (k == key_of_jti_.end()) return nullptr;
  return find(k->second, now);
}

std::vector<std::string> TokenCache::remove_container(const std::string& container_id) {
  std::vector<std::string> out;
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    if (!container_id.empty() && it->second.container_id == container_id) {
      out.push_back(it->second.jti);
      key_of_jti_.erase(it->second.jti);
      it = by_key_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

bool TokenCache::remove_jti(const std::string& jti) {
  auto k = key_of_jti_.find(jti);
  if (k == key_of_jti_.end()) return false;
  by_key_.erase(k->second);
  key_of_jti_.erase(k);
  return true;
}

std::vector<std::string> TokenCache::clear() {
  std::vector<std::string> out = jtis();
  by_key_.clear();
  key_of_jti_.clear();
  return out;
}

void TokenCache::expire(std::int64_t now) {
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    if (it->second.expires_at <= now) {
      key_of_jti_.erase(it->second.jti);
      it = by_key_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<std::string> TokenCache::jtis() const {
  std::vector<std::string> out;
  out.reserve(by_key_.size());
  for (const auto& [k, t] : by_key_) out.push_back(t.jti);
  return out;
}

}  // namespace warden::agent
