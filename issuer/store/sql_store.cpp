// The Store over a SQL connection pool. One implementation serves SQLite and PostgreSQL; the few
// dialect differences (blob type, auto-increment keys, transaction start, append-only guards)
// are resolved in the migration text and in begin().
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "issuer/store/sql.h"
#include "issuer/store/store.h"

namespace warden::issuer {
namespace {

using sql::Dialect;
using sql::Value;

/// Schema migrations, applied in order; never edit one that has shipped — append a new one.
/// {blob} and {id_pk} are replaced per dialect.
constexpr std::array<std::string_view, 5> kMigrations = {
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
    // 5 (issue 32): a revoke request is applied once across replicas by its unique key, instead
    // of a search of the audit log. backfill_revoke_requests fills it from the audit records.
    R"(
CREATE TABLE revoke_requests (
  device_id TEXT NOT NULL,
  signed_at BIGINT NOT NULL,
  PRIMARY KEY (device_id, signed_at)
);
CREATE INDEX revoke_requests_signed ON revoke_requests (signed_at);
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

constexpr std::string_view kDeviceColumns =
    "id, ek_public_hash, ek_cert_pem, ak_public, ak_name, grp, state, created_at, reset_count, "
    "restart_count, last_nonce, last_nonce_expiry, last_attested_at, last_verdict, last_reasons, "
    "binding_key_public, ima_entries, ima_state, requested_grp, revoked_at";

Device device_from_row(const sql::Row& r) {
  Device d;
  d.id = sql::as_text(r[0]);
  d.ek_public_hash = sql::as_text(r[1]);
  d.ek_cert_pem = sql::as_text(r[2]);
  d.ak_public = sql::as_bytes(r[3]);
  d.ak_name = sql::as_bytes(r[4]);
  d.group = sql::as_text(r[5]);
  d.state = sql::as_text(r[6]) == "revoked" ? DeviceState::kRevoked : DeviceState::kEnabled;
  d.created_at = sql::as_int(r[7]);
  if (!sql::is_null(r[8])) d.reset_count = static_cast<std::uint64_t>(sql::as_int(r[8]));
  if (!sql::is_null(r[9])) d.restart_count = static_cast<std::uint64_t>(sql::as_int(r[9]));
  d.last_nonce = sql::as_bytes(r[10]);
  d.last_nonce_expiry = sql::as_int(r[11]);
  d.last_attested_at = sql::as_int(r[12]);
  d.last_verdict = sql::as_text(r[13]);
  d.last_reasons_json = sql::as_text(r[14]);
  d.binding_key_public = sql::as_bytes(r[15]);
  d.ima_entries = static_cast<std::uint64_t>(sql::as_int(r[16]));
  d.ima_state = sql::as_bytes(r[17]);
  d.requested_group = sql::as_text(r[18]);
  d.revoked_at = sql::as_int(r[19]);
  return d;
}

Value opt_int(const std::optional<std::uint64_t>& v) {
  if (!v) return std::monostate{};
  return static_cast<std::int64_t>(*v);
}

Value i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

constexpr std::string_view kTokenSelect =
    "SELECT jti, device_id, list_id, status_index, issued_at, expires_at, revoked FROM tokens";

TokenRecord token_from_row(const sql::Row& r) {
  TokenRecord t;
  t.jti = sql::as_text(r[0]);
  t.device_id = sql::as_text(r[1]);
  t.list_id = sql::as_text(r[2]);
  t.status_index = static_cast<std::uint64_t>(sql::as_int(r[3]));
  t.issued_at = sql::as_int(r[4]);
  t.expires_at = sql::as_int(r[5]);
  t.revoked = sql::as_int(r[6]) != 0;
  return t;
}

class SqlStore final : public Store {
 public:
  /// `single_writer`: transactions run on one dedicated connection (SQLite: there is only ever
  /// one writer, and a connection whose view another connection changed drops its whole page
  /// cache at the next transaction; the writer's cache stays valid between its transactions).
  SqlStore(sql::Pool::Factory factory, std::size_t pool_size, std::string name, bool single_writer)
      : pool_(factory, pool_size),
        writer_(single_writer ? std::make_unique<sql::Pool>(std::move(factory), 1) : nullptr),
        name_(std::move(name)),
        committer_([this] { commit_loop(); }) {}

  ~SqlStore() override {
    {
      std::lock_guard lock(issue_mu_);
      issue_stopping_ = true;
    }
    issue_cv_.notify_one();
    committer_.join();  // after committing what was queued
  }
  SqlStore(const SqlStore&) = delete;
  SqlStore& operator=(const SqlStore&) = delete;

  Status migrate() override {
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

  Result<int> schema_version() override {
    auto rows = query("SELECT COALESCE(MAX(version), 0) FROM schema_version", {});
    if (!rows) return fail(std::move(rows).error());
    return static_cast<int>(sql::as_int(rows->at(0).at(0)));
  }

  Status ping() override {
    auto rows = query("SELECT 1", {});
    if (!rows) return fail(std::move(rows).error());
    return ok();
  }

  Status add_device(const Device& d) override {
    std::vector<Value> p{d.id,
                         d.ek_public_hash,
                         d.ek_cert_pem,
                         d.ak_public,
                         d.ak_name,
                         d.group,
                         std::string(to_string(d.state)),
                         d.created_at,
                         opt_int(d.reset_count),
                         opt_int(d.restart_count),
                         d.last_nonce.empty() ? Value{} : Value{d.last_nonce},
                         d.last_nonce_expiry,
                         d.last_attested_at,
                         d.last_verdict,
                         d.last_reasons_json,
                         d.binding_key_public.empty() ? Value{} : Value{d.binding_key_public},
                         i64(d.ima_entries),
                         d.ima_state.empty() ? Value{} : Value{d.ima_state},
                         d.requested_group,
                         d.revoked_at};
    auto rows = query("INSERT INTO devices (" + std::string(kDeviceColumns) +
                          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
                          "?15, ?16, ?17, ?18, ?19, ?20)",
                      p);
    if (!rows) {
      if (rows.error().code == ErrorCode::kConflict) {
        return fail(ErrorCode::kAlreadyExists,
                    "add device " + d.id + ": a device with this id or EK is already enrolled");
      }
      return fail(std::move(rows).error());
    }
    return ok();
  }

  Result<Device> get_device(std::string_view id) override {
    std::array<Value, 1> p{std::string(id)};
    auto rows = query("SELECT " + std::string(kDeviceColumns) + " FROM devices WHERE id = ?1", p);
    if (!rows) return fail(std::move(rows).error());
    if (rows->empty())
      return fail(ErrorCode::kNotFound, "device " + std::string(id) + " is not enrolled");
    return device_from_row(rows->front());
  }

  Result<std::optional<Device>> find_device_by_ek(std::string_view ek_hash) override {
    std::array<Value, 1> p{std::string(ek_hash)};
    auto rows = query(
        "SELECT " + std::string(kDeviceColumns) + " FROM devices WHERE ek_public_hash = ?1", p);
    if (!rows) return fail(std::move(rows).error());
    if (rows->empty()) return std::optional<Device>{};
    return std::optional<Device>(device_from_row(rows->front()));
  }

  Result<std::vector<Device>> list_devices(std::size_t limit, std::string_view after_id) override {
    std::array<Value, 2> p{std::string(after_id), i64(limit)};
    auto rows = query("SELECT " + std::string(kDeviceColumns) +
                          " FROM devices WHERE id > ?1 ORDER BY id LIMIT ?2",
                      p);
    if (!rows) return fail(std::move(rows).error());
    std::vector<Device> out;
    out.reserve(rows->size());
    for (const auto& r : *rows) out.push_back(device_from_row(r));
    return out;
  }

  Status set_device_state(std::string_view id, DeviceState state) override {
    std::array<Value, 2> p{std::string(id), std::string(to_string(state))};
    return expect_one(query("UPDATE devices SET state = ?2 WHERE id = ?1 RETURNING id", p), id);
  }

  Status revoke_device(std::string_view id, std::int64_t at) override {
    std::array<Value, 2> p{std::string(id), at};
    return expect_one(query("UPDATE devices SET state = 'revoked', revoked_at = CASE WHEN "
                            "revoked_at > ?2 THEN revoked_at ELSE ?2 END WHERE id = ?1 "
                            "RETURNING id",
                            p),
                      id);
  }

  Status set_device_group(std::string_view id, std::string_view group) override {
    std::array<Value, 2> p{std::string(id), std::string(group)};
    return expect_one(query("UPDATE devices SET grp = ?2 WHERE id = ?1 RETURNING id", p), id);
  }

  Status remove_device(std::string_view id) override {
    std::array<Value, 1> p{std::string(id)};
    return expect_one(query("DELETE FROM devices WHERE id = ?1 RETURNING id", p), id);
  }

  Status consume_nonce(std::string_view id, ByteSpan nonce, std::int64_t expiry) override {
    return on_connection(
        [&](sql::Connection& c) { return consume_nonce_on(c, id, nonce, expiry); });
  }

  Status record_attestation(std::string_view id, const AttestationUpdate& u) override {
    return on_connection([&](sql::Connection& c) { return record_attestation_on(c, id, u); });
  }

  Status record_attestation_outcome(std::string_view id, ByteSpan nonce, std::int64_t expiry,
                                    const AttestationUpdate& u, const AuditRecord& a) override {
    return transaction([&](sql::Connection& c) -> Status {
      WARDEN_TRY_STATUS(consume_nonce_on(c, id, nonce, expiry));
      WARDEN_TRY_STATUS(record_attestation_on(c, id, u));
      auto audit = append_audit_on(c, a);
      if (!audit) return fail(std::move(audit).error());
      return ok();
    });
  }

  Status put_enrollment(const Enrollment& e, std::size_t max_pending) override {
    return transaction([&](sql::Connection& c) -> Status {
      // One pending enrollment per EK: the newest replaces the older (whose activation then
      // finds nothing), so that one EK cannot fill the table.
      std::array<Value, 1> ek{e.ek_public_hash};
      WARDEN_TRY_STATUS(c.exec("DELETE FROM enrollments WHERE ek_public_hash = ?1", ek));
      std::vector<Value> p{e.id,          e.ek_public_hash, e.ek_cert_pem,
                           e.ak_public,   e.ak_name,        e.requested_group,
                           e.secret_hash, e.created_at,     e.expires_at};
      auto rows = c.exec(
          "INSERT INTO enrollments (id, ek_public_hash, ek_cert_pem, ak_public, ak_name, grp, "
          "secret_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
          p);
      if (!rows) {
        if (rows.error().code == ErrorCode::kConflict) {
          return fail(ErrorCode::kAlreadyExists,
                      "enrollment " + e.id + ": an enrollment with this id or EK is pending");
        }
        return fail(std::move(rows).error());
      }
      // The bound: many EKs (each a genuine TPM) enrolling and never activating evict the oldest.
      auto count = c.exec("SELECT COUNT(*) FROM enrollments", {});
      if (!count) return fail(std::move(count).error());
      const std::int64_t over =
          sql::as_int(count->at(0).at(0)) - static_cast<std::int64_t>(max_pending);
      if (over > 0) {
        std::array<Value, 2> q{e.id, over};
        WARDEN_TRY_STATUS(
            c.exec("DELETE FROM enrollments WHERE id IN (SELECT id FROM enrollments WHERE id <> ?1 "
                   "ORDER BY created_at, id LIMIT ?2)",
                   q));
      }
      return ok();
    });
  }

  Result<Enrollment> take_enrollment(std::string_view id) override {
    std::array<Value, 1> p{std::string(id)};
    auto rows = query(
        "DELETE FROM enrollments WHERE id = ?1 RETURNING id, ek_public_hash, ek_cert_pem, "
        "ak_public, ak_name, grp, secret_hash, created_at, expires_at",
        p);
    if (!rows) return fail(std::move(rows).error());
    if (rows->empty()) {
      return fail(ErrorCode::kNotFound, "enrollment " + std::string(id) + " is not pending");
    }
    const auto& r = rows->front();
    Enrollment e;
    e.id = sql::as_text(r[0]);
    e.ek_public_hash = sql::as_text(r[1]);
    e.ek_cert_pem = sql::as_text(r[2]);
    e.ak_public = sql::as_bytes(r[3]);
    e.ak_name = sql::as_bytes(r[4]);
    e.requested_group = sql::as_text(r[5]);
    e.secret_hash = sql::as_bytes(r[6]);
    e.created_at = sql::as_int(r[7]);
    e.expires_at = sql::as_int(r[8]);
    return e;
  }

  Result<std::size_t> purge_enrollments(std::int64_t now) override {
    std::array<Value, 1> p{now};
    auto rows = query("DELETE FROM enrollments WHERE expires_at < ?1 RETURNING id", p);
    if (!rows) return fail(std::move(rows).error());
    return rows->size();
  }

  Result<PolicyVersion> add_policy(std::string_view version, std::string_view toml,
                                   std::int64_t created_at, bool activate) override {
    PolicyVersion out;
    auto status = transaction([&](sql::Connection& c) -> Status {
      if (activate)
        WARDEN_TRY_STATUS(c.exec("UPDATE policies SET active = 0 WHERE active = 1", {}));
      std::vector<Value> p{std::string(version), std::string(toml), created_at,
                           static_cast<std::int64_t>(activate ? 1 : 0)};
      auto rows = c.exec(
          "INSERT INTO policies (version, toml, created_at, active) VALUES (?1, ?2, ?3, ?4) "
          "RETURNING id",
          p);
      if (!rows) return fail(std::move(rows).error());
      out.id = sql::as_int(rows->at(0).at(0));
      return ok();
    });
    if (!status) return fail(std::move(status).error());
    out.version = std::string(version);
    out.toml = std::string(toml);
    out.created_at = created_at;
    out.active = activate;
    return out;
  }

  Result<std::optional<PolicyVersion>> active_policy() override {
    auto rows = query(
        "SELECT id, version, toml, created_at, active FROM policies WHERE active = 1 "
        "ORDER BY id DESC LIMIT 1",
        {});
    if (!rows) return fail(std::move(rows).error());
    if (rows->empty()) return std::optional<PolicyVersion>{};
    return std::optional<PolicyVersion>(policy_from_row(rows->front()));
  }

  Result<std::vector<PolicyVersion>> list_policies() override {
    auto rows = query("SELECT id, version, toml, created_at, active FROM policies ORDER BY id", {});
    if (!rows) return fail(std::move(rows).error());
    std::vector<PolicyVersion> out;
    for (const auto& r : *rows) out.push_back(policy_from_row(r));
    return out;
  }

  Result<std::int64_t> append_audit(const AuditRecord& a) override {
    return on_connection([&](sql::Connection& c) { return append_audit_on(c, a); });
  }

  Status record_revoke_request(std::string_view device_id, std::int64_t signed_at,
                               std::int64_t forget_before) override {
    return transaction([&](sql::Connection& c) -> Status {
      std::array<Value, 1> old{forget_before};
      WARDEN_TRY_STATUS(c.exec("DELETE FROM revoke_requests WHERE signed_at < ?1", old));
      std::array<Value, 2> p{std::string(device_id), signed_at};
      auto rows = c.exec(
          "INSERT INTO revoke_requests (device_id, signed_at) VALUES (?1, ?2) "
          "ON CONFLICT DO NOTHING RETURNING device_id",
          p);
      if (!rows) return fail(std::move(rows).error());
      if (rows->empty()) {
        return fail(ErrorCode::kReplay, "revoke request of device " + std::string(device_id) +
                                            " signed at " + std::to_string(signed_at) +
                                            " is already recorded");
      }
      return ok();
    });
  }

  Result<std::vector<AuditRecord>> query_audit(const AuditFilter& f) override {
    std::string text =
        "SELECT id, time, device_id, action, decision, evidence_hash, policy_version, reasons "
        "FROM audit WHERE 1 = 1";
    std::vector<Value> p;
    if (f.device_id) {
      p.emplace_back(*f.device_id);
      text += " AND device_id = ?" + std::to_string(p.size());
    }
    if (f.since) {
      p.emplace_back(*f.since);
      text += " AND time >= ?" + std::to_string(p.size());
    }
    p.emplace_back(i64(f.limit));
    text += " ORDER BY id DESC LIMIT ?" + std::to_string(p.size());
    auto rows = query(text, p);
    if (!rows) return fail(std::move(rows).error());
    std::vector<AuditRecord> out;
    out.reserve(rows->size());
    for (const auto& r : *rows) {
      AuditRecord a;
      a.id = sql::as_int(r[0]);
      a.time = sql::as_int(r[1]);
      a.device_id = sql::as_text(r[2]);
      a.action = sql::as_text(r[3]);
      a.decision = sql::as_text(r[4]);
      a.evidence_hash = sql::as_text(r[5]);
      a.policy_version = sql::as_text(r[6]);
      a.reasons_json = sql::as_text(r[7]);
      out.push_back(std::move(a));
    }
    return out;
  }

  Status create_status_list(std::string_view id, std::uint64_t bits) override {
    std::array<Value, 2> p{std::string(id), i64(bits)};
    auto rows = query("INSERT INTO status_lists (id, bits, next_index) VALUES (?1, ?2, 0)", p);
    if (!rows) {
      if (rows.error().code == ErrorCode::kConflict) {
        return fail(ErrorCode::kAlreadyExists, "status list " + std::string(id) + " exists");
      }
      return fail(std::move(rows).error());
    }
    return ok();
  }

  Result<std::uint64_t> allocate_status_index(std::string_view id) override {
    std::array<Value, 1> p{std::string(id)};
    auto rows = query(
        "UPDATE status_lists SET next_index = next_index + 1 WHERE id = ?1 AND next_index < bits "
        "RETURNING next_index",
        p);
    if (!rows) return fail(std::move(rows).error());
    if (rows->empty()) {
      auto list = get_list_row(id);
      if (!list) return fail(std::move(list).error());
      return fail(ErrorCode::kLimitExceeded, "status list " + std::string(id) + ": all " +
                                                 std::to_string(list->bits) +
                                                 " indexes are allocated");
    }
    return static_cast<std::uint64_t>(sql::as_int(rows->at(0).at(0)) - 1);
  }

  Result<std::pair<std::uint64_t, std::uint64_t>> allocate_status_indexes(
      std::string_view id, std::uint64_t count) override {
    if (count > 1) {
      std::array<Value, 2> p{std::string(id), i64(count)};
      auto rows = query(
          "UPDATE status_lists SET next_index = next_index + ?2 WHERE id = ?1 AND "
          "next_index + ?2 <= bits RETURNING next_index",
          p);
      if (!rows) return fail(std::move(rows).error());
      if (!rows->empty()) {
        auto end = static_cast<std::uint64_t>(sql::as_int(rows->at(0).at(0)));
        return std::pair{end - count, end};
      }
    }
    // Fewer than `count` left (or count <= 1): one at a time until the list is full.
    auto one = allocate_status_index(id);
    if (!one) return fail(std::move(one).error());
    return std::pair{*one, *one + 1};
  }

  Status set_status_bit(std::string_view id, std::uint64_t index, bool value) override {
    auto list = get_list_row(id);
    if (!list) return fail(std::move(list).error());
    if (index >= list->bits) {
      return fail(ErrorCode::kInvalidArgument, "status list " + std::string(id) + ": index " +
                                                   std::to_string(index) + " out of range (bits " +
                                                   std::to_string(list->bits) + ")");
    }
    std::array<Value, 2> p{std::string(id), i64(index)};
    auto rows = value ? query(
                            "INSERT INTO status_bits (list_id, idx) VALUES (?1, ?2) "
                            "ON CONFLICT DO NOTHING",
                            p)
                      : query("DELETE FROM status_bits WHERE list_id = ?1 AND idx = ?2", p);
    if (!rows) return fail(std::move(rows).error());
    return ok();
  }

  Result<StatusList> get_status_list(std::string_view id) override {
    auto list = get_list_row(id);
    if (!list) return fail(std::move(list).error());
    std::array<Value, 1> p{std::string(id)};
    auto rows = query("SELECT idx FROM status_bits WHERE list_id = ?1", p);
    if (!rows) return fail(std::move(rows).error());
    list->bytes.assign((list->bits + 7) / 8, 0);
    for (const auto& r : *rows) {
      auto idx = static_cast<std::uint64_t>(sql::as_int(r[0]));
      if (idx < list->bits) list->bytes[idx / 8] |= static_cast<std::uint8_t>(1U << (idx % 8));
    }
    return list;
  }

  // Group commit: token issues are queued and one commit thread writes them. Whenever it is
  // free, it takes every record waiting and commits them in one transaction, then completes each
  // caller; while it commits, new records queue for the next transaction. One commit (one WAL
  // append and sync point, one PostgreSQL round trip to COMMIT) then serves every request that
  // arrived meanwhile, and no server thread waits for it (record_token_issue_async).
  Status record_token_issue(const TokenRecord& t, const AuditRecord& a) override {
    std::promise<Status> outcome;
    auto future = outcome.get_future();
    record_token_issue_async(t, a, [&outcome](Status s) { outcome.set_value(std::move(s)); });
    return future.get();
  }

  void record_token_issue_async(TokenRecord t, AuditRecord a,
                                std::function<void(Status)> done) override {
    {
      std::lock_guard lock(issue_mu_);
      issue_queue_.push_back({std::move(t), std::move(a), std::move(done)});
    }
    issue_cv_.notify_one();
  }

  [[nodiscard]] IssueCommitStats issue_commit_stats() const override {
    return {issue_commits_.load(std::memory_order_relaxed),
            issue_records_.load(std::memory_order_relaxed)};
  }

  Status add_token(const TokenRecord& t) override {
    return on_connection([&](sql::Connection& c) { return insert_token_on(c, t); });
  }

  Result<TokenRecord> get_token(std::string_view jti) override {
    std::array<Value, 1> p{std::string(jti)};
    auto rows = query(std::string(kTokenSelect) + " WHERE jti = ?1", p);
    if (!rows) return fail(std::move(rows).error());
    if (rows->empty()) return fail(ErrorCode::kNotFound, "token " + std::string(jti));
    return token_from_row(rows->front());
  }

  Result<std::vector<TokenRecord>> live_tokens(std::string_view device_id,
                                               std::int64_t now) override {
    std::array<Value, 2> p{std::string(device_id), now};
    auto rows = query(std::string(kTokenSelect) +
                          " WHERE device_id = ?1 AND revoked = 0 AND expires_at > ?2 "
                          "ORDER BY issued_at, jti",
                      p);
    if (!rows) return fail(std::move(rows).error());
    std::vector<TokenRecord> out;
    out.reserve(rows->size());
    for (const auto& r : *rows) out.push_back(token_from_row(r));
    return out;
  }

  Result<bool> mark_token_revoked(std::string_view jti) override {
    std::array<Value, 1> p{std::string(jti)};
    auto rows =
        query("UPDATE tokens SET revoked = 1 WHERE jti = ?1 AND revoked = 0 RETURNING jti", p);
    if (!rows) return fail(std::move(rows).error());
    if (!rows->empty()) return true;
    auto existing = get_token(jti);
    if (!existing) return fail(std::move(existing).error());
    return false;
  }

  Status put_signing_key(const SigningKeyInfo& k) override {
    std::vector<Value> p{k.kid, k.alg, k.public_pem, k.created_at, k.retired_at, k.not_after};
    auto rows = query(
        "INSERT INTO signing_keys (kid, alg, public_pem, created_at, retired_at, not_after) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (kid) DO NOTHING",
        p);
    if (!rows) return fail(std::move(rows).error());
    return ok();
  }

  Status retire_signing_key(std::string_view kid, std::int64_t retired_at,
                            std::int64_t not_after) override {
    std::array<Value, 3> p{std::string(kid), retired_at, not_after};
    auto rows = query(
        "UPDATE signing_keys SET retired_at = ?2, not_after = ?3 WHERE kid = ?1 RETURNING kid", p);
    if (!rows) return fail(std::move(rows).error());
    if (rows->empty()) return fail(ErrorCode::kNotFound, "signing key " + std::string(kid));
    return ok();
  }

  Result<std::vector<SigningKeyInfo>> list_signing_keys() override {
    auto rows = query(
        "SELECT kid, alg, public_pem, created_at, retired_at, not_after FROM signing_keys "
        "ORDER BY created_at, kid",
        {});
    if (!rows) return fail(std::move(rows).error());
    std::vector<SigningKeyInfo> out;
    for (const auto& r : *rows) {
      SigningKeyInfo k;
      k.kid = sql::as_text(r[0]);
      k.alg = sql::as_text(r[1]);
      k.public_pem = sql::as_text(r[2]);
      k.created_at = sql::as_int(r[3]);
      k.retired_at = sql::as_int(r[4]);
      k.not_after = sql::as_int(r[5]);
      out.push_back(std::move(k));
    }
    return out;
  }

 private:
  // Revoke requests applied before schema 5 are known only by their audit records.
  static Status backfill_revoke_requests(sql::Connection& c) {
    auto rows = c.exec(
        "SELECT device_id, reasons FROM audit WHERE action = 'revoke' AND decision = 'ok'", {});
    if (!rows) return fail(std::move(rows).error());
    for (const auto& r : *rows) {
      const auto signed_at = revoke_timestamp(sql::as_text(r[1]));
      if (!signed_at) continue;
      std::array<Value, 2> p{sql::as_text(r[0]), *signed_at};
      WARDEN_TRY_STATUS(
          c.exec("INSERT INTO revoke_requests (device_id, signed_at) VALUES (?1, ?2) "
                 "ON CONFLICT DO NOTHING",
                 p));
    }
    return ok();
  }

  static PolicyVersion policy_from_row(const sql::Row& r) {
    PolicyVersion v;
    v.id = sql::as_int(r[0]);
    v.version = sql::as_text(r[1]);
    v.toml = sql::as_text(r[2]);
    v.created_at = sql::as_int(r[3]);
    v.active = sql::as_int(r[4]) != 0;
    return v;
  }

  Result<StatusList> get_list_row(std::string_view id) {
    std::array<Value, 1> p{std::string(id)};
    auto rows = query("SELECT bits, next_index FROM status_lists WHERE id = ?1", p);
    if (!rows) return fail(std::move(rows).error());
    if (rows->empty()) return fail(ErrorCode::kNotFound, "status list " + std::string(id));
    StatusList l;
    l.id = std::string(id);
    l.bits = static_cast<std::uint64_t>(sql::as_int(rows->front()[0]));
    l.next_index = static_cast<std::uint64_t>(sql::as_int(rows->front()[1]));
    return l;
  }

  static Status consume_nonce_on(sql::Connection& c, std::string_view id, ByteSpan nonce,
                                 std::int64_t expiry) {
    std::array<Value, 3> p{std::string(id), Bytes(nonce.begin(), nonce.end()), expiry};
    auto rows = c.exec(
        "UPDATE devices SET last_nonce = ?2, last_nonce_expiry = ?3 WHERE id = ?1 AND "
        "(last_nonce IS NULL OR last_nonce <> ?2) AND last_nonce_expiry <= ?3 RETURNING id",
        p);
    if (!rows) return fail(std::move(rows).error());
    if (!rows->empty()) return ok();
    std::array<Value, 1> k{std::string(id)};
    auto exists = c.exec("SELECT id FROM devices WHERE id = ?1", k);
    WARDEN_TRY_STATUS(expect_one(std::move(exists), id));
    return fail(ErrorCode::kReplay, "nonce for device " + std::string(id) +
                                        ": already used, or older than the last accepted nonce");
  }

  static Status record_attestation_on(sql::Connection& c, std::string_view id,
                                      const AttestationUpdate& u) {
    std::vector<Value> p{
        std::string(id), opt_int(u.reset_count), opt_int(u.restart_count), u.attested_at,
        u.verdict,       u.reasons_json};
    std::string text =
        "UPDATE devices SET reset_count = ?2, restart_count = ?3, last_attested_at = ?4, "
        "last_verdict = ?5, last_reasons = ?6";
    if (u.binding_key_public) {
      p.emplace_back(*u.binding_key_public);
      text += ", binding_key_public = ?" + std::to_string(p.size());
    }
    if (u.ima_entries) {
      p.emplace_back(i64(*u.ima_entries));
      text += ", ima_entries = ?" + std::to_string(p.size());
    }
    if (u.ima_state) {
      p.emplace_back(*u.ima_state);
      text += ", ima_state = ?" + std::to_string(p.size());
    }
    return expect_one(c.exec(text + " WHERE id = ?1 RETURNING id", p), id);
  }

  struct PendingIssue {
    TokenRecord token;
    AuditRecord audit;
    std::function<void(Status)> done;
  };

  void commit_loop() {
    std::vector<PendingIssue> batch;  // swapped with the queue: both keep their capacity
    std::unique_lock lock(issue_mu_);
    for (;;) {
      issue_cv_.wait(lock, [&] { return !issue_queue_.empty() || issue_stopping_; });
      if (issue_queue_.empty()) return;  // stopping, nothing left to commit
      batch.swap(issue_queue_);
      lock.unlock();
      std::vector<Status> outcome = commit_issues(batch);
      issue_commits_.fetch_add(1, std::memory_order_relaxed);
      issue_records_.fetch_add(batch.size(), std::memory_order_relaxed);
      for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(outcome[i]));
      batch.clear();
      lock.lock();
    }
  }

  std::vector<Status> commit_issues(const std::vector<PendingIssue>& batch) {
    std::vector<Status> outcome(batch.size(), ok());
    if (batch.size() > 1) {
      auto all = transaction([&](sql::Connection& c) -> Status {
        for (const PendingIssue& p : batch) WARDEN_TRY_STATUS(insert_issue_on(c, p.token, p.audit));
        return ok();
      });
      if (all) return outcome;
      // A refused record (a duplicate jti) must not fail the others: each alone, as if unbatched.
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      outcome[i] = transaction([&](sql::Connection& c) -> Status {
        return insert_issue_on(c, batch[i].token, batch[i].audit);
      });
    }
    return outcome;
  }

  static Status insert_issue_on(sql::Connection& c, const TokenRecord& t, const AuditRecord& a) {
    WARDEN_TRY_STATUS(insert_token_on(c, t));
    // The id is not needed here, and RETURNING costs SQLite a result table per insert.
    auto rows = c.exec(kInsertAudit, audit_values(a));
    if (!rows) return fail(std::move(rows).error());
    return ok();
  }

  static Status insert_token_on(sql::Connection& c, const TokenRecord& t) {
    std::vector<Value> tp{t.jti,
                          t.device_id,
                          t.list_id,
                          i64(t.status_index),
                          t.issued_at,
                          t.expires_at,
                          static_cast<std::int64_t>(t.revoked ? 1 : 0)};
    auto token = c.exec(
        "INSERT INTO tokens (jti, device_id, list_id, status_index, issued_at, expires_at, "
        "revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        tp);
    if (!token) {
      if (token.error().code == ErrorCode::kConflict) {
        return fail(ErrorCode::kAlreadyExists, "token " + t.jti + " is already recorded");
      }
      return fail(std::move(token).error());
    }
    return ok();
  }

  static constexpr std::string_view kInsertAudit =
      "INSERT INTO audit (time, device_id, action, decision, evidence_hash, policy_version, "
      "reasons) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

  static std::vector<Value> audit_values(const AuditRecord& a) {
    return {a.time,          a.device_id,      a.action,      a.decision,
            a.evidence_hash, a.policy_version, a.reasons_json};
  }

  static Result<std::int64_t> append_audit_on(sql::Connection& c, const AuditRecord& a) {
    auto rows = c.exec(
        "INSERT INTO audit (time, device_id, action, decision, evidence_hash, policy_version, "
        "reasons) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        audit_values(a));
    if (!rows) return fail(std::move(rows).error());
    return sql::as_int(rows->at(0).at(0));
  }

  static Status expect_one(Result<sql::Rows> rows, std::string_view id) {
    if (!rows) return fail(std::move(rows).error());
    if (rows->empty())
      return fail(ErrorCode::kNotFound, "device " + std::string(id) + " is not enrolled");
    return ok();
  }

  Result<sql::Rows> query(std::string_view text, std::span<const Value> params) {
    return on_connection([&](sql::Connection& c) { return c.exec(text, params); });
  }

  /// fn(connection) on a pooled connection, outside a transaction.
  template <class Fn>
  auto on_connection(Fn&& fn) -> decltype(fn(std::declval<sql::Connection&>())) {
    auto lease = pool_.acquire();
    if (!lease) return fail(std::move(lease).error().context(name_));
    auto out = fn(**lease);
    if (!out && out.error().code == ErrorCode::kUnavailable &&
        (*lease)->dialect() == Dialect::kPostgres) {
      lease->discard();  // the connection is broken; the next caller reconnects
    }
    return out;
  }

  template <class Fn>
  Status transaction(Fn&& fn) {
    auto lease = writer_ ? writer_->acquire() : pool_.acquire();
    if (!lease) return fail(std::move(lease).error().context(name_));
    sql::Connection& c = **lease;
    WARDEN_TRY_STATUS(c.exec(c.dialect() == Dialect::kSqlite ? "BEGIN IMMEDIATE" : "BEGIN", {}));
    auto status = fn(c);
    if (!status) {
      (void)c.exec("ROLLBACK", {});
      return status;
    }
    auto commit = c.exec("COMMIT", {});
    if (!commit) {
      (void)c.exec("ROLLBACK", {});
      return fail(std::move(commit).error());
    }
    return ok();
  }

  sql::Pool pool_;
  std::unique_ptr<sql::Pool> writer_;
  std::string name_;
  std::mutex issue_mu_;  // guards issue_queue_ and issue_stopping_
  std::condition_variable issue_cv_;
  std::vector<PendingIssue> issue_queue_;
  bool issue_stopping_ = false;
  std::atomic<std::uint64_t> issue_commits_{0};
  std::atomic<std::uint64_t> issue_records_{0};
  std::thread committer_;  // last: started once every member above exists
};

}  // namespace

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
