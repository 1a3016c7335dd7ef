#include "attest/token/dpop.h"

#include <algorithm>

#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::token {
namespace {

Status mismatch(const std::string& what) {
  return fail(ErrorCode::kProofMismatch, "proof mismatch: " + what);
}

}  // namespace

std::string access_token_hash(std::string_view token) {
  return base64url_encode(ossl::sha256(to_bytes(token)));
}

Result<std::string> create_proof(Signer& signer, const ProofRequest& request, std::int64_t now,
                                 Random& random) {
  Bytes jti(16);
  random.fill(jti);
  boost::json::object header;
  header["typ"] = kTypProof;
  header["jwk"] = signer.public_jwk().required_members();
  boost::json::object claims;
  claims["jti"] = base64url_encode(jti);
  claims["htm"] = request.htm;
  claims["htu"] = request.htu;
  claims["iat"] = now;
  if (request.access_token) claims["ath"] = access_token_hash(*request.access_token);
  if (request.nonce) claims["nonce"] = *request.nonce;
  return sign_jws(signer, std::move(header), claims);
}

void ReplayCache::expire(std::int64_t now) {
  while (!order_.empty() && order_.front().first + window_ < now) {
    auto it = seen_.find(order_.front().second);
    if (it != seen_.end() && it->second == order_.front().first) seen_.erase(it);
    order_.pop_front();
  }
}

Status ReplayCache::check_and_insert(const std::string& jti, std::int64_t now) {
  expire(now);
  if (seen_.contains(jti)) return fail(ErrorCode::kReplay, "proof replayed: jti seen before");
  if (seen_.size() >= capacity_) {
    return fail(ErrorCode::kLimitExceeded, "proof replay cache full; try again later");
  }
  seen_.emplace(jti, now);
  order_.emplace_back(now, jti);
  return ok();
}

Result<VerifiedProof> verify_proof(std::string_view proof, const ProofCheck& check,
                                   ReplayCache& replay) {
  auto verified = verify_proof_unrecorded(proof, check);
  if (!verified) return verified;
  WARDEN_TRY_STATUS(replay.check_and_insert(verified->jti, check.now));
  return verified;
}

Result<VerifiedProof> verify_proof_unrecorded(std::string_view proof, const ProofCheck& check) {
  auto jws = decode_jws(proof);
  if (!jws) return fail(jws.error().context("proof"));
  auto typ = json::get_string(jws->header, "typ");
  if (!typ || *typ != kTypProof) WARDEN_TRY_STATUS(mismatch("typ must be dpop+jwt"));
  const auto* jwk_json = json::get_object(jws->header, "jwk");
  if (jwk_json == nullptr) WARDEN_TRY_STATUS(mismatch("header has no jwk"));
  auto key = Jwk::from_json(*jwk_json);  // refuses private members
  if (!key) return fail(ErrorCode::kProofMismatch, "proof mismatch: " + key.error().message);
  auto alg = header_alg(jws->header, {Alg::kEs256, Alg::kEs384, Alg::kEdDsa, Alg::kRs256});
  if (!alg) return fail(alg.error());
  WARDEN_TRY_STATUS(key->verify(*alg, to_bytes(jws->signing_input), jws->signature));
  const auto& c = jws->payload;
  auto htm = json::get_string(c, "htm");
  auto htu = json::get_string(c, "htu");
  auto jti = json::get_string(c, "jti");
  auto iat = json::get_int(c, "iat");
  if (!htm || *htm != check.htm) WARDEN_TRY_STATUS(mismatch("htm differs from " + check.htm));
  const bool htu_known =
      htu && (*htu == check.htu || std::find(check.htu_aliases.begin(), check.htu_aliases.end(),
                                             *htu) != check.htu_aliases.end());
  if (!htu_known || htu->find_first_of("?#") != std::string_view::npos) {
    WARDEN_TRY_STATUS(mismatch("htu differs from " + check.htu));
  }
  if (!jti || jti->empty() || jti->size() > 256) WARDEN_TRY_STATUS(mismatch("missing jti"));
  if (!iat) WARDEN_TRY_STATUS(mismatch("missing iat"));
  if (*iat < check.now - check.max_age || *iat > check.now + check.leeway) {
    WARDEN_TRY_STATUS(mismatch("iat " + std::to_string(*iat) + " outside the window around " +
                               std::to_string(check.now)));
  }
  if (check.access_token) {
    auto ath = json::get_string(c, "ath");
    if (!ath || *ath != access_token_hash(*check.access_token)) {
      WARDEN_TRY_STATUS(mismatch("ath does not match the access token"));
    }
  }
  if (check.nonce) {
    auto nonce = json::get_string(c, "nonce");
    if (!nonce || *nonce != *check.nonce) WARDEN_TRY_STATUS(mismatch("nonce differs"));
  }
  std::string jkt = key->thumbprint();
  if (check.expected_jkt && jkt != *check.expected_jkt) {
    WARDEN_TRY_STATUS(mismatch("key thumbprint differs from the token's cnf.jkt"));
  }
  return VerifiedProof{std::move(*key), std::move(jkt), std::string(*jti), *iat};
}

}  // namespace warden::token
