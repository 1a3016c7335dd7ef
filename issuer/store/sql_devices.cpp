// Devices, enrollments, attestation nonces and outcomes.
#include "issuer/store/sql_store_impl.h"

namespace warden::issuer::sqlstore {
namespace {

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

}  // namespace

Status SqlStore::add_device(const Device& d) {
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

Result<Device> SqlStore::get_device(std::string_view id) {
  std::array<Value, 1> p{std::string(id)};
  auto rows = query("SELECT " + std::string(kDeviceColumns) + " FROM devices WHERE id = ?1", p);
  if (!rows) return fail(std::move(rows).error());
  if (rows->empty())
    return fail(ErrorCode::kNotFound, "device " + std::string(id) + " is not enrolled");
  return device_from_row(rows->front());
}

Result<std::optional<Device>> SqlStore::find_device_by_ek(std::string_view ek_hash) {
  std::array<Value, 1> p{std::string(ek_hash)};
  auto rows =
      query("SELECT " + std::string(kDeviceColumns) + " FROM devices WHERE ek_public_hash = ?1", p);
  if (!rows) return fail(std::move(rows).error());
  if (rows->empty()) return std::optional<Device>{};
  return std::optional<Device>(device_from_row(rows->front()));
}

Result<std::vector<Device>> SqlStore::list_devices(std::size_t limit, std::string_view after_id) {
  std::array<Value, 2> p{std::string(after_id), i64(limit)};
  auto rows = query(
      "SELECT " + std::string(kDeviceColumns) + " FROM devices WHERE id > ?1 ORDER BY id LIMIT ?2",
      p);
  if (!rows) return fail(std::move(rows).error());
  std::vector<Device> out;
  out.reserve(rows->size());
  for (const auto& r : *rows) out.push_back(device_from_row(r));
  return out;
}

Status SqlStore::set_device_state(std::string_view id, DeviceState state) {
  std::array<Value, 2> p{std::string(id), std::string(to_string(state))};
  return expect_one(query("UPDATE devices SET state = ?2 WHERE id = ?1 RETURNING id", p), id);
}

Status SqlStore::revoke_device(std::string_view id, std::int64_t at) {
  std::array<Value, 2> p{std::string(id), at};
  return expect_one(query("UPDATE devices SET state = 'revoked', revoked_at = CASE WHEN "
                          "revoked_at > ?2 THEN revoked_at ELSE ?2 END WHERE id = ?1 "
                          "RETURNING id",
                          p),
                    id);
}

Status SqlStore::set_device_group(std::string_view id, std::string_view group) {
  std::array<Value, 2> p{std::string(id), std::string(group)};
  return expect_one(query("UPDATE devices SET grp = ?2 WHERE id = ?1 RETURNING id", p), id);
}

Status SqlStore::remove_device(std::string_view id) {
  std::array<Value, 1> p{std::string(id)};
  return expect_one(query("DELETE FROM devices WHERE id = ?1 RETURNING id", p), id);
}

Status SqlStore::consume_nonce(std::string_view id, ByteSpan nonce, std::int64_t expiry) {
  return on_connection([&](sql::Connection& c) { return consume_nonce_on(c, id, nonce, expiry); });
}

Status SqlStore::record_attestation(std::string_view id, const AttestationUpdate& u) {
  return on_connection([&](sql::Connection& c) { return record_attestation_on(c, id, u); });
}

Status SqlStore::record_attestation_outcome(std::string_view id, ByteSpan nonce,
                                            std::int64_t expiry, const AttestationUpdate& u,
                                            const AuditRecord& a) {
  return transaction([&](sql::Connection& c) -> Status {
    WARDEN_TRY_STATUS(consume_nonce_on(c, id, nonce, expiry));
    WARDEN_TRY_STATUS(record_attestation_on(c, id, u));
    auto audit = append_audit_on(c, a);
    if (!audit) return fail(std::move(audit).error());
    return ok();
  });
}

Status SqlStore::put_enrollment(const Enrollment& e, std::size_t max_pending) {
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

Result<Enrollment> SqlStore::take_enrollment(std::string_view id) {
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

Result<std::size_t> SqlStore::purge_enrollments(std::int64_t now) {
  std::array<Value, 1> p{now};
  auto rows = query("DELETE FROM enrollments WHERE expires_at < ?1 RETURNING id", p);
  if (!rows) return fail(std::move(rows).error());
  return rows->size();
}

Status SqlStore::consume_nonce_on(sql::Connection& c, std::string_view id, ByteSpan nonce,
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

Status SqlStore::record_attestation_on(sql::Connection& c, std::string_view id,
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

Status SqlStore::expect_one(Result<sql::Rows> rows, std::string_view id) {
  if (!rows) return fail(std::move(rows).error());
  if (rows->empty())
    return fail(ErrorCode::kNotFound, "device " + std::string(id) + " is not enrolled");
  return ok();
}

}  // namespace warden::issuer::sqlstore
