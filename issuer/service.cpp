#include <algorithm>
#include <array>

#include <openssl/evp.h>

#include "attest/credential/credential.h"
#include "attest/quote/quote.h"
#include "attest/token/cwt.h"
#include "attest/token/json.h"
#include "attest/token/jwt.h"
#include "attest/token/status_list.h"
#include "issuer/service_impl.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"

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

// "/v1/token" of "https://host:8443/v1/token"; "" when the URL has no path.
std::string url_path(const std::string& url) {
  const auto scheme = url.find("://");
  const auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return slash == std::string::npos ? std::string() : url.substr(slash);
}

std::string strip_query(std::string url) {
  auto cut = url.find_first_of("?#");
  if (cut != std::string::npos) url.resize(cut);
  return url;
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
      signers_(*options_.clock, {kSignerTtl, 4}),
      devices_(*options_.clock, {kDeviceTtl, kDeviceCacheMax}),
      verified_tokens_(*options_.clock, {kDeviceTtl, kTokenCacheMax}),
      keys_(*options_.clock, {kKeysTtl, 4}),
      token_rate_({static_cast<double>(options_.config->limits.token_burst),
                   static_cast<double>(options_.config->limits.token_per_minute) / 60.0,
                   kDeviceCacheMax}),
      audit_log_(
          *options_.store, *options_.clock,
          {static_cast<double>(options_.config->limits.refusal_burst),
           static_cast<double>(options_.config->limits.refusal_per_minute) / 60.0, kRefusalKeys}) {
  auto add_base = [this](std::string base) {
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (!base.empty()) proof_bases_.push_back(std::move(base));
  };
  add_base(options_.issuer_url);
  for (const auto& alias : options_.config->issuer_url_aliases) add_base(alias);
}

Status Service::init() {
  // Lists are numbered from "1"; the current one is the last that exists.
  for (;; ++list_number_) {
    auto next = options_.store->get_status_list(std::to_string(list_number_ + 1));
    if (!next && next.error().code == ErrorCode::kNotFound) break;
    if (!next) return fail(std::move(next).error());
  }
  auto created =
      options_.store->create_status_list(std::to_string(list_number_), options_.status_list_bits);
  if (!created && created.error().code != ErrorCode::kAlreadyExists)
    return fail(std::move(created).error());
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

std::string Service::status_uri(std::string_view list_id) const {
  return options_.issuer_url + "/v1/status/" + std::string(list_id);
}

void Service::housekeeping() {
  audit_log_.housekeeping();
  (void)token_rate_.drain(Steady::now());  // forgets idle devices; nothing to report
  const std::int64_t t = now();
  std::lock_guard lock(replay_mu_);
  prune_proofs(t);
}

void Service::prune_proofs(std::int64_t t) {
  for (auto it = proof_replay_.begin(); it != proof_replay_.end();) {
    it = it->second.prune(t) == 0 ? proof_replay_.erase(it) : std::next(it);
  }
}

std::size_t Service::proof_cache_capacity() const {
  const auto& limits = options_.config->limits;
  return static_cast<std::size_t>(limits.token_burst) +
         static_cast<std::size_t>(limits.token_per_minute) *
             static_cast<std::size_t>(kProofMaxAge + kProofLeeway + 59) / 60 +
         1;
}

Status Service::record_proof(const std::string& device_id, const std::string& jti, std::int64_t t) {
  std::lock_guard lock(replay_mu_);
  auto it = proof_replay_.find(device_id);
  if (it == proof_replay_.end()) {
    if (proof_replay_.size() >= kDeviceCacheMax) prune_proofs(t);
    if (proof_replay_.size() >= kDeviceCacheMax) {
      return fail(ErrorCode::kUnavailable, "token: proof replay state is at its limit of " +
                                               std::to_string(kDeviceCacheMax) + " devices");
    }
    it = proof_replay_.try_emplace(device_id, proof_cache_capacity(), kProofMaxAge + kProofLeeway)
             .first;
  }
  auto fresh = it->second.check_and_insert(jti, t);
  if (!fresh && fresh.error().code == ErrorCode::kLimitExceeded) {
    return fail(ErrorCode::kLimitExceeded,
                "token: device " + device_id + " sent more proofs than its replay cache holds");
  }
  return fresh;
}

Result<std::shared_ptr<const ActivePolicy>> Service::active_policy() {
  const auto seen = policy_cache_.find(0);
  if (seen.value) return *seen.value;
  WARDEN_ASSIGN(stored, options_.store->active_policy());
  auto cached = policy_cache_.last(0);
  if (!stored) {
    if (!cached) return fail(ErrorCode::kUnavailable, "issuer: no policy has been uploaded");
    return *cached;
  }
  std::shared_ptr<const ActivePolicy> policy;
  if (cached && (*cached)->id >= stored->id) {
    policy = *cached;
  } else {
    WARDEN_ASSIGN(reference, attest::policy::parse_policy(stored->toml));
    WARDEN_ASSIGN(workload, parse_workload_policy(stored->toml));
    auto p = std::make_shared<ActivePolicy>();
    p->id = stored->id;
    p->reference = std::move(reference);
    p->workload = std::move(workload);
    policy = std::move(p);
  }
  // Versions only move forward (each put is a new row): a slower read of an older one loses.
  const std::int64_t id = policy->id;
  policy_cache_.put(0, policy, seen, [id](const auto& c) { return c->id > id; });
  return policy;
}

Result<std::shared_ptr<token::EcSigner>> Service::signer() {
  const std::string kid = options_.keys->current_kid();
  const auto seen = signers_.find(kid);
  if (seen.value) return *seen.value;
  std::shared_ptr<EVP_PKEY> key = options_.keys->current_key();
  if (!key) return fail(ErrorCode::kUnavailable, "issuer: no current signing key");
  // The key was read after the kid above: take the kid as of now, not the one read above.
  WARDEN_ASSIGN(fresh, token::EcSigner::from_key(std::move(key), options_.keys->current_kid()));
  auto signer = std::make_shared<token::EcSigner>(std::move(fresh));
  signers_.put(signer->public_jwk().kid(), signer, seen);
  return signer;
}

Result<Service::DeviceGate> Service::device_gate(const std::string& device_id) {
  const auto seen = devices_.find(device_id);
  if (seen.value) return *seen.value;
  WARDEN_ASSIGN(device, options_.store->get_device(device_id));
  DeviceGate gate;
  gate.state = device.state;
  gate.last_verdict = std::move(device.last_verdict);
  gate.group = std::move(device.group);
  gate.revoked_at = device.revoked_at;
  // Not stored when a write of this process evicted devices while the row was read.
  devices_.put(device_id, gate, seen);
  return gate;
}

void Service::forget_device(std::string_view device_id) { devices_.evict(std::string(device_id)); }

Result<token::Claims> Service::verified_device_token(ByteSpan device_token, std::int64_t t) {
  const Bytes digest = ossl::sha256(device_token);
  const std::string key(digest.begin(), digest.end());
  // Past exp the token is verified again, which applies the leeway and reports the expiry.
  const auto seen = verified_tokens_.find(key);
  if (seen.value) return *seen.value;
  WARDEN_ASSIGN(keys, published_keys());
  const token::ClaimChecks verify_options{
      .now = t, .leeway = 5, .audience = std::nullopt, .require_exp = true};
  auto verified = token::verify_cwt(device_token, *keys, verify_options);
  if (!verified && verified.error().code == ErrorCode::kUnknownKey) {
    // Signed by a key another replica published since the cache was loaded.
    WARDEN_ASSIGN(fresh, published_keys(true));
    verified = token::verify_cwt(device_token, *fresh, verify_options);
  }
  if (!verified) return fail(std::move(verified).error());
  token::Claims claims = std::move(verified->claims);
  const auto exp =
      TtlCache<std::string, token::Claims>::TimePoint(std::chrono::seconds(claims.exp.value_or(t)));
  verified_tokens_.put_until(key, claims, seen, exp);
  return claims;
}

Result<std::shared_ptr<const token::KeySet>> Service::published_keys(bool reload) {
  const std::string kid = options_.keys->current_kid();
  const auto seen = keys_.find(kid);
  if (!reload && seen.value) return *seen.value;
  WARDEN_ASSIGN(infos, options_.keys->published());
  token::KeySet set;
  for (const SigningKeyInfo& info : infos) {
    WARDEN_ASSIGN(pkey, ossl::public_key_from_pem(info.public_pem));
    WARDEN_ASSIGN(jwk, token::Jwk::from_pkey(pkey.get(), info.kid));
    jwk.set_alg(token::Alg::kEs256);
    set.add(std::move(jwk));
  }
  auto keys = std::make_shared<const token::KeySet>(std::move(set));
  keys_.put(kid, keys, seen);
  return keys;
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
  return protocol::EnrollResponse{e.id, credential->id_object, credential->encrypted_secret,
                                  static_cast<std::uint64_t>(e.expires_at)};
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
  auto verified = verified_device_token(request.device_token, t);
  if (!verified) return fail(std::move(verified).error().context("token: device token"));
  const token::Claims& dc = *verified;
  if (dc.eat_profile != std::string(token::kEatProfile) || !dc.device_id || !dc.attestation ||
      !dc.attestation->pass || !dc.cnf || !dc.cnf->jkt) {
    return fail(ErrorCode::kPermissionDenied,
                "token: device token expected a passing Warden device result with cnf, found "
                "another token");
  }
  const std::string& device_id = *dc.device_id;
  WARDEN_ASSIGN(device, device_gate(device_id));
  if (device.state != DeviceState::kEnabled)
    return fail(ErrorCode::kRevoked, "token: device " + device_id + " is revoked");
  // A device token from before the device's last revocation stays dead after it is enabled
  // again: only a fresh attestation (a new device token) brings tokens back.
  if (!dc.iat || *dc.iat <= device.revoked_at) {
    return fail(ErrorCode::kRevoked,
                "token: device token issued at " + std::to_string(dc.iat.value_or(0)) +
                    ", at or before the revocation of device " + device_id + " at " +
                    std::to_string(device.revoked_at) + "; attest again");
  }
  if (device.last_verdict != "accept") {
    return fail(ErrorCode::kPolicyViolation, "token: device " + device_id +
                                                 " last attestation verdict expected accept, "
                                                 "found " +
                                                 device.last_verdict);
  }
  token::ProofCheck check;
  check.htm = target.method;
  check.htu = strip_query(target.url);
  if (!proof_bases_.empty()) {
    // htu must name this issuer as configured, never what the client put in its Host header.
    const std::string path = url_path(check.htu);
    check.htu = proof_bases_.front() + path;
    for (std::size_t i = 1; i < proof_bases_.size(); ++i) {
      check.htu_aliases.push_back(proof_bases_[i] + path);
    }
  }
  check.now = t;
  check.max_age = kProofMaxAge;
  check.leeway = kProofLeeway;
  check.expected_jkt = dc.cnf->jkt;
  auto proof = token::verify_proof_unrecorded(request.proof, check);
  if (!proof) return fail(std::move(proof).error().context("token: proof"));
  // After the proof's signature (only the device's key can spend its rate), before its jti is
  // recorded: a device over its rate is refused alone, and its excess never fills its cache.
  if (!token_rate_.charge(device_id, Steady::now()).record) {
    return fail(ErrorCode::kLimitExceeded,
                "token: device " + device_id + " is over limits.token_burst = " +
                    std::to_string(options_.config->limits.token_burst) +
                    " / limits.token_per_minute = " +
                    std::to_string(options_.config->limits.token_per_minute));
  }
  if (auto recorded = record_proof(device_id, proof->jti, t); !recorded) {
    return fail(std::move(recorded).error().context("token: proof"));
  }

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

  WARDEN_ASSIGN(slot, allocate_status());
  const auto& [list_id, index] = slot;
  token::Claims c;
  c.iss = options_.issuer_url.empty() ? "warden-issuer" : options_.issuer_url;
  c.sub = device_id;
  c.aud = {request.audience};
  c.iat = t;
  c.nbf = t;
  c.exp = t + ttl;
  c.jti = random_id();
  if (!request.scopes.empty()) {
    std::string scope;
    for (const auto& s : request.scopes) scope += (scope.empty() ? "" : " ") + s;
    c.scope = std::move(scope);
  }
  c.cnf = token::Confirmation{dc.cnf->jkt, dc.cnf->key};
  c.status = token::StatusRef{index, status_uri(list_id)};
  c.device_id = device_id;
  token::WorkloadSelectors ws;
  if (request.selectors.uid) ws.uid = *request.selectors.uid;
  ws.systemd_unit = request.selectors.systemd_unit;
  ws.container_id = request.selectors.container_id;
  ws.image_digest = request.selectors.image_digest;
  ws.executable_digest = request.selectors.exe_digest;
  c.workload = std::move(ws);

  WARDEN_ASSIGN(signer, this->signer());
  protocol::TokenResponse out;
  if (request.format == protocol::TokenFormat::kCwt) {
    WARDEN_ASSIGN(cwt, token::mint_cwt(*signer, c));
    out.token = std::move(cwt);
  } else {
    WARDEN_ASSIGN(jwt, token::mint_jwt(*signer, token::kTypWorkload, c));
    out.token = std::move(jwt);
  }
  out.jti = *c.jti;
  out.expires_at = static_cast<std::uint64_t>(*c.exp);
  out.status_index = index;
  return TokenIssue{std::move(out),
                    {*c.jti, device_id, list_id, index, t, *c.exp, false},
                    to_record(Event{t, device_id, Action::kToken, Decision::kAccept, "",
                                    policy->reference.version,
                                    TokenGrant{grant->rule, *c.jti, request.audience, index}})};
}

Result<std::pair<std::string, std::uint64_t>> Service::allocate_status() {
  std::lock_guard lock(list_mu_);
  if (block_next_ < block_end_) return std::pair{std::to_string(list_number_), block_next_++};
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string id = std::to_string(list_number_);
    auto block = options_.store->allocate_status_indexes(id, kStatusBlock);
    if (block) {
      block_next_ = block->first + 1;
      block_end_ = block->second;
      return std::pair{std::move(id), block->first};
    }
    if (block.error().code != ErrorCode::kLimitExceeded) return fail(std::move(block).error());
    // Full: move on to the next list (another replica may have created it already).
    auto created = options_.store->create_status_list(std::to_string(list_number_ + 1),
                                                      options_.status_list_bits);
    if (!created && created.error().code != ErrorCode::kAlreadyExists)
      return fail(std::move(created).error());
    ++list_number_;
  }
  return fail(ErrorCode::kUnavailable, "token: no free status list index");
}

// ---- revocation --------------------------------------------------------------------------------

Result<bool> Service::revoke_token(const TokenRecord& token) {
  WARDEN_ASSIGN(flipped, options_.store->mark_token_revoked(token.jti));
  // Set the bit even when the record was already marked: a crash between the two writes must
  // not leave a revoked token valid in the list.
  WARDEN_TRY_STATUS(options_.store->set_status_bit(token.list_id, token.status_index, true));
  return flipped;
}

Result<std::uint64_t> Service::revoke_all_tokens(std::string_view device_id) {
  WARDEN_ASSIGN(live, options_.store->live_tokens(device_id, now()));
  std::uint64_t n = 0;
  for (const TokenRecord& t : live) {
    WARDEN_ASSIGN(flipped, revoke_token(t));
    if (flipped) ++n;
  }
  return n;
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
  // Once across replicas: the store holds each applied request's key.
  if (auto fresh = options_.store->record_revoke_request(device.id, ts, t - 2 * kRevokeWindow);
      !fresh) {
    if (fresh.error().code == ErrorCode::kReplay) return already_applied();
    return fail(std::move(fresh).error().context("revoke"));
  }
  protocol::RevokeResponse out;
  if (request.jtis.empty()) {
    WARDEN_ASSIGN(n, revoke_all_tokens(device.id));
    out.revoked = n;
    // The device reported a posture change: no new tokens before it attests again.
    AttestationUpdate u;
    u.reset_count = device.reset_count;
    u.restart_count = device.restart_count;
    u.attested_at = device.last_attested_at;
    u.verdict = "reject";
    u.reasons_json = reasons_to_json({{"revoked", "device report", std::nullopt, request.reason}});
    auto recorded = options_.store->record_attestation(device.id, u);
    forget_device(device.id);
    WARDEN_TRY_STATUS(recorded);
  } else {
    for (const std::string& jti : request.jtis) {
      WARDEN_ASSIGN(record, options_.store->get_token(jti));
      if (record.device_id != device.id) {
        return fail(ErrorCode::kPermissionDenied,
                    "revoke: token " + jti + " was not issued to device " + device.id);
      }
      WARDEN_ASSIGN(flipped, revoke_token(record));
      if (flipped) ++out.revoked;
    }
  }
  audit_log_.write(Event{t, device.id, Action::kRevoke, Decision::kOk, "", "",
                         RevokeApplied{ts, request.reason, out.revoked, request.jtis}});
  return out;
}

// ---- public endpoints --------------------------------------------------------------------------

Result<std::string> Service::jwks_json() {
  WARDEN_ASSIGN(keys, published_keys());
  return keys->to_json();
}

Result<std::string> Service::status_list_jwt(std::string_view list_id) {
  WARDEN_ASSIGN(stored, options_.store->get_status_list(list_id));
  WARDEN_ASSIGN(list, token::StatusList::create(1, static_cast<std::size_t>(stored.bits)));
  for (std::size_t i = 0; i < stored.bytes.size(); ++i) {
    if (stored.bytes[i] == 0) continue;
    for (unsigned b = 0; b < 8; ++b) {
      if ((static_cast<unsigned>(stored.bytes[i]) >> b) & 1U) {
        WARDEN_TRY_STATUS(list.set(i * 8 + b, token::kStatusInvalid));
      }
    }
  }
  WARDEN_ASSIGN(signer, this->signer());
  const std::int64_t t = now();
  constexpr std::int64_t kTtl = 60;
  return token::mint_status_list_jwt(*signer, list, {status_uri(list_id), t, t + 10 * kTtl, kTtl});
}

Status Service::ready() {
  WARDEN_TRY_STATUS(options_.store->ping());
  if (!options_.keys->current_key())
    return fail(ErrorCode::kUnavailable, "issuer: no current signing key");
  return ok();
}

}  // namespace warden::issuer
