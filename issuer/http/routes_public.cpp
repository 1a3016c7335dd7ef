#include "attest/protocol/limits.h"
#include "issuer/http/routes.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::issuer::http {
namespace {
constexpr std::string_view kJson = "application/json";

/// A strong validator of the bytes served: the issuer signs an unchanged list again only now
/// and then (tokens::TokenIssuer::status_list_jwt), so the tag changes when a bit flips.
std::string strong_etag(std::string_view body) {
  const Bytes digest = ossl::sha256(to_bytes(body));
  return "\"" + base64url_encode(ByteSpan(digest).first(16)) + "\"";
}

/// If-None-Match (RFC 9110 13.1.2): "*" or a list of tags, compared weakly.
bool none_match_hits(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    const std::size_t comma = header.find(',');
    std::string_view tag = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag == "*") return true;
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == etag) return true;
  }
  return false;
}
}  // namespace

void register_public_routes(RouteTable& table, IssuerService& service, Metrics& metrics,
                            const RouterOptions& options) {
  table.add(Route{"GET", "/healthz", BodyFormat::kNone, "",
                  [](const RouteContext&) { return make_response(200, "text/plain", "ok\n"); }});
  table.add(Route{"GET", "/readyz", BodyFormat::kNone, "", [&service](const RouteContext&) {
                    if (auto ready = service.ready(); !ready) {
                      return make_response(503, "text/plain",
                                           "not ready: " + ready.error().message + "\n");
                    }
                    return make_response(200, "text/plain", "ready\n");
                  }});
  Route metrics_route{"GET", "/metrics", BodyFormat::kNone, "", [&metrics](const RouteContext&) {
                        return make_response(200, "text/plain; version=0.0.4", metrics.render());
                      }};
  // Request counts, verdicts and connection figures tell an outsider how the fleet fares: for
  // the host's own scraper (loopback) and admin clients unless metrics.allow_remote.
  metrics_route.admit = [allow_remote = options.metrics_allow_remote](
                            const Request& request) -> std::optional<Response> {
    const Peer& p = request.peer;
    if (allow_remote || p.loopback || p.client_cert_verified || p.socket_uid) return std::nullopt;
    return error_response(request.target, 403, to_string(ErrorCode::kPermissionDenied),
                          "/metrics answers loopback and admin clients only (metrics.allow_remote "
                          "= true opens it to every caller)");
  };
  table.add(std::move(metrics_route));
  table.add(
      {"GET", "/.well-known/jwks.json", BodyFormat::kNone, "", [&service](const RouteContext& c) {
         auto jwks = service.jwks_json();
         if (!jwks) return service_error(c.request.target, jwks.error());
         Response r = make_response(200, kJson, std::move(*jwks));
         r.headers["cache-control"] = "max-age=60";
         return r;
       }});
  // /v1/status/{id} is the URI inside tokens; /v1/status-lists/{id} the documented alias.
  const std::string label = "/v1/status-lists/{id}";
  const IssuerConfig* config = service.config();
  const std::uint32_t max_age = config != nullptr ? config->status_list.max_age_s
                                                  : IssuerConfig::StatusListCaching{}.max_age_s;
  const std::string cache_control = "max-age=" + std::to_string(max_age);
  for (const char* prefix : {"/v1/status/", "/v1/status-lists/"}) {
    table.add_scope(Scope(prefix, label, "no such status list"));
    Route r{"GET", std::string(prefix) + "{id}", BodyFormat::kNone, label,
            [&service, cache_control](const RouteContext& c) {
              auto jwt = service.status_list_jwt(c.params[0]);
              if (!jwt) return service_error(c.request.target, jwt.error());
              const std::string etag = strong_etag(*jwt);
              Response out;
              if (none_match_hits(c.request.if_none_match, etag)) {
                out = make_response(304, "", "");
              } else {
                out = make_response(200, "application/statuslist+jwt", std::move(*jwt));
              }
              out.headers["etag"] = etag;
              out.headers["cache-control"] = cache_control;
              return out;
            }};
    r.max_param = protocol::limits::kId;
    table.add(std::move(r));
  }
}

}  // namespace warden::issuer::http
