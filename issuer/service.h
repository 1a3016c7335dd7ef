#pragma once
// The verifier and token service, free of transport: issuer/http decodes requests (CBOR for the
// agent API, JSON for the admin API), calls these, and encodes the results. Every method is safe
// to call from any thread of the server's pool; state lives in the Store so that replicas sharing
// PostgreSQL behave as one issuer.
//
// Errors carry a stable ErrorCode that issuer/http maps to a status (docs/protocol.md):
// kMalformed/kInvalidArgument 400, kBadSignature/kProofMismatch/kUntrusted/kExpired 401,
// kPermissionDenied/kPolicyViolation/kRevoked 403, kNotFound 404, kConflict/kAlreadyExists/kReplay
// 409, kLimitExceeded 413, kUnavailable 503, anything else 500 (the table in docs/protocol.md).
// A refused appraisal is not an error: attest() returns a response with verdict kFail and every
// reason (HTTP 200), so agents can show why.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attest/protocol/messages.h"
#include "issuer/config.h"
#include "issuer/oauth/introspection.h"
#include "issuer/seal_authority.h"
#include "issuer/signing_keys.h"
#include "issuer/store/store.h"
#include "platform/base/clock.h"
#include "platform/base/secret.h"

namespace warden::issuer {
namespace ssf {
class Transmitter;
}  // namespace ssf

/// The request line of the HTTP request carrying a DPoP-style proof (POST /v1/token).
struct RequestTarget {
  std::string method;  ///< "POST"
  std::string url;     ///< absolute URL as the client addressed it, e.g. https://host:8443/v1/token
};

/// A page of devices (GET /admin/v1/devices): next_after is the last id when the page is full.
struct DevicePage {
  std::vector<Device> devices;
  std::optional<std::string> next_after;
};
/// A device and its live tokens (GET /admin/v1/devices/{id}).
struct DeviceDetail {
  Device device;
  std::vector<TokenRecord> live_tokens;
};

class IssuerService {
 public:
  struct Options {
    const IssuerConfig* config = nullptr;
    Store* store = nullptr;
    SigningKeys* keys = nullptr;
    const Clock* clock = nullptr;
    Random* random = nullptr;
    SecretBytes nonce_key;  ///< >= 32 bytes, shared by replicas (read from tokens.key_dir)
    /// The issuer's external base URL ("https://issuer.example:8443"): the iss claim, and the
    /// prefix of status list URIs (<issuer_url>/v1/status/<list_id>). Empty: "warden-issuer"
    /// as iss and relative status URIs.
    std::string issuer_url;
    /// Entries per token status list; a full list is followed by a new one ("1", "2", …).
    std::uint64_t status_list_bits = 1U << 17;
    /// Called after a transaction that wrote Shared Signals events commits: wakes the push
    /// worker (set_on_events_committed sets it later).
    std::function<void()> on_events_committed;
    /// Signs the quoted PCR values of a passing attestation that names seal_pcrs, and its public
    /// area goes out with enrollment (docs/sealing.md). nullptr: no approvals.
    SealAuthority* seal_authority = nullptr;
  };
  /// Loads the trust anchors (manufacturer CA files) and the active policy (from the store, or
  /// config.policy_file as the first version when the store has none).
  static Result<std::unique_ptr<IssuerService>> create(Options options);
  virtual ~IssuerService() = default;

  // ---- Agent API (CBOR) -----------------------------------------------------------------------
  virtual Result<protocol::EnrollResponse> enroll(const protocol::EnrollRequest& request) = 0;
  virtual Result<protocol::ActivateResponse> activate(std::string_view enrollment_id,
                                                      const protocol::ActivateRequest& request) = 0;
  virtual Result<protocol::ChallengeResponse> challenge(
      const protocol::ChallengeRequest& request) = 0;
  /// `received` is the request's CBOR as it arrived; its SHA-256 is the evidence hash (audit
  /// record, device token). In-process callers pass protocol::encode(request).
  virtual Result<protocol::AttestResponse> attest(const protocol::AttestRequest& request,
                                                  ByteSpan received) = 0;
  /// `target` is what the proof's htm/htu must name.
  virtual Result<protocol::TokenResponse> token(const protocol::TokenRequest& request,
                                                const RequestTarget& target) = 0;
  /// token() without blocking the caller while the token's record commits: `done` receives the
  /// result once the record is durable (or the error), possibly on another thread and possibly
  /// inside this call. The default calls token() and then `done`.
  virtual void token_async(const protocol::TokenRequest& request, const RequestTarget& target,
                           std::function<void(Result<protocol::TokenResponse>)> done) {
    done(token(request, target));
  }
  virtual Result<protocol::RevokeResponse> revoke(const protocol::RevokeRequest& request) = 0;

  // ---- Public ---------------------------------------------------------------------------------
  /// {"keys": [...]} of every published signing key.
  virtual Result<std::string> jwks_json() = 0;
  /// The status list as a signed JWT (application/statuslist+jwt).
  virtual Result<std::string> status_list_jwt(std::string_view list_id) = 0;
  /// Store reachable and keys loaded.
  virtual Status ready() = 0;

  // ---- Relying parties (issuer/oauth) ----------------------------------------------------------
  /// The configuration the service runs with; nullptr in doubles without one (defaults apply).
  [[nodiscard]] virtual const IssuerConfig* config() const { return nullptr; }
  /// What introspection and authorization-server metadata read; nullopt: no such routes.
  virtual std::optional<oauth::Sources> oauth_sources() { return std::nullopt; }

  // ---- Admin API (structs; issuer/admin/admin_json.h is their JSON) ----------------------------
  virtual Result<DevicePage> admin_list_devices(std::size_t limit, std::string_view after_id) = 0;
  virtual Result<DeviceDetail> admin_get_device(std::string_view id) = 0;
  /// state: "revoked" (also flips every token of the device in the status list) or "enabled".
  virtual Status admin_set_device_state(std::string_view id, std::string_view state,
                                        std::string_view actor) = 0;
  /// Parses the TOML (reference values and workload policy) and stores it as a new active version.
  virtual Result<PolicyVersion> admin_put_policy(std::string_view version, std::string_view toml,
                                                 std::string_view actor) = 0;
  virtual Result<std::vector<PolicyVersion>> admin_list_policies() = 0;
  virtual Result<std::vector<AuditRecord>> admin_audit(const AuditFilter& filter) = 0;
  /// Removes the device so that its EK can enroll again: revokes every live token it holds
  /// (their status bits flip; its device tokens stop working at once), deletes its record and
  /// writes an audit record (action "admin.device_delete"). kNotFound when there is no such
  /// device. Its audit history stays.
  virtual Status admin_delete_device(std::string_view id, std::string_view actor) {
    (void)id;
    (void)actor;
    return fail(ErrorCode::kUnsupported, "admin: removing devices is not supported here");
  }

  /// Assigns the device's group, the only one `match.group` rules see (what the device asked for
  /// at enrollment is `requested_group` and grants nothing). `group` empty clears it; otherwise
  /// 1..64 of [A-Za-z0-9._-] (kInvalidArgument). Audited as "admin.device_group". kNotFound.
  virtual Status admin_set_device_group(std::string_view id, std::string_view group,
                                        std::string_view actor) {
    (void)id;
    (void)group;
    (void)actor;
    return fail(ErrorCode::kUnsupported, "admin: device groups are not supported here");
  }

  // ---- Shared Signals (issuer/ssf, docs/ssf.md) ------------------------------------------------
  /// The transmitter (stream management, poll, the push queue); nullptr when ssf.enabled is
  /// false. Revocations write their events whether or not a stream wants them.
  virtual ssf::Transmitter* ssf() { return nullptr; }
  virtual void set_on_events_committed(std::function<void()> hook) { (void)hook; }
  /// The receiver named by an Authorization header ("Bearer <token>", RFC 6750), whether or not
  /// the transmitter is enabled (introspection callers are receivers too). kUntrusted (401).
  virtual Result<std::string> authenticate_receiver(std::string_view authorization) {
    (void)authorization;
    return fail(ErrorCode::kUntrusted, "receivers are not supported here");
  }
  /// Registers a receiver and returns its bearer token (shown once). Audited
  /// "admin.ssf_receiver". kInvalidArgument (name), kAlreadyExists.
  virtual Result<std::string> admin_add_ssf_receiver(std::string_view name,
                                                     std::string_view actor) {
    (void)name;
    (void)actor;
    return fail(ErrorCode::kUnsupported, "admin: shared signals are not supported here");
  }
  /// Receivers by name (their tokens are never shown again).
  virtual Result<std::vector<SsfReceiver>> admin_list_ssf_receivers() {
    return fail(ErrorCode::kUnsupported, "admin: shared signals are not supported here");
  }
  /// Removes the receiver and disables its streams. Audited. kNotFound.
  virtual Status admin_delete_ssf_receiver(std::string_view name, std::string_view actor) {
    (void)name;
    (void)actor;
    return fail(ErrorCode::kUnsupported, "admin: shared signals are not supported here");
  }

  /// Periodic work of the running service (warden-issuer calls it every minute): writes the
  /// summary audit records of refusals suppressed since the last call, and drops delivered
  /// Shared Signals events older than ssf.retention_s.
  virtual void housekeeping() {}
};

}  // namespace warden::issuer
