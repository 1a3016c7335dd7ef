// The Store over a SQL connection pool. One implementation serves SQLite and PostgreSQL; the few
// dialect differences (blob type, auto-increment keys, transaction start, append-only guards)
// are resolved in the migration text and in begin().
#include <charconv>
#include <optional>

#include "issuer/store/sql_store_impl.h"

namespace warden::issuer::sqlstore {
namespace {

/// Schema migrations, applied in order; never edit one that has shipped — append a new one.
/// {blob} and {id_pk} are replaced per dialect.
constexpr std::array<std::string_view, 6> kMigrations = {
    R"(
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  ek_public_hash TEXT NOT NULL UNIQUE,
  ek_cert_pem TEXT NOT NULL,
  ak_public {blob} NOT NULL,
  ak_name {blob} NOT NULL,
  grp TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  reset_count BIGINT,
  restart_count BIGINT,
  last_nonce {blob},
  last_nonce_expiry BIGINT NOT NULL DEFAULT 0,
  last_attested_at BIGINT NOT NULL DEFAULT 0,
  last_verdict TEXT NOT NULL DEFAULT '',
  last_reasons TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE enrollments (
  id TEXT PRIMARY KEY,
  ek_public_hash TEXT NOT NULL,
  ek_cert_pem TEXT NOT NULL,
  ak_public {blob} NOT NULL,
  ak_name {blob} NOT NULL,
  grp TEXT NOT NULL,
  secret_hash {blob} NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE TABLE policies (
  id {id_pk},
  version TEXT NOT NULL,
  toml TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  active INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE audit (
  id {id_pk},
  time BIGINT NOT NULL,
  device_id TEXT NOT NULL,
  action TEXT NOT NULL,
  decision TEXT NOT NULL,
  evidence_hash TEXT NOT NULL,
  policy_version TEXT NOT NULL,
  reasons TEXT NOT NULL
);
CREATE INDEX audit_device_time ON audit (device_id, time);
CREATE INDEX audit_time ON audit (time);
CREATE TABLE status_lists (
  id TEXT PRIMARY KEY,
  bits BIGINT NOT NULL,
  next_index BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE status_bits (
  list_id TEXT NOT NULL,
  idx BIGINT NOT NULL,
  PRIMARY KEY (list_id, idx)
);
CREATE TABLE signing_keys (
  kid TEXT PRIMARY KEY,
  alg TEXT NOT NULL,
  public_pem TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  retired_at BIGINT NOT NULL DEFAULT 0,
  not_after BIGINT NOT NULL DEFAULT 0
);
{append_only}
)",
    R"(
ALTER TABLE devices ADD COLUMN binding_key_public {blob};
ALTER TABLE devices ADD COLUMN ima_entries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN ima_state {blob};
CREATE TABLE tokens (
  jti TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  list_id TEXT NOT NULL,
  status_index BIGINT NOT NULL,
  issued_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_device_expiry ON tokens (device_id, expires_at);
)",
    // 3: enrollments.secret_hash holds a digest of the expected activation proof; rows written
    // before held the proof itself, which a reader of the database could present. Pending
    // enrollments live 10 minutes: their agents enroll again.
    R"(
DELETE FROM enrollments;
)",
    // 4 (issue 31): grp was the device's own owner_label, which granted `match.group` rules. It
    // becomes the request (requested_grp) and grp the operator's assignment, empty until an admin
    // sets it. revoked_at: device tokens issued at or before it are refused. Enrollments: one
    // pending per EK (the unique index; put_enrollment replaces the older one).
    R"(
ALTER TABLE devices ADD COLUMN requested_grp TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0;
UPDATE devices SET requested_grp = grp, grp = '';
DELETE FROM enrollments;
CREATE UNIQUE INDEX enrollments_ek ON enrollments (ek_public_hash);
CREATE INDEX enrollments_created ON enrollments (created_at);
)",
    // 5 (issue 32): a revoke request is applied once across replicas by its unique key (the
    // hex SHA-256 of its signed bytes), instead of a search of the audit log.
    // backfill_revoke_requests fills it from the audit records, with an empty digest: those
    // stand for every request of their device and second, as the audit search did.
    R"(
CREATE TABLE revoke_requests (
  device_id TEXT NOT NULL,
  signed_at BIGINT NOT NULL,
  request_digest TEXT NOT NULL,
  PRIMARY KEY (device_id, signed_at, request_digest)
);
CREATE INDEX revoke_requests_signed ON revoke_requests (signed_at);
)",
    // 6 (issue 20): Shared Signals. ssf_events is the outbox, written in the transaction of the
    // revocation that causes it; ssf_deliveries fans each event out to the streams that want it
    // (delivered_at 0 = pending), with the push lease that keeps replicas from sending it twice.
    R"(
CREATE TABLE ssf_receivers (
  name TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL
);
CREATE TABLE ssf_streams (
  id TEXT PRIMARY KEY,
  receiver TEXT NOT NULL,
  delivery_method TEXT NOT NULL,
  endpoint_url TEXT NOT NULL,
  authorization_header TEXT NOT NULL,
  events_requested TEXT NOT NULL,
  events_delivered TEXT NOT NULL,
  aud TEXT NOT NULL,
  status TEXT NOT NULL,
  reason TEXT NOT NULL,
  description TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX ssf_streams_receiver ON ssf_streams (receiver);
CREATE TABLE ssf_events (
  seq {id_pk},
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX ssf_events_created ON ssf_events (created_at);
CREATE TABLE ssf_deliveries (
  stream_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL DEFAULT 0,
  lease_owner TEXT NOT NULL DEFAULT '',
  lease_until BIGINT NOT NULL DEFAULT 0,
  delivered_at BIGINT NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (stream_id, seq)
);
CREATE INDEX ssf_deliveries_pending ON ssf_deliveries (delivered_at, stream_id, seq);
CREATE INDEX ssf_deliveries_seq ON ssf_deliveries (seq);
)"};

/// The signed timestamp of a revoke audit record written before schema 5: its reasons were
/// [{"timestamp":N,...}] (the first member). nullopt for anything else.
std::optional<std::int64_t> revoke_timestamp(std::string_view reasons) {
  constexpr std::string_view kPrefix = R"([{"timestamp":)";
  if (!reasons.starts_with(kPrefix)) return std::nullopt;
  reasons.remove_prefix(kPrefix.size());
  std::int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(reasons.data(), reasons.data() + reasons.size(), value);
  if (ec != std::errc() || ptr == reasons.data()) return std::nullopt;
  return value;
}

constexpr std::string_view kSqliteAppendOnly = R"(
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
)";
constexpr std::string_view kPostgresAppendOnly = R"(
CREATE RULE audit_no_update AS ON UPDATE TO audit DO INSTEAD NOTHING;
CREATE RULE audit_no_delete AS ON DELETE TO audit DO INSTEAD NOTHING;
)";

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (auto pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

std::string render_migration(std::string_view text, Dialect dialect) {
  bool pg = dialect == Dialect::kPostgres;
  std::string out(text);
  out = replace_all(out, "{blob}", pg ? "BYTEA" : "BLOB");
  out = replace_all(out, "{id_pk}",
                    pg ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT");
  out = replace_all(out, "{append_only}", pg ? kPostgresAppendOnly : kSqliteAppendOnly);
  return out;
}

}  // namespace

Status SqlStore::migrate() {
  return transaction([&](sql::Connection& c) -> Status {
    if (c.dialect() == Dialect::kPostgres) {
      // Replicas starting together: one migrates, the others wait and then see it done.
      WARDEN_TRY_STATUS(c.exec("SELECT pg_advisory_xact_lock(7246001)", {}));
    }
    WARDEN_TRY_STATUS(
        c.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", {}));
    auto rows = c.exec("SELECT COALESCE(MAX(version), 0) FROM schema_version", {});
    if (!rows) return fail(std::move(rows).error());
    auto current = sql::as_int(rows->at(0).at(0));
    if (current > static_cast<std::int64_t>(kMigrations.size())) {
      return fail(ErrorCode::kUnsupported, name_ + ": schema version " + std::to_string(current) +
                                               " is newer than this issuer supports (" +
                                               std::to_string(kMigrations.size()) + ")");
    }
    for (auto v = static_cast<std::size_t>(current); v < kMigrations.size(); ++v) {
      WARDEN_TRY_STATUS(c.exec_script(render_migration(kMigrations[v], c.dialect())));
      if (v + 1 == 5) WARDEN_TRY_STATUS(backfill_revoke_requests(c));
      std::array<Value, 1> p{static_cast<std::int64_t>(v + 1)};
      WARDEN_TRY_STATUS(c.exec("INSERT INTO schema_version (version) VALUES (?1)", p));
    }
    return ok();
  });
}

Result<int> SqlStore::schema_version() {
  auto rows = query("SELECT COALESCE(MAX(version), 0) FROM schema_version", {});
  if (!rows) return fail(std::move(rows).error());
  return static_cast<int>(sql::as_int(rows->at(0).at(0)));
}

Status SqlStore::ping() {
  auto rows = query("SELECT 1", {});
  if (!rows) return fail(std::move(rows).error());
  return ok();
}

Status SqlStore::backfill_revoke_requests(sql::Connection& c) {
  auto rows = c.exec(
      "SELECT device_id, reasons FROM audit WHERE action = 'revoke' AND decision = 'ok'", {});
  if (!rows) return fail(std::move(rows).error());
  for (const auto& r : *rows) {
    const auto signed_at = revoke_timestamp(sql::as_text(r[1]));
    if (!signed_at) continue;
    std::array<Value, 2> p{sql::as_text(r[0]), *signed_at};
    WARDEN_TRY_STATUS(
        c.exec("INSERT INTO revoke_requests (device_id, signed_at, request_digest) "
               "VALUES (?1, ?2, '') ON CONFLICT DO NOTHING",
               p));
  }
  return ok();
}

}  // namespace warden::issuer::sqlstore

namespace warden::issuer {
using sqlstore::SqlStore;

std::string_view to_string(DeviceState state) {
  return state == DeviceState::kRevoked ? "revoked" : "enabled";
}

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path) {
  // Probe once so a bad path fails at startup, not on the first request.
  auto probe = sql::connect_sqlite(path);
  if (!probe) return fail(std::move(probe).error());
  return std::unique_ptr<Store>(std::make_unique<SqlStore>(
      [path] { return sql::connect_sqlite(path); }, 8, "sqlite store", true));
}

Result<std::unique_ptr<Store>> open_postgres_store(const std::string& conninfo,
                                                   std::size_t pool_size) {
  auto probe = sql::connect_postgres(conninfo);
  if (!probe) return fail(std::move(probe).error());
  return std::unique_ptr<Store>(std::make_unique<SqlStore>(
      [conninfo] { return sql::connect_postgres(conninfo); }, pool_size, "postgres store", false));
}

}  // namespace warden::issuer
