// The coordinators of IssuerService: enroll and activate, challenge, token (through the device
// gate to token issuing) and revoke; attest is in service_attest.cpp, admin in service_admin.cpp.
#include <algorithm>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "attest/credential/credential.h"
#include "attest/quote/quote.h"
#include "issuer/service_impl.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"

namespace warden::issuer {
namespace {

namespace q = attest::quote;
using audit::Action;
using audit::Decision;
using audit::EnrollmentStarted;
using audit::Event;
using audit::Reasons;
using audit::RevokeApplied;
using audit::to_record;
using audit::TokenGrant;

// AKs Warden accepts: ECC P-256 with ECDSA-SHA256 (the agent's default), or RSA-2048 with
// RSASSA-SHA256.
Status check_ak_algorithm(const q::PublicArea& ak) {
  constexpr std::uint16_t kSha256 = 0x000B;
  if (ak.type == q::kAlgEcc && ak.curve == q::kEccNistP256 && ak.scheme == q::kAlgEcdsa &&
      ak.scheme_hash == kSha256)
    return ok();
  if (ak.type == q::kAlgRsa && ak.rsa_bits == 2048 && ak.scheme == q::kAlgRsassa &&
      ak.scheme_hash == kSha256)
    return ok();
  return fail(ErrorCode::kAlgorithmNotAllowed,
              "enroll: AK algorithm expected ECC P-256/ECDSA-SHA256 or RSA-2048/RSASSA-SHA256, "
              "found type " +
                  std::to_string(ak.type) + " curve " + std::to_string(ak.curve) + " scheme " +
                  std::to_string(ak.scheme) + " hash " + std::to_string(ak.scheme_hash));
}

// What the store keeps of the expected activation proof: a one-way, domain-separated digest, so
// that a copy of the database does not hand out the proof itself. The proof is an HMAC output of
// a 32-byte random secret: a plain hash of it cannot be searched.
Bytes proof_digest(ByteSpan proof) {
  constexpr std::string_view kDomain = "warden issuer: stored activation proof v1";
  Bytes input(kDomain.begin(), kDomain.end());
  input.push_back(0);
  input.insert(input.end(), proof.begin(), proof.end());
  return ossl::sha256(input);
}

std::vector<std::string> proof_bases(const IssuerService::Options& options) {
  std::vector<std::string> out;
  auto add_base = [&out](std::string base) {
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (!base.empty()) out.push_back(std::move(base));
  };
  add_base(options.issuer_url);
  for (const auto& alias : options.config->issuer_url_aliases) add_base(alias);
  return out;
}
}  // namespace

// ---- construction ------------------------------------------------------------------------------

Result<std::unique_ptr<IssuerService>> IssuerService::create(Options options) {
  if (options.config == nullptr || options.store == nullptr || options.keys == nullptr ||
      options.clock == nullptr || options.random == nullptr)
    return fail(ErrorCode::kInvalidArgument,
                "issuer service: config, store, keys, clock and "
                "random are required");
  if (options.status_list_bits == 0 || options.status_list_bits > (1U << 24))
    return fail(ErrorCode::kInvalidArgument, "issuer service: status_list_bits expected 1..2^24");
  if (options.nonce_key.size() < 32)
    return fail(ErrorCode::kInvalidArgument,
                "issuer service: nonce key expected >= 32 bytes, found " +
                    std::to_string(options.nonce_key.size()));
  auto trust = EkTrust::open(options.config->enrollment);
  if (!trust) return fail(std::move(trust).error());
  auto service = std::make_unique<Service>(std::move(options), std::move(*trust));
  WARDEN_TRY_STATUS(service->init());
  return std::unique_ptr<IssuerService>(std::move(service));
}

Service::Service(Options options, EkTrust trust)
    : options_(std::move(options)),
      trust_(std::move(trust)),
      nonces_(options_.nonce_key.clone(), *options_.clock, *options_.random,
              options_.config->tokens.nonce_ttl_s),
      policy_cache_(*options_.clock, {kPolicyTtl, 1}),
      tokens_({options_.store, options_.keys, options_.clock, options_.issuer_url,
               options_.status_list_bits, options_.config->status_list.ttl_s}),
      gate_({options_.store, options_.clock, options_.config->limits, proof_bases(options_)},
            tokens_),
      audit_log_(
          *options_.store, *options_.clock,
          {static_cast<double>(options_.config->limits.refusal_burst),
           static_cast<double>(options_.config->limits.refusal_per_minute) / 60.0, kRefusalKeys}) {}

Status Service::init() {
  WARDEN_TRY_STATUS(tokens_.init());
  init_ssf();
  auto active = options_.store->active_policy();
  if (!active) return fail(std::move(active).error());
  if (!*active && !options_.config->policy_file.empty()) {
    auto text = read_file(options_.config->policy_file, 1 << 20);
    if (!text) return fail(std::move(text).error().context("issuer: policy_file"));
    auto put = admin_put_policy("", warden::to_string(*text), "config");
    if (!put) return fail(std::move(put).error().context("issuer: policy_file"));
  }
  return ok();
}

std::string Service::random_id() {
  Bytes b(16);
  std::lock_guard lock(random_mu_);
  options_.random->fill(b);
  return hex_encode(b);
}

void Service::housekeeping() {
  audit_log_.housekeeping();
  gate_.housekeeping(now());
  if (ssf_) {
    if (auto purged = ssf_->housekeeping(); !purged) {
      spdlog::warn("ssf housekeeping: {}", purged.error().message);
    }
  }
}

// ---- enrollment --------------------------------------------------------------------------------

Result<protocol::EnrollResponse> Service::enroll(const protocol::EnrollRequest& request) {
  const std::int64_t t = now();
  (void)options_.store->purge_enrollments(t);  // housekeeping; a failure here changes nothing
  WARDEN_ASSIGN(ek, trust_.check(request.ek_public, request.ek_cert, request.ek_chain, t));
  WARDEN_ASSIGN(existing, options_.store->find_device_by_ek(ek.public_hash));
  if (existing) {
    // Without the id: an EK certificate is public, the device id it maps to is not.
    return fail(ErrorCode::kAlreadyExists,
                "enroll: this EK is already enrolled; an admin must remove its device first");
  }
  auto ak = q::parse_public2b(request.ak_public);
  if (!ak) return fail(std::move(ak).error().context("enroll: AK public area"));
  auto attrs = q::check_ak_attributes(*ak);
  if (!attrs) return fail(std::move(attrs).error().context("enroll: AK"));
  WARDEN_TRY_STATUS(check_ak_algorithm(*ak));
  WARDEN_ASSIGN(name, q::object_name(*ak));
  if (!ossl::equal_ct(name, request.ak_name)) {
    return fail(ErrorCode::kProofMismatch, "enroll: ak_name expected " + hex_encode(name) +
                                               " (Name of ak_public), found " +
                                               hex_encode(request.ak_name));
  }

  Enrollment e;
  e.id = random_id();
  SecretBytes secret(32);
  {
    std::lock_guard lock(random_mu_);
    options_.random->fill(std::span<std::uint8_t>(secret.data(), secret.size()));
  }
  Result<attest::credential::Credential> credential = [&] {
    std::lock_guard lock(random_mu_);
    return attest::credential::make_credential(ek.ek, name, secret.view(), *options_.random);
  }();
  if (!credential) return fail(std::move(credential).error().context("enroll: MakeCredential"));
  // Neither the secret nor the proof is kept: only a digest of the proof the agent must present.
  WARDEN_ASSIGN(expected_proof, protocol::activation_proof(secret.view(), e.id, name));
  e.ek_public_hash = ek.public_hash;
  e.ek_cert_pem = ek.cert_pem;
  e.ak_public = request.ak_public;
  e.ak_name = name;
  // The device's wish, shown to admins; only an admin's assignment puts it in a group.
  e.requested_group = request.metadata.owner_label.value_or("");
  e.secret_hash = proof_digest(expected_proof);
  OPENSSL_cleanse(expected_proof.data(), expected_proof.size());
  e.created_at = t;
  e.expires_at = t + kEnrollmentTtl;
  WARDEN_TRY_STATUS(options_.store->put_enrollment(e, kMaxPendingEnrollments));

  audit_log_.write(
      Event{t, "", Action::kEnroll, Decision::kOk, ek.public_hash, "",
            EnrollmentStarted{std::string(to_string(ek.basis)), request.metadata.hostname,
                              request.metadata.machine_id, e.id}});
  protocol::EnrollResponse out{e.id, credential->id_object, credential->encrypted_secret,
                               static_cast<std::uint64_t>(e.expires_at)};
  if (options_.seal_authority != nullptr)
    out.seal_authority = options_.seal_authority->public_area();
  return out;
}

Result<protocol::ActivateResponse> Service::activate(std::string_view enrollment_id,
                                                     const protocol::ActivateRequest& request) {
  if (request.enrollment_id != enrollment_id) {
    return fail(ErrorCode::kInvalidArgument,
                "activate: enrollment id in the body (" + request.enrollment_id +
                    ") differs from the URL (" + std::string(enrollment_id) + ")");
  }
  // Consumed by the first attempt, successful or not.
  WARDEN_ASSIGN(e, options_.store->take_enrollment(enrollment_id));
  const std::int64_t t = now();
  auto refuse = [&](Error error) {
    audit_log_.write(Event{t, "", Action::kActivate, Decision::kReject, e.ek_public_hash, "",
                           Reasons{{std::string(to_string(error.code)), "enrollment " + e.id,
                                    std::nullopt, error.message}}});
    return fail(std::move(error));
  };
  if (t > e.expires_at) {
    return refuse({ErrorCode::kExpired,
                   "activate: enrollment " + e.id + " expired at " + std::to_string(e.expires_at),
                   0, 0});
  }
  if (!ossl::equal_ct(e.secret_hash, proof_digest(request.proof))) {
    return refuse({ErrorCode::kProofMismatch,
                   "activate: proof does not match the credential of enrollment " + e.id, 0, 0});
  }
  Device d;
  d.id = random_id();
  d.ek_public_hash = e.ek_public_hash;
  d.ek_cert_pem = e.ek_cert_pem;
  d.ak_public = e.ak_public;
  d.ak_name = e.ak_name;
  d.requested_group = e.requested_group;  // d.group stays empty until an admin assigns one
  d.created_at = t;
  WARDEN_TRY_STATUS(options_.store->add_device(d));
  audit_log_.write(
      Event{t, d.id, Action::kActivate, Decision::kOk, e.ek_public_hash, "", Reasons{}});
  return protocol::ActivateResponse{d.id};
}

Result<protocol::ChallengeResponse> Service::challenge(const protocol::ChallengeRequest& request) {
  WARDEN_ASSIGN(device, options_.store->get_device(request.device_id));
  if (device.state != DeviceState::kEnabled)
    return fail(ErrorCode::kRevoked, "challenge: device " + device.id + " is revoked");
  Bytes nonce;
  {
    std::lock_guard lock(random_mu_);
    nonce = nonces_.mint(device.id);
  }
  auto expires = NonceIssuer::expiry(nonce);
  return protocol::ChallengeResponse{std::move(nonce), static_cast<std::uint64_t>(expires)};
}

// ---- workload tokens ---------------------------------------------------------------------------

Result<protocol::TokenResponse> Service::token(const protocol::TokenRequest& request,
                                               const RequestTarget& target) {
  WARDEN_ASSIGN(issue, mint_token(request, target));
  WARDEN_TRY_STATUS(options_.store->record_token_issue(issue.record, issue.audit));
  return std::move(issue.response);
}

void Service::token_async(const protocol::TokenRequest& request, const RequestTarget& target,
                          std::function<void(Result<protocol::TokenResponse>)> done) {
  auto issue = mint_token(request, target);
  if (!issue) return done(fail(std::move(issue).error()));
  options_.store->record_token_issue_async(
      std::move(issue->record), std::move(issue->audit),
      [response = std::move(issue->response), done = std::move(done)](Status recorded) mutable {
        if (!recorded) return done(fail(std::move(recorded).error()));
        done(std::move(response));
      });
}

Result<Service::TokenIssue> Service::mint_token(const protocol::TokenRequest& request,
                                                const RequestTarget& target) {
  const std::int64_t t = now();
  WARDEN_ASSIGN(admitted, gate_.admit(request, target, t));
  const token::Claims& dc = admitted.device_token;
  const std::string& device_id = admitted.device_id;
  const gate::DeviceStatus& device = admitted.device;
  WARDEN_ASSIGN(policy, active_policy());
  auto grant = authorize_workload(
      policy->workload, {&request.selectors, device.group, request.audience, &request.scopes});
  if (!grant) {
    // The audience is the caller's (up to 1 KiB): the record holds a quoted prefix of it.
    audit_log_.refusal(Event{t, device_id, Action::kToken, Decision::kReject, "",
                             policy->reference.version,
                             Reasons{{std::string(to_string(grant.error().code)),
                                      "audience " + quote_untrusted(request.audience), std::nullopt,
                                      quote_untrusted(grant.error().message)}}});
    return fail(std::move(grant).error());
  }
  std::int64_t ttl = request.ttl > 0 ? static_cast<std::int64_t>(request.ttl)
                                     : options_.config->tokens.workload_token_ttl_s;
  ttl = std::min(ttl, grant->max_ttl);
  if (dc.exp) ttl = std::min(ttl, std::max<std::int64_t>(*dc.exp - t, 1));

  WARDEN_ASSIGN(minted, tokens_.mint_workload({device_id, &request,
                                               token::Confirmation{dc.cnf->jkt, dc.cnf->key}, t,
                                               ttl, random_id()}));
  const std::string jti = minted.response.jti;
  const std::uint64_t index = minted.response.status_index;
  return TokenIssue{std::move(minted.response), std::move(minted.record),
                    to_record(Event{t, device_id, Action::kToken, Decision::kAccept, "",
                                    policy->reference.version,
                                    TokenGrant{grant->rule, jti, request.audience, index}})};
}

Result<protocol::RevokeResponse> Service::revoke(const protocol::RevokeRequest& request) {
  const std::int64_t t = now();
  WARDEN_ASSIGN(device, options_.store->get_device(request.device_id));
  if (device.binding_key_public.empty()) {
    return fail(ErrorCode::kUnknownKey, "revoke: device " + device.id +
                                            " has no binding key yet (no accepted attestation)");
  }
  const auto ts = static_cast<std::int64_t>(request.timestamp);
  if (ts < t - kRevokeWindow)
    return fail(ErrorCode::kExpired, "revoke: timestamp " + std::to_string(ts) + " is older than " +
                                         std::to_string(kRevokeWindow) + " s (now " +
                                         std::to_string(t) + ")");
  if (ts > t + kRevokeWindow)
    return fail(ErrorCode::kNotYetValid, "revoke: timestamp " + std::to_string(ts) +
                                             " is in the future (now " + std::to_string(t) + ")");
  WARDEN_ASSIGN(key, q::parse_public2b(device.binding_key_public));
  auto sig = q::parse_signature(request.signature);
  if (!sig) return fail(std::move(sig).error().context("revoke: signature"));
  auto verified = q::verify_signature(key, protocol::revoke_signed_bytes(request), *sig);
  if (!verified) {
    return fail(ErrorCode::kBadSignature,
                "revoke: signature expected by the binding key of device " + device.id + ": " +
                    verified.error().message);
  }
  const auto already_applied = [&] {
    return fail(ErrorCode::kReplay, "revoke: already applied: a revoke request of device " +
                                        device.id + " with timestamp " + std::to_string(ts) +
                                        " was accepted before");
  };
  // Once across replicas: the store holds each applied request's key, written in the
  // transaction of the revocation (a failed one can be sent again).
  const std::string digest = hex_encode(ossl::sha256(protocol::revoke_signed_bytes(request)));
  const auto applied =
      [&](Result<std::vector<TokenRecord>> revoked) -> Result<std::vector<TokenRecord>> {
    if (!revoked && revoked.error().code == ErrorCode::kReplay) return already_applied();
    if (!revoked) return fail(std::move(revoked).error().context("revoke"));
    return revoked;
  };
  protocol::RevokeResponse out;
  const std::string why = "device report: " + request.reason;
  DeviceChange change;
  change.device_id = device.id;
  change.now = t;
  change.revoke_request = DeviceChange::RevokeRequest{ts, digest, t - 2 * kRevokeWindow};
  if (request.jtis.empty()) {
    // The device reported a posture change: no new tokens before it attests again.
    change.revoke_live_tokens = true;
    AttestationUpdate u;
    u.reset_count = device.reset_count;
    u.restart_count = device.restart_count;
    u.attested_at = device.last_attested_at;
    u.verdict = "reject";
    u.reasons_json = reasons_to_json({{"revoked", "device report", std::nullopt, request.reason}});
    change.attestation = std::move(u);
    const bool was_compliant = device.last_verdict == "accept";
    auto revoked = apply_change(std::move(change), [&](const std::vector<TokenRecord>& flipped) {
      auto events =
          ssf::revocation_events(device.id, flipped, true, t, ssf::Initiator::kPolicy, why);
      if (was_compliant) {
        events.push_back(ssf::compliance_change(device.id, false, t, ssf::Initiator::kPolicy, why));
      }
      return events;
    });
    forget_device(device.id);
    WARDEN_ASSIGN(flipped, applied(std::move(revoked)));
    out.revoked = flipped.size();
  } else {
    for (const std::string& jti : request.jtis) {
      WARDEN_ASSIGN(record, options_.store->get_token(jti));
      if (record.device_id != device.id) {
        return fail(ErrorCode::kPermissionDenied,
                    "revoke: token " + jti + " was not issued to device " + device.id);
      }
      change.tokens.push_back(std::move(record));
    }
    WARDEN_ASSIGN(
        revoked, applied(apply_change(std::move(change), [&](const std::vector<TokenRecord>& f) {
          return ssf::revocation_events(device.id, f, false, t, ssf::Initiator::kSystem, why);
        })));
    out.revoked = revoked.size();
  }
  audit_log_.write(Event{t, device.id, Action::kRevoke, Decision::kOk, "", "",
                         RevokeApplied{ts, request.reason, out.revoked, request.jtis}});
  return out;
}

// ---- public endpoints --------------------------------------------------------------------------

Result<std::string> Service::jwks_json() { return tokens_.jwks_json(); }

Result<std::string> Service::status_list_jwt(std::string_view list_id) {
  return tokens_.status_list_jwt(list_id);
}

Status Service::ready() {
  WARDEN_TRY_STATUS(options_.store->ping());
  if (!options_.keys->current_key())
    return fail(ErrorCode::kUnavailable, "issuer: no current signing key");
  return ok();
}

}  // namespace warden::issuer
