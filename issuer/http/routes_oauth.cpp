// The OAuth endpoints a relying party uses besides JWKS and status lists: RFC 7662 token
// introspection (POST /oauth/introspect) and RFC 8414 metadata. Errors here are OAuth's
// {"error", "error_description"} (RFC 6749 5.2), not the issuer's {"error", "reason"}.

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "issuer/http/routes.h"
#include "issuer/oauth/introspection.h"
#include "issuer/oauth/metadata.h"

namespace warden::issuer::http {
namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kFormType = "application/x-www-form-urlencoded";
constexpr std::string_view kRealm = "Bearer realm=\"warden-issuer\"";

Response oauth_error(unsigned status, std::string_view error, std::string_view description) {
  Response r = make_response(status, kJson,
                             boost::json::serialize(boost::json::object{
                                 {"error", error}, {"error_description", description}}));
  r.headers["cache-control"] = "no-store";
  return r;
}

bool is_admin(const Peer& peer, const RouterOptions& options) {
  if (peer.socket_uid || peer.client_cert_verified) return true;
  return options.allow_unauthenticated_loopback && peer.loopback;
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

bool is_form(std::string_view content_type) {
  const std::string_view media = content_type.substr(0, content_type.find(';'));
  std::string_view trimmed = media;
  while (trimmed.ends_with(' ')) trimmed.remove_suffix(1);
  return trimmed.size() == kFormType.size() && iequals_prefix(trimmed, kFormType);
}

/// Who may introspect: admins, and callers the injected authenticator names (RFC 7662 2.1
/// requires some authorization, so that tokens cannot be scanned by anyone).
Admission introspection_admission(
    const RouterOptions& options,
    std::function<Result<std::string>(std::string_view)> authenticate) {
  return [options, authenticate =
                       std::move(authenticate)](const Request& request) -> std::optional<Response> {
    if (is_admin(request.peer, options)) return std::nullopt;
    if (request.authorization.empty()) {
      Response r = oauth_error(401, "invalid_client",
                               "introspection needs a receiver's bearer credential "
                               "(Authorization: Bearer ...) or an admin client");
      r.headers["www-authenticate"] = std::string(kRealm);
      return r;
    }
    if (authenticate) {
      auto caller = authenticate(request.authorization);
      if (caller) return std::nullopt;
      const ErrorCode code = caller.error().code;
      if (code == ErrorCode::kUnavailable || code == ErrorCode::kInternal ||
          code == ErrorCode::kIo) {
        spdlog::warn("introspection: authenticating the caller: {}", caller.error().message);
        return oauth_error(503, "temporarily_unavailable", "cannot check the credential now");
      }
    }
    Response r = oauth_error(401, "invalid_token", "the bearer credential is not known");
    r.headers["www-authenticate"] = std::string(kRealm) + ", error=\"invalid_token\"";
    return r;
  };
}

}  // namespace

void register_oauth_routes(RouteTable& table, IssuerService& service,
                           const RouterOptions& options) {
  std::optional<oauth::Sources> sources = service.oauth_sources();
  if (!sources) return;  // a service without them (test doubles): 404 as before
  const IssuerConfig* config = service.config();
  register_oauth_routes(table, std::move(*sources),
                        config != nullptr ? config->oauth : IssuerConfig::OAuth{}, options);
}

void register_oauth_routes(RouteTable& table, oauth::Sources sources,
                           const IssuerConfig::OAuth& settings, const RouterOptions& options) {
  table.add(Route{"GET", std::string(oauth::kMetadataPath), BodyFormat::kNone, "",
                  [issuer_url = sources.issuer_url](const RouteContext&) {
                    auto metadata = oauth::authorization_server_metadata(issuer_url);
                    if (!metadata) return oauth_error(404, "not_found", metadata.error().message);
                    Response r = make_response(200, kJson, std::move(*metadata));
                    r.headers["cache-control"] = "max-age=300";
                    return r;
                  }});
  if (!settings.introspection) return;

  const oauth::IntrospectionLimits limits{settings.max_token_bytes, 16};
  auto authenticate = sources.authenticate;
  auto introspector = std::make_shared<oauth::Introspector>(std::move(sources));
  Route introspect{
      "POST", std::string(oauth::kIntrospectionPath), BodyFormat::kText, "",
      [introspector, limits](const RouteContext& c) {
        if (!is_form(c.request.content_type)) {
          return oauth_error(415, "invalid_request",
                             "expected Content-Type application/x-www-form-urlencoded, found '" +
                                 c.request.content_type + "'");
        }
        auto token = oauth::parse_introspection_form(warden::to_string(c.request.body), limits);
        if (!token) {
          return oauth_error(token.error().code == ErrorCode::kLimitExceeded ? 413 : 400,
                             "invalid_request", token.error().message);
        }
        auto result = introspector->introspect(*token);
        if (!result) {
          spdlog::warn("introspection: {}", result.error().message);
          return oauth_error(503, "temporarily_unavailable", "the issuer cannot decide now");
        }
        Response r = make_response(200, kJson, oauth::Introspector::to_json(*result));
        // An answer about a credential: never cached by intermediaries (RFC 7662 4).
        r.headers["cache-control"] = "no-store";
        return r;
      }};
  // Percent-encoding at most triples the token; the rest is room for token_type_hint.
  introspect.max_body = 3 * settings.max_token_bytes + 1024;
  introspect.admit = introspection_admission(options, std::move(authenticate));
  table.add(std::move(introspect));
}

}  // namespace warden::issuer::http
