#pragma once
// The issuer's one route table: each route names its method, path pattern, body format, body
// cap and metrics label, and the handler; each capability module adds its routes with a
// register_*_routes(RouteTable&, ...) of its own (issuer/http/routes.h). Scopes are path
// prefixes whose requests share an admission check and a 404 (the agent API's refusal budget,
// the admin API's authentication).

#include <cstddef>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "issuer/http/router.h"

namespace warden::issuer::http {

/// What a route's body must be. kCbor bodies are refused (415) without Content-Type
/// application/cbor; the others are read by their handler.
enum class BodyFormat { kNone, kJson, kCbor, kText };

/// A matched request: the {…} segments of the pattern in order, and the query.
struct RouteContext {
  const Request& request;
  std::string_view path;
  std::string_view query;
  std::vector<std::string_view> params;
};
using Handler = std::function<Response(const RouteContext&)>;
/// A refusal before the route runs, or nullopt to go on.
using Admission = std::function<std::optional<Response>(const Request&)>;

struct Route {
  static constexpr std::size_t kConfiguredMax = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t kDefaultMaxBody = 1024 * 1024;  ///< admin bodies (a policy: 1 MiB)
  Route() = default;
  Route(std::string method_, std::string pattern_, BodyFormat body_, std::string label_,
        Handler handler_)
      : method(std::move(method_)),
        pattern(std::move(pattern_)),
        body(body_),
        label(std::move(label_)),
        handler(std::move(handler_)) {}
  std::string method;
  std::string pattern;  ///< "/v1/enroll/{id}/activate": literal segments and {name}s
  BodyFormat body = BodyFormat::kNone;
  std::string label;  ///< metrics label; empty: the pattern
  Handler handler;
  /// Body bytes read at most (limits.max_body_bytes caps every route); kConfiguredMax: only that.
  std::size_t max_body = kDefaultMaxBody;
  /// A {…} segment longer than this does not match (0: any length).
  std::size_t max_param = 0;
  /// Runs before the method check, for every method (e.g. who may read /metrics).
  Admission admit;
};

struct Scope {
  Scope(std::string prefix_, std::string unmatched_label_, std::string not_found_reason_ = {})
      : prefix(std::move(prefix_)),
        unmatched_label(std::move(unmatched_label_)),
        not_found_reason(std::move(not_found_reason_)) {}
  std::string prefix;  ///< "/v1/": the paths starting with it
  std::string unmatched_label;
  std::string not_found_reason;  ///< empty: "no route for <path>"
  Admission admit;               ///< before the route is looked up
  /// After every response of the scope that admit let through (refusal accounting).
  std::function<void(const Request&, const Response&)> after;
};

class RouteTable {
 public:
  void add(Route route);
  /// The longest scope prefix of a path wins.
  void add_scope(Scope scope);
  /// Matches, admits and runs the route (404, 405 with Allow, 415 otherwise).
  Response dispatch(const Request& request) const;
  /// The route of `method` and `path`, or nullptr.
  const Route* find(std::string_view method, std::string_view path) const;
  /// Body bytes a request for `target` may send (its route's max_body, else the default).
  std::size_t body_cap(std::string_view target, std::size_t configured_max) const;

 private:
  struct Pattern {
    std::vector<std::string> segments;  // "{...}" for a parameter
  };
  bool matches(const Route& route, const std::vector<std::string_view>& parts,
               std::vector<std::string_view>* params) const;
  const Scope* scope_of(std::string_view path) const;

  std::vector<Route> routes_;
  std::vector<Pattern> patterns_;  // parallel to routes_
  std::vector<Scope> scopes_;
};

/// Path segments without empty ones: "/v1//enroll/" -> {"v1", "enroll"}.
std::vector<std::string_view> path_segments(std::string_view path);

// Responses the route modules share.
Response make_response(unsigned status, std::string_view content_type, std::string body);
Response method_not_allowed(std::string_view target, std::string_view allow);
/// A service failure: the mapped status, the stable code, and the message (a generic one for
/// internal errors, which are logged instead).
Response service_error(std::string_view target, const Error& error);

}  // namespace warden::issuer::http
