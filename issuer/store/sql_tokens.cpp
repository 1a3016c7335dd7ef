// Status lists, issued tokens and the group commit of token issues.
#include <future>

#include "issuer/store/sql_store_impl.h"

namespace warden::issuer::sqlstore {
namespace {

constexpr std::string_view kTokenSelect =
    "SELECT jti, device_id, list_id, status_index, issued_at, expires_at, revoked FROM tokens";

}  // namespace

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

Status SqlStore::create_status_list(std::string_view id, std::uint64_t bits) {
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

Result<std::uint64_t> SqlStore::allocate_status_index(std::string_view id) {
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

Result<std::pair<std::uint64_t, std::uint64_t>> SqlStore::allocate_status_indexes(
    std::string_view id, std::uint64_t count) {
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

Status SqlStore::set_status_bit(std::string_view id, std::uint64_t index, bool value) {
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

Result<StatusList> SqlStore::get_status_list(std::string_view id) {
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

Status SqlStore::record_token_issue(const TokenRecord& t, const AuditRecord& a) {
  std::promise<Status> outcome;
  auto future = outcome.get_future();
  record_token_issue_async(t, a, [&outcome](Status s) { outcome.set_value(std::move(s)); });
  return future.get();
}

void SqlStore::record_token_issue_async(TokenRecord t, AuditRecord a,
                                        std::function<void(Status)> done) {
  {
    std::lock_guard lock(issue_mu_);
    issue_queue_.push_back({std::move(t), std::move(a), std::move(done)});
  }
  issue_cv_.notify_one();
}

Store::IssueCommitStats SqlStore::issue_commit_stats() const {
  return {issue_commits_.load(std::memory_order_relaxed),
          issue_records_.load(std::memory_order_relaxed)};
}

Status SqlStore::add_token(const TokenRecord& t) {
  return on_connection([&](sql::Connection& c) { return insert_token_on(c, t); });
}

Result<TokenRecord> SqlStore::get_token(std::string_view jti) {
  std::array<Value, 1> p{std::string(jti)};
  auto rows = query(std::string(kTokenSelect) + " WHERE jti = ?1", p);
  if (!rows) return fail(std::move(rows).error());
  if (rows->empty()) return fail(ErrorCode::kNotFound, "token " + std::string(jti));
  return token_from_row(rows->front());
}

Result<std::vector<TokenRecord>> SqlStore::live_tokens(std::string_view device_id,
                                                       std::int64_t now) {
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

Result<bool> SqlStore::mark_token_revoked(std::string_view jti) {
  std::array<Value, 1> p{std::string(jti)};
  auto rows =
      query("UPDATE tokens SET revoked = 1 WHERE jti = ?1 AND revoked = 0 RETURNING jti", p);
  if (!rows) return fail(std::move(rows).error());
  if (!rows->empty()) return true;
  auto existing = get_token(jti);
  if (!existing) return fail(std::move(existing).error());
  return false;
}

Result<StatusList> SqlStore::get_list_row(std::string_view id) {
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

void SqlStore::commit_loop() {
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

std::vector<Status> SqlStore::commit_issues(const std::vector<PendingIssue>& batch) {
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

Status SqlStore::insert_issue_on(sql::Connection& c, const TokenRecord& t, const AuditRecord& a) {
  WARDEN_TRY_STATUS(insert_token_on(c, t));
  // The id is not needed here, and RETURNING costs SQLite a result table per insert.
  auto rows = c.exec(kInsertAudit, audit_values(a));
  if (!rows) return fail(std::move(rows).error());
  return ok();
}

Status SqlStore::insert_token_on(sql::Connection& c, const TokenRecord& t) {
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

}  // namespace warden::issuer::sqlstore
