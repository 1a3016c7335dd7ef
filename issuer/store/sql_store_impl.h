#pragma once
// Internal to issuer/store: the Store over a SQL connection pool, its member functions split by
// table group: sql_store.cpp (schema, migrations, opening), sql_devices.cpp (devices,
// enrollments, nonces, attestations), sql_tokens.cpp (status lists, tokens, the group commit of
// token issues), sql_audit.cpp (audit log, revoke requests, policies, signing keys), sql_ssf.cpp
// (Shared Signals receivers, streams, the event outbox, revocations with their events).

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <span>
#include <thread>

#include "issuer/store/sql.h"
#include "issuer/store/store.h"

namespace warden::issuer::sqlstore {

using sql::Dialect;
using sql::Value;

inline Value opt_int(const std::optional<std::uint64_t>& v) {
  if (!v) return std::monostate{};
  return static_cast<std::int64_t>(*v);
}

inline Value i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

/// A token row: jti, device_id, list_id, status_index, issued_at, expires_at, revoked.
TokenRecord token_from_row(const sql::Row& r);

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

  Status migrate() override;
  Result<int> schema_version() override;
  Status ping() override;
  Status add_device(const Device& d) override;
  Result<Device> get_device(std::string_view id) override;
  Result<std::optional<Device>> find_device_by_ek(std::string_view ek_hash) override;
  Result<std::vector<Device>> list_devices(std::size_t limit, std::string_view after_id) override;
  Status set_device_state(std::string_view id, DeviceState state) override;
  Status revoke_device(std::string_view id, std::int64_t at) override;
  Status set_device_group(std::string_view id, std::string_view group) override;
  Status remove_device(std::string_view id) override;
  Status consume_nonce(std::string_view id, ByteSpan nonce, std::int64_t expiry) override;
  Status record_attestation(std::string_view id, const AttestationUpdate& u) override;
  Status record_attestation_outcome(std::string_view id, ByteSpan nonce, std::int64_t expiry,
                                    const AttestationUpdate& u, const AuditRecord& a) override;
  Status put_enrollment(const Enrollment& e, std::size_t max_pending) override;
  Result<Enrollment> take_enrollment(std::string_view id) override;
  Result<std::size_t> purge_enrollments(std::int64_t now) override;
  Result<PolicyVersion> add_policy(std::string_view version, std::string_view toml,
                                   std::int64_t created_at, bool activate) override;
  Result<std::optional<PolicyVersion>> active_policy() override;
  Result<std::vector<PolicyVersion>> list_policies() override;
  Result<std::int64_t> append_audit(const AuditRecord& a) override;
  Status record_revoke_request(std::string_view device_id, std::int64_t signed_at,
                               std::string_view request_digest,
                               std::int64_t forget_before) override;
  Result<std::vector<AuditRecord>> query_audit(const AuditFilter& f) override;
  Status create_status_list(std::string_view id, std::uint64_t bits) override;
  Result<std::uint64_t> allocate_status_index(std::string_view id) override;
  Result<std::pair<std::uint64_t, std::uint64_t>> allocate_status_indexes(
      std::string_view id, std::uint64_t count) override;
  Status set_status_bit(std::string_view id, std::uint64_t index, bool value) override;
  Result<StatusList> get_status_list(std::string_view id) override;

  // Group commit: token issues are queued and one commit thread writes them. Whenever it is
  // free, it takes every record waiting and commits them in one transaction, then completes each
  // caller; while it commits, new records queue for the next transaction. One commit (one WAL
  // append and sync point, one PostgreSQL round trip to COMMIT) then serves every request that
  // arrived meanwhile, and no server thread waits for it (record_token_issue_async).
  Status record_token_issue(const TokenRecord& t, const AuditRecord& a) override;
  void record_token_issue_async(TokenRecord t, AuditRecord a,
                                std::function<void(Status)> done) override;
  [[nodiscard]] IssueCommitStats issue_commit_stats() const override;
  Status add_token(const TokenRecord& t) override;
  Result<TokenRecord> get_token(std::string_view jti) override;
  Result<std::vector<TokenRecord>> live_tokens(std::string_view device_id,
                                               std::int64_t now) override;
  Result<bool> mark_token_revoked(std::string_view jti) override;
  Status put_signing_key(const SigningKeyInfo& k) override;
  Status retire_signing_key(std::string_view kid, std::int64_t retired_at,
                            std::int64_t not_after) override;
  Result<std::vector<SigningKeyInfo>> list_signing_keys() override;

  Status add_ssf_receiver(const SsfReceiver& r) override;
  Result<std::vector<SsfReceiver>> list_ssf_receivers() override;
  Result<std::optional<SsfReceiver>> find_ssf_receiver(std::string_view token_hash) override;
  Status remove_ssf_receiver(std::string_view name, std::int64_t now) override;
  Status add_ssf_stream(const SsfStream& s, std::size_t max_per_receiver) override;
  Result<SsfStream> get_ssf_stream(std::string_view id) override;
  Result<std::vector<SsfStream>> list_ssf_streams(std::string_view receiver) override;
  Status update_ssf_stream(const SsfStream& s) override;
  Status remove_ssf_stream(std::string_view id) override;
  Result<std::int64_t> append_ssf_event(const SsfEventDraft& e, std::int64_t now,
                                        std::string_view only_stream) override;
  Result<std::vector<TokenRecord>> apply_device_change(const DeviceChange& change) override;
  Result<std::vector<TokenRecord>> record_attestation_change(std::string_view id, ByteSpan nonce,
                                                             std::int64_t expiry,
                                                             const AttestationUpdate& u,
                                                             const AuditRecord& a,
                                                             const DeviceChange& change) override;
  Result<std::vector<SsfDelivery>> claim_ssf_push(std::string_view owner, std::int64_t now,
                                                  std::int64_t lease_s, std::size_t max) override;
  Status ssf_delivered(std::string_view stream_id, std::int64_t seq, std::int64_t now,
                       std::string_view error) override;
  Status ssf_failed(std::string_view stream_id, std::int64_t seq, std::int64_t next_attempt_at,
                    std::string_view error) override;
  Result<std::vector<SsfDelivery>> pending_ssf(std::string_view stream_id,
                                               std::size_t max) override;
  Result<std::size_t> purge_ssf(std::int64_t before) override;

 private:
  static Result<std::int64_t> append_ssf_event_on(sql::Connection& c, const SsfEventDraft& e,
                                                  std::int64_t now, std::string_view only_stream);
  static Status record_revoke_request_on(sql::Connection& c, std::string_view device_id,
                                         std::int64_t signed_at, std::string_view request_digest,
                                         std::int64_t forget_before);
  static Result<std::vector<TokenRecord>> apply_device_change_on(sql::Connection& c,
                                                                 const DeviceChange& change);
  // Revoke requests applied before schema 5 are known only by their audit records.
  static Status backfill_revoke_requests(sql::Connection& c);
  static PolicyVersion policy_from_row(const sql::Row& r);
  Result<StatusList> get_list_row(std::string_view id);
  static Status consume_nonce_on(sql::Connection& c, std::string_view id, ByteSpan nonce,
                                 std::int64_t expiry);
  static Status record_attestation_on(sql::Connection& c, std::string_view id,
                                      const AttestationUpdate& u);

  struct PendingIssue {
    TokenRecord token;
    AuditRecord audit;
    std::function<void(Status)> done;
  };

  void commit_loop();

  std::vector<Status> commit_issues(const std::vector<PendingIssue>& batch);

  static Status insert_issue_on(sql::Connection& c, const TokenRecord& t, const AuditRecord& a);

  static Status insert_token_on(sql::Connection& c, const TokenRecord& t);

  static constexpr std::string_view kInsertAudit =
      "INSERT INTO audit (time, device_id, action, decision, evidence_hash, policy_version, "
      "reasons) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

  static std::vector<Value> audit_values(const AuditRecord& a);

  static Result<std::int64_t> append_audit_on(sql::Connection& c, const AuditRecord& a);

  static Status expect_one(Result<sql::Rows> rows, std::string_view id);

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

}  // namespace warden::issuer::sqlstore
