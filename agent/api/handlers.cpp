#include "agent/api/handlers.h"

#include <array>
#include <charconv>
#include <cstring>
#include <new>

#include <boost/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "agent/state_store.h"
#include "attest/protocol/errors.h"
#include "attest/token/json.h"
#include "platform/base/encoding.h"

namespace warden::agent::api {
namespace bjson = boost::json;
namespace {

constexpr std::size_t kMaxSealedSecret = 128;  // TPM2B_SENSITIVE_DATA (MAX_SYM_DATA)
/// A requested ttl is capped by token.max_ttl_seconds anyway; this only bounds the arithmetic.
constexpr std::int64_t kMaxTtlSeconds = 0xFFFFFFFFLL;

using JsonOut = warden::json::ObjectWriter;

unsigned status_for(ErrorCode code) {
  const auto& row = protocol::error_info(code);
  // The local API knows its callers by SO_PEERCRED, never by what a request carries: a
  // credential failure here is the issuer refusing this device, so the workload is refused.
  return row.credential ? 403 : row.http_status;
}

HttpReply ok_reply(unsigned status, JsonOut&& v) { return {status, v.done()}; }
HttpReply ok_reply(unsigned status, JsonOut& v) { return {status, v.done()}; }

/// {"name": name, "value": base64(value)} built straight into locked memory: the secret's
/// base64 never touches the ordinary heap. `name` passed valid_secret_name (nothing to escape).
HttpReply secret_reply(std::string_view name, const SecretBytes& value) {
  constexpr std::string_view kHead = R"({"name":")", kMid = R"(","value":")", kTail = R"("})";
  const std::size_t b64 = 4 * ((value.size() + 2) / 3);
  HttpReply reply;
  // +1: EVP_EncodeBlock writes a terminating NUL, dropped below.
  reply.secret_body =
      SecretBytes(kHead.size() + name.size() + kMid.size() + b64 + kTail.size() + 1);
  std::uint8_t* p = reply.secret_body.data();
  for (std::string_view part : {kHead, name, kMid}) {
    std::memcpy(p, part.data(), part.size());
    p += part.size();
  }
  p += EVP_EncodeBlock(p, value.view().data(), static_cast<int>(value.size()));
  std::memcpy(p, kTail.data(), kTail.size());
  reply.secret_body.resize(reply.secret_body.size() - 1);
  return reply;
}

HttpReply bad_request(std::string reason) { return error_reply(400, "bad_request", reason); }

using warden::json::parse_object;
using warden::json::Presence;
using warden::json::read_integer;
using warden::json::read_string;

Result<TokenRequest> parse_token_request(std::string_view body) {
  // The common request fits in this buffer: no heap allocation for the DOM.
  std::array<unsigned char, 1024> scratch{};
  bjson::monotonic_resource arena(scratch.data(), scratch.size());
  auto o = parse_object(body, {"audience", "scopes", "ttl", "format"}, "request body", &arena);
  if (!o) return fail(std::move(o).error());
  TokenRequest r;
  auto audience = read_string(*o, "audience", Presence::kRequired);
  if (!audience) return fail(std::move(audience).error());
  if (audience->empty())
    return fail(ErrorCode::kMalformed, "request body: \"audience\" must not be empty");
  r.audience = std::move(*audience);
  auto scopes = warden::json::read_string_array(*o, "scopes");
  if (!scopes) return fail(std::move(scopes).error());
  r.scopes = std::move(*scopes);
  if (const auto* ttl = o->if_contains("ttl")) {
    auto seconds = read_integer(*ttl, "ttl", 1, kMaxTtlSeconds);
    if (!seconds) return fail(std::move(seconds).error());
    r.ttl = std::chrono::seconds(*seconds);
  }
  if (o->contains("format")) {
    auto format = read_string(*o, "format", Presence::kRequired);
    if (!format) return fail(std::move(format).error());
    if (*format == "jwt") {
      r.format = TokenFormat::kJwt;
    } else if (*format == "cwt") {
      r.format = TokenFormat::kCwt;
    } else {
      return fail(ErrorCode::kMalformed,
                  "request body: \"format\" must be \"jwt\" or \"cwt\", found \"" + *format + "\"");
    }
  }
  return r;
}

Result<ProofRequest> parse_proof_request(std::string_view body) {
  std::array<unsigned char, 1024> scratch{};
  bjson::monotonic_resource arena(scratch.data(), scratch.size());
  auto o = parse_object(body, {"jti", "htm", "htu"}, "request body", &arena);
  if (!o) return fail(std::move(o).error());
  ProofRequest r;
  for (auto [key, out] :
       {std::pair{"jti", &r.jti}, std::pair{"htm", &r.htm}, std::pair{"htu", &r.htu}}) {
    auto v = read_string(*o, key, Presence::kRequired);
    if (!v) return fail(std::move(v).error());
    if (v->empty())
      return fail(ErrorCode::kMalformed,
                  "request body: \"" + std::string(key) + "\" must not be empty");
    *out = std::move(*v);
  }
  for (char c : r.htm) {
    if (c < 'A' || c > 'Z')
      return fail(ErrorCode::kMalformed,
                  "request body: \"htm\" must be an HTTP method like GET, found \"" + r.htm + "\"");
  }
  if (r.htu.rfind("https://", 0) != 0 && r.htu.rfind("http://", 0) != 0) {
    return fail(ErrorCode::kMalformed,
                "request body: \"htu\" must be an http(s) URI, found \"" + r.htu + "\"");
  }
  return r;
}

Result<SelectorMatch> parse_selector_match(const bjson::value& v) {
  if (!v.is_object())
    return fail(ErrorCode::kMalformed, "request body: \"allow\" entries must be objects");
  const auto& o = v.as_object();
  SelectorMatch m;
  bool any = false;
  for (const auto& kv : o) {
    const std::string_view k = kv.key();
    if (k == "uid" || k == "gid") {
      auto n = read_integer(kv.value(), "allow." + std::string(k), 0, 0xFFFFFFFFLL);
      if (!n) return fail(std::move(n).error());
      (k == "uid" ? m.uid : m.gid) = static_cast<std::uint32_t>(*n);
    } else {
      std::optional<std::string>* field = nullptr;
      if (k == "systemd_unit") field = &m.systemd_unit;
      if (k == "container_id") field = &m.container_id;
      if (k == "container_runtime") field = &m.container_runtime;
      if (k == "exe_path") field = &m.exe_path;
      if (k == "exe_sha256") field = &m.exe_sha256;
      if (field == nullptr)
        return fail(ErrorCode::kMalformed,
                    "request body: unknown selector \"" + std::string(k) + "\"");
      if (!kv.value().is_string())
        return fail(ErrorCode::kMalformed,
                    "request body: allow." + std::string(k) + " must be a string");
      *field = std::string(kv.value().as_string());
    }
    any = true;
  }
  if (!any)
    return fail(ErrorCode::kMalformed,
                "request body: an \"allow\" entry must name at least one selector");
  return m;
}

Result<SealRequest> parse_seal_request(std::string name, std::string_view body) {
  auto o = parse_object(body, {"value", "allow"});
  if (!o) return fail(std::move(o).error());
  SealRequest r;
  r.name = std::move(name);
  auto value = read_string(*o, "value", Presence::kRequired);
  if (!value) return fail(std::move(value).error());
  auto decoded = base64_decode(*value);
  // The plaintext leaves the ordinary heap at once: only the locked copy in r.value remains.
  auto& in_dom = o->at("value").as_string();
  OPENSSL_cleanse(in_dom.data(), in_dom.size());
  OPENSSL_cleanse(value->data(), value->size());
  if (!decoded) return fail(ErrorCode::kMalformed, "request body: \"value\" must be base64");
  // A TPM sealed data object holds at most 128 bytes; bigger never reaches the secure heap.
  const std::size_t size = decoded->size();
  if (size == 0 || size > kMaxSealedSecret) {
    OPENSSL_cleanse(decoded->data(), size);
    return fail(ErrorCode::kMalformed, "request body: \"value\" must decode to 1.." +
                                           std::to_string(kMaxSealedSecret) + " bytes, found " +
                                           std::to_string(size));
  }
  r.value = SecretBytes(*decoded);
  OPENSSL_cleanse(decoded->data(), size);
  const auto* allow = o->if_contains("allow");
  if (allow == nullptr || !allow->is_array() || allow->as_array().empty()) {
    return fail(ErrorCode::kMalformed,
                "request body: \"allow\" must be a non-empty array of selector objects");
  }
  for (const auto& entry : allow->as_array()) {
    auto m = parse_selector_match(entry);
    if (!m) return fail(std::move(m).error());
    r.allow.push_back(std::move(*m));
  }
  return r;
}

JsonOut status_json(const AgentStatus& s) {
  JsonOut o;
  o.str("state", s.state).str("reason", s.reason).num("since", s.since);
  o.boolean("enrolled", s.enrolled);
  o.num("pending_revocation_reports", static_cast<std::int64_t>(s.pending_revocation_reports));
  return o;
}

}  // namespace

HttpReply error_reply(unsigned status, std::string_view code, std::string_view reason) {
  return {status, protocol::error_json(code, reason)};
}

HttpReply error_reply(const Error& error) {
  return error_reply(status_for(error.code), to_string(error.code), error.message);
}

std::string identity_json(const os::Selectors& s) {
  JsonOut o;
  o.num("pid", s.pid).num("uid", s.uid).num("gid", s.gid);
  o.str_or_null("systemd_unit", s.systemd_unit).str_or_null("container_id", s.container_id);
  o.str_or_null("container_runtime", s.container_runtime).str_or_null("pod_uid", s.pod_uid);
  o.str_or_null("exe_path", s.exe_path).str_or_null("exe_sha256", s.exe_sha256);
  return o.done();
}

bool valid_secret_name(std::string_view name) {
  // One rule for the API and the store (secret files are named after secrets).
  return static_cast<bool>(StateStore::check_secret_name(std::string(name)));
}

HttpReply route(WorkloadService& service, Socket socket, const os::Selectors& caller,
                std::string_view method, std::string_view target, std::string_view body) {
  const std::string_view path = target.substr(0, target.find('?'));
  constexpr std::string_view kSecrets = "/v1/secrets/";
  const bool admin = socket == Socket::kAdmin;

  if (path == "/v1/identity") {
    if (method != "GET") return error_reply(405, "method_not_allowed", "GET /v1/identity");
    return {200, identity_json(caller)};
  }
  if (path == "/v1/token") {
    if (method != "POST") return error_reply(405, "method_not_allowed", "POST /v1/token");
    auto request = parse_token_request(body);
    if (!request) return bad_request(request.error().message);
    auto r = service.token(caller, *request);
    if (!r) return error_reply(r.error());
    JsonOut o;
    o.str("token", r->token).str("token_type", r->token_type).str("jti", r->jti);
    o.num("expires_at", r->expires_at);
    return ok_reply(200, o);
  }
  if (path == "/v1/proof") {
    if (method != "POST") return error_reply(405, "method_not_allowed", "POST /v1/proof");
    auto request = parse_proof_request(body);
    if (!request) return bad_request(request.error().message);
    auto r = service.proof(caller, *request);
    if (!r) return error_reply(r.error());
    return ok_reply(200, JsonOut().str("proof", r->proof));
  }
  if (path.substr(0, kSecrets.size()) == kSecrets) {
    const std::string name(path.substr(kSecrets.size()));
    if (!valid_secret_name(name))
      return bad_request("secret name must match [A-Za-z0-9._-]{1,128} and not start with '.'");
    if (method == "GET") {
      try {
        auto r = service.secret(caller, name);
        // One answer for "no such secret" and "not yours": a caller learns nothing about which
        // names exist.
        if (!r && (r.error().code == ErrorCode::kNotFound ||
                   r.error().code == ErrorCode::kPermissionDenied)) {
          return error_reply(404, "not_found",
                             "secret \"" + name + "\": none that this caller may read");
        }
        if (!r) return error_reply(r.error());
        return secret_reply(name, *r);
      } catch (const std::bad_alloc&) {
        // The secure heap is bounded (agent::init_locked_key_memory): too many secrets in flight.
        return error_reply(503, "unavailable",
                           "secret: the locked memory for secrets is exhausted; retry later");
      }
    }
    if (method == "PUT" && admin) {
      try {
        auto request = parse_seal_request(name, body);
        if (!request) return bad_request(request.error().message);
        if (auto s = service.seal_secret(caller, *request); !s) return error_reply(s.error());
        return ok_reply(201, JsonOut().str("name", name).boolean("sealed", true));
      } catch (const std::bad_alloc&) {
        return error_reply(503, "unavailable",
                           "seal: the locked memory for secrets is exhausted; retry later");
      }
    }
    return error_reply(405, "method_not_allowed",
                       admin ? "GET or PUT /v1/secrets/{name}" : "GET /v1/secrets/{name}");
  }
  if (admin && path == "/v1/status") {
    if (method != "GET") return error_reply(405, "method_not_allowed", "GET /v1/status");
    auto r = service.status();
    if (!r) return error_reply(r.error());
    return ok_reply(200, status_json(*r));
  }
  if (admin && path == "/v1/revoke") {
    if (method != "POST") return error_reply(405, "method_not_allowed", "POST /v1/revoke");
    auto o = parse_object(body.empty() ? std::string_view("{}") : body, {"reason"});
    if (!o) return bad_request(o.error().message);
    auto reason = read_string(*o, "reason", Presence::kOptional);
    if (!reason) return bad_request(reason.error().message);
    if (auto s = service.revoke(caller, reason->empty() ? "admin request" : *reason); !s)
      return error_reply(s.error());
    return ok_reply(200, JsonOut().boolean("revoked", true));
  }
  if (admin && path == "/v1/reattest") {
    if (method != "POST") return error_reply(405, "method_not_allowed", "POST /v1/reattest");
    auto r = service.reattest(caller);
    if (!r) return error_reply(r.error());
    return ok_reply(202, status_json(*r));
  }
  return error_reply(404, "not_found",
                     "no route for " + std::string(method) + " " + std::string(path));
}

}  // namespace warden::agent::api

namespace warden::agent {
bool SelectorMatch::matches(const os::Selectors& s) const {
  return (!uid || *uid == s.uid) && (!gid || *gid == s.gid) &&
         (!systemd_unit || *systemd_unit == s.systemd_unit) &&
         (!container_id || *container_id == s.container_id) &&
         (!container_runtime || *container_runtime == s.container_runtime) &&
         (!exe_path || *exe_path == s.exe_path) && (!exe_sha256 || *exe_sha256 == s.exe_sha256);
}
}  // namespace warden::agent
