#pragma once
// The capability modules of the HTTP API, each adding its routes to the one RouteTable:
// public (health, metrics, JWKS, status lists), agent (CBOR: enroll, challenge, attest, token,
// revoke) and admin (JSON). A coming module (OAuth, Shared Signals, CA) adds a register_*_routes.

#include <functional>
#include <optional>

#include "issuer/http/metrics.h"
#include "issuer/http/route_table.h"
#include "issuer/oauth/introspection.h"
#include "issuer/service.h"
#include "platform/base/refusal_budget.h"

namespace warden::issuer::http {

void register_public_routes(RouteTable& table, IssuerService& service, Metrics& metrics,
                            const RouterOptions& options);

/// What the agent routes keep between requests: the refused requests per client address
/// (limits.refusal_burst, refusal_per_minute); over it, agent routes answer 429 without reaching
/// the service.
class AgentApi {
 public:
  AgentApi(IssuerService& service, Metrics& metrics, const RouterOptions& options);
  /// The 429 for a client address over its refusal budget, or nullopt.
  std::optional<Response> over_budget(const Request& request);
  /// Charges a refused agent request to its client address.
  void charge_refusal(std::string_view address, const Response& response);
  /// POST /v1/token without holding the caller's thread while the token's record commits;
  /// `sync` answers what this refuses before the service (the same as the table would).
  void token_async(const Request& request, std::function<void(Response)> done,
                   const std::function<Response(const Request&)>& sync);
  Response token_reply(std::string_view target, const Result<protocol::TokenResponse>& result);

  IssuerService& service;
  Metrics& metrics;

 private:
  static constexpr std::size_t kAddressKeys = 4096;
  double refusal_per_second_;
  RefusalBudget address_refusals_;  // has its own lock
};

void register_agent_routes(RouteTable& table, AgentApi& api);

void register_admin_routes(RouteTable& table, IssuerService& service, const RouterOptions& options);

/// POST /oauth/introspect (RFC 7662) and /.well-known/oauth-authorization-server (RFC 8414),
/// reading what service.oauth_sources() hands over (none: no routes).
void register_oauth_routes(RouteTable& table, IssuerService& service, const RouterOptions& options);
/// The same with the sources given (a caller authenticator of its own).
void register_oauth_routes(RouteTable& table, oauth::Sources sources,
                           const IssuerConfig::OAuth& settings, const RouterOptions& options);
/// Shared Signals: /.well-known/ssf-configuration, /ssf/streams, /ssf/status, /ssf/verify,
/// /ssf/poll/{id} (docs/ssf.md).
void register_ssf_routes(RouteTable& table, IssuerService& service);

}  // namespace warden::issuer::http
