#include "attest/protocol/limits.h"
#include "issuer/http/routes.h"

namespace warden::issuer::http {
namespace {
constexpr std::string_view kJson = "application/json";
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
  for (const char* prefix : {"/v1/status/", "/v1/status-lists/"}) {
    table.add_scope(Scope(prefix, label, "no such status list"));
    Route r{"GET", std::string(prefix) + "{id}", BodyFormat::kNone, label,
            [&service](const RouteContext& c) {
              auto jwt = service.status_list_jwt(c.params[0]);
              if (!jwt) return service_error(c.request.target, jwt.error());
              Response out = make_response(200, "application/statuslist+jwt", std::move(*jwt));
              out.headers["cache-control"] = "max-age=30";
              return out;
            }};
    r.max_param = protocol::limits::kId;
    table.add(std::move(r));
  }
}

}  // namespace warden::issuer::http
