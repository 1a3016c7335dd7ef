#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "attest/protocol/limits.h"
#include "platform/base/error.h"

namespace warden::issuer {

/// The issuer's configuration (TOML). Every key and its default is in docs/issuer-config.md.
struct IssuerConfig {
  static constexpr std::string_view kDefaultAdminSocket = "/run/warden-issuer/admin.sock";
  struct Listen {
    std::string address = "0.0.0.0";
    std::uint16_t port = 8443;
    std::size_t threads = 0;  ///< 0 = hardware concurrency
  } listen;
  struct Tls {
    std::string cert_file;
    std::string key_file;
    std::string min_version = "1.3";  ///< "1.3" or "1.2"
    std::string admin_client_ca;      ///< PEM CA; when set, admin routes need a client cert
  } tls;
  /// Who may use /admin/v1/ (docs/issuer-admin-api.md "Access").
  struct Admin {
    /// Unix socket serving the admin API (HTTP/1.1 + JSON, mode 0660); "" = none. The default
    /// is skipped with a warning when /run/warden-issuer does not exist (no systemd unit).
    std::string socket = std::string(kDefaultAdminSocket);
    std::string socket_group;  ///< group of the socket ("" = the issuer's own group)
    /// Loopback TCP clients without a client certificate are admins: any local process is.
    bool allow_unauthenticated_loopback = false;
  } admin;
  struct Store {
    std::string backend = "sqlite";  ///< "sqlite" or "postgres"
    std::string sqlite_path = "/var/lib/warden-issuer/issuer.db";
    std::string postgres_conninfo;
    std::size_t pool_size = 8;
  } store;
  struct Limits {
    std::size_t max_header_bytes = 8 * 1024;
    /// The largest attest request of docs/protocol.md (13 MiB + 64 KiB); other routes are
    /// capped at their own protocol maximum below this (issuer/http/server.cpp).
    std::size_t max_body_bytes = protocol::limits::kAttestRequestBody;
    /// The whole request (header and body) after its first byte is awaited, per request.
    std::uint32_t read_timeout_ms = 10'000;
    /// From accept to the end of the TLS handshake: a connection that sends nothing, or too
    /// slowly, is closed.
    std::uint32_t handshake_timeout_ms = 5'000;
    std::size_t max_connections = 1024;
    /// Connections one client address may hold at once (from accept); more are closed at once.
    std::size_t max_connections_per_address = 256;
    /// Token requests per device: a bucket of token_burst refilled at token_per_minute; beyond
    /// it /v1/token answers 429 for that device alone. It also bounds the device's proof
    /// replay cache (burst + rate x the proof's acceptance window).
    std::uint32_t token_burst = 30;
    std::uint32_t token_per_minute = 600;
    /// Audited refusals per client address and per device: a bucket of refusal_burst refilled
    /// at refusal_per_minute; beyond it refusals are answered 429 (per address) or counted into
    /// one summary audit record (per device) instead of one record each.
    std::uint32_t refusal_burst = 20;
    std::uint32_t refusal_per_minute = 12;
  } limits;
  struct Tokens {
    std::int64_t nonce_ttl_s = 60;
    std::int64_t device_token_ttl_s = 300;
    std::int64_t workload_token_ttl_s = 300;
    std::string key_dir = "/var/lib/warden-issuer/keys";
    std::int64_t key_rotation_s = 30 * 86400;  ///< 0 = never rotate automatically
  } tokens;
  struct Enrollment {
    std::vector<std::string> manufacturer_ca_files;
    std::vector<std::string> ek_allowlist;  ///< hex SHA-256 of EK public areas
    bool tofu = false;
  } enrollment;
  struct MetricsExposure {
    /// GET /metrics answers loopback callers and verified admin client certificates only,
    /// unless true (then anyone who can reach the HTTPS port).
    bool allow_remote = false;
  } metrics;
  /// How long relying parties may cache a status list (docs/relying-parties.md): a revocation
  /// reaches one that honours both within max_age_s + ttl_s.
  struct StatusListCaching {
    std::uint32_t max_age_s = 2;  ///< Cache-Control: max-age of GET /v1/status/{id}
    std::uint32_t ttl_s = 2;      ///< the ttl claim of the status list token
  } status_list;
  /// RFC 7662 introspection and RFC 8414 metadata (issuer/oauth).
  struct OAuth {
    bool introspection = true;           ///< POST /oauth/introspect
    std::size_t max_token_bytes = 8192;  ///< longest token accepted for introspection
  } oauth;
  /// Shared Signals transmitter (docs/ssf.md).
  struct Ssf {
    bool enabled = true;
    /// Push endpoints may be http:// to a loopback host (tests, demos); otherwise https only.
    bool allow_http_loopback = false;
    std::size_t max_streams_per_receiver = 16;
    std::int64_t retention_s = 7 * 86400;  ///< delivered events are kept this long
    // Push delivery (issuer/ssf/push.h).
    std::uint32_t push_timeout_ms = 5000;
    std::uint32_t push_backoff_initial_ms = 500;
    std::uint32_t push_backoff_max_ms = 30000;
    std::string push_ca_file;  ///< PEM CA bundle for receivers; "" = the system trust store
    std::size_t push_workers = 2;
  } ssf;
  std::string policy_file;  ///< loaded as the first policy version when the store has none
  std::string issuer_url;   ///< external base URL: token iss and status list URIs ("" = relative)
  /// Other base URLs the issuer is reached by; a proof's htu must name issuer_url or one of these.
  std::vector<std::string> issuer_url_aliases;
};

/// Parses TOML text; unknown keys and wrong types are errors (kInvalidArgument naming the key).
Result<IssuerConfig> parse_config(std::string_view toml);
/// Reads and parses a config file.
Result<IssuerConfig> load_config(const std::string& path);

}  // namespace warden::issuer
