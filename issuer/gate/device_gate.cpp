#include "issuer/gate/device_gate.h"

#include "attest/token/cwt.h"
#include "issuer/assign.h"
#include "platform/base/openssl.h"

namespace warden::issuer::gate {
namespace {

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

DeviceGate::DeviceGate(Options options, tokens::TokenIssuer& tokens)
    : options_(std::move(options)),
      tokens_(tokens),
      devices_(*options_.clock, {kDeviceTtl, kDeviceCacheMax}),
      verified_tokens_(*options_.clock, {kDeviceTtl, kTokenCacheMax}),
      token_rate_({static_cast<double>(options_.limits.token_burst),
                   static_cast<double>(options_.limits.token_per_minute) / 60.0, kDeviceCacheMax}) {
}

Result<DeviceGate::Admitted> DeviceGate::admit(const protocol::TokenRequest& request,
                                               const RequestTarget& target, std::int64_t t) {
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
  WARDEN_ASSIGN(device, status(device_id));
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
  const auto& bases = options_.proof_bases;
  if (!bases.empty()) {
    // htu must name this issuer as configured, never what the client put in its Host header.
    const std::string path = url_path(check.htu);
    check.htu = bases.front() + path;
    for (std::size_t i = 1; i < bases.size(); ++i) check.htu_aliases.push_back(bases[i] + path);
  }
  check.now = t;
  check.max_age = kProofMaxAge;
  check.leeway = kProofLeeway;
  check.expected_jkt = dc.cnf->jkt;
  auto proof = token::verify_proof_unrecorded(request.proof, check);
  if (!proof) return fail(std::move(proof).error().context("token: proof"));
  // After the proof's signature (only the device's key can spend its rate), before its jti is
  // recorded: a device over its rate is refused alone, and its excess never fills its cache.
  if (!token_rate_.charge(device_id).record) {
    return fail(
        ErrorCode::kLimitExceeded,
        "token: device " + device_id +
            " is over limits.token_burst = " + std::to_string(options_.limits.token_burst) +
            " / limits.token_per_minute = " + std::to_string(options_.limits.token_per_minute));
  }
  if (auto recorded = record_proof(device_id, proof->jti, t); !recorded) {
    return fail(std::move(recorded).error().context("token: proof"));
  }
  std::string id = device_id;
  return Admitted{std::move(*verified), std::move(id), std::move(device)};
}

Result<DeviceStatus> DeviceGate::status(const std::string& device_id) {
  const auto seen = devices_.find(device_id);
  if (seen.value) return *seen.value;
  WARDEN_ASSIGN(device, options_.store->get_device(device_id));
  DeviceStatus s;
  s.state = device.state;
  s.last_verdict = std::move(device.last_verdict);
  s.group = std::move(device.group);
  s.revoked_at = device.revoked_at;
  // Not stored when a write of this process evicted devices while the row was read.
  devices_.put(device_id, s, seen);
  return s;
}

void DeviceGate::forget(std::string_view device_id) { devices_.evict(std::string(device_id)); }

void DeviceGate::housekeeping(std::int64_t t) {
  (void)token_rate_.drain();  // forgets idle devices
  std::lock_guard lock(replay_mu_);
  prune_proofs(t);
}

Result<token::Claims> DeviceGate::verified_device_token(ByteSpan device_token, std::int64_t t) {
  const Bytes digest = ossl::sha256(device_token);
  const std::string key(digest.begin(), digest.end());
  // Past exp the token is verified again, which applies the leeway and reports the expiry.
  const auto seen = verified_tokens_.find(key);
  if (seen.value) return *seen.value;
  WARDEN_ASSIGN(keys, tokens_.published_keys());
  const token::ClaimChecks verify_options{
      .now = t, .leeway = 5, .audience = std::nullopt, .require_exp = true};
  auto verified = token::verify_cwt(device_token, *keys, verify_options);
  if (!verified && verified.error().code == ErrorCode::kUnknownKey) {
    // Signed by a key another replica published since the cache was loaded.
    WARDEN_ASSIGN(fresh, tokens_.published_keys(true));
    verified = token::verify_cwt(device_token, *fresh, verify_options);
  }
  if (!verified) return fail(std::move(verified).error());
  token::Claims claims = std::move(verified->claims);
  const auto exp =
      TtlCache<std::string, token::Claims>::TimePoint(std::chrono::seconds(claims.exp.value_or(t)));
  verified_tokens_.put_until(key, claims, seen, exp);
  return claims;
}

void DeviceGate::prune_proofs(std::int64_t t) {
  for (auto it = proof_replay_.begin(); it != proof_replay_.end();) {
    it = it->second.prune(t) == 0 ? proof_replay_.erase(it) : std::next(it);
  }
}

std::size_t DeviceGate::proof_cache_capacity() const {
  const auto& limits = options_.limits;
  return static_cast<std::size_t>(limits.token_burst) +
         static_cast<std::size_t>(limits.token_per_minute) *
             static_cast<std::size_t>(kProofMaxAge + kProofLeeway + 59) / 60 +
         1;
}

Status DeviceGate::record_proof(const std::string& device_id, const std::string& jti,
                                std::int64_t t) {
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

}  // namespace warden::issuer::gate
