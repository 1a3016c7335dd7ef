// Shared Signals: receivers, streams, the event outbox and its deliveries, and revocations
// written together with the events they cause.
#include <algorithm>
#include <set>
#include <tuple>

#include "issuer/assign.h"
#include "issuer/store/sql_store_impl.h"

namespace warden::issuer::sqlstore {
namespace {

constexpr std::string_view kPush = "urn:ietf:rfc:8935";

constexpr std::string_view kStreamColumns =
    "s.id, s.receiver, s.delivery_method, s.endpoint_url, s.authorization_header, "
    "s.events_requested, s.events_delivered, s.aud, s.status, s.reason, s.description, "
    "s.created_at, s.updated_at";
constexpr std::size_t kStreamColumnCount = 13;

// Event type URIs hold no spaces: a list is stored space-separated.
std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : " ") + i;
  return out;
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto sp = text.find(' ');
    if (sp != 0) out.emplace_back(text.substr(0, sp));
    if (sp == std::string_view::npos) break;
    text.remove_prefix(sp + 1);
  }
  return out;
}

SsfStream stream_from_row(const sql::Row& r, std::size_t at = 0) {
  SsfStream s;
  s.id = sql::as_text(r[at + 0]);
  s.receiver = sql::as_text(r[at + 1]);
  s.delivery_method = sql::as_text(r[at + 2]);
  s.endpoint_url = sql::as_text(r[at + 3]);
  s.authorization_header = sql::as_text(r[at + 4]);
  s.events_requested = split(sql::as_text(r[at + 5]));
  s.events_delivered = split(sql::as_text(r[at + 6]));
  s.aud = sql::as_text(r[at + 7]);
  s.status = sql::as_text(r[at + 8]);
  s.reason = sql::as_text(r[at + 9]);
  s.description = sql::as_text(r[at + 10]);
  s.created_at = sql::as_int(r[at + 11]);
  s.updated_at = sql::as_int(r[at + 12]);
  return s;
}

// The columns of a delivery joined with its stream and event: stream..., seq, type, payload,
// event created_at, attempts.
std::string delivery_select() {
  return "SELECT " + std::string(kStreamColumns) +
         ", e.seq, e.type, e.payload, e.created_at, d.attempts FROM ssf_deliveries d "
         "JOIN ssf_streams s ON s.id = d.stream_id JOIN ssf_events e ON e.seq = d.seq ";
}

SsfDelivery delivery_from_row(const sql::Row& r) {
  SsfDelivery d;
  d.stream = stream_from_row(r);
  constexpr std::size_t kN = kStreamColumnCount;
  d.event.seq = sql::as_int(r[kN]);
  d.event.type = sql::as_text(r[kN + 1]);
  d.event.payload_json = sql::as_text(r[kN + 2]);
  d.event.created_at = sql::as_int(r[kN + 3]);
  d.attempts = static_cast<std::uint32_t>(sql::as_int(r[kN + 4]));
  return d;
}

constexpr std::string_view kTokenReturning =
    " RETURNING jti, device_id, list_id, status_index, issued_at, expires_at, revoked";

Status stream_found(Result<sql::Rows> rows, std::string_view id) {
  if (!rows) return fail(std::move(rows).error());
  if (rows->empty()) return fail(ErrorCode::kNotFound, "ssf stream " + std::string(id));
  return ok();
}

}  // namespace

Status SqlStore::add_ssf_receiver(const SsfReceiver& r) {
  std::array<Value, 3> p{r.name, r.token_hash, r.created_at};
  auto rows =
      query("INSERT INTO ssf_receivers (name, token_hash, created_at) VALUES (?1, ?2, ?3)", p);
  if (!rows) {
    if (rows.error().code == ErrorCode::kConflict) {
      return fail(ErrorCode::kAlreadyExists, "ssf receiver " + r.name + " exists");
    }
    return fail(std::move(rows).error());
  }
  return ok();
}

Result<std::vector<SsfReceiver>> SqlStore::list_ssf_receivers() {
  WARDEN_ASSIGN(rows,
                query("SELECT name, token_hash, created_at FROM ssf_receivers ORDER BY name", {}));
  std::vector<SsfReceiver> out;
  for (const auto& r : rows) {
    out.push_back({sql::as_text(r[0]), sql::as_text(r[1]), sql::as_int(r[2])});
  }
  return out;
}

Result<std::optional<SsfReceiver>> SqlStore::find_ssf_receiver(std::string_view token_hash) {
  std::array<Value, 1> p{std::string(token_hash)};
  WARDEN_ASSIGN(
      rows,
      query("SELECT name, token_hash, created_at FROM ssf_receivers WHERE token_hash = ?1", p));
  if (rows.empty()) return std::optional<SsfReceiver>{};
  const auto& r = rows.front();
  return std::optional<SsfReceiver>(
      SsfReceiver{sql::as_text(r[0]), sql::as_text(r[1]), sql::as_int(r[2])});
}

Status SqlStore::remove_ssf_receiver(std::string_view name, std::int64_t now) {
  return transaction([&](sql::Connection& c) -> Status {
    std::array<Value, 1> p{std::string(name)};
    auto gone = c.exec("DELETE FROM ssf_receivers WHERE name = ?1 RETURNING name", p);
    if (!gone) return fail(std::move(gone).error());
    if (gone->empty()) return fail(ErrorCode::kNotFound, "ssf receiver " + std::string(name));
    WARDEN_TRY_STATUS(
        c.exec("DELETE FROM ssf_deliveries WHERE delivered_at = 0 AND stream_id IN "
               "(SELECT id FROM ssf_streams WHERE receiver = ?1)",
               p));
    std::array<Value, 2> q{std::string(name), now};
    WARDEN_TRY_STATUS(
        c.exec("UPDATE ssf_streams SET status = 'disabled', reason = 'receiver removed', "
               "updated_at = ?2 WHERE receiver = ?1",
               q));
    return ok();
  });
}

Status SqlStore::add_ssf_stream(const SsfStream& s, std::size_t max_per_receiver) {
  return transaction([&](sql::Connection& c) -> Status {
    std::array<Value, 1> r{s.receiver};
    auto count = c.exec("SELECT COUNT(*) FROM ssf_streams WHERE receiver = ?1", r);
    if (!count) return fail(std::move(count).error());
    if (static_cast<std::size_t>(sql::as_int(count->at(0).at(0))) >= max_per_receiver) {
      return fail(ErrorCode::kLimitExceeded, "ssf: receiver " + s.receiver + " has " +
                                                 std::to_string(max_per_receiver) +
                                                 " streams already (ssf.max_streams_per_receiver)");
    }
    std::vector<Value> p{s.id,
                         s.receiver,
                         s.delivery_method,
                         s.endpoint_url,
                         s.authorization_header,
                         join(s.events_requested),
                         join(s.events_delivered),
                         s.aud,
                         s.status,
                         s.reason,
                         s.description,
                         s.created_at,
                         s.updated_at};
    auto rows = c.exec(
        "INSERT INTO ssf_streams (id, receiver, delivery_method, endpoint_url, "
        "authorization_header, events_requested, events_delivered, aud, status, reason, "
        "description, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
        "?11, ?12, ?13)",
        p);
    if (!rows) {
      if (rows.error().code == ErrorCode::kConflict) {
        return fail(ErrorCode::kAlreadyExists, "ssf stream " + s.id + " exists");
      }
      return fail(std::move(rows).error());
    }
    return ok();
  });
}

Result<SsfStream> SqlStore::get_ssf_stream(std::string_view id) {
  std::array<Value, 1> p{std::string(id)};
  WARDEN_ASSIGN(
      rows,
      query("SELECT " + std::string(kStreamColumns) + " FROM ssf_streams s WHERE id = ?1", p));
  if (rows.empty()) return fail(ErrorCode::kNotFound, "ssf stream " + std::string(id));
  return stream_from_row(rows.front());
}

Result<std::vector<SsfStream>> SqlStore::list_ssf_streams(std::string_view receiver) {
  std::array<Value, 1> p{std::string(receiver)};
  WARDEN_ASSIGN(rows, query("SELECT " + std::string(kStreamColumns) +
                                " FROM ssf_streams s WHERE receiver = ?1 ORDER BY created_at, id",
                            p));
  std::vector<SsfStream> out;
  for (const auto& r : rows) out.push_back(stream_from_row(r));
  return out;
}

Status SqlStore::update_ssf_stream(const SsfStream& s) {
  return transaction([&](sql::Connection& c) -> Status {
    std::vector<Value> p{s.id,
                         s.delivery_method,
                         s.endpoint_url,
                         s.authorization_header,
                         join(s.events_requested),
                         join(s.events_delivered),
                         s.aud,
                         s.status,
                         s.reason,
                         s.description,
                         s.updated_at};
    WARDEN_TRY_STATUS(stream_found(
        c.exec("UPDATE ssf_streams SET delivery_method = ?2, endpoint_url = ?3, "
               "authorization_header = ?4, events_requested = ?5, events_delivered = ?6, aud = ?7, "
               "status = ?8, reason = ?9, description = ?10, updated_at = ?11 WHERE id = ?1 "
               "RETURNING id",
               p),
        s.id));
    if (s.status == "disabled") {
      std::array<Value, 1> id{s.id};
      WARDEN_TRY_STATUS(
          c.exec("DELETE FROM ssf_deliveries WHERE stream_id = ?1 AND delivered_at = 0", id));
    }
    return ok();
  });
}

Status SqlStore::remove_ssf_stream(std::string_view id) {
  return transaction([&](sql::Connection& c) -> Status {
    std::array<Value, 1> p{std::string(id)};
    WARDEN_TRY_STATUS(
        stream_found(c.exec("DELETE FROM ssf_streams WHERE id = ?1 RETURNING id", p), id));
    WARDEN_TRY_STATUS(c.exec("DELETE FROM ssf_deliveries WHERE stream_id = ?1", p));
    return ok();
  });
}

Result<std::int64_t> SqlStore::append_ssf_event(const SsfEventDraft& e, std::int64_t now,
                                                std::string_view only_stream) {
  std::int64_t seq = 0;
  auto status = transaction([&](sql::Connection& c) -> Status {
    WARDEN_ASSIGN(s, append_ssf_event_on(c, e, now, only_stream));
    seq = s;
    return ok();
  });
  if (!status) return fail(std::move(status).error());
  return seq;
}

Result<std::int64_t> SqlStore::append_ssf_event_on(sql::Connection& c, const SsfEventDraft& e,
                                                   std::int64_t now, std::string_view only_stream) {
  std::array<Value, 3> p{e.type, e.payload_json, now};
  auto rows = c.exec(
      "INSERT INTO ssf_events (type, payload, created_at) VALUES (?1, ?2, ?3) RETURNING seq", p);
  if (!rows) return fail(std::move(rows).error());
  const std::int64_t seq = sql::as_int(rows->at(0).at(0));
  std::vector<std::string> targets;
  if (!only_stream.empty()) {
    targets.emplace_back(only_stream);
  } else {
    // Paused streams hold their events until enabled again; disabled ones get none (SSF 1.0).
    auto streams = c.exec(
        "SELECT id, events_delivered FROM ssf_streams WHERE status IN ('enabled', 'paused')", {});
    if (!streams) return fail(std::move(streams).error());
    for (const auto& r : *streams) {
      const auto types = split(sql::as_text(r[1]));
      if (std::find(types.begin(), types.end(), e.type) != types.end()) {
        targets.push_back(sql::as_text(r[0]));
      }
    }
  }
  for (const auto& stream : targets) {
    std::array<Value, 3> d{stream, seq, now};
    auto inserted = c.exec(
        "INSERT INTO ssf_deliveries (stream_id, seq, next_attempt_at) VALUES (?1, ?2, ?3)", d);
    if (!inserted) return fail(std::move(inserted).error());
  }
  return seq;
}

Result<std::vector<TokenRecord>> SqlStore::apply_device_change_on(sql::Connection& c,
                                                                  const DeviceChange& ch) {
  std::vector<TokenRecord> revoked;
  std::set<std::string> seen;
  if (ch.revoke_request) {
    WARDEN_TRY_STATUS(record_revoke_request_on(c, ch.device_id, ch.revoke_request->signed_at,
                                               ch.revoke_request->digest,
                                               ch.revoke_request->forget_before));
  }
  if (ch.revoke_live_tokens) {
    std::array<Value, 2> p{ch.device_id, ch.now};
    auto rows = c.exec(
        "UPDATE tokens SET revoked = 1 WHERE device_id = ?1 AND revoked = 0 AND expires_at > ?2" +
            std::string(kTokenReturning),
        p);
    if (!rows) return fail(std::move(rows).error());
    for (const auto& r : *rows) revoked.push_back(token_from_row(r));
    std::sort(revoked.begin(), revoked.end(), [](const TokenRecord& a, const TokenRecord& b) {
      return std::tie(a.issued_at, a.jti) < std::tie(b.issued_at, b.jti);
    });
    for (const auto& t : revoked) seen.insert(t.jti);
  }
  const std::size_t live_count = revoked.size();
  for (const TokenRecord& t : ch.tokens) {
    std::array<Value, 1> p{t.jti};
    auto rows = c.exec("UPDATE tokens SET revoked = 1 WHERE jti = ?1 AND revoked = 0" +
                           std::string(kTokenReturning),
                       p);
    if (!rows) return fail(std::move(rows).error());
    if (!rows->empty() && seen.insert(t.jti).second)
      revoked.push_back(token_from_row(rows->front()));
  }
  // A token already marked gets its bit all the same: a crash between the two writes of an
  // older issuer must not leave a revoked token valid in the list.
  for (std::size_t i = 0; i < live_count; ++i) {
    std::array<Value, 2> p{revoked[i].list_id, i64(revoked[i].status_index)};
    WARDEN_TRY_STATUS(
        c.exec("INSERT INTO status_bits (list_id, idx) VALUES (?1, ?2) ON CONFLICT DO NOTHING", p));
  }
  for (const TokenRecord& t : ch.tokens) {
    std::array<Value, 2> p{t.list_id, i64(t.status_index)};
    WARDEN_TRY_STATUS(
        c.exec("INSERT INTO status_bits (list_id, idx) VALUES (?1, ?2) ON CONFLICT DO NOTHING", p));
  }
  std::array<Value, 2> dp{ch.device_id, ch.now};
  std::array<Value, 1> id{ch.device_id};
  switch (ch.device) {
    case DeviceChange::DeviceAction::kNone:
      break;
    case DeviceChange::DeviceAction::kRevoke:
      WARDEN_TRY_STATUS(expect_one(c.exec("UPDATE devices SET state = 'revoked', revoked_at = CASE "
                                          "WHEN revoked_at > ?2 THEN revoked_at ELSE ?2 END WHERE "
                                          "id = ?1 RETURNING id",
                                          dp),
                                   ch.device_id));
      break;
    case DeviceChange::DeviceAction::kEnable:
      WARDEN_TRY_STATUS(
          expect_one(c.exec("UPDATE devices SET state = 'enabled' WHERE id = ?1 RETURNING id", id),
                     ch.device_id));
      break;
    case DeviceChange::DeviceAction::kRemove:
      WARDEN_TRY_STATUS(
          expect_one(c.exec("DELETE FROM devices WHERE id = ?1 RETURNING id", id), ch.device_id));
      break;
  }
  if (ch.attestation) WARDEN_TRY_STATUS(record_attestation_on(c, ch.device_id, *ch.attestation));
  if (ch.events) {
    for (const SsfEventDraft& e : ch.events(revoked)) {
      auto seq = append_ssf_event_on(c, e, ch.now, {});
      if (!seq) return fail(std::move(seq).error());
    }
  }
  return revoked;
}

Result<std::vector<TokenRecord>> SqlStore::apply_device_change(const DeviceChange& change) {
  std::vector<TokenRecord> revoked;
  auto status = transaction([&](sql::Connection& c) -> Status {
    WARDEN_ASSIGN(r, apply_device_change_on(c, change));
    revoked = std::move(r);
    return ok();
  });
  if (!status) return fail(std::move(status).error());
  return revoked;
}

Result<std::vector<TokenRecord>> SqlStore::record_attestation_change(
    std::string_view id, ByteSpan nonce, std::int64_t expiry, const AttestationUpdate& u,
    const AuditRecord& a, const DeviceChange& change) {
  std::vector<TokenRecord> revoked;
  auto status = transaction([&](sql::Connection& c) -> Status {
    WARDEN_TRY_STATUS(consume_nonce_on(c, id, nonce, expiry));
    WARDEN_TRY_STATUS(record_attestation_on(c, id, u));
    auto audit = append_audit_on(c, a);
    if (!audit) return fail(std::move(audit).error());
    WARDEN_ASSIGN(r, apply_device_change_on(c, change));
    revoked = std::move(r);
    return ok();
  });
  if (!status) return fail(std::move(status).error());
  return revoked;
}

Result<std::vector<SsfDelivery>> SqlStore::claim_ssf_push(std::string_view owner, std::int64_t now,
                                                          std::int64_t lease_s, std::size_t max) {
  std::vector<Value> p{now, static_cast<std::int64_t>(max), std::string(kPush)};
  WARDEN_ASSIGN(rows,
                query(delivery_select() + "WHERE d.delivered_at = 0 AND s.status = 'enabled' AND "
                                          "s.delivery_method = ?3 AND d.next_attempt_at <= ?1 AND "
                                          "d.lease_until <= ?1 AND d.seq = (SELECT MIN(h.seq) FROM "
                                          "ssf_deliveries h WHERE h.stream_id = d.stream_id AND "
                                          "h.delivered_at = 0) ORDER BY d.seq LIMIT ?2",
                      p));
  std::vector<SsfDelivery> out;
  for (const auto& r : rows) {
    SsfDelivery d = delivery_from_row(r);
    // Another replica may have leased it since the read: the update re-checks the lease.
    std::vector<Value> lp{d.stream.id, d.event.seq, std::string(owner), now + lease_s, now};
    WARDEN_ASSIGN(leased,
                  query("UPDATE ssf_deliveries SET lease_owner = ?3, lease_until = ?4 WHERE "
                        "stream_id = ?1 AND seq = ?2 AND delivered_at = 0 AND lease_until <= ?5 "
                        "RETURNING attempts",
                        lp));
    if (leased.empty()) continue;
    d.attempts = static_cast<std::uint32_t>(sql::as_int(leased.front()[0]));
    out.push_back(std::move(d));
  }
  return out;
}

Status SqlStore::ssf_delivered(std::string_view stream_id, std::int64_t seq, std::int64_t now,
                               std::string_view error) {
  std::vector<Value> p{std::string(stream_id), seq, now, std::string(error.substr(0, 512))};
  WARDEN_TRY_STATUS(
      query("UPDATE ssf_deliveries SET delivered_at = ?3, lease_owner = '', lease_until = 0, "
            "last_error = ?4 WHERE stream_id = ?1 AND seq = ?2 AND delivered_at = 0",
            p));
  return ok();
}

Status SqlStore::ssf_failed(std::string_view stream_id, std::int64_t seq,
                            std::int64_t next_attempt_at, std::string_view error) {
  std::vector<Value> p{std::string(stream_id), seq, next_attempt_at,
                       std::string(error.substr(0, 512))};
  WARDEN_TRY_STATUS(
      query("UPDATE ssf_deliveries SET attempts = attempts + 1, next_attempt_at = ?3, "
            "lease_owner = '', lease_until = 0, last_error = ?4 WHERE stream_id = ?1 AND "
            "seq = ?2 AND delivered_at = 0",
            p));
  return ok();
}

Result<std::vector<SsfDelivery>> SqlStore::pending_ssf(std::string_view stream_id,
                                                       std::size_t max) {
  std::array<Value, 2> p{std::string(stream_id), static_cast<std::int64_t>(max)};
  WARDEN_ASSIGN(rows, query(delivery_select() +
                                "WHERE d.stream_id = ?1 AND d.delivered_at = 0 ORDER BY d.seq "
                                "LIMIT ?2",
                            p));
  std::vector<SsfDelivery> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(delivery_from_row(r));
  return out;
}

Result<std::size_t> SqlStore::purge_ssf(std::int64_t before) {
  std::size_t n = 0;
  auto status = transaction([&](sql::Connection& c) -> Status {
    std::array<Value, 1> p{before};
    auto done = c.exec(
        "DELETE FROM ssf_deliveries WHERE delivered_at > 0 AND delivered_at < ?1 RETURNING seq", p);
    if (!done) return fail(std::move(done).error());
    auto events = c.exec(
        "DELETE FROM ssf_events WHERE created_at < ?1 AND NOT EXISTS (SELECT 1 FROM "
        "ssf_deliveries d WHERE d.seq = ssf_events.seq) RETURNING seq",
        p);
    if (!events) return fail(std::move(events).error());
    n = done->size() + events->size();
    return ok();
  });
  if (!status) return fail(std::move(status).error());
  return n;
}

}  // namespace warden::issuer::sqlstore
