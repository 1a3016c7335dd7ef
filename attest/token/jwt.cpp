#include "attest/token/jwt.h"

#include <algorithm>
#include <cctype>

#include "platform/base/encoding.h"

namespace warden::token {
namespace {

constexpr std::size_t kMaxJwt = 64 * 1024;

Result<boost::json::object> decode_part(std::string_view part, const char* what) {
  auto bytes = base64url_decode(part);
  if (!bytes) return fail(ErrorCode::kMalformed, std::string("jwt: ") + what + " is not base64url");
  auto obj = json::parse_object(to_string(*bytes), {.max_size = kMaxJwt, .max_depth = 16});
  if (!obj) return fail(obj.error().context(std::string("jwt: ") + what));
  return obj;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

Result<UnverifiedJws> decode_jws(std::string_view compact) {
  if (compact.size() > kMaxJwt) {
    return fail(ErrorCode::kLimitExceeded,
                "jwt: longer than " + std::to_string(kMaxJwt) + " bytes");
  }
  auto dot1 = compact.find('.');
  auto dot2 = dot1 == std::string_view::npos ? dot1 : compact.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || compact.find('.', dot2 + 1) != std::string_view::npos) {
    return fail(ErrorCode::kMalformed, "jwt: expected three dot-separated parts (JWS compact)");
  }
  UnverifiedJws jws;
  auto header = decode_part(compact.substr(0, dot1), "header");
  if (!header) return fail(header.error());
  auto payload = decode_part(compact.substr(dot1 + 1, dot2 - dot1 - 1), "payload");
  if (!payload) return fail(payload.error());
  auto sig = base64url_decode(compact.substr(dot2 + 1));
  if (!sig) return fail(ErrorCode::kMalformed, "jwt: signature is not base64url");
  jws.header = std::move(*header);
  jws.payload = std::move(*payload);
  jws.signing_input = std::string(compact.substr(0, dot2));
  jws.signature = std::move(*sig);
  return jws;
}

Result<Alg> header_alg(const boost::json::object& header, const std::vector<Alg>& allowed) {
  auto name = json::get_string(header, "alg");
  if (!name) return fail(ErrorCode::kMalformed, "jwt: header has no \"alg\"");
  auto alg = alg_from_name(*name);
  if (!alg || std::find(allowed.begin(), allowed.end(), *alg) == allowed.end()) {
    return fail(ErrorCode::kAlgorithmNotAllowed,
                "algorithm not allowed: \"" + std::string(*name) + "\"");
  }
  if (const auto* crit = header.if_contains("crit")) {
    // Warden understands no JWS extension, so any crit entry is unknown (RFC 7515 4.1.11).
    (void)crit;
    return fail(ErrorCode::kMalformed, "jwt: unknown critical header parameter(s) in \"crit\"");
  }
  return *alg;
}

Result<std::string> sign_jws(Signer& signer, boost::json::object header,
                             const boost::json::object& payload) {
  header["alg"] = std::string(alg_name(signer.alg()));
  if (!header.contains("jwk") && !signer.kid().empty()) header["kid"] = signer.kid();
  std::string input =
      base64url_encode(json::serialize(header)) + "." + base64url_encode(json::serialize(payload));
  auto sig = signer.sign(to_bytes(input));
  if (!sig) return fail(sig.error().context("jwt"));
  return input + "." + base64url_encode(*sig);
}

Result<std::string> mint_jwt(Signer& signer, std::string_view typ, const Claims& claims) {
  boost::json::object header;
  header["typ"] = typ;
  return sign_jws(signer, std::move(header), claims_to_json(claims));
}

Result<UnverifiedJws> verify_jws_with(std::string_view compact, const Jwk& key,
                                      const std::vector<Alg>& allowed) {
  auto jws = decode_jws(compact);
  if (!jws) return jws;
  auto alg = header_alg(jws->header, allowed);
  if (!alg) return fail(alg.error());
  WARDEN_TRY_STATUS(key.verify(*alg, to_bytes(jws->signing_input), jws->signature));
  return jws;
}

Result<VerifiedJwt> verify_jwt(std::string_view compact, const KeySet& keys,
                               const JwtVerifyOptions& options) {
  auto jws = decode_jws(compact);
  if (!jws) return fail(jws.error());
  auto alg = header_alg(jws->header, options.allowed);
  if (!alg) return fail(alg.error());
  if (options.typ) {
    auto typ = json::get_string(jws->header, "typ");
    if (!typ || !iequals(*typ, *options.typ)) {
      return fail(ErrorCode::kMalformed, "jwt: expected typ \"" + *options.typ + "\", found \"" +
                                             std::string(typ.value_or("")) + "\"");
    }
  }
  const auto* kid_value = jws->header.if_contains("kid");
  if (kid_value != nullptr && !kid_value->is_string()) {
    return fail(ErrorCode::kMalformed, "jwt: \"kid\" is not a string");
  }
  std::string_view kid = kid_value != nullptr ? std::string_view(kid_value->as_string()) : "";
  auto key = keys.find(kid, *alg);
  if (!key) return fail(key.error());
  WARDEN_TRY_STATUS((*key)->verify(*alg, to_bytes(jws->signing_input), jws->signature));
  auto claims = claims_from_json(jws->payload);
  if (!claims) return fail(claims.error());
  WARDEN_TRY_STATUS(check_claims(*claims, options.checks));
  return VerifiedJwt{std::move(jws->header), std::move(jws->payload), std::move(*claims)};
}

}  // namespace warden::token
