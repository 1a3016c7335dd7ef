#include "issuer/http/router.h"

#include <charconv>
#include <optional>
#include <vector>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "attest/protocol/errors.h"
#include "attest/protocol/limits.h"
#include "attest/protocol/messages.h"
#include "attest/token/json.h"

namespace warden::issuer::http {
namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::size_t kMaxListLimit = 1000;

std::string_view strip_query(std::string_view target) { return target.substr(0, target.find('?')); }

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto end = path.find('/');
    out.push_back(path.substr(0, end));
    path = end == std::string_view::npos ? std::string_view{} : path.substr(end);
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) {
        return fail(ErrorCode::kInvalidArgument, "query: truncated %-escape");
      }
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return fail(ErrorCode::kInvalidArgument, "query: invalid %-escape");
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

Result<std::map<std::string, std::string>> parse_query(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq));
    if (!key) return fail(std::move(key).error());
    auto value = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (!value) return fail(std::move(value).error());
    out[std::move(*key)] = std::move(*value);
  }
  return out;
}

template <class Int>
Result<Int> parse_int(std::string_view name, std::string_view text) {
  Int value{};
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return fail(ErrorCode::kInvalidArgument, "query parameter " + std::string(name) +
                                                 ": expected an integer, found '" +
                                                 std::string(text) + "'");
  }
  return value;
}

Response make(unsigned status, std::string_view content_type, std::string body) {
  Response r;
  r.status = status;
  r.content_type = std::string(content_type);
  r.body = std::move(body);
  return r;
}

Response cbor_ok(const Bytes& body) {
  return make(200, protocol::kContentType, warden::to_string(body));
}

Response method_not_allowed(std::string_view target, std::string_view allow) {
  auto r = error_response(target, 405, to_string(ErrorCode::kUnsupported),
                          "method not allowed; use " + std::string(allow));
  r.headers["allow"] = std::string(allow);
  return r;
}

// A service failure: the mapped status, the stable code, and the message (a generic one for
// internal errors, which are logged instead).
Response service_error(std::string_view target, const Error& error) {
  const unsigned status = status_of(error.code);
  if (status >= 500) {
    spdlog::warn("{}: {} ({})", strip_query(target), error.message, to_string(error.code));
  }
  const std::string reason =
      error.code == ErrorCode::kInternal ? std::string("internal error") : error.message;
  return error_response(target, status, to_string(error.code), reason);
}

std::string json_object(std::initializer_list<std::pair<std::string_view, std::string_view>> kv) {
  boost::json::object o;
  for (const auto& [k, v] : kv) o[k] = v;
  return json::serialize(o);
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

Response Router::handle(const Request& request) {
  const std::string_view target = request.target;
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
  const bool get = request.method == "GET";

  Response r;
  if (path == "/healthz") {
    r = get ? make(200, "text/plain", "ok\n") : method_not_allowed(target, "GET");
    r.route = "/healthz";
  } else if (path == "/readyz") {
    if (!get) {
      r = method_not_allowed(target, "GET");
    } else if (auto ready = service_.ready(); ready) {
      r = make(200, "text/plain", "ready\n");
    } else {
      r = make(503, "text/plain", "not ready: " + ready.error().message + "\n");
    }
    r.route = "/readyz";
  } else if (path == "/metrics") {
    // Request counts, verdicts and connection figures tell an outsider how the fleet fares:
    // for the host's own scraper (loopback) and admin clients unless metrics.allow_remote.
    const Peer& p = request.peer;
    if (!options_.metrics_allow_remote && !p.loopback && !p.client_cert_verified && !p.socket_uid) {
      r = error_response(target, 403, to_string(ErrorCode::kPermissionDenied),
                         "/metrics answers loopback and admin clients only (metrics.allow_remote "
                         "= true opens it to every caller)");
    } else {
      r = get ? make(200, "text/plain; version=0.0.4", metrics_.render())
              : method_not_allowed(target, "GET");
    }
    r.route = "/metrics";
  } else if (path == "/.well-known/jwks.json") {
    if (!get) {
      r = method_not_allowed(target, "GET");
    } else if (auto jwks = service_.jwks_json(); jwks) {
      r = make(200, kJson, std::move(*jwks));
      r.headers["cache-control"] = "max-age=60";
    } else {
      r = service_error(target, jwks.error());
    }
    r.route = "/.well-known/jwks.json";
  } else if (path.starts_with("/v1/status-lists/") || path.starts_with("/v1/status/")) {
    // /v1/status/{id} is the URI inside tokens; /v1/status-lists/{id} the documented alias.
    const auto parts = segments(path);
    if (parts.size() != 3 || parts[2].size() > protocol::limits::kId) {
      r = error_response(target, 404, to_string(ErrorCode::kNotFound), "no such status list");
    } else if (!get) {
      r = method_not_allowed(target, "GET");
    } else if (auto jwt = service_.status_list_jwt(parts[2]); jwt) {
      r = make(200, "application/statuslist+jwt", std::move(*jwt));
      r.headers["cache-control"] = "max-age=30";
    } else {
      r = service_error(target, jwt.error());
    }
    r.route = "/v1/status-lists/{id}";
  } else if (path.starts_with("/v1/")) {
    if (auto busy = over_budget(request)) {
      r = std::move(*busy);
    } else {
      bool refused_verdict = false;
      r = agent(request, path, refused_verdict);
      charge_refusal(request.peer.address, r, refused_verdict);
    }
  } else if (path.starts_with("/admin/v1/")) {
    r = admin(request, path, query);
  } else {
    r = error_response(target, 404, to_string(ErrorCode::kNotFound),
                       "no route for " + std::string(path));
  }
  return r;
}

std::optional<Response> Router::over_budget(const Request& request) {
  const std::string& address = request.peer.address;
  if (address.empty() || !address_refusals_.exhausted(address, RefusalBudget::Clock::now())) {
    return std::nullopt;
  }
  const auto wait = static_cast<long>(1.0 / std::max(options_.refusal_per_second, 1e-3)) + 1;
  Response r = error_response(request.target, 429, to_string(ErrorCode::kLimitExceeded),
                              "too many refused requests from " + address + "; retry in " +
                                  std::to_string(wait) +
                                  " s (limits.refusal_burst, limits.refusal_per_minute)");
  r.headers["retry-after"] = std::to_string(wait);
  r.route = "refused_budget";
  return r;
}

void Router::charge_refusal(std::string_view address, const Response& response,
                            bool refused_verdict) {
  bool refused = refused_verdict || (response.status >= 400 && response.status < 500);
  // A 403 token refusal is a policy decision about a workload of an authenticated device (its
  // device token and proof verified): charging the agent's address would let one workload cut
  // off its whole device. Those refusals count against the device's audit budget instead.
  if (response.route == "/v1/token" && response.status == 403) refused = false;
  // Likewise a 429 token refusal: the device's own rate (limits.token_burst), not its address's.
  if (response.route == "/v1/token" && response.status == 429) refused = false;
  if (address.empty() || !refused) return;
  const auto charge = address_refusals_.charge(address, RefusalBudget::Clock::now());
  // Logged when a request finds the budget spent; later ones are answered 429 unlogged.
  if (!charge.record) {
    spdlog::warn("{} is over its budget of refused requests: agent routes answer it 429 for now",
                 charge.key);
  }
}

Response Router::agent(const Request& request, std::string_view path, bool& refused_verdict) {
  const std::string_view target = request.target;
  const auto parts = segments(path);
  std::string route;
  if (parts.size() == 2 && (parts[1] == "enroll" || parts[1] == "challenge" ||
                            parts[1] == "attest" || parts[1] == "token" || parts[1] == "revoke")) {
    route = "/v1/" + std::string(parts[1]);
  } else if (parts.size() == 4 && parts[1] == "enroll" && parts[3] == "activate") {
    route = "/v1/enroll/{id}/activate";
  } else {
    return error_response(target, 404, to_string(ErrorCode::kNotFound),
                          "no route for " + std::string(path));
  }
  auto finish = [&route](Response r) {
    r.route = route;
    return r;
  };
  if (request.method != "POST") return finish(method_not_allowed(target, "POST"));
  const std::string_view media =
      std::string_view(request.content_type).substr(0, request.content_type.find(';'));
  if (media != protocol::kContentType) {
    return finish(error_response(
        target, 415, to_string(ErrorCode::kUnsupported),
        "expected Content-Type application/cbor, found '" + request.content_type + "'"));
  }
  const ByteSpan body = request.body;
  auto decode_failed = [&](const Error& e) {
    return finish(error_response(target, 400, to_string(e.code), e.message));
  };
  auto reply = [&](const auto& result) {
    if (!result) return finish(service_error(target, result.error()));
    return finish(cbor_ok(protocol::encode(*result)));
  };

  if (route == "/v1/enroll") {
    auto req = protocol::decode_enroll_request(body);
    if (!req) return decode_failed(req.error());
    return reply(service_.enroll(*req));
  }
  if (route == "/v1/enroll/{id}/activate") {
    if (parts[2].size() > protocol::limits::kId) {
      return finish(error_response(
          target, 400, to_string(ErrorCode::kLimitExceeded),
          "enrollment id longer than " + std::to_string(protocol::limits::kId) + " bytes"));
    }
    auto req = protocol::decode_activate_request(body);
    if (!req) return decode_failed(req.error());
    if (req->enrollment_id != parts[2]) {
      return finish(error_response(target, 400, to_string(ErrorCode::kInvalidArgument),
                                   "activate: enrollment id of the body does not match the URL"));
    }
    return reply(service_.activate(parts[2], *req));
  }
  if (route == "/v1/challenge") {
    auto req = protocol::decode_challenge_request(body);
    if (!req) return decode_failed(req.error());
    return reply(service_.challenge(*req));
  }
  if (route == "/v1/attest") {
    auto req = protocol::decode_attest_request(body);
    if (!req) return decode_failed(req.error());
    auto res = service_.attest(*req, body);
    if (res) metrics_.attest_verdict(res->verdict == protocol::Verdict::kPass ? "pass" : "fail");
    refused_verdict = res && res->verdict != protocol::Verdict::kPass;
    return reply(res);
  }
  if (route == "/v1/token") {
    auto req = protocol::decode_token_request(body);
    if (!req) return decode_failed(req.error());
    if (request.host.empty()) {
      return finish(error_response(target, 400, to_string(ErrorCode::kInvalidArgument),
                                   "token: a Host header is required (the proof names the URL)"));
    }
    // RFC 9449: htu is the URI without query and fragment.
    const RequestTarget proof_target{request.method, "https://" + request.host + std::string(path)};
    return token_reply(target, service_.token(*req, proof_target));
  }
  auto req = protocol::decode_revoke_request(body);
  if (!req) return decode_failed(req.error());
  return reply(service_.revoke(*req));
}

Response Router::token_reply(std::string_view target,
                             const Result<protocol::TokenResponse>& result) {
  if (result) metrics_.token_issued();
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

bool Router::deferred(const Request& request) {
  return request.method == "POST" && strip_query(request.target) == "/v1/token";
}

void Router::handle_async(const Request& request, std::function<void(Response)> done) {
  const std::string_view media =
      std::string_view(request.content_type).substr(0, request.content_type.find(';'));
  Result<protocol::TokenRequest> req = fail(ErrorCode::kMalformed, "not a token request");
  if (deferred(request) && media == protocol::kContentType && !request.host.empty())
    req = protocol::decode_token_request(request.body);
  // Anything handle() refuses before calling the service, it refuses here too.
  if (!req) return done(handle(request));
  if (auto busy = over_budget(request)) return done(std::move(*busy));
  const RequestTarget proof_target{
      request.method, "https://" + request.host + std::string(strip_query(request.target))};
  service_.token_async(*req, proof_target,
                       [this, target = request.target, address = request.peer.address,
                        done = std::move(done)](Result<protocol::TokenResponse> result) {
                         Response r = token_reply(target, result);
                         charge_refusal(address, r, false);
                         done(std::move(r));
                       });
}

bool Router::is_admin(const Peer& peer) const {
  if (peer.socket_uid || peer.client_cert_verified) return true;
  return options_.allow_unauthenticated_loopback && peer.loopback;
}

std::string Router::admin_refusal() const {
  std::string reason = "the admin API needs ";
  if (options_.admin_requires_client_cert) {
    reason += "a client certificate issued by tls.admin_client_ca, or ";
  } else {
    reason += "a client certificate (set tls.admin_client_ca), or ";
  }
  reason += options_.admin_socket.empty()
                ? "the admin Unix socket (set admin.socket)"
                : "the admin Unix socket admin.socket = " + options_.admin_socket;
  reason +=
      "; loopback clients without a certificate only with "
      "admin.allow_unauthenticated_loopback = true";
  return reason;
}

Response Router::admin(const Request& request, std::string_view path, std::string_view query) {
  const std::string_view target = request.target;
  const auto parts = segments(path);  // "admin", "v1", ...
  std::string route = "/admin/v1/unmatched";
  auto finish = [&route](Response r) {
    r.route = route;
    return r;
  };
  const Peer& peer = request.peer;
  if (!is_admin(peer)) {
    return finish(
        error_response(target, 403, to_string(ErrorCode::kPermissionDenied), admin_refusal()));
  }
  // Who asked, for the audit log: what authenticated the caller, not what it says.
  const std::string actor = peer.socket_uid             ? "uid " + std::to_string(*peer.socket_uid)
                            : peer.client_cert_verified ? peer.client_subject
                                                        : std::string("loopback (unauthenticated)");
  auto params = parse_query(query);
  if (!params) return finish(service_error(target, params.error()));
  auto param = [&](const char* name) -> std::optional<std::string> {
    const auto it = params->find(name);
    if (it == params->end()) return std::nullopt;
    return it->second;
  };
  auto json_reply = [&](Result<std::string> result) {
    if (!result) return finish(service_error(target, result.error()));
    return finish(make(200, kJson, std::move(*result)));
  };
  const std::string_view method = request.method;

  if (parts.size() == 3 && parts[2] == "devices") {
    route = "/admin/v1/devices";
    if (method != "GET") return finish(method_not_allowed(target, "GET"));
    std::size_t limit = 100;
    if (auto l = param("limit")) {
      auto n = parse_int<std::size_t>("limit", *l);
      if (!n) return finish(service_error(target, n.error()));
      limit = std::min(*n, kMaxListLimit);
    }
    return json_reply(service_.admin_list_devices(limit, param("after").value_or("")));
  }
  if (parts.size() == 4 && parts[2] == "devices") {
    route = "/admin/v1/devices/{id}";
    if (method == "DELETE") {
      if (auto removed = service_.admin_delete_device(parts[3], actor); !removed) {
        return finish(service_error(target, removed.error()));
      }
      spdlog::info("admin {}: device {} removed", actor, parts[3]);
      return finish(make(204, "", ""));
    }
    if (method != "GET") return finish(method_not_allowed(target, "GET, DELETE"));
    return json_reply(service_.admin_get_device(parts[3]));
  }
  if (parts.size() == 5 && parts[2] == "devices" &&
      (parts[4] == "revoke" || parts[4] == "enable")) {
    route = "/admin/v1/devices/{id}/" + std::string(parts[4]);
    if (method != "POST") return finish(method_not_allowed(target, "POST"));
    const std::string_view state = parts[4] == "revoke" ? "revoked" : "enabled";
    if (auto set = service_.admin_set_device_state(parts[3], state, actor); !set) {
      return finish(service_error(target, set.error()));
    }
    spdlog::info("admin {}: device {} {}", actor, parts[3], state);
    return finish(make(200, kJson, json_object({{"device_id", parts[3]}, {"state", state}})));
  }
  if (parts.size() == 5 && parts[2] == "devices" && parts[4] == "state") {
    // docs/issuer-admin-api.md: PUT {"state": "revoked" | "enabled"}, 204.
    route = "/admin/v1/devices/{id}/state";
    if (method != "PUT") return finish(method_not_allowed(target, "PUT"));
    auto body = json::parse_object(warden::to_string(request.body));
    const auto state = body ? json::get_string(*body, "state") : std::nullopt;
    if (!state) {
      return finish(error_response(target, 400, to_string(ErrorCode::kMalformed),
                                   "PUT state: expected a JSON object {\"state\": \"revoked\" | "
                                   "\"enabled\"}"));
    }
    if (auto set = service_.admin_set_device_state(parts[3], *state, actor); !set) {
      return finish(service_error(target, set.error()));
    }
    spdlog::info("admin {}: device {} {}", actor, parts[3], *state);
    return finish(make(204, "", ""));
  }
  if (parts.size() == 5 && parts[2] == "devices" && parts[4] == "group") {
    // docs/issuer-admin-api.md: PUT {"group": "name" | null}, 204. The only way a device gets
    // a group that `match.group` rules see.
    route = "/admin/v1/devices/{id}/group";
    if (method != "PUT") return finish(method_not_allowed(target, "PUT"));
    auto body = json::parse_object(warden::to_string(request.body));
    const boost::json::value* group = body ? body->if_contains("group") : nullptr;
    if (group == nullptr || !(group->is_string() || group->is_null())) {
      return finish(
          error_response(target, 400, to_string(ErrorCode::kMalformed),
                         "PUT group: expected a JSON object {\"group\": \"name\" | null}"));
    }
    const std::string name = group->is_string() ? std::string(group->as_string()) : "";
    if (auto set = service_.admin_set_device_group(parts[3], name, actor); !set) {
      return finish(service_error(target, set.error()));
    }
    spdlog::info("admin {}: device {} group \"{}\"", actor, parts[3], name);
    return finish(make(204, "", ""));
  }
  if (parts.size() == 3 && (parts[2] == "policy" || parts[2] == "policies") && method == "PUT") {
    // PUT /admin/v1/policies (docs/issuer-admin-api.md) or /admin/v1/policy; ?version= is
    // optional and, when given, must equal the TOML's version.
    route = "/admin/v1/policies";
    const std::string version = param("version").value_or("");
    auto stored = service_.admin_put_policy(version, warden::to_string(request.body), actor);
    if (stored) spdlog::info("admin {}: policy stored", actor);
    return json_reply(std::move(stored));
  }
  if (parts.size() == 3 && parts[2] == "policies") {
    route = "/admin/v1/policies";
    if (method != "GET") return finish(method_not_allowed(target, "GET, PUT"));
    return json_reply(service_.admin_list_policies());
  }
  if (parts.size() == 3 && parts[2] == "policy") {
    route = "/admin/v1/policies";
    return finish(method_not_allowed(target, "PUT"));
  }
  if (parts.size() == 3 && parts[2] == "audit") {
    route = "/admin/v1/audit";
    if (method != "GET") return finish(method_not_allowed(target, "GET"));
    AuditFilter filter;
    filter.device_id = param("device");
    if (auto since = param("since")) {
      auto n = parse_int<std::int64_t>("since", *since);
      if (!n) return finish(service_error(target, n.error()));
      filter.since = *n;
    }
    if (auto l = param("limit")) {
      auto n = parse_int<std::size_t>("limit", *l);
      if (!n) return finish(service_error(target, n.error()));
      filter.limit = std::min(*n, kMaxListLimit);
    }
    return json_reply(service_.admin_audit(filter));
  }
  return finish(error_response(target, 404, to_string(ErrorCode::kNotFound),
                               "no route for " + std::string(path)));
}

}  // namespace warden::issuer::http
