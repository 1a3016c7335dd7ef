#include "issuer/tokens/token_issuer.h"

#include "attest/token/cwt.h"
#include "attest/token/jwt.h"
#include "attest/token/status_list.h"
#include "issuer/assign.h"
#include "platform/base/openssl.h"

namespace warden::issuer::tokens {

TokenIssuer::TokenIssuer(Options options)
    : options_(std::move(options)),
      signers_(*options_.clock, {kSignerTtl, 4}),
      keys_(*options_.clock, {kKeysTtl, 4}) {}

Status TokenIssuer::init() {
  for (;; ++list_number_) {
    auto next = options_.store->get_status_list(std::to_string(list_number_ + 1));
    if (!next && next.error().code == ErrorCode::kNotFound) break;
    if (!next) return fail(std::move(next).error());
  }
  auto created =
      options_.store->create_status_list(std::to_string(list_number_), options_.status_list_bits);
  if (!created && created.error().code != ErrorCode::kAlreadyExists)
    return fail(std::move(created).error());
  return ok();
}

std::string TokenIssuer::issuer_name() const {
  return options_.issuer_url.empty() ? "warden-issuer" : options_.issuer_url;
}

std::string TokenIssuer::status_uri(std::string_view list_id) const {
  return options_.issuer_url + "/v1/status/" + std::string(list_id);
}

Result<std::shared_ptr<token::EcSigner>> TokenIssuer::signer() {
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

Result<std::shared_ptr<const token::KeySet>> TokenIssuer::published_keys(bool reload) {
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

Result<std::pair<std::string, std::uint64_t>> TokenIssuer::allocate_status() {
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

Result<bool> TokenIssuer::revoke_token(const TokenRecord& token) {
  DeviceChange change;
  change.device_id = token.device_id;
  change.now = options_.clock->unix_now();
  change.tokens = {token};
  WARDEN_ASSIGN(revoked, options_.store->apply_device_change(change));
  return !revoked.empty();
}

Result<std::uint64_t> TokenIssuer::revoke_all_tokens(std::string_view device_id) {
  DeviceChange change;
  change.device_id = std::string(device_id);
  change.now = options_.clock->unix_now();
  change.revoke_live_tokens = true;
  WARDEN_ASSIGN(revoked, options_.store->apply_device_change(change));
  return revoked.size();
}

Result<TokenIssuer::Minted> TokenIssuer::mint_workload(const Workload& w) {
  const protocol::TokenRequest& request = *w.request;
  WARDEN_ASSIGN(slot, allocate_status());
  const auto& [list_id, index] = slot;
  token::Claims c;
  c.iss = issuer_name();
  c.sub = w.device_id;
  c.aud = {request.audience};
  c.iat = w.now;
  c.nbf = w.now;
  c.exp = w.now + w.ttl;
  c.jti = w.jti;
  if (!request.scopes.empty()) {
    std::string scope;
    for (const auto& s : request.scopes) scope += (scope.empty() ? "" : " ") + s;
    c.scope = std::move(scope);
  }
  c.cnf = w.cnf;
  c.status = token::StatusRef{index, status_uri(list_id)};
  c.device_id = w.device_id;
  token::WorkloadSelectors ws;
  if (request.selectors.uid) ws.uid = *request.selectors.uid;
  ws.systemd_unit = request.selectors.systemd_unit;
  ws.container_id = request.selectors.container_id;
  ws.image_ref = request.selectors.image_ref;
  ws.image_digest = request.selectors.image_digest;
  // A container the agent could not find the image of says so, rather than look like the host.
  if (ws.container_id && !ws.image_ref && !ws.image_digest) ws.image_ref = "unknown";
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
  return Minted{std::move(out), {*c.jti, w.device_id, list_id, index, w.now, *c.exp, false}};
}

Result<std::string> TokenIssuer::jwks_json() {
  WARDEN_ASSIGN(keys, published_keys());
  return keys->to_json();
}

Result<std::string> TokenIssuer::status_list_jwt(std::string_view list_id) {
  WARDEN_ASSIGN(stored, options_.store->get_status_list(list_id));
  Bytes digest = ossl::sha256(stored.bytes);
  const std::int64_t t = options_.clock->unix_now();
  {
    std::lock_guard lock(signed_lists_mu_);
    auto it = signed_lists_.find(list_id);
    if (it != signed_lists_.end() && it->second.digest == digest &&
        t - it->second.iat < kStatusListResign && t >= it->second.iat) {
      return it->second.jwt;
    }
  }
  WARDEN_ASSIGN(list, token::StatusList::create(1, static_cast<std::size_t>(stored.bits)));
  for (std::size_t i = 0; i < stored.bytes.size(); ++i) {
    if (stored.bytes[i] == 0) continue;
    for (unsigned b = 0; b < 8; ++b) {
      if (((static_cast<unsigned>(stored.bytes[i]) >> b) & 1U) != 0U) {
        WARDEN_TRY_STATUS(list.set(i * 8 + b, token::kStatusInvalid));
      }
    }
  }
  WARDEN_ASSIGN(signer, this->signer());
  WARDEN_ASSIGN(jwt, token::mint_status_list_jwt(*signer, list,
                                                 {status_uri(list_id), t, t + kStatusListLifetime,
                                                  options_.status_list_ttl_s}));
  std::lock_guard lock(signed_lists_mu_);
  // Lists are few ("1", "2", ...) but ids come from the request path: unknown ones fail above.
  if (signed_lists_.size() >= 64) signed_lists_.clear();
  signed_lists_[std::string(list_id)] = SignedList{std::move(digest), t, jwt};
  return jwt;
}

}  // namespace warden::issuer::tokens
