#include "issuer/oauth/introspection.h"

#include <boost/json/serialize.hpp>

#include "attest/token/claims.h"
#include "attest/token/jwt.h"
#include "issuer/assign.h"
#include "platform/base/openssl.h"

namespace warden::issuer::oauth {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Introspection inactive(std::string why) {
  Introspection out;
  out.why_inactive = std::move(why);
  return out;
}

bool looks_like_jws(std::string_view token) {
  std::size_t dots = 0;
  for (char c : token) {
    if (c == '.') ++dots;
  }
  return dots == 2;
}

}  // namespace

Result<std::string> form_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c != '%') {
      out += c;
    } else {
      const int hi = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
      const int lo = hi >= 0 ? hex_value(text[i + 2]) : -1;
      if (lo < 0) {
        return fail(ErrorCode::kMalformed, "form: '%' at offset " + std::to_string(i) +
                                               " is not followed by two hex digits");
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
  }
  return out;
}

Result<std::string> parse_introspection_form(std::string_view body,
                                             const IntrospectionLimits& limits) {
  std::optional<std::string> token;
  std::size_t params = 0;
  while (!body.empty()) {
    const std::size_t amp = body.find('&');
    const std::string_view field = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    if (field.empty()) continue;
    if (++params > limits.max_params) {
      return fail(ErrorCode::kLimitExceeded,
                  "form: more than " + std::to_string(limits.max_params) + " parameters");
    }
    const std::size_t eq = field.find('=');
    WARDEN_ASSIGN(name, form_decode(field.substr(0, eq)));
    if (name != "token") continue;  // token_type_hint and extensions are ignored
    if (token) return fail(ErrorCode::kMalformed, "form: the token parameter is repeated");
    const std::string_view raw =
        eq == std::string_view::npos ? std::string_view() : field.substr(eq + 1);
    // Percent-encoding at most triples a byte: refuse before decoding what cannot fit.
    if (raw.size() > 3 * limits.max_token_bytes) {
      return fail(ErrorCode::kLimitExceeded,
                  "form: token longer than " + std::to_string(limits.max_token_bytes) + " bytes");
    }
    WARDEN_ASSIGN(value, form_decode(raw));
    if (value.size() > limits.max_token_bytes) {
      return fail(ErrorCode::kLimitExceeded,
                  "form: token longer than " + std::to_string(limits.max_token_bytes) + " bytes");
    }
    token = std::move(value);
  }
  if (!token || token->empty()) {
    return fail(ErrorCode::kMalformed, "form: the token parameter is missing or empty");
  }
  return *std::move(token);
}

Result<std::shared_ptr<const token::KeySet>> Introspector::keys_for_unknown_kid() {
  const std::int64_t now = sources_.clock->unix_now();
  std::int64_t last = last_reload_.load();
  if (now - last < kReloadInterval || !last_reload_.compare_exchange_strong(last, now)) {
    return fail(ErrorCode::kUnknownKey, "introspection: keys reloaded a moment ago");
  }
  return sources_.published_keys(true);
}

Result<Introspector::Verification> Introspector::verified(std::string_view compact,
                                                          std::int64_t now) {
  const Bytes digest = ossl::sha256(
      ByteSpan(reinterpret_cast<const std::uint8_t*>(compact.data()), compact.size()));  // NOLINT
  const std::string key(digest.begin(), digest.end());
  const auto seen = verified_.find(key);
  token::ClaimChecks checks;
  checks.now = now;
  checks.leeway = 0;
  if (seen.value) {
    if (auto in_time = token::check_claims((*seen.value)->claims, checks); !in_time) {
      return Verification{nullptr, in_time.error().message};
    }
    return Verification{*seen.value, {}};
  }
  token::JwtVerifyOptions options;
  options.typ = std::string(token::kTypWorkload);
  options.checks = checks;
  WARDEN_ASSIGN(keys, sources_.published_keys(false));
  auto jwt = token::verify_jwt(compact, *keys, options);
  if (!jwt && jwt.error().code == ErrorCode::kUnknownKey) {
    auto reloaded = keys_for_unknown_kid();
    if (!reloaded && reloaded.error().code != ErrorCode::kUnknownKey) {
      return fail(std::move(reloaded).error());
    }
    if (reloaded) jwt = token::verify_jwt(compact, **reloaded, options);
  }
  if (!jwt) return Verification{nullptr, jwt.error().message};
  auto out = std::make_shared<const token::VerifiedJwt>(std::move(*jwt));
  verified_.put(key, out, seen);
  return Verification{std::move(out), {}};
}

Result<Introspection> Introspector::introspect(std::string_view compact) {
  // CWTs (binary, never sent in a form as text) and anything else that is no compact JWS.
  if (!looks_like_jws(compact)) return inactive("not a compact JWS");
  const std::int64_t now = sources_.clock->unix_now();
  WARDEN_ASSIGN(verification, verified(compact, now));
  const auto& jwt = verification.jwt;
  if (!jwt) return inactive(verification.why);
  const token::Claims& claims = jwt->claims;
  if (claims.iss != sources_.issuer) return inactive("iss is not this issuer");
  if (!claims.jti || !claims.iat || !claims.sub) return inactive("no jti, iat or sub");

  auto record = sources_.store->get_token(*claims.jti);
  if (!record && record.error().code == ErrorCode::kNotFound) return inactive("unknown jti");
  if (!record) return fail(std::move(record).error());
  if (record->revoked) return inactive("token revoked");
  if (record->device_id != *claims.sub) return inactive("token record names another device");

  auto device = sources_.store->get_device(record->device_id);
  if (!device && device.error().code == ErrorCode::kNotFound) return inactive("device removed");
  if (!device) return fail(std::move(device).error());
  if (device->state == DeviceState::kRevoked) return inactive("device revoked");
  if (device->revoked_at != 0 && device->revoked_at >= *claims.iat) {
    return inactive("device revoked after the token was issued");
  }

  Introspection out;
  out.active = true;
  out.claims = jwt->payload;
  return out;
}

std::string Introspector::to_json(const Introspection& result) {
  if (!result.active) return R"({"active":false})";
  boost::json::object body;
  body["active"] = true;
  for (const auto& [key, value] : result.claims) {
    if (key != "active" && key != "token_type") body[key] = value;
  }
  // The issuer's workload tokens are bound to the caller's key (cnf.jkt): RFC 9449 5.
  body["token_type"] = "DPoP";
  return boost::json::serialize(body);
}

}  // namespace warden::issuer::oauth
