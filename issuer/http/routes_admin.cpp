#include <charconv>
#include <map>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "attest/token/json.h"
#include "issuer/admin/admin_json.h"
#include "issuer/http/routes.h"

namespace warden::issuer::http {
namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::size_t kMaxListLimit = 1000;

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

using Params = std::map<std::string, std::string>;

Result<Params> parse_query(std::string_view query) {
  Params out;
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

std::string_view query_of(std::string_view target) {
  const auto q = target.find('?');
  return q == std::string_view::npos ? "" : target.substr(q + 1);
}

std::optional<std::string> param(const Params& params, const char* name) {
  const auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  return it->second;
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

std::string json_object(std::initializer_list<std::pair<std::string_view, std::string_view>> kv) {
  boost::json::object o;
  for (const auto& [k, v] : kv) o[k] = v;
  return json::serialize(o);
}

// Who asked, for the audit log: what authenticated the caller, not what it says.
std::string actor_of(const Peer& peer) {
  return peer.socket_uid             ? "uid " + std::to_string(*peer.socket_uid)
         : peer.client_cert_verified ? peer.client_subject
                                     : std::string("loopback (unauthenticated)");
}

bool is_admin(const Peer& peer, const RouterOptions& options) {
  if (peer.socket_uid || peer.client_cert_verified) return true;
  return options.allow_unauthenticated_loopback && peer.loopback;
}

std::string admin_refusal(const RouterOptions& options) {
  std::string reason = "the admin API needs ";
  if (options.admin_requires_client_cert) {
    reason += "a client certificate issued by tls.admin_client_ca, or ";
  } else {
    reason += "a client certificate (set tls.admin_client_ca), or ";
  }
  reason += options.admin_socket.empty()
                ? "the admin Unix socket (set admin.socket)"
                : "the admin Unix socket admin.socket = " + options.admin_socket;
  reason +=
      "; loopback clients without a certificate only with "
      "admin.allow_unauthenticated_loopback = true";
  return reason;
}

template <class T>
Response json_reply(const RouteContext& c, const Result<T>& result) {
  if (!result) return service_error(c.request.target, result.error());
  return make_response(200, kJson, admin::to_json(*result));
}

Response no_content() { return make_response(204, "", ""); }

}  // namespace

void register_admin_routes(RouteTable& table, IssuerService& service,
                           const RouterOptions& options) {
  Scope scope("/admin/v1/", "/admin/v1/unmatched");
  scope.admit = [options](const Request& request) -> std::optional<Response> {
    if (!is_admin(request.peer, options)) {
      return error_response(request.target, 403, to_string(ErrorCode::kPermissionDenied),
                            admin_refusal(options));
    }
    if (auto params = parse_query(query_of(request.target)); !params) {
      return service_error(request.target, params.error());
    }
    return std::nullopt;
  };
  table.add_scope(std::move(scope));
  IssuerService* s = &service;
  // The scope's admission parsed the query already: this parse cannot fail.
  auto params_of = [](const RouteContext& c) { return parse_query(c.query).value_or(Params{}); };

  table.add(
      {"GET", "/admin/v1/devices", BodyFormat::kNone, "", [s, params_of](const RouteContext& c) {
         const Params params = params_of(c);
         std::size_t limit = 100;
         if (auto l = param(params, "limit")) {
           auto n = parse_int<std::size_t>("limit", *l);
           if (!n) return service_error(c.request.target, n.error());
           limit = std::min(*n, kMaxListLimit);
         }
         return json_reply(c, s->admin_list_devices(limit, param(params, "after").value_or("")));
       }});
  table.add(Route{
      "GET", "/admin/v1/devices/{id}", BodyFormat::kNone, "",
      [s](const RouteContext& c) { return json_reply(c, s->admin_get_device(c.params[0])); }});
  table.add(
      Route{"DELETE", "/admin/v1/devices/{id}", BodyFormat::kNone, "", [s](const RouteContext& c) {
              const std::string actor = actor_of(c.request.peer);
              if (auto removed = s->admin_delete_device(c.params[0], actor); !removed) {
                return service_error(c.request.target, removed.error());
              }
              spdlog::info("admin {}: device {} removed", actor, c.params[0]);
              return no_content();
            }});
  for (const char* verb : {"revoke", "enable"}) {
    const std::string_view state = std::string_view(verb) == "revoke" ? "revoked" : "enabled";
    table.add(Route{"POST", "/admin/v1/devices/{id}/" + std::string(verb), BodyFormat::kNone, "",
                    [s, state](const RouteContext& c) {
                      const std::string actor = actor_of(c.request.peer);
                      if (auto set = s->admin_set_device_state(c.params[0], state, actor); !set) {
                        return service_error(c.request.target, set.error());
                      }
                      spdlog::info("admin {}: device {} {}", actor, c.params[0], state);
                      return make_response(
                          200, kJson, json_object({{"device_id", c.params[0]}, {"state", state}}));
                    }});
  }
  // docs/issuer-admin-api.md: PUT {"state": "revoked" | "enabled"}, 204.
  table.add(
      {"PUT", "/admin/v1/devices/{id}/state", BodyFormat::kJson, "", [s](const RouteContext& c) {
         auto body = json::parse_object(warden::to_string(c.request.body));
         const auto state = body ? json::get_string(*body, "state") : std::nullopt;
         if (!state) {
           return error_response(c.request.target, 400, to_string(ErrorCode::kMalformed),
                                 "PUT state: expected a JSON object {\"state\": \"revoked\" "
                                 "| \"enabled\"}");
         }
         const std::string actor = actor_of(c.request.peer);
         if (auto set = s->admin_set_device_state(c.params[0], *state, actor); !set) {
           return service_error(c.request.target, set.error());
         }
         spdlog::info("admin {}: device {} {}", actor, c.params[0], *state);
         return no_content();
       }});
  // docs/issuer-admin-api.md: PUT {"group": "name" | null}, 204. The only way a device gets a
  // group that `match.group` rules see.
  table.add(
      {"PUT", "/admin/v1/devices/{id}/group", BodyFormat::kJson, "", [s](const RouteContext& c) {
         auto body = json::parse_object(warden::to_string(c.request.body));
         const boost::json::value* group = body ? body->if_contains("group") : nullptr;
         if (group == nullptr || !(group->is_string() || group->is_null())) {
           return error_response(c.request.target, 400, to_string(ErrorCode::kMalformed),
                                 "PUT group: expected a JSON object {\"group\": \"name\" | null}");
         }
         const std::string name = group->is_string() ? std::string(group->as_string()) : "";
         const std::string actor = actor_of(c.request.peer);
         if (auto set = s->admin_set_device_group(c.params[0], name, actor); !set) {
           return service_error(c.request.target, set.error());
         }
         spdlog::info("admin {}: device {} group \"{}\"", actor, c.params[0], name);
         return no_content();
       }});
  table.add(Route{"GET", "/admin/v1/policies", BodyFormat::kNone, "",
                  [s](const RouteContext& c) { return json_reply(c, s->admin_list_policies()); }});
  // PUT /admin/v1/policies (docs/issuer-admin-api.md) or /admin/v1/policy; ?version= is
  // optional and, when given, must equal the TOML's version.
  const Handler put_policy = [s, params_of](const RouteContext& c) {
    const std::string actor = actor_of(c.request.peer);
    const std::string version = param(params_of(c), "version").value_or("");
    auto stored = s->admin_put_policy(version, warden::to_string(c.request.body), actor);
    if (stored) spdlog::info("admin {}: policy stored", actor);
    return json_reply(c, stored);
  };
  table.add(Route{"PUT", "/admin/v1/policies", BodyFormat::kText, "", put_policy});
  table.add(Route{"PUT", "/admin/v1/policy", BodyFormat::kText, "/admin/v1/policies", put_policy});
  table.add(
      {"GET", "/admin/v1/audit", BodyFormat::kNone, "", [s, params_of](const RouteContext& c) {
         const Params params = params_of(c);
         AuditFilter filter;
         filter.device_id = param(params, "device");
         if (auto since = param(params, "since")) {
           auto n = parse_int<std::int64_t>("since", *since);
           if (!n) return service_error(c.request.target, n.error());
           filter.since = *n;
         }
         if (auto l = param(params, "limit")) {
           auto n = parse_int<std::size_t>("limit", *l);
           if (!n) return service_error(c.request.target, n.error());
           filter.limit = std::min(*n, kMaxListLimit);
         }
         return json_reply(c, s->admin_audit(filter));
       }});
  // Shared Signals receivers (docs/ssf.md): the token is in the 201 answer and nowhere else.
  table.add(
      {"POST", "/admin/v1/ssf/receivers", BodyFormat::kJson, "", [s](const RouteContext& c) {
         auto body =
             json::parse_object(warden::to_string(c.request.body), {"name"}, "POST ssf receiver");
         if (!body) return service_error(c.request.target, body.error());
         auto name =
             json::read_string(*body, "name", json::Presence::kRequired, "POST ssf receiver");
         if (!name) return service_error(c.request.target, name.error());
         const std::string actor = actor_of(c.request.peer);
         auto token = s->admin_add_ssf_receiver(*name, actor);
         if (!token) return service_error(c.request.target, token.error());
         spdlog::info("admin {}: ssf receiver {} registered", actor, *name);
         Response r = make_response(201, kJson, json_object({{"name", *name}, {"token", *token}}));
         r.headers["cache-control"] = "no-store";
         return r;
       }});
  table.add({"GET", "/admin/v1/ssf/receivers", BodyFormat::kNone, "", [s](const RouteContext& c) {
               auto receivers = s->admin_list_ssf_receivers();
               if (!receivers) return service_error(c.request.target, receivers.error());
               boost::json::array list;
               for (const auto& r : *receivers) {
                 boost::json::object o;
                 o["name"] = r.name;
                 o["created_at"] = r.created_at;
                 list.push_back(std::move(o));
               }
               boost::json::object out;
               out["receivers"] = std::move(list);
               return make_response(200, kJson, json::serialize(out));
             }});
  table.add(Route{"DELETE", "/admin/v1/ssf/receivers/{name}", BodyFormat::kNone, "",
                  [s](const RouteContext& c) {
                    const std::string actor = actor_of(c.request.peer);
                    if (auto removed = s->admin_delete_ssf_receiver(c.params[0], actor); !removed) {
                      return service_error(c.request.target, removed.error());
                    }
                    spdlog::info("admin {}: ssf receiver {} removed", actor, c.params[0]);
                    return no_content();
                  }});
}

}  // namespace warden::issuer::http
