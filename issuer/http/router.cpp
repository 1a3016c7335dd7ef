#include "issuer/http/router.h"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "attest/protocol/errors.h"
#include "attest/protocol/limits.h"
#include "attest/protocol/messages.h"
#include "attest/token/json.h"
#include "issuer/http/routes.h"

namespace warden::issuer::http {
namespace {

constexpr std::string_view kJson = "application/json";

std::string_view strip_query(std::string_view target) { return target.substr(0, target.find('?')); }

Response make(unsigned status, std::string_view content_type, std::string body) {
  Response r;
  r.status = status;
  r.content_type = std::string(content_type);
  r.body = std::move(body);
  return r;
}

}  // namespace

ErrorFormat error_format(std::string_view target) {
  const auto path = strip_query(target);
  if (path.starts_with("/v1/") && !path.starts_with("/v1/status-lists/") &&
      !path.starts_with("/v1/status/")) {
    return ErrorFormat::kCbor;
  }
  return ErrorFormat::kJson;
}

Response error_response(std::string_view target, unsigned status, std::string_view code,
                        std::string_view reason) {
  if (error_format(target) == ErrorFormat::kCbor) {
    protocol::ErrorResponse e{std::string(code),
                              std::string(reason.substr(0, protocol::limits::kErrorReason))};
    return make(status, protocol::kContentType, warden::to_string(protocol::encode(e)));
  }
  return make(status, kJson, protocol::error_json(code, reason));
}

unsigned status_of(ErrorCode code) {
  // The issuer's services report limit_exceeded for what a request carries past a cap (a
  // policy over 1 MiB, a status list with no index left for it): 413, as the issuer has always
  // answered. Its rate refusals are answered 429 where they are known (token_reply,
  // over_budget); everything else is the shared table.
  if (code == ErrorCode::kLimitExceeded) return 413;
  return protocol::http_status(code);
}

struct Router::Modules {
  Modules(IssuerService& service, Metrics& metrics, const RouterOptions& options)
      : agent(service, metrics, options) {}
  AgentApi agent;
  RouteTable table;
};

Router::Router(IssuerService& service, Metrics& metrics, RouterOptions options)
    : options_(std::move(options)),
      modules_(std::make_unique<Modules>(service, metrics, options_)) {
  register_public_routes(modules_->table, service, metrics, options_);
  register_agent_routes(modules_->table, modules_->agent);
  register_admin_routes(modules_->table, service, options_);
  register_oauth_routes(modules_->table, service, options_);
  register_ssf_routes(modules_->table, service);
}

Router::~Router() = default;

Response Router::handle(const Request& request) { return modules_->table.dispatch(request); }

std::size_t Router::body_cap(std::string_view target, std::size_t max_body_bytes) const {
  return modules_->table.body_cap(target, max_body_bytes);
}

bool Router::deferred(const Request& request) {
  return request.method == "POST" && strip_query(request.target) == "/v1/token";
}

void Router::handle_async(const Request& request, std::function<void(Response)> done) {
  modules_->agent.token_async(request, std::move(done),
                              [this](const Request& r) { return handle(r); });
}

}  // namespace warden::issuer::http
