// The workload API: tokens, proofs and sealed secrets. Issuer round trips and TPM commands run
// outside mu_; a token fetched under a device token that was replaced or revoked meanwhile is
// never handed out.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "agent/agent.h"
#include "agent/agent_detail.h"
#include "agent/sealing.h"
#include "attest/token/cwt.h"
#include "attest/token/dpop.h"
#include "attest/token/json.h"
#include "attest/token/jwt.h"
#include "platform/base/encoding.h"

namespace warden::agent {
namespace {

std::string token_text(const protocol::TokenResponse& t) {
  if (const auto* s = std::get_if<std::string>(&t.token)) return *s;
  return base64url_encode(std::get<Bytes>(t.token));
}

void set_status_list(std::string_view uri, CachedToken& out) {
  const auto slash = uri.rfind('/');
  out.status_list = std::string(slash == std::string_view::npos ? uri : uri.substr(slash + 1));
}

// The status list reference (RFC draft "status" claim) of a token we were handed: our own
// issuer's, over TLS, so not verified again; only used to know which list to poll and where.
// JWT: the JSON claim; CWT (base64url in the cache): claim 65535 of the COSE_Sign1 payload.
void status_ref(const std::string& text, TokenFormat format, CachedToken& out) {
  if (format == TokenFormat::kJwt) {
    auto jws = token::decode_jws(text);
    if (!jws) return;
    const auto* status = json::get_object(jws->payload, "status");
    const auto* list = status ? json::get_object(*status, "status_list") : nullptr;
    if (list == nullptr) return;
    if (auto uri = json::get_string(*list, "uri")) set_status_list(*uri, out);
    return;
  }
  auto raw = base64url_decode(text);
  if (!raw) return;
  auto msg = token::decode_cose_sign1(*raw);
  if (!msg) return;
  auto payload = cbor::decode(msg->payload, token::kCoseLimits);
  if (!payload) return;
  auto claims = token::claims_from_cbor(*payload);
  if (!claims || !claims->status) return;
  out.status_index = claims->status->idx;
  set_status_list(claims->status->uri, out);
}

protocol::WorkloadSelectors to_protocol(const os::Selectors& s) {
  protocol::WorkloadSelectors w;
  w.uid = s.uid;
  w.gid = s.gid;
  if (!s.systemd_unit.empty()) w.systemd_unit = s.systemd_unit;
  if (!s.container_id.empty()) w.container_id = s.container_id;
  if (!s.container_runtime.empty()) w.container_runtime = s.container_runtime;
  if (!s.exe_path.empty()) w.exe_path = s.exe_path;
  if (!s.exe_sha256.empty()) w.exe_digest = "sha256:" + s.exe_sha256;
  return w;
}

TokenResponse respond(const CachedToken& c) {
  return TokenResponse{c.token, "DPoP", c.jti, c.expires_at};
}

}  // namespace

Result<TokenResponse> Agent::token(const os::Selectors& caller, const TokenRequest& request) {
  std::unique_lock lock(mu_);
  auto refused = [&] {
    const bool revoked = lifecycle_.state() == AgentState::kRevoked;
    return fail(revoked ? ErrorCode::kRevoked : ErrorCode::kUnavailable,
                "token: agent is " + std::string(to_string(lifecycle_.state())) +
                    ", not serving (" + reason_ + ")");
  };
  if (!may_serve_cached()) return refused();
  const TokenFormat format = request.format.value_or(options_.config.token_format);
  const auto ttl =
      std::min(request.ttl.value_or(options_.config.token_ttl), options_.config.token_max_ttl);
  if (ttl.count() <= 0) return fail(ErrorCode::kInvalidArgument, "token: ttl must be positive");
  const std::string owner = workload_identity(caller);
  const std::string key =
      TokenCache::key(owner, request.audience, request.scopes, format, ttl.count());
  const std::int64_t t = now();
  std::optional<CachedToken> cached;
  if (const CachedToken* c = cache_.find(key, t); c != nullptr) cached = *c;
  if (cached) {
    const std::int64_t life = std::max<std::int64_t>(cached->expires_at - cached->issued_at, 1);
    if (t < cached->expires_at - life / 5 || lifecycle_.state() != AgentState::kServing)
      return respond(*cached);
  }
  if (lifecycle_.state() != AgentState::kServing) {
    return fail(ErrorCode::kUnavailable, "token: issuer unreachable (" + reason_ +
                                             ") and no unexpired token for this request");
  }

  protocol::TokenRequest req;
  req.selectors = to_protocol(caller);
  if (!caller.container_id.empty() && options_.image_of) {
    if (auto image = options_.image_of(caller.container_id)) {
      if (!image->reference.empty()) req.selectors.image_ref = image->reference;
      if (!image->digest.empty()) req.selectors.image_digest = image->digest;
    }
  }
  req.audience = request.audience;
  req.scopes = request.scopes;
  req.ttl = static_cast<std::uint32_t>(ttl.count());
  req.format =
      format == TokenFormat::kCwt ? protocol::TokenFormat::kCwt : protocol::TokenFormat::kJwt;
  bool reattested = false;
  for (int attempt = 0;; ++attempt) {
    if (proof_signer_ == nullptr || device_token_.empty())
      return fail(ErrorCode::kUnavailable, "token: no device token (not attested)");
    const std::uint64_t epoch = epoch_;
    const std::shared_ptr<token::Signer> signer = proof_signer_;
    req.device_token = device_token_;
    lock.unlock();
    auto fetched = [&]() -> Result<protocol::TokenResponse> {
      const std::string htu = options_.issuer->token_url();
      auto proof = token::create_proof(*signer, {"POST", htu, std::nullopt, std::nullopt}, now(),
                                       *options_.random);
      if (!proof) return fail(std::move(proof).error().context("token: device proof"));
      req.proof = std::move(*proof);
      return options_.issuer->token(req);
    }();
    lock.lock();
    if (epoch != epoch_) {
      // Revoked or re-attested while the issuer answered: the token is bound to a key this agent
      // no longer proves with (or must not be handed out at all). Ask again once serving.
      if (lifecycle_.state() != AgentState::kServing || attempt >= 2) return refused();
      cached.reset();
      continue;
    }
    if (!fetched && fetched.error().code == ErrorCode::kRevoked && !reattested) {
      // The issuer no longer takes this device token: the device was revoked (and perhaps
      // enabled again between two status polls). Attest once now; a device still revoked is
      // refused there and this agent revokes, one that was enabled again gets a fresh token.
      spdlog::info("agent: the issuer refused the device token ({}); attesting again",
                   fetched.error().message);
      reattested = true;
      if (reattest(lock, "issuer refused the device token")) {
        cached.reset();
        continue;
      }
    }
    if (!fetched) {
      if (cached && detail::issuer_unreachable(fetched.error())) return respond(*cached);
      return fail(std::move(fetched).error());
    }
    CachedToken entry;
    entry.token = token_text(*fetched);
    entry.jti = fetched->jti;
    entry.issued_at = t;
    entry.expires_at = static_cast<std::int64_t>(fetched->expires_at);
    entry.owner = owner;
    entry.container_id = caller.container_id;
    entry.status_index = fetched->status_index;
    status_ref(entry.token, format, entry);
    TokenResponse out = respond(entry);
    cache_.put(key, std::move(entry));
    return out;
  }
}

Result<ProofResponse> Agent::proof(const os::Selectors& caller, const ProofRequest& request) {
  std::unique_lock lock(mu_);
  if (!may_serve_cached() || proof_signer_ == nullptr) {
    return fail(ErrorCode::kRevoked, "proof: agent is " +
                                         std::string(to_string(lifecycle_.state())) +
                                         ", not proving (" + reason_ + ")");
  }
  const CachedToken* t = cache_.by_jti(request.jti, now());
  // Same answer for "unknown" and "someone else's": a caller learns nothing about other jtis.
  if (t == nullptr || t->owner != workload_identity(caller)) {
    return fail(ErrorCode::kPermissionDenied,
                "proof: no unexpired token with this jti was issued to the calling workload");
  }
  const std::string access_token = t->token;
  const std::shared_ptr<token::Signer> signer = proof_signer_;
  lock.unlock();
  // Outside mu_: in tpm proof mode this is a TPM command.
  std::string htu = request.htu;
  if (auto q = htu.find_first_of("?#"); q != std::string::npos) htu.resize(q);
  auto p = token::create_proof(*signer, {request.htm, htu, access_token, std::nullopt}, now(),
                               *options_.random);
  if (!p) return fail(std::move(p).error().context("proof"));
  return ProofResponse{std::move(*p)};
}

Result<SecretBytes> Agent::secret(const os::Selectors& caller, const std::string& name) {
  std::unique_lock lock(mu_);
  if (lifecycle_.state() != AgentState::kServing) {
    return fail(ErrorCode::kUnavailable, "secret: agent is " +
                                             std::string(to_string(lifecycle_.state())) +
                                             "; secrets are released only while serving");
  }
  auto sealed = store_.load_secret(name);
  if (!sealed) return fail(std::move(sealed).error().context("secret"));
  if (!*sealed) return fail(ErrorCode::kNotFound, "secret: no secret named \"" + name + "\"");
  const bool allowed = std::any_of((*sealed)->allow.begin(), (*sealed)->allow.end(),
                                   [&](const SelectorMatch& m) { return m.matches(caller); });
  if (!allowed) {
    return fail(ErrorCode::kPermissionDenied,
                "secret: the caller matches none of the selectors allowed for \"" + name + "\"");
  }
  auto authority = store_.load_seal_authority();
  if (!authority) return fail(std::move(authority).error().context("secret"));
  std::optional<Bytes> approval;
  if ((*sealed)->blob.version == 2) {
    auto stored = store_.load_approval();
    if (!stored) return fail(std::move(stored).error().context("secret"));
    if (!*stored) {
      return fail(ErrorCode::kPolicyViolation,
                  "secret " + name +
                      ": no approved policy yet; the issuer signs one after an "
                      "attestation that passes");
    }
    approval = std::move(**stored);
  }
  lock.unlock();
  // The PCR policy, not the agent's state, guards the value: a posture change in between makes
  // the unseal fail.
  if (approval) {
    auto parsed = attest::tpm_policy::ApprovedPolicy::parse(*approval);
    if (!parsed) return fail(std::move(parsed).error().context("secret " + name));
    auto value = tpm_.unseal_authorized((*sealed)->blob, to_tpm(*parsed));
    if (!value) return fail(std::move(value).error().context("secret " + name));
    return std::move(*value);
  }
  auto value = tpm_.unseal((*sealed)->blob);
  if (!value) return fail(std::move(value).error().context("secret " + name));
  if (*authority) migrate_secret(name, **sealed, **authority, *value);
  return std::move(*value);
}

// A version-1 (PolicyPCR) blob read while the PCRs still match: resealed to the issuer's
// authority so that the next update does not lock it out. Best effort: the v1 blob stays until
// the v2 one is written.
void Agent::migrate_secret(const std::string& name, const SealedSecret& old, ByteSpan authority,
                           const SecretBytes& value) {
  auto blob =
      tpm_.seal_authorized(authority, attest::tpm_policy::epoch_policy_ref(0), value.view());
  if (!blob) {
    spdlog::warn("agent: secret \"{}\" not migrated to the sealing authority: {}", name,
                 blob.error().message);
    return;
  }
  std::lock_guard lock(mu_);
  announce_write(store_.secret_path(name));
  if (auto saved = store_.save_secret(name, {old.allow, std::move(*blob)}); !saved) {
    spdlog::warn("agent: secret \"{}\" not migrated: {}", name, saved.error().message);
    return;
  }
  spdlog::info("agent: secret \"{}\" migrated from PolicyPCR to the issuer's sealing authority",
               name);
}

Status Agent::seal_secret(const os::Selectors& caller, const SealRequest& request) {
  std::unique_lock lock(mu_);
  WARDEN_TRY_STATUS(StateStore::check_secret_name(request.name));
  auto not_serving = [&] {
    return fail(ErrorCode::kUnavailable,
                "seal: agent is " + std::string(to_string(lifecycle_.state())) +
                    "; secrets are sealed only to a state the issuer accepted");
  };
  if (lifecycle_.state() != AgentState::kServing) return not_serving();
  if (request.allow.empty())
    return fail(ErrorCode::kInvalidArgument, "seal: at least one allow rule is required");
  const PcrSelection selection = seal_selection(options_.config);
  if (selection.empty())
    return fail(ErrorCode::kInvalidArgument, "seal: tpm.pcrs has no sha256 boot PCR to seal to");
  const std::uint64_t epoch = epoch_;
  auto authority = store_.load_seal_authority();
  if (!authority) return fail(std::move(authority).error().context("seal"));
  lock.unlock();
  // With the issuer's authority, any boot state it approves unseals (TPM2_PolicyAuthorize);
  // without one (an issuer that predates it), the current PCR values only.
  auto blob = *authority
                  ? tpm_.seal_authorized(**authority, attest::tpm_policy::epoch_policy_ref(0),
                                         request.value.view())
                  : tpm_.seal(selection, request.value.view());
  lock.lock();
  if (!blob) return fail(std::move(blob).error().context("seal " + request.name));
  // Sealed to PCR values the issuer may no longer accept: keep nothing.
  if (epoch != epoch_ && lifecycle_.state() != AgentState::kServing) return not_serving();
  announce_write(store_.secret_path(request.name));
  WARDEN_TRY_STATUS(store_.save_secret(request.name, {request.allow, std::move(*blob)}));
  spdlog::info("agent: sealed secret \"{}\" for uid {} (pid {})", request.name, caller.uid,
               caller.pid);
  return ok();
}

}  // namespace warden::agent
