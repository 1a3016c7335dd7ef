// The audit log, revoke requests, policies and signing key metadata.
#include "issuer/store/sql_store_impl.h"

namespace warden::issuer::sqlstore {

Result<PolicyVersion> SqlStore::add_policy(std::string_view version, std::string_view toml,
                                           std::int64_t created_at, bool activate) {
  PolicyVersion out;
  auto status = transaction([&](sql::Connection& c) -> Status {
    if (activate) WARDEN_TRY_STATUS(c.exec("UPDATE policies SET active = 0 WHERE active = 1", {}));
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

Result<std::optional<PolicyVersion>> SqlStore::active_policy() {
  auto rows = query(
      "SELECT id, version, toml, created_at, active FROM policies WHERE active = 1 "
      "ORDER BY id DESC LIMIT 1",
      {});
  if (!rows) return fail(std::move(rows).error());
  if (rows->empty()) return std::optional<PolicyVersion>{};
  return std::optional<PolicyVersion>(policy_from_row(rows->front()));
}

Result<std::vector<PolicyVersion>> SqlStore::list_policies() {
  auto rows = query("SELECT id, version, toml, created_at, active FROM policies ORDER BY id", {});
  if (!rows) return fail(std::move(rows).error());
  std::vector<PolicyVersion> out;
  for (const auto& r : *rows) out.push_back(policy_from_row(r));
  return out;
}

Result<std::int64_t> SqlStore::append_audit(const AuditRecord& a) {
  return on_connection([&](sql::Connection& c) { return append_audit_on(c, a); });
}

Status SqlStore::record_revoke_request(std::string_view device_id, std::int64_t signed_at,
                                       std::string_view request_digest,
                                       std::int64_t forget_before) {
  return transaction([&](sql::Connection& c) -> Status {
    return record_revoke_request_on(c, device_id, signed_at, request_digest, forget_before);
  });
}

Status SqlStore::record_revoke_request_on(sql::Connection& c, std::string_view device_id,
                                          std::int64_t signed_at, std::string_view request_digest,
                                          std::int64_t forget_before) {
  if (request_digest.empty()) {
    return fail(ErrorCode::kInvalidArgument, "revoke request: empty digest");
  }
  std::array<Value, 1> old{forget_before};
  WARDEN_TRY_STATUS(c.exec("DELETE FROM revoke_requests WHERE signed_at < ?1", old));
  std::array<Value, 3> p{std::string(device_id), signed_at, std::string(request_digest)};
  // A row found in the audit log at the upgrade (empty digest) stands for its whole second.
  auto rows = c.exec(
      "INSERT INTO revoke_requests (device_id, signed_at, request_digest) "
      "SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM revoke_requests "
      "WHERE device_id = ?1 AND signed_at = ?2 AND request_digest = '') "
      "ON CONFLICT DO NOTHING RETURNING device_id",
      p);
  if (!rows) return fail(std::move(rows).error());
  if (rows->empty()) {
    return fail(ErrorCode::kReplay, "revoke request of device " + std::string(device_id) +
                                        " signed at " + std::to_string(signed_at) +
                                        " is already recorded");
  }
  return ok();
}

Result<std::vector<AuditRecord>> SqlStore::query_audit(const AuditFilter& f) {
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

Status SqlStore::put_signing_key(const SigningKeyInfo& k) {
  std::vector<Value> p{k.kid, k.alg, k.public_pem, k.created_at, k.retired_at, k.not_after};
  auto rows = query(
      "INSERT INTO signing_keys (kid, alg, public_pem, created_at, retired_at, not_after) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (kid) DO NOTHING",
      p);
  if (!rows) return fail(std::move(rows).error());
  return ok();
}

Status SqlStore::retire_signing_key(std::string_view kid, std::int64_t retired_at,
                                    std::int64_t not_after) {
  std::array<Value, 3> p{std::string(kid), retired_at, not_after};
  auto rows = query(
      "UPDATE signing_keys SET retired_at = ?2, not_after = ?3 WHERE kid = ?1 RETURNING kid", p);
  if (!rows) return fail(std::move(rows).error());
  if (rows->empty()) return fail(ErrorCode::kNotFound, "signing key " + std::string(kid));
  return ok();
}

Result<std::vector<SigningKeyInfo>> SqlStore::list_signing_keys() {
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

PolicyVersion SqlStore::policy_from_row(const sql::Row& r) {
  PolicyVersion v;
  v.id = sql::as_int(r[0]);
  v.version = sql::as_text(r[1]);
  v.toml = sql::as_text(r[2]);
  v.created_at = sql::as_int(r[3]);
  v.active = sql::as_int(r[4]) != 0;
  return v;
}

std::vector<Value> SqlStore::audit_values(const AuditRecord& a) {
  return {a.time,          a.device_id,      a.action,      a.decision,
          a.evidence_hash, a.policy_version, a.reasons_json};
}

Result<std::int64_t> SqlStore::append_audit_on(sql::Connection& c, const AuditRecord& a) {
  auto rows = c.exec(
      "INSERT INTO audit (time, device_id, action, decision, evidence_hash, policy_version, "
      "reasons) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
      audit_values(a));
  if (!rows) return fail(std::move(rows).error());
  return sql::as_int(rows->at(0).at(0));
}

}  // namespace warden::issuer::sqlstore
