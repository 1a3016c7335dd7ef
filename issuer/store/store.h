#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/base/bytes.h"
#include "platform/base/error.h"

namespace warden::issuer {

enum class DeviceState { kEnabled, kRevoked };
std::string_view to_string(DeviceState state);

/// An enrolled device: its endorsement identity, its attestation key, and what it last proved.
struct Device {
  std::string id;
  std::string ek_public_hash;  ///< hex SHA-256 of the EK public area
  std::string ek_cert_pem;     ///< empty when enrolled by allowlist
  Bytes ak_public;             ///< TPM2B_PUBLIC of the AK
  Bytes ak_name;
  /// The group an admin assigned (set_device_group); empty: none, which no `match.group` rule
  /// matches. Never taken from the device's own requests (issue 31).
  std::string group;
  DeviceState state = DeviceState::kEnabled;
  std::int64_t created_at = 0;
  // Last accepted attestation (all zero/empty before the first one).
  std::optional<std::uint64_t> reset_count;
  std::optional<std::uint64_t> restart_count;
  Bytes last_nonce;
  std::int64_t last_nonce_expiry = 0;
  std::int64_t last_attested_at = 0;
  std::string last_verdict;              ///< "accept" / "reject" / empty
  std::string last_reasons_json = "[]";  ///< JSON array of reason objects
  // Since schema 2.
  Bytes binding_key_public;       ///< TPM2B_PUBLIC of the last certified binding key (revoke())
  std::uint64_t ima_entries = 0;  ///< IMA entries replayed so far (next incremental offset)
  Bytes ima_state;                ///< the issuer's encoding of the running IMA PCR values
  // Since schema 4.
  /// What the device asked for at enrollment (its owner_label): shown to admins, grants nothing.
  std::string requested_group;
  /// Time of the last revocation (0: never): device tokens issued at or before it are refused,
  /// so that enabling the device again needs a fresh attestation.
  std::int64_t revoked_at = 0;
};

/// The outcome of one appraisal, written to the device record.
struct AttestationUpdate {
  std::optional<std::uint64_t> reset_count;
  std::optional<std::uint64_t> restart_count;
  std::int64_t attested_at = 0;
  std::string verdict;
  std::string reasons_json = "[]";
  /// Written when set (an accepted attestation); left unchanged otherwise.
  std::optional<Bytes> binding_key_public;
  std::optional<std::uint64_t> ima_entries;
  std::optional<Bytes> ima_state;
};

/// A workload token the issuer minted, kept so that revocation can find its status bit.
struct TokenRecord {
  std::string jti;
  std::string device_id;
  std::string list_id;
  std::uint64_t status_index = 0;
  std::int64_t issued_at = 0;
  std::int64_t expires_at = 0;
  bool revoked = false;
};

/// An enrollment waiting for ActivateCredential. `secret_hash` is a one-way digest of the proof
/// the agent must present (issuer/service.cpp), never the proof or the secret itself.
struct Enrollment {
  std::string id;
  std::string ek_public_hash;
  std::string ek_cert_pem;
  Bytes ak_public;
  Bytes ak_name;
  std::string requested_group;  ///< the device's owner_label: a request, never a grant
  Bytes secret_hash;
  std::int64_t created_at = 0;
  std::int64_t expires_at = 0;
};

struct PolicyVersion {
  std::int64_t id = 0;
  std::string version;
  std::string toml;
  std::int64_t created_at = 0;
  bool active = false;
};

/// One append-only audit record.
struct AuditRecord {
  std::int64_t id = 0;  ///< assigned by the store
  std::int64_t time = 0;
  std::string device_id;
  std::string action;    ///< "enroll", "attest", "token", "admin.revoke", ...
  std::string decision;  ///< "accept", "reject", "ok"
  std::string evidence_hash;
  std::string policy_version;
  std::string reasons_json = "[]";
};

struct AuditFilter {
  std::optional<std::string> device_id;
  std::optional<std::int64_t> since;  ///< time >= since
  std::size_t limit = 100;
};

/// A token status list (one bit per token; 1 = revoked).
struct StatusList {
  std::string id;
  std::uint64_t bits = 0;
  std::uint64_t next_index = 0;
  Bytes bytes;  ///< ceil(bits/8) bytes, bit i = byte i/8, bit (i%8) (LSB first)
};

/// Metadata of a token signing key (the private key stays in the key directory).
struct SigningKeyInfo {
  std::string kid;
  std::string alg = "ES256";
  std::string public_pem;
  std::int64_t created_at = 0;
  std::int64_t retired_at = 0;  ///< 0 while current
  std::int64_t not_after = 0;   ///< publish until this time (0 = no limit)
};

// ---- Shared Signals (schema 6): receivers, streams and the event outbox (issuer/ssf) ----------

/// A Shared Signals receiver the operator registered. Its bearer token is kept only as a hash.
struct SsfReceiver {
  std::string name;
  std::string token_hash;  ///< hex SHA-256 of the bearer token
  std::int64_t created_at = 0;
};

/// One SSF stream of a receiver (OpenID SSF 1.0 stream configuration).
struct SsfStream {
  std::string id;
  std::string receiver;
  std::string delivery_method;       ///< urn:ietf:rfc:8935 (push) or urn:ietf:rfc:8936 (poll)
  std::string endpoint_url;          ///< push: where SETs are POSTed; poll: the poll URL
  std::string authorization_header;  ///< push: sent with each SET; a receiver secret, never logged
  std::vector<std::string> events_requested;
  std::vector<std::string> events_delivered;  ///< requested ∩ supported: what fans out
  std::string aud;                            ///< the SETs' aud claim
  std::string status = "enabled";             ///< enabled | paused | disabled
  std::string reason;                         ///< why the status was last set
  std::string description;
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
};

/// An event to write (the outbox): its type URI and its SET material as JSON text,
/// {"sub_id": {...}, "event": {...}} (issuer/ssf/events.h).
struct SsfEventDraft {
  std::string type;
  std::string payload_json;
};

struct SsfEvent {
  std::int64_t seq = 0;  ///< assigned by the store, increasing
  std::string type;
  std::string payload_json;
  std::int64_t created_at = 0;
};

/// One event due to one stream.
struct SsfDelivery {
  SsfStream stream;
  SsfEvent event;
  std::uint32_t attempts = 0;
};

/// A revocation (or re-enabling) and the events it causes, written in one transaction
/// (apply_device_change): either all of it is durable or none of it.
struct DeviceChange {
  std::string device_id;
  std::int64_t now = 0;
  /// The signed revoke request this applies (record_revoke_request's key): kReplay, and nothing
  /// written, when it was applied before.
  struct RevokeRequest {
    std::int64_t signed_at = 0;
    std::string digest;
    std::int64_t forget_before = 0;
  };
  std::optional<RevokeRequest> revoke_request;
  /// Every token of the device not revoked and not expired at `now`.
  bool revoke_live_tokens = false;
  /// These tokens (a revoke request naming jtis); their bits are set even if already marked.
  std::vector<TokenRecord> tokens;
  enum class DeviceAction { kNone, kRevoke, kEnable, kRemove };
  DeviceAction device = DeviceAction::kNone;     ///< kRevoke sets revoked_at = now; kNotFound
  std::optional<AttestationUpdate> attestation;  ///< recorded on the device too
  /// The events of what changed, given the tokens that flipped to revoked here.
  std::function<std::vector<SsfEventDraft>(const std::vector<TokenRecord>& revoked)> events;
};

/// The issuer's persistent state. Every call is safe from any thread. Implementations: SQLite
/// (default) and PostgreSQL (shared by replicas); both run the same versioned migrations.
class Store {
 public:
  virtual ~Store() = default;

  /// Creates or upgrades the schema (idempotent; safe when replicas race).
  virtual Status migrate() = 0;
  /// Schema version currently applied.
  virtual Result<int> schema_version() = 0;
  /// Cheap reachability check for /readyz.
  virtual Status ping() = 0;

  // Devices. Errors: kAlreadyExists on a duplicate id or EK, kNotFound.
  virtual Status add_device(const Device& device) = 0;
  virtual Result<Device> get_device(std::string_view id) = 0;
  virtual Result<std::optional<Device>> find_device_by_ek(std::string_view ek_public_hash) = 0;
  /// Devices ordered by id, after `after_id` (paging), at most `limit`.
  virtual Result<std::vector<Device>> list_devices(std::size_t limit,
                                                   std::string_view after_id = {}) = 0;
  virtual Status set_device_state(std::string_view id, DeviceState state) = 0;
  /// Sets the state to revoked and revoked_at to `at` (never lowering it), in one write. kNotFound.
  virtual Status revoke_device(std::string_view id, std::int64_t at) = 0;
  /// Sets the operator-assigned group (empty: none). kNotFound.
  virtual Status set_device_group(std::string_view id, std::string_view group) = 0;
  /// Deletes the device record (its EK may then enroll again). Its tokens and audit records
  /// stay. kNotFound.
  virtual Status remove_device(std::string_view id) = 0;
  /// Atomically consumes an attestation nonce: refused with kReplay when `nonce` equals the last
  /// accepted one or expires before it (older nonces cannot be replayed).
  virtual Status consume_nonce(std::string_view id, ByteSpan nonce, std::int64_t expiry) = 0;
  virtual Status record_attestation(std::string_view id, const AttestationUpdate& update) = 0;
  /// consume_nonce, record_attestation and append_audit in one transaction (one commit per
  /// attestation); nothing is written when the nonce was already used (kReplay).
  virtual Status record_attestation_outcome(std::string_view id, ByteSpan nonce,
                                            std::int64_t expiry, const AttestationUpdate& update,
                                            const AuditRecord& audit) = 0;

  // Enrollments in progress.
  /// Stores the enrollment in place of any pending one of the same EK (one per EK: the newest
  /// wins), then, when more than `max_pending` are pending, deletes the oldest others.
  virtual Status put_enrollment(const Enrollment& enrollment, std::size_t max_pending) = 0;
  /// Removes and returns the enrollment (one activation per enrollment). kNotFound.
  virtual Result<Enrollment> take_enrollment(std::string_view id) = 0;
  /// Deletes enrollments whose expires_at < now; returns how many.
  virtual Result<std::size_t> purge_enrollments(std::int64_t now) = 0;

  // Policies: each put is a new version; `activate` makes it the only active one.
  virtual Result<PolicyVersion> add_policy(std::string_view version, std::string_view toml,
                                           std::int64_t created_at, bool activate) = 0;
  virtual Result<std::optional<PolicyVersion>> active_policy() = 0;
  virtual Result<std::vector<PolicyVersion>> list_policies() = 0;

  // Audit log (append-only; newest first on query).
  virtual Result<std::int64_t> append_audit(const AuditRecord& record) = 0;
  virtual Result<std::vector<AuditRecord>> query_audit(const AuditFilter& filter) = 0;
  /// Records the revoke request of `device_id` signed at `signed_at` whose signed bytes hash to
  /// `request_digest` (hex SHA-256), once across replicas (a unique key, schema 5): kReplay when
  /// it was recorded before. Two different requests signed in the same second are two requests.
  /// Forgets the requests signed before `forget_before` (their timestamps are refused anyway).
  virtual Status record_revoke_request(std::string_view device_id, std::int64_t signed_at,
                                       std::string_view request_digest,
                                       std::int64_t forget_before) = 0;

  // Status lists.
  virtual Status create_status_list(std::string_view id, std::uint64_t bits) = 0;
  /// Atomically takes the next free index; kLimitExceeded when the list is full.
  virtual Result<std::uint64_t> allocate_status_index(std::string_view id) = 0;
  /// Atomically takes a block of up to `count` (>= 1) consecutive free indexes [first, end);
  /// fewer only when the list has fewer left; kLimitExceeded when it is full. Blocks handed to
  /// different callers (replicas) never overlap.
  virtual Result<std::pair<std::uint64_t, std::uint64_t>> allocate_status_indexes(
      std::string_view id, std::uint64_t count) = 0;
  virtual Status set_status_bit(std::string_view id, std::uint64_t index, bool value) = 0;
  virtual Result<StatusList> get_status_list(std::string_view id) = 0;

  // Issued tokens (schema 2). Errors: kAlreadyExists on a duplicate jti, kNotFound.
  virtual Status add_token(const TokenRecord& token) = 0;
  /// add_token and append_audit in one transaction (one commit per issued token).
  virtual Status record_token_issue(const TokenRecord& token, const AuditRecord& audit) = 0;
  /// record_token_issue without blocking the caller: `done` receives its outcome once the
  /// transaction holding the records has committed (or failed), so that the caller can answer
  /// only then. The SQL store calls `done` on its commit thread, never inside this call; the
  /// default calls it inside, after the blocking record_token_issue.
  virtual void record_token_issue_async(TokenRecord token, AuditRecord audit,
                                        std::function<void(Status)> done) {
    done(record_token_issue(token, audit));
  }
  /// Token-issue transactions committed and the records they held (group commit batching).
  struct IssueCommitStats {
    std::uint64_t commits = 0;
    std::uint64_t records = 0;
  };
  [[nodiscard]] virtual IssueCommitStats issue_commit_stats() const { return {}; }
  virtual Result<TokenRecord> get_token(std::string_view jti) = 0;
  /// Tokens of `device_id` not revoked and not expired at `now`, oldest first.
  virtual Result<std::vector<TokenRecord>> live_tokens(std::string_view device_id,
                                                       std::int64_t now) = 0;
  /// Marks the token revoked; false when it already was.
  virtual Result<bool> mark_token_revoked(std::string_view jti) = 0;

  // Shared Signals (schema 6). Receivers: kAlreadyExists on a duplicate name, kNotFound.
  virtual Status add_ssf_receiver(const SsfReceiver& receiver) = 0;
  virtual Result<std::vector<SsfReceiver>> list_ssf_receivers() = 0;
  virtual Result<std::optional<SsfReceiver>> find_ssf_receiver(std::string_view token_hash) = 0;
  /// Deletes the receiver and disables its streams (their pending deliveries are dropped).
  virtual Status remove_ssf_receiver(std::string_view name, std::int64_t now) = 0;
  /// kLimitExceeded when the receiver has `max_per_receiver` streams (disabled ones count).
  virtual Status add_ssf_stream(const SsfStream& stream, std::size_t max_per_receiver) = 0;
  virtual Result<SsfStream> get_ssf_stream(std::string_view id) = 0;
  virtual Result<std::vector<SsfStream>> list_ssf_streams(std::string_view receiver) = 0;
  /// Writes every field but id, receiver and created_at. A stream becoming disabled drops its
  /// pending deliveries (SSF 1.0: a disabled stream does not hold events). kNotFound.
  virtual Status update_ssf_stream(const SsfStream& stream) = 0;
  /// Deletes the stream and its deliveries. kNotFound.
  virtual Status remove_ssf_stream(std::string_view id) = 0;
  /// Writes an event and its deliveries: to `only_stream` when given (a verification event),
  /// else to every enabled or paused stream that delivers its type. Returns its seq.
  virtual Result<std::int64_t> append_ssf_event(const SsfEventDraft& event, std::int64_t now,
                                                std::string_view only_stream = {}) = 0;
  /// Applies the change and writes its events and their deliveries in one transaction; returns
  /// the tokens that flipped to revoked. Nothing is written when any part fails.
  virtual Result<std::vector<TokenRecord>> apply_device_change(const DeviceChange& change) = 0;
  /// record_attestation_outcome and apply_device_change (same device) in one transaction.
  virtual Result<std::vector<TokenRecord>> record_attestation_change(
      std::string_view id, ByteSpan nonce, std::int64_t expiry, const AttestationUpdate& update,
      const AuditRecord& audit, const DeviceChange& change) = 0;
  /// Leases up to `max` due push deliveries to `owner` until now + lease_s: per enabled push
  /// stream only its oldest undelivered event (order per stream), and only when that one is due
  /// (next attempt <= now) and not leased. A conditional update takes each lease, so replicas
  /// never hold the same delivery at once.
  virtual Result<std::vector<SsfDelivery>> claim_ssf_push(std::string_view owner, std::int64_t now,
                                                          std::int64_t lease_s,
                                                          std::size_t max) = 0;
  /// Marks a delivery done (pushed, acknowledged by a poll, or refused by the receiver with
  /// `error`). Unknown or already done: no effect.
  virtual Status ssf_delivered(std::string_view stream_id, std::int64_t seq, std::int64_t now,
                               std::string_view error = {}) = 0;
  /// Records a failed attempt: attempts + 1, the lease released, retried at next_attempt_at.
  virtual Status ssf_failed(std::string_view stream_id, std::int64_t seq,
                            std::int64_t next_attempt_at, std::string_view error) = 0;
  /// Undelivered events of a stream, oldest first, at most `max` (poll delivery).
  virtual Result<std::vector<SsfDelivery>> pending_ssf(std::string_view stream_id,
                                                       std::size_t max) = 0;
  /// Deletes deliveries done before `before`, then events older than it that no stream still
  /// waits for. Returns how many rows went.
  virtual Result<std::size_t> purge_ssf(std::int64_t before) = 0;

  // Signing key metadata.
  virtual Status put_signing_key(const SigningKeyInfo& key) = 0;
  virtual Status retire_signing_key(std::string_view kid, std::int64_t retired_at,
                                    std::int64_t not_after) = 0;
  virtual Result<std::vector<SigningKeyInfo>> list_signing_keys() = 0;
};

/// Opens the SQLite store at `path` (created if absent; WAL mode; busy timeout). The database
/// and its -wal and -shm files are mode 0600 whatever the umask (existing ones are tightened).
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path);
/// Opens the PostgreSQL store with a libpq connection string.
Result<std::unique_ptr<Store>> open_postgres_store(const std::string& conninfo,
                                                   std::size_t pool_size = 8);

}  // namespace warden::issuer
