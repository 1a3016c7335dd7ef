#include "issuer/config.h"

#include <gtest/gtest.h>

namespace warden::issuer {
namespace {

TEST(IssuerConfig, EmptyFileGivesDocumentedDefaults) {
  auto c = parse_config("");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->listen.port, 8443);
  EXPECT_EQ(c->tls.min_version, "1.3");
  EXPECT_EQ(c->store.backend, "sqlite");
  // An attest request may be 13 MiB + 64 KiB (docs/protocol.md "Limits").
  EXPECT_EQ(c->limits.max_body_bytes, protocol::limits::kAttestRequestBody);
  EXPECT_EQ(c->limits.max_body_bytes, 13U * 1024U * 1024U + 64U * 1024U);
  // Admin access is authenticated unless the file says otherwise.
  EXPECT_EQ(c->admin.socket, "/run/warden-issuer/admin.sock");
  EXPECT_FALSE(c->admin.allow_unauthenticated_loopback);
  EXPECT_EQ(c->limits.refusal_burst, 20U);
  EXPECT_FALSE(c->enrollment.tofu);
  EXPECT_EQ(c->tokens.nonce_ttl_s, 60);
  // Issue 31: the remote-attacker limits and /metrics closed to remote callers by default.
  EXPECT_EQ(c->limits.handshake_timeout_ms, 5000U);
  EXPECT_EQ(c->limits.max_connections_per_address, 256U);
  EXPECT_EQ(c->limits.token_burst, 30U);
  EXPECT_EQ(c->limits.token_per_minute, 600U);
  EXPECT_FALSE(c->metrics.allow_remote);
  EXPECT_TRUE(c->issuer_url_aliases.empty());
  auto keys = parse_config(
      "issuer_url_aliases = [\"https://a.test\"]\n[metrics]\nallow_remote = true\n"
      "[limits]\nhandshake_timeout_ms = 7\nmax_connections_per_address = 3\n"
      "token_burst = 4\ntoken_per_minute = 5\n");
  ASSERT_TRUE(keys) << keys.error().message;
  EXPECT_EQ(keys->issuer_url_aliases, std::vector<std::string>{"https://a.test"});
  EXPECT_TRUE(keys->metrics.allow_remote);
  EXPECT_EQ(keys->limits.handshake_timeout_ms, 7U);
  EXPECT_EQ(keys->limits.max_connections_per_address, 3U);
  EXPECT_EQ(keys->limits.token_burst, 4U);
  EXPECT_EQ(keys->limits.token_per_minute, 5U);
  EXPECT_FALSE(parse_config("[limits]\ntoken_burst = 0\n"));
}

// The shipped /etc/warden/issuer.toml spells out every default; it must stay in step with them.
TEST(IssuerConfig, ShippedExampleMatchesTheDefaults) {
  auto c = load_config(std::string(WARDEN_SOURCE_DIR) + "/etc/issuer.toml");
  ASSERT_TRUE(c) << c.error().message;
  const IssuerConfig d;
  EXPECT_EQ(c->listen.address, d.listen.address);
  EXPECT_EQ(c->listen.port, d.listen.port);
  EXPECT_EQ(c->tls.min_version, d.tls.min_version);
  EXPECT_EQ(c->store.sqlite_path, d.store.sqlite_path);
  EXPECT_EQ(c->limits.max_header_bytes, d.limits.max_header_bytes);
  EXPECT_EQ(c->limits.max_body_bytes, d.limits.max_body_bytes);
  EXPECT_EQ(c->limits.read_timeout_ms, d.limits.read_timeout_ms);
  EXPECT_EQ(c->limits.max_connections, d.limits.max_connections);
  EXPECT_EQ(c->limits.refusal_burst, d.limits.refusal_burst);
  EXPECT_EQ(c->limits.refusal_per_minute, d.limits.refusal_per_minute);
  EXPECT_EQ(c->limits.handshake_timeout_ms, d.limits.handshake_timeout_ms);
  EXPECT_EQ(c->limits.max_connections_per_address, d.limits.max_connections_per_address);
  EXPECT_EQ(c->limits.token_burst, d.limits.token_burst);
  EXPECT_EQ(c->limits.token_per_minute, d.limits.token_per_minute);
  EXPECT_EQ(c->metrics.allow_remote, d.metrics.allow_remote);
  EXPECT_EQ(c->issuer_url_aliases, d.issuer_url_aliases);
  EXPECT_EQ(c->admin.socket, d.admin.socket);
  EXPECT_EQ(c->admin.socket_group, d.admin.socket_group);
  EXPECT_EQ(c->admin.allow_unauthenticated_loopback, d.admin.allow_unauthenticated_loopback);
  EXPECT_EQ(c->tokens.key_dir, d.tokens.key_dir);
  EXPECT_EQ(c->tokens.key_rotation_s, d.tokens.key_rotation_s);
  EXPECT_EQ(c->tokens.device_token_ttl_s, d.tokens.device_token_ttl_s);
  EXPECT_FALSE(c->enrollment.tofu);
  EXPECT_EQ(c->ssf.enabled, d.ssf.enabled);
  EXPECT_EQ(c->ssf.allow_http_loopback, d.ssf.allow_http_loopback);
  EXPECT_EQ(c->ssf.max_streams_per_receiver, d.ssf.max_streams_per_receiver);
  EXPECT_EQ(c->ssf.retention_s, d.ssf.retention_s);
  EXPECT_EQ(c->ssf.push_timeout_ms, d.ssf.push_timeout_ms);
  EXPECT_EQ(c->ssf.push_backoff_initial_ms, d.ssf.push_backoff_initial_ms);
  EXPECT_EQ(c->ssf.push_backoff_max_ms, d.ssf.push_backoff_max_ms);
  EXPECT_EQ(c->ssf.push_ca_file, d.ssf.push_ca_file);
  EXPECT_EQ(c->ssf.push_workers, d.ssf.push_workers);
}

TEST(IssuerConfig, ReadsEveryKind) {
  auto c = parse_config(R"(
policy_file = "/etc/warden/policy.toml"
[listen]
address = "127.0.0.1"
port = 9443
[tls]
cert_file = "c.pem"
key_file = "k.pem"
min_version = "1.2"
admin_client_ca = "ca.pem"
[store]
backend = "postgres"
postgres_conninfo = "host=db"
[enrollment]
manufacturer_ca_files = ["a.pem", "b.pem"]
ek_allowlist = ["abcd"]
tofu = true
[limits]
read_timeout_ms = 500
refusal_burst = 3
refusal_per_minute = 1
[admin]
socket = "/tmp/a.sock"
socket_group = "wheel"
allow_unauthenticated_loopback = true
)");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->listen.address, "127.0.0.1");
  EXPECT_EQ(c->listen.port, 9443);
  EXPECT_EQ(c->tls.min_version, "1.2");
  EXPECT_EQ(c->store.postgres_conninfo, "host=db");
  EXPECT_EQ(c->enrollment.manufacturer_ca_files.size(), 2U);
  EXPECT_TRUE(c->enrollment.tofu);
  EXPECT_EQ(c->limits.read_timeout_ms, 500U);
  EXPECT_EQ(c->policy_file, "/etc/warden/policy.toml");
  EXPECT_EQ(c->limits.refusal_burst, 3U);
  EXPECT_EQ(c->limits.refusal_per_minute, 1U);
  EXPECT_EQ(c->admin.socket, "/tmp/a.sock");
  EXPECT_EQ(c->admin.socket_group, "wheel");
  EXPECT_TRUE(c->admin.allow_unauthenticated_loopback);
}

TEST(IssuerConfig, RejectsUnknownKeysWrongTypesAndBadValues) {
  auto typo = parse_config("[listen]\nprot = 1\n");
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().message.find("unknown key listen.prot"), std::string::npos);
  auto type = parse_config("[listen]\nport = \"x\"\n");
  ASSERT_FALSE(type);
  EXPECT_NE(type.error().message.find("listen.port"), std::string::npos);
  EXPECT_FALSE(parse_config("[listen]\nport = 70000\n"));
  EXPECT_FALSE(parse_config("[listen]\nport = 1e20\n"));
  EXPECT_FALSE(parse_config("[listen]\nport = 8443.0\n"));
  EXPECT_FALSE(parse_config("[tls]\nmin_version = \"1.1\"\n"));
  EXPECT_FALSE(parse_config("[store]\nbackend = \"postgres\"\n"));
  EXPECT_FALSE(parse_config("[limits]\nrefusal_burst = 0\n"));
  EXPECT_FALSE(parse_config("[admin]\nallow_unauthenticated_loopback = \"yes\"\n"));
  auto syntax = parse_config("[listen\n");
  ASSERT_FALSE(syntax);
  EXPECT_NE(syntax.error().message.find("line 1"), std::string::npos);
}

TEST(IssuerConfig, SsfBlockHasDefaultsAndBounds) {
  auto d = parse_config("");
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->ssf.enabled);
  EXPECT_FALSE(d->ssf.allow_http_loopback);
  EXPECT_EQ(d->ssf.max_streams_per_receiver, 16U);
  EXPECT_EQ(d->ssf.retention_s, 7 * 86400);
  EXPECT_EQ(d->ssf.push_timeout_ms, 5000U);
  EXPECT_EQ(d->ssf.push_backoff_initial_ms, 500U);
  EXPECT_EQ(d->ssf.push_backoff_max_ms, 30000U);
  EXPECT_EQ(d->ssf.push_ca_file, "");
  EXPECT_EQ(d->ssf.push_workers, 2U);
  auto c = parse_config(R"(
[ssf]
enabled = false
allow_http_loopback = true
max_streams_per_receiver = 3
retention_s = 60
push_timeout_ms = 100
push_backoff_initial_ms = 10
push_backoff_max_ms = 20
push_ca_file = "/etc/warden/rp-ca.pem"
push_workers = 4
)");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_FALSE(c->ssf.enabled);
  EXPECT_TRUE(c->ssf.allow_http_loopback);
  EXPECT_EQ(c->ssf.max_streams_per_receiver, 3U);
  EXPECT_EQ(c->ssf.retention_s, 60);
  EXPECT_EQ(c->ssf.push_backoff_max_ms, 20U);
  EXPECT_EQ(c->ssf.push_ca_file, "/etc/warden/rp-ca.pem");
  EXPECT_EQ(c->ssf.push_workers, 4U);
  for (const char* bad :
       {"[ssf]\npush_workers = 0", "[ssf]\nretention_s = 0",
        "[ssf]\npush_backoff_initial_ms = 100\npush_backoff_max_ms = 50",
        "[ssf]\nmax_streams_per_receiver = 0", "[ssf]\nenabled = \"yes\"", "[ssf]\npush = true"}) {
    EXPECT_FALSE(parse_config(bad)) << bad;
  }
}

}  // namespace
}  // namespace warden::issuer
