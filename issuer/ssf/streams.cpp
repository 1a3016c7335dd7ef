#include "issuer/ssf/streams.h"

#include <algorithm>
#include <array>
#include <cctype>

#include <spdlog/spdlog.h>

#include "attest/token/json.h"
#include "issuer/assign.h"
#include "issuer/ssf/events.h"
#include "platform/base/encoding.h"

namespace warden::issuer::ssf {
namespace {

namespace bj = boost::json;
using json::Presence;

constexpr std::size_t kMaxUrl = 2048;
constexpr std::size_t kMaxAuthorization = 4096;
constexpr std::size_t kMaxDescription = 256;
constexpr std::size_t kMaxEventTypes = 16;
constexpr std::size_t kMaxEventType = 256;
constexpr std::size_t kMaxAcks = 1000;
constexpr std::size_t kMaxState = 256;
constexpr std::size_t kMaxStreamId = 64;

// Members a receiver may send back unchanged (Transmitter-Supplied, SSF 1.0 section 8.1.1):
// accepted and ignored.
constexpr std::array<std::string_view, 9> kStreamMembers = {"stream_id",
                                                            "iss",
                                                            "aud",
                                                            "delivery",
                                                            "events_supported",
                                                            "events_requested",
                                                            "events_delivered",
                                                            "description",
                                                            "min_verification_interval"};

Result<bj::object> parse_stream_body(std::string_view body) {
  WARDEN_ASSIGN(o, json::parse_object(body, json::ParseLimits{64U * 1024U, 8}));
  for (const auto& kv : o) {
    if (std::find(kStreamMembers.begin(), kStreamMembers.end(), kv.key()) == kStreamMembers.end()) {
      return fail(ErrorCode::kMalformed,
                  "ssf stream: unknown member \"" + std::string(kv.key()).substr(0, 64) + "\"");
    }
  }
  return o;
};

tl::unexpected<Error> too_long(std::string_view what, std::size_t max) {
  return fail(ErrorCode::kInvalidArgument,
              "ssf: " + std::string(what) + " is longer than " + std::to_string(max) + " bytes");
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "[::1]") return true;
  if (!host.starts_with("127.")) return false;
  // 127.0.0.0/8 written as a dotted quad.
  int parts = 0;
  std::size_t digits = 0;
  for (char c : host) {
    if (c == '.') {
      if (digits == 0 || digits > 3) return false;
      ++parts;
      digits = 0;
    } else if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
      ++digits;
    } else {
      return false;
    }
  }
  return parts == 3 && digits > 0 && digits <= 3;
}

bj::array to_array(const std::vector<std::string>& items) {
  bj::array a;
  for (const auto& i : items) a.emplace_back(i);
  return a;
}

std::vector<std::string> delivered_of(const std::vector<std::string>& requested) {
  // SSF 1.0: events_delivered = events_requested ∩ events_supported; unknown types are ignored.
  std::vector<std::string> out;
  for (const auto& type : requested) {
    const auto& supported = events_supported();
    if (std::find(supported.begin(), supported.end(), type) != supported.end() &&
        std::find(out.begin(), out.end(), type) == out.end()) {
      out.push_back(type);
    }
  }
  return out;
}

Result<std::vector<std::string>> read_events(const bj::object& body) {
  WARDEN_ASSIGN(events, json::read_string_array(body, "events_requested", "ssf stream"));
  if (events.size() > kMaxEventTypes) {
    return fail(ErrorCode::kInvalidArgument,
                "ssf stream: at most " + std::to_string(kMaxEventTypes) + " events_requested");
  }
  for (const auto& e : events) {
    if (e.size() > kMaxEventType) return too_long("an events_requested entry", kMaxEventType);
  }
  return events;
}

Result<std::string> read_stream_id(const bj::object& body) {
  WARDEN_ASSIGN(id, json::read_string(body, "stream_id", Presence::kRequired, "ssf"));
  if (id.empty() || id.size() > kMaxStreamId) {
    return fail(ErrorCode::kInvalidArgument, "ssf: stream_id is empty or too long");
  }
  return id;
}

}  // namespace

Transmitter::Transmitter(Options options) : options_(std::move(options)) {}

Status Transmitter::check_push_url(std::string_view url, bool allow_http_loopback) {
  if (url.size() > kMaxUrl) return too_long("delivery.endpoint_url", kMaxUrl);
  const bool https = url.starts_with("https://");
  const bool http = url.starts_with("http://");
  if (!https && !http) {
    return fail(ErrorCode::kInvalidArgument,
                "ssf: delivery.endpoint_url must be an https:// URL (RFC 8935)");
  }
  std::string_view rest = url.substr(https ? 8 : 7);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty() || authority.find('@') != std::string_view::npos ||
      std::any_of(authority.begin(), authority.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) != 0 ||
               std::iscntrl(static_cast<unsigned char>(c)) != 0;
      })) {
    return fail(ErrorCode::kInvalidArgument,
                "ssf: delivery.endpoint_url needs a host (and no user information)");
  }
  if (https) return ok();
  std::string_view host = authority;
  if (host.starts_with('[')) {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (!allow_http_loopback || !is_loopback_host(host)) {
    return fail(ErrorCode::kInvalidArgument,
                "ssf: delivery.endpoint_url must be https; plain http only to a loopback host "
                "(127.0.0.0/8, ::1, localhost) with ssf.allow_http_loopback = true");
  }
  return ok();
}

std::string Transmitter::configuration_json() const {
  bj::object o;
  o["spec_version"] = "1_0";
  o["issuer"] = options_.iss;
  o["jwks_uri"] = endpoint("/.well-known/jwks.json");
  o["delivery_methods_supported"] = bj::array{bj::string(kPushMethod), bj::string(kPollMethod)};
  o["configuration_endpoint"] = endpoint("/ssf/streams");
  o["status_endpoint"] = endpoint("/ssf/status");
  o["verification_endpoint"] = endpoint("/ssf/verify");
  bj::object scheme;
  scheme["spec_urn"] = "urn:ietf:rfc:6750";
  o["authorization_schemes"] = bj::array{std::move(scheme)};
  o["default_subjects"] = "NONE";
  return json::serialize(o);
}

std::string Transmitter::stream_json(const SsfStream& s) const {
  bj::object o;
  o["stream_id"] = s.id;
  o["iss"] = options_.iss;
  o["aud"] = s.aud;
  bj::object delivery;
  delivery["method"] = s.delivery_method;
  delivery["endpoint_url"] = s.endpoint_url;  // the authorization header is never echoed
  o["delivery"] = std::move(delivery);
  o["events_supported"] = to_array(events_supported());
  o["events_requested"] = to_array(s.events_requested);
  o["events_delivered"] = to_array(s.events_delivered);
  if (!s.description.empty()) o["description"] = s.description;
  return json::serialize(o);
}

Result<SsfStream> Transmitter::own_stream(std::string_view receiver, std::string_view stream_id) {
  auto s = options_.store->get_ssf_stream(stream_id);
  // Another receiver's stream is as absent as one that does not exist.
  if (!s || s->receiver != receiver) {
    if (!s && s.error().code != ErrorCode::kNotFound) return fail(std::move(s).error());
    return fail(ErrorCode::kNotFound, "ssf: no stream " + std::string(stream_id));
  }
  return s;
}

namespace {

// The receiver-supplied members of a stream configuration, applied onto `s`; `replace` resets
// what the body leaves out.
Status apply_config(SsfStream& s, const bj::object& body, bool replace, bool allow_http_loopback,
                    const std::function<std::string(std::string_view)>& poll_url) {
  if (replace || body.contains("events_requested")) {
    WARDEN_ASSIGN(events, read_events(body));
    s.events_requested = events;
    s.events_delivered = delivered_of(events);
  }
  if (replace || body.contains("description")) {
    WARDEN_ASSIGN(d, json::read_string(body, "description", Presence::kOptional, "ssf stream"));
    if (d.size() > kMaxDescription) return too_long("description", kMaxDescription);
    s.description = d;
  }
  const bj::value* dv = body.if_contains("delivery");
  if (dv == nullptr && !replace) return ok();
  bj::object delivery;
  if (dv != nullptr) {
    if (!dv->is_object())
      return fail(ErrorCode::kMalformed, "ssf stream: delivery must be an object");
    delivery = dv->as_object();
    for (const auto& kv : delivery) {
      if (kv.key() != "method" && kv.key() != "endpoint_url" &&
          kv.key() != "authorization_header") {
        return fail(ErrorCode::kMalformed,
                    "ssf stream: unknown delivery member \"" + std::string(kv.key()) + "\"");
      }
    }
  }
  WARDEN_ASSIGN(method, json::read_string(delivery, "method", Presence::kOptional, "ssf delivery"));
  if (method.empty())
    method = replace || s.delivery_method.empty() ? std::string(kPollMethod) : s.delivery_method;
  if (method == kPushMethod) {
    WARDEN_ASSIGN(url,
                  json::read_string(delivery, "endpoint_url", Presence::kRequired, "ssf delivery"));
    WARDEN_TRY_STATUS(Transmitter::check_push_url(url, allow_http_loopback));
    WARDEN_ASSIGN(auth, json::read_string(delivery, "authorization_header", Presence::kOptional,
                                          "ssf delivery"));
    if (auth.size() > kMaxAuthorization) {
      return too_long("delivery.authorization_header", kMaxAuthorization);
    }
    if (std::any_of(auth.begin(), auth.end(),
                    [](char c) { return c == '\r' || c == '\n' || c == '\0'; })) {
      return fail(ErrorCode::kInvalidArgument,
                  "ssf: delivery.authorization_header holds a line break");
    }
    s.endpoint_url = url;
    s.authorization_header = auth;
  } else if (method == kPollMethod) {
    // The transmitter supplies the poll URL (RFC 8936); a receiver's is ignored.
    s.endpoint_url = poll_url(s.id);
    s.authorization_header.clear();
  } else {
    return fail(ErrorCode::kInvalidArgument, "ssf: delivery.method must be \"" +
                                                 std::string(kPushMethod) + "\" or \"" +
                                                 std::string(kPollMethod) + "\"");
  }
  s.delivery_method = method;
  return ok();
}

}  // namespace

Result<std::string> Transmitter::create_stream(std::string_view receiver, std::string_view body) {
  WARDEN_ASSIGN(o, parse_stream_body(body));
  if (o.contains("stream_id")) {
    return fail(ErrorCode::kInvalidArgument, "ssf stream: the transmitter assigns stream_id");
  }
  SsfStream s;
  s.id = options_.new_id();
  s.receiver = std::string(receiver);
  s.aud = std::string(receiver);
  s.created_at = s.updated_at = options_.clock->unix_now();
  WARDEN_TRY_STATUS(apply_config(
      s, o, true, options_.allow_http_loopback,
      [this](std::string_view id) { return endpoint("/ssf/poll/" + std::string(id)); }));
  WARDEN_TRY_STATUS(options_.store->add_ssf_stream(s, options_.max_streams_per_receiver));
  spdlog::info("ssf: receiver {} created stream {} ({})", receiver, s.id, s.delivery_method);
  return stream_json(s);
}

Result<std::string> Transmitter::read_streams(std::string_view receiver,
                                              const std::optional<std::string>& stream_id) {
  if (stream_id) {
    WARDEN_ASSIGN(s, own_stream(receiver, *stream_id));
    return stream_json(s);
  }
  WARDEN_ASSIGN(streams, options_.store->list_ssf_streams(receiver));
  std::string out = "[";
  for (const auto& s : streams) out += (out.size() > 1 ? "," : "") + stream_json(s);
  return out + "]";
}

Result<std::string> Transmitter::update_stream(std::string_view receiver, std::string_view body,
                                               bool replace) {
  WARDEN_ASSIGN(o, parse_stream_body(body));
  WARDEN_ASSIGN(id, read_stream_id(o));
  WARDEN_ASSIGN(s, own_stream(receiver, id));
  WARDEN_TRY_STATUS(apply_config(
      s, o, replace, options_.allow_http_loopback,
      [this](std::string_view sid) { return endpoint("/ssf/poll/" + std::string(sid)); }));
  s.updated_at = options_.clock->unix_now();
  WARDEN_TRY_STATUS(options_.store->update_ssf_stream(s));
  return stream_json(s);
}

Status Transmitter::delete_stream(std::string_view receiver, std::string_view stream_id) {
  WARDEN_ASSIGN(s, own_stream(receiver, stream_id));
  WARDEN_TRY_STATUS(options_.store->remove_ssf_stream(s.id));
  spdlog::info("ssf: receiver {} deleted stream {}", receiver, s.id);
  return ok();
}

namespace {
std::string status_json(const SsfStream& s) {
  bj::object o;
  o["stream_id"] = s.id;
  o["status"] = s.status;
  if (!s.reason.empty()) o["reason"] = s.reason;
  return json::serialize(o);
}
}  // namespace

Result<std::string> Transmitter::read_status(std::string_view receiver,
                                             std::string_view stream_id) {
  WARDEN_ASSIGN(s, own_stream(receiver, stream_id));
  return status_json(s);
}

Result<std::string> Transmitter::update_status(std::string_view receiver, std::string_view body) {
  WARDEN_ASSIGN(o, json::parse_object(body, {"stream_id", "status", "reason"}, "ssf status"));
  WARDEN_ASSIGN(id, read_stream_id(o));
  WARDEN_ASSIGN(status, json::read_string(o, "status", Presence::kRequired, "ssf status"));
  if (status != "enabled" && status != "paused" && status != "disabled") {
    return fail(ErrorCode::kInvalidArgument,
                "ssf status: status must be \"enabled\", \"paused\" or \"disabled\"");
  }
  WARDEN_ASSIGN(reason, json::read_string(o, "reason", Presence::kOptional, "ssf status"));
  if (reason.size() > kMaxDescription) return too_long("reason", kMaxDescription);
  WARDEN_ASSIGN(s, own_stream(receiver, id));
  s.status = status;
  s.reason = reason;
  s.updated_at = options_.clock->unix_now();
  WARDEN_TRY_STATUS(options_.store->update_ssf_stream(s));
  spdlog::info("ssf: receiver {} set stream {} {}", receiver, s.id, s.status);
  if (status == "enabled") events_committed();  // held events are due now
  return status_json(s);
}

Status Transmitter::verify(std::string_view receiver, std::string_view body) {
  WARDEN_ASSIGN(o, json::parse_object(body, {"stream_id", "state"}, "ssf verification"));
  WARDEN_ASSIGN(id, read_stream_id(o));
  std::optional<std::string> state;
  if (o.contains("state")) {
    WARDEN_ASSIGN(st, json::read_string(o, "state", Presence::kRequired, "ssf verification"));
    if (st.size() > kMaxState) return too_long("state", kMaxState);
    state = std::move(st);
  }
  WARDEN_ASSIGN(s, own_stream(receiver, id));
  if (s.status == "disabled") {
    return fail(ErrorCode::kConflict, "ssf: stream " + s.id + " is disabled");
  }
  WARDEN_TRY_STATUS(options_.store->append_ssf_event(verification(s.id, state),
                                                     options_.clock->unix_now(), s.id));
  events_committed();
  return ok();
}

Result<std::string> Transmitter::poll(std::string_view receiver, std::string_view stream_id,
                                      std::string_view body) {
  WARDEN_ASSIGN(s, own_stream(receiver, stream_id));
  if (s.delivery_method != kPollMethod) {
    return fail(ErrorCode::kInvalidArgument, "ssf: stream " + s.id + " is a push stream");
  }
  WARDEN_ASSIGN(
      o, json::parse_object(body.empty() ? std::string_view("{}") : body,
                            {"ack", "maxEvents", "returnImmediately", "setErrs"}, "ssf poll"));
  WARDEN_ASSIGN(acks, json::read_string_array(o, "ack", "ssf poll"));
  const bj::value* errs = o.if_contains("setErrs");
  if (errs != nullptr && !errs->is_object()) {
    return fail(ErrorCode::kMalformed, "ssf poll: \"setErrs\" must be an object");
  }
  if (acks.size() + (errs != nullptr ? errs->as_object().size() : 0) > kMaxAcks) {
    return fail(ErrorCode::kLimitExceeded,
                "ssf poll: more than " + std::to_string(kMaxAcks) + " ack and setErrs entries");
  }
  auto max = static_cast<std::int64_t>(kMaxPollEvents);
  if (const bj::value* m = o.if_contains("maxEvents")) {
    WARDEN_ASSIGN(n, json::read_integer(*m, "maxEvents", 0, 1'000'000, "ssf poll"));
    max = std::min<std::int64_t>(n, static_cast<std::int64_t>(kMaxPollEvents));
  }
  if (const bj::value* r = o.if_contains("returnImmediately"); r != nullptr && !r->is_bool()) {
    return fail(ErrorCode::kMalformed, "ssf poll: \"returnImmediately\" must be a boolean");
  }
  const std::int64_t now = options_.clock->unix_now();
  // Acknowledged SETs of another stream, or unknown ones, are ignored (RFC 8936 section 2.4).
  for (const auto& jti : acks) {
    if (auto seq = seq_of_jti(s.id, jti)) {
      WARDEN_TRY_STATUS(options_.store->ssf_delivered(s.id, *seq, now));
    }
  }
  if (errs != nullptr) {
    for (const auto& kv : errs->as_object()) {
      auto seq = seq_of_jti(s.id, kv.key());
      if (!seq) continue;
      std::string err = "setErr";
      if (kv.value().is_object()) {
        if (auto e = json::get_string(kv.value().as_object(), "err")) err += " " + std::string(*e);
      }
      spdlog::warn("ssf: receiver {} refused SET {}: {}", receiver, std::string(kv.key()),
                   err.substr(0, 128));
      WARDEN_TRY_STATUS(options_.store->ssf_delivered(s.id, *seq, now, err));
    }
  }
  bj::object sets;
  bool more = false;
  // A paused or disabled stream sends nothing (SSF 1.0 section 8.1.2.1); acks still apply.
  if (s.status == "enabled" && max > 0) {
    WARDEN_ASSIGN(pending, options_.store->pending_ssf(s.id, static_cast<std::size_t>(max) + 1));
    more = pending.size() > static_cast<std::size_t>(max);
    if (more) pending.pop_back();
    for (const SsfDelivery& d : pending) {
      WARDEN_ASSIGN(jwt, sign(d));
      sets[set_jti(s.id, d.event.seq)] = jwt;
    }
  }
  bj::object out;
  out["sets"] = std::move(sets);
  out["moreAvailable"] = more;
  return json::serialize(out);
}

Result<std::string> Transmitter::sign(const SsfDelivery& d) {
  WARDEN_ASSIGN(set, to_set(d, options_.iss, options_.clock->unix_now()));
  WARDEN_ASSIGN(signer, options_.signer());
  return token::mint_set(*signer, set);
}

Status Transmitter::housekeeping() {
  WARDEN_ASSIGN(n, options_.store->purge_ssf(options_.clock->unix_now() - options_.retention_s));
  if (n > 0) spdlog::debug("ssf: purged {} delivered rows", n);
  return ok();
}

void Transmitter::set_on_events_committed(std::function<void()> hook) {
  std::lock_guard lock(mu_);
  options_.on_events_committed = std::move(hook);
}

void Transmitter::events_committed() {
  std::function<void()> hook;
  {
    std::lock_guard lock(mu_);
    hook = options_.on_events_committed;
  }
  if (hook) hook();
}

Result<std::vector<PushItem>> Transmitter::claim(std::string_view owner, std::int64_t now,
                                                 std::int64_t lease_s, std::size_t max) {
  WARDEN_ASSIGN(due, options_.store->claim_ssf_push(owner, now, lease_s, max));
  std::vector<PushItem> out;
  out.reserve(due.size());
  for (const SsfDelivery& d : due) {
    auto jwt = sign(d);
    if (!jwt) {
      if (jwt.error().code != ErrorCode::kMalformed) return fail(std::move(jwt).error());
      // A stored event that cannot become a SET would block its stream forever.
      spdlog::error("ssf: event {} cannot be sent: {}", d.event.seq, jwt.error().message);
      WARDEN_TRY_STATUS(options_.store->ssf_delivered(d.stream.id, d.event.seq, now,
                                                      "unbuildable: " + jwt.error().message));
      continue;
    }
    out.push_back({d.stream.id, d.event.seq, d.stream.endpoint_url, d.stream.authorization_header,
                   std::move(*jwt), d.attempts});
  }
  return out;
}

Status Transmitter::delivered(const PushItem& item, std::int64_t now) {
  return options_.store->ssf_delivered(item.stream_id, item.seq, now);
}

Status Transmitter::failed(const PushItem& item, std::int64_t next_attempt_at,
                           std::string_view error) {
  return options_.store->ssf_failed(item.stream_id, item.seq, next_attempt_at, error);
}

}  // namespace warden::issuer::ssf
