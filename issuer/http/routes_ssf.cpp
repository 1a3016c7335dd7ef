// The Shared Signals transmitter's HTTP API (OpenID SSF 1.0, RFC 8936 poll): each route but the
// configuration document is authenticated by a receiver's bearer token (RFC 6750); the logic is
// issuer/ssf/streams.h.
#include "issuer/http/routes.h"
#include "issuer/ssf/streams.h"

namespace warden::issuer::http {
namespace {

constexpr std::string_view kJson = "application/json";
/// Stream configurations, status changes and poll requests are small.
constexpr std::size_t kMaxSsfBody = 64U * 1024U;

std::optional<std::string> stream_id_param(std::string_view query) {
  constexpr std::string_view kKey = "stream_id=";
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair.starts_with(kKey)) return std::string(pair.substr(kKey.size()));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

Response refused(const RouteContext& c, const Error& error) {
  Response r = service_error(c.request.target, error);
  if (r.status == 401) r.headers["www-authenticate"] = "Bearer realm=\"warden-issuer ssf\"";
  return r;
}

Response json_or_error(const RouteContext& c, const Result<std::string>& result,
                       unsigned status = 200) {
  if (!result) return refused(c, result.error());
  return make_response(status, kJson, *result);
}

using SsfHandler =
    std::function<Response(const RouteContext&, ssf::Transmitter&, const std::string& receiver)>;

// Authenticates the receiver, then runs `fn`; 404 when the transmitter is off.
Handler authenticated(IssuerService& service, SsfHandler fn) {
  return [&service, fn = std::move(fn)](const RouteContext& c) {
    ssf::Transmitter* t = service.ssf();
    if (t == nullptr) {
      return error_response(c.request.target, 404, to_string(ErrorCode::kNotFound),
                            "shared signals are disabled (ssf.enabled = false)");
    }
    auto receiver = service.authenticate_receiver(c.request.authorization);
    if (!receiver) return refused(c, receiver.error());
    return fn(c, *t, *receiver);
  };
}

std::string body_of(const RouteContext& c) { return warden::to_string(c.request.body); }

Response missing_stream_id(const RouteContext& c) {
  return error_response(c.request.target, 400, to_string(ErrorCode::kInvalidArgument),
                        "ssf: the stream_id query parameter is required");
}

}  // namespace

void register_ssf_routes(RouteTable& table, IssuerService& service) {
  table.add_scope(Scope("/ssf/", "/ssf/unmatched"));
  table.add({"GET", "/.well-known/ssf-configuration", BodyFormat::kNone, "",
             [&service](const RouteContext& c) {
               ssf::Transmitter* t = service.ssf();
               if (t == nullptr) {
                 return error_response(c.request.target, 404, to_string(ErrorCode::kNotFound),
                                       "shared signals are disabled (ssf.enabled = false)");
               }
               Response r = make_response(200, kJson, t->configuration_json());
               r.headers["cache-control"] = "max-age=300";
               return r;
             }});
  auto add = [&](std::string method, std::string pattern, BodyFormat body, SsfHandler fn) {
    Route r{std::move(method), std::move(pattern), body, "", authenticated(service, std::move(fn))};
    r.max_body = kMaxSsfBody;
    r.max_param = 64;
    table.add(std::move(r));
  };
  add("POST", "/ssf/streams", BodyFormat::kJson,
      [](const RouteContext& c, ssf::Transmitter& t, const std::string& receiver) {
        return json_or_error(c, t.create_stream(receiver, body_of(c)), 201);
      });
  add("GET", "/ssf/streams", BodyFormat::kNone,
      [](const RouteContext& c, ssf::Transmitter& t, const std::string& receiver) {
        return json_or_error(c, t.read_streams(receiver, stream_id_param(c.query)));
      });
  for (const char* method : {"PATCH", "PUT"}) {
    const bool replace = std::string_view(method) == "PUT";
    add(method, "/ssf/streams", BodyFormat::kJson,
        [replace](const RouteContext& c, ssf::Transmitter& t, const std::string& receiver) {
          return json_or_error(c, t.update_stream(receiver, body_of(c), replace));
        });
  }
  add("DELETE", "/ssf/streams", BodyFormat::kNone,
      [](const RouteContext& c, ssf::Transmitter& t, const std::string& receiver) {
        const auto id = stream_id_param(c.query);
        if (!id) return missing_stream_id(c);
        if (auto removed = t.delete_stream(receiver, *id); !removed) {
          return refused(c, removed.error());
        }
        return make_response(204, "", "");
      });
  add("GET", "/ssf/status", BodyFormat::kNone,
      [](const RouteContext& c, ssf::Transmitter& t, const std::string& receiver) {
        const auto id = stream_id_param(c.query);
        if (!id) return missing_stream_id(c);
        return json_or_error(c, t.read_status(receiver, *id));
      });
  add("POST", "/ssf/status", BodyFormat::kJson,
      [](const RouteContext& c, ssf::Transmitter& t, const std::string& receiver) {
        return json_or_error(c, t.update_status(receiver, body_of(c)));
      });
  add("POST", "/ssf/verify", BodyFormat::kJson,
      [](const RouteContext& c, ssf::Transmitter& t, const std::string& receiver) {
        if (auto queued = t.verify(receiver, body_of(c)); !queued) {
          return refused(c, queued.error());
        }
        return make_response(204, "", "");
      });
  add("POST", "/ssf/poll/{id}", BodyFormat::kJson,
      [](const RouteContext& c, ssf::Transmitter& t, const std::string& receiver) {
        return json_or_error(c, t.poll(receiver, c.params[0], body_of(c)));
      });
}

}  // namespace warden::issuer::http
