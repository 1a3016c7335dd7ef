#include <spdlog/spdlog.h>

#include "attest/protocol/limits.h"
#include "attest/protocol/messages.h"
#include "issuer/http/routes.h"

namespace warden::issuer::http {
namespace {

Response cbor_ok(const Bytes& body) {
  return make_response(200, protocol::kContentType, warden::to_string(body));
}

Response decode_failed(const RouteContext& c, const Error& e) {
  return error_response(c.request.target, 400, to_string(e.code), e.message);
}

template <class T>
Response reply(const RouteContext& c, const Result<T>& result) {
  if (!result) return service_error(c.request.target, result.error());
  return cbor_ok(protocol::encode(*result));
}

/// A CBOR route: decode the body with `decode`, then `call` the service with it.
template <class Decode, class Call>
Route cbor_route(std::string pattern, std::size_t max_body, Decode decode, Call call) {
  Route r{"POST", std::move(pattern), BodyFormat::kCbor, "",
          [decode, call](const RouteContext& c) -> Response {
            auto req = decode(ByteSpan(c.request.body));
            if (!req) return decode_failed(c, req.error());
            return call(c, *req);
          }};
  r.max_body = max_body;
  return r;
}

}  // namespace

AgentApi::AgentApi(IssuerService& s, Metrics& m, const RouterOptions& options)
    : service(s),
      metrics(m),
      refusal_per_second_(options.refusal_per_second),
      address_refusals_({options.refusal_burst, options.refusal_per_second, kAddressKeys}) {}

std::optional<Response> AgentApi::over_budget(const Request& request) {
  const std::string& address = request.peer.address;
  if (address.empty() || !address_refusals_.exhausted(address)) {
    return std::nullopt;
  }
  const auto wait = static_cast<long>(1.0 / std::max(refusal_per_second_, 1e-3)) + 1;
  Response r = error_response(request.target, 429, to_string(ErrorCode::kLimitExceeded),
                              "too many refused requests from " + address + "; retry in " +
                                  std::to_string(wait) +
                                  " s (limits.refusal_burst, limits.refusal_per_minute)");
  r.headers["retry-after"] = std::to_string(wait);
  r.route = "refused_budget";
  return r;
}

void AgentApi::charge_refusal(std::string_view address, const Response& response) {
  bool refused = response.refused_verdict || (response.status >= 400 && response.status < 500);
  // A 403 token refusal is a policy decision about a workload of an authenticated device (its
  // device token and proof verified): charging the agent's address would let one workload cut
  // off its whole device. Those refusals count against the device's audit budget instead.
  if (response.route == "/v1/token" && response.status == 403) refused = false;
  // Likewise a 429 token refusal: the device's own rate (limits.token_burst), not its address's.
  if (response.route == "/v1/token" && response.status == 429) refused = false;
  if (address.empty() || !refused) return;
  const auto charge = address_refusals_.charge(address);
  // Logged when a request finds the budget spent; later ones are answered 429 unlogged.
  if (!charge.record) {
    spdlog::warn("{} is over its budget of refused requests: agent routes answer it 429 for now",
                 charge.key);
  }
}

Response AgentApi::token_reply(std::string_view target,
                               const Result<protocol::TokenResponse>& result) {
  if (result) metrics.token_issued();
  Response r = result ? cbor_ok(protocol::encode(*result)) : service_error(target, result.error());
  // The body was within its cap (checked before the service): from the service, limit_exceeded
  // is the device's token rate or its proof replay cache, which time empties.
  if (!result && result.error().code == ErrorCode::kLimitExceeded) {
    r.status = 429;
    r.headers["retry-after"] = "1";
  }
  r.route = "/v1/token";
  return r;
}

void AgentApi::token_async(const Request& request, std::function<void(Response)> done,
                           const std::function<Response(const Request&)>& sync) {
  const std::string_view media =
      std::string_view(request.content_type).substr(0, request.content_type.find(';'));
  const std::string_view path =
      std::string_view(request.target).substr(0, request.target.find('?'));
  Result<protocol::TokenRequest> req = fail(ErrorCode::kMalformed, "not a token request");
  if (request.method == "POST" && path == "/v1/token" && media == protocol::kContentType &&
      !request.host.empty())
    req = protocol::decode_token_request(request.body);
  // Anything the table refuses before calling the service, it refuses here too.
  if (!req) return done(sync(request));
  if (auto busy = over_budget(request)) return done(std::move(*busy));
  const RequestTarget proof_target{request.method, "https://" + request.host + std::string(path)};
  service.token_async(*req, proof_target,
                      [this, target = request.target, address = request.peer.address,
                       done = std::move(done)](Result<protocol::TokenResponse> result) {
                        Response r = token_reply(target, result);
                        charge_refusal(address, r);
                        done(std::move(r));
                      });
}

void register_agent_routes(RouteTable& table, AgentApi& api) {
  namespace limits = protocol::limits;
  Scope scope("/v1/", "unmatched");
  scope.admit = [&api](const Request& request) { return api.over_budget(request); };
  scope.after = [&api](const Request& request, const Response& response) {
    api.charge_refusal(request.peer.address, response);
  };
  table.add_scope(std::move(scope));
  IssuerService& service = api.service;
  const std::size_t small = std::max(limits::kEnrollRequestBody, limits::kTokenRequestBody);

  table.add(cbor_route("/v1/enroll", small, protocol::decode_enroll_request,
                       [&service](const RouteContext& c, const protocol::EnrollRequest& req) {
                         return reply(c, service.enroll(req));
                       }));
  Route activate{"POST", "/v1/enroll/{id}/activate", BodyFormat::kCbor, "",
                 [&service](const RouteContext& c) -> Response {
                   const std::string_view id = c.params[0];
                   if (id.size() > limits::kId) {
                     return error_response(
                         c.request.target, 400, to_string(ErrorCode::kLimitExceeded),
                         "enrollment id longer than " + std::to_string(limits::kId) + " bytes");
                   }
                   auto req = protocol::decode_activate_request(c.request.body);
                   if (!req) return decode_failed(c, req.error());
                   if (req->enrollment_id != id) {
                     return error_response(
                         c.request.target, 400, to_string(ErrorCode::kInvalidArgument),
                         "activate: enrollment id of the body does not match the URL");
                   }
                   return reply(c, service.activate(id, *req));
                 }};
  table.add(std::move(activate));
  table.add(cbor_route("/v1/challenge", Route::kDefaultMaxBody, protocol::decode_challenge_request,
                       [&service](const RouteContext& c, const protocol::ChallengeRequest& req) {
                         return reply(c, service.challenge(req));
                       }));
  table.add(cbor_route("/v1/attest", Route::kConfiguredMax, protocol::decode_attest_request,
                       [&api](const RouteContext& c, const protocol::AttestRequest& req) {
                         auto res = api.service.attest(req, c.request.body);
                         const bool pass = res && res->verdict == protocol::Verdict::kPass;
                         if (res) api.metrics.attest_verdict(pass ? "pass" : "fail");
                         Response r = reply(c, res);
                         r.refused_verdict = res && !pass;
                         return r;
                       }));
  table.add(cbor_route(
      "/v1/token", small, protocol::decode_token_request,
      [&api](const RouteContext& c, const protocol::TokenRequest& req) -> Response {
        if (c.request.host.empty()) {
          return error_response(c.request.target, 400, to_string(ErrorCode::kInvalidArgument),
                                "token: a Host header is required (the proof names the URL)");
        }
        // RFC 9449: htu is the URI without query and fragment.
        const RequestTarget proof_target{c.request.method,
                                         "https://" + c.request.host + std::string(c.path)};
        return api.token_reply(c.request.target, api.service.token(req, proof_target));
      }));
  table.add(cbor_route("/v1/revoke", limits::kRevokeRequestBody, protocol::decode_revoke_request,
                       [&service](const RouteContext& c, const protocol::RevokeRequest& req) {
                         return reply(c, service.revoke(req));
                       }));
}

}  // namespace warden::issuer::http
