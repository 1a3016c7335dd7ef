#include "issuer/config.h"

#include <set>

#include <toml++/toml.h>

#include "platform/base/file.h"

namespace warden::issuer {
namespace {

class Reader {
 public:
  explicit Reader(const toml::table& root) : root_(root) {}

  template <class T>
  Status get(std::string_view section, std::string_view key, T& out) {
    std::string path =
        section.empty() ? std::string(key) : std::string(section) + "." + std::string(key);
    known_.insert(path);
    const toml::node* node = root_.at_path(path).node();
    if (node == nullptr) return ok();
    if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = node->value<std::string>()) {
        out = *v;
        return ok();
      }
      return wrong(path, "a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (auto v = node->value<bool>()) {
        out = *v;
        return ok();
      }
      return wrong(path, "a boolean");
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      const auto* arr = node->as_array();
      if (arr == nullptr) return wrong(path, "an array of strings");
      out.clear();
      for (const auto& item : *arr) {
        auto v = item.value<std::string>();
        if (!v) return wrong(path, "an array of strings");
        out.push_back(*v);
      }
      return ok();
    } else {
      auto v = node->value_exact<std::int64_t>();
      if (!v || *v < 0 ||
          static_cast<std::uint64_t>(*v) >
              static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
        return wrong(path, "a non-negative integer in range");
      }
      out = static_cast<T>(*v);
      return ok();
    }
  }

  /// Every key in the file must be one we read: typos must not silently fall back to defaults.
  Status check_unknown() const { return walk(root_, ""); }

 private:
  Status walk(const toml::table& table, const std::string& prefix) const {
    for (const auto& [k, v] : table) {
      std::string path =
          prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      if (const auto* sub = v.as_table()) {
        WARDEN_TRY_STATUS(walk(*sub, path));
      } else if (!known_.contains(path)) {
        return fail(ErrorCode::kInvalidArgument, "config: unknown key " + path);
      }
    }
    return ok();
  }

  static tl::unexpected<Error> wrong(const std::string& path, std::string_view expected) {
    return fail(ErrorCode::kInvalidArgument,
                "config: " + path + ": expected " + std::string(expected));
  }

  const toml::table& root_;
  std::set<std::string> known_;
};

}  // namespace

Result<IssuerConfig> parse_config(std::string_view text) {
  toml::table parsed;
  try {  // toml++ is built with exceptions in Debian's package; they stop here.
    parsed = toml::parse(text);
  } catch (const toml::parse_error& err) {
    return fail(ErrorCode::kInvalidArgument, "config: TOML syntax error at line " +
                                                 std::to_string(err.source().begin.line) + ": " +
                                                 std::string(err.description()));
  }
  IssuerConfig c;
  Reader r(parsed);
  WARDEN_TRY_STATUS(r.get("listen", "address", c.listen.address));
  WARDEN_TRY_STATUS(r.get("listen", "port", c.listen.port));
  WARDEN_TRY_STATUS(r.get("listen", "threads", c.listen.threads));
  WARDEN_TRY_STATUS(r.get("tls", "cert_file", c.tls.cert_file));
  WARDEN_TRY_STATUS(r.get("tls", "key_file", c.tls.key_file));
  WARDEN_TRY_STATUS(r.get("tls", "min_version", c.tls.min_version));
  WARDEN_TRY_STATUS(r.get("tls", "admin_client_ca", c.tls.admin_client_ca));
  WARDEN_TRY_STATUS(r.get("admin", "socket", c.admin.socket));
  WARDEN_TRY_STATUS(r.get("admin", "socket_group", c.admin.socket_group));
  WARDEN_TRY_STATUS(
      r.get("admin", "allow_unauthenticated_loopback", c.admin.allow_unauthenticated_loopback));
  WARDEN_TRY_STATUS(r.get("store", "backend", c.store.backend));
  WARDEN_TRY_STATUS(r.get("store", "sqlite_path", c.store.sqlite_path));
  WARDEN_TRY_STATUS(r.get("store", "postgres_conninfo", c.store.postgres_conninfo));
  WARDEN_TRY_STATUS(r.get("store", "pool_size", c.store.pool_size));
  WARDEN_TRY_STATUS(r.get("limits", "max_header_bytes", c.limits.max_header_bytes));
  WARDEN_TRY_STATUS(r.get("limits", "max_body_bytes", c.limits.max_body_bytes));
  WARDEN_TRY_STATUS(r.get("limits", "read_timeout_ms", c.limits.read_timeout_ms));
  WARDEN_TRY_STATUS(r.get("limits", "max_connections", c.limits.max_connections));
  WARDEN_TRY_STATUS(r.get("limits", "handshake_timeout_ms", c.limits.handshake_timeout_ms));
  WARDEN_TRY_STATUS(
      r.get("limits", "max_connections_per_address", c.limits.max_connections_per_address));
  WARDEN_TRY_STATUS(r.get("limits", "token_burst", c.limits.token_burst));
  WARDEN_TRY_STATUS(r.get("limits", "token_per_minute", c.limits.token_per_minute));
  WARDEN_TRY_STATUS(r.get("metrics", "allow_remote", c.metrics.allow_remote));
  WARDEN_TRY_STATUS(r.get("limits", "refusal_burst", c.limits.refusal_burst));
  WARDEN_TRY_STATUS(r.get("limits", "refusal_per_minute", c.limits.refusal_per_minute));
  WARDEN_TRY_STATUS(r.get("tokens", "nonce_ttl_s", c.tokens.nonce_ttl_s));
  WARDEN_TRY_STATUS(r.get("tokens", "device_token_ttl_s", c.tokens.device_token_ttl_s));
  WARDEN_TRY_STATUS(r.get("tokens", "workload_token_ttl_s", c.tokens.workload_token_ttl_s));
  WARDEN_TRY_STATUS(r.get("tokens", "key_dir", c.tokens.key_dir));
  WARDEN_TRY_STATUS(r.get("tokens", "key_rotation_s", c.tokens.key_rotation_s));
  WARDEN_TRY_STATUS(
      r.get("enrollment", "manufacturer_ca_files", c.enrollment.manufacturer_ca_files));
  WARDEN_TRY_STATUS(r.get("enrollment", "ek_allowlist", c.enrollment.ek_allowlist));
  WARDEN_TRY_STATUS(r.get("enrollment", "tofu", c.enrollment.tofu));
  WARDEN_TRY_STATUS(r.get("status_list", "max_age_s", c.status_list.max_age_s));
  WARDEN_TRY_STATUS(r.get("status_list", "ttl_s", c.status_list.ttl_s));
  WARDEN_TRY_STATUS(r.get("oauth", "introspection", c.oauth.introspection));
  WARDEN_TRY_STATUS(r.get("oauth", "max_token_bytes", c.oauth.max_token_bytes));
  WARDEN_TRY_STATUS(r.get("ssf", "enabled", c.ssf.enabled));
  WARDEN_TRY_STATUS(r.get("ssf", "allow_http_loopback", c.ssf.allow_http_loopback));
  WARDEN_TRY_STATUS(r.get("ssf", "max_streams_per_receiver", c.ssf.max_streams_per_receiver));
  WARDEN_TRY_STATUS(r.get("ssf", "retention_s", c.ssf.retention_s));
  WARDEN_TRY_STATUS(r.get("ssf", "push_timeout_ms", c.ssf.push_timeout_ms));
  WARDEN_TRY_STATUS(r.get("ssf", "push_backoff_initial_ms", c.ssf.push_backoff_initial_ms));
  WARDEN_TRY_STATUS(r.get("ssf", "push_backoff_max_ms", c.ssf.push_backoff_max_ms));
  WARDEN_TRY_STATUS(r.get("ssf", "push_ca_file", c.ssf.push_ca_file));
  WARDEN_TRY_STATUS(r.get("ssf", "push_workers", c.ssf.push_workers));
  WARDEN_TRY_STATUS(r.get("", "policy_file", c.policy_file));
  WARDEN_TRY_STATUS(r.get("", "issuer_url", c.issuer_url));
  WARDEN_TRY_STATUS(r.get("", "issuer_url_aliases", c.issuer_url_aliases));
  WARDEN_TRY_STATUS(r.check_unknown());

  if (c.tls.min_version != "1.3" && c.tls.min_version != "1.2") {
    return fail(ErrorCode::kInvalidArgument,
                "config: tls.min_version: expected \"1.3\" or \"1.2\", found \"" +
                    c.tls.min_version + "\"");
  }
  if (c.store.backend != "sqlite" && c.store.backend != "postgres") {
    return fail(ErrorCode::kInvalidArgument,
                "config: store.backend: expected \"sqlite\" or \"postgres\", found \"" +
                    c.store.backend + "\"");
  }
  if (c.store.backend == "postgres" && c.store.postgres_conninfo.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                "config: store.postgres_conninfo is required when store.backend = \"postgres\"");
  }
  if (c.limits.token_burst == 0 || c.limits.token_per_minute == 0) {
    return fail(ErrorCode::kInvalidArgument,
                "config: limits.token_burst and limits.token_per_minute must be at least 1");
  }
  if (c.limits.refusal_burst == 0) {
    return fail(ErrorCode::kInvalidArgument, "config: limits.refusal_burst must be at least 1");
  }
  if (c.store.pool_size == 0 || c.limits.max_connections == 0) {
    return fail(ErrorCode::kInvalidArgument,
                "config: store.pool_size and limits.max_connections must be at least 1");
  }
  if (c.status_list.ttl_s == 0) {
    return fail(ErrorCode::kInvalidArgument,
                "config: status_list.ttl_s must be at least 1 (0 would tell relying parties to "
                "fetch the list for every token)");
  }
  if (c.oauth.max_token_bytes < 256 || c.oauth.max_token_bytes > 65536) {
    return fail(ErrorCode::kInvalidArgument,
                "config: oauth.max_token_bytes must be between 256 and 65536, found " +
                    std::to_string(c.oauth.max_token_bytes));
  }
  if (c.ssf.max_streams_per_receiver == 0 || c.ssf.push_workers == 0 ||
      c.ssf.push_timeout_ms == 0 || c.ssf.push_backoff_initial_ms == 0 ||
      c.ssf.push_backoff_max_ms < c.ssf.push_backoff_initial_ms || c.ssf.retention_s <= 0) {
    return fail(ErrorCode::kInvalidArgument,
                "config: ssf: max_streams_per_receiver, push_workers, push_timeout_ms, "
                "push_backoff_initial_ms and retention_s must be at least 1, and "
                "push_backoff_max_ms at least push_backoff_initial_ms");
  }
  return c;
}

Result<IssuerConfig> load_config(const std::string& path) {
  auto bytes = read_file(path, 1 << 20);
  if (!bytes) return fail(std::move(bytes).error().context("config " + path));
  auto config = parse_config(warden::to_string(*bytes));
  if (!config) return fail(std::move(config).error().context(path));
  return config;
}

}  // namespace warden::issuer
