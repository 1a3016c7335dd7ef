#include "issuer/http/route_table.h"

#include <spdlog/spdlog.h>

#include "attest/protocol/messages.h"

namespace warden::issuer::http {
namespace {

bool is_param(std::string_view segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

std::string_view strip_query(std::string_view target) { return target.substr(0, target.find('?')); }

}  // namespace

std::vector<std::string_view> path_segments(std::string_view path) {
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

Response make_response(unsigned status, std::string_view content_type, std::string body) {
  Response r;
  r.status = status;
  r.content_type = std::string(content_type);
  r.body = std::move(body);
  return r;
}

Response method_not_allowed(std::string_view target, std::string_view allow) {
  auto r = error_response(target, 405, to_string(ErrorCode::kUnsupported),
                          "method not allowed; use " + std::string(allow));
  r.headers["allow"] = std::string(allow);
  return r;
}

Response service_error(std::string_view target, const Error& error) {
  const unsigned status = status_of(error.code);
  if (status >= 500) {
    spdlog::warn("{}: {} ({})", strip_query(target), error.message, to_string(error.code));
  }
  const std::string reason =
      error.code == ErrorCode::kInternal ? std::string("internal error") : error.message;
  return error_response(target, status, to_string(error.code), reason);
}

void RouteTable::add(Route route) {
  if (route.label.empty()) route.label = route.pattern;
  Pattern p;
  for (auto s : path_segments(route.pattern)) p.segments.emplace_back(s);
  patterns_.push_back(std::move(p));
  routes_.push_back(std::move(route));
}

void RouteTable::add_scope(Scope scope) { scopes_.push_back(std::move(scope)); }

bool RouteTable::matches(const Route& route, const std::vector<std::string_view>& parts,
                         std::vector<std::string_view>* params) const {
  const Pattern& p = patterns_[static_cast<std::size_t>(&route - routes_.data())];
  if (p.segments.size() != parts.size()) return false;
  if (params != nullptr) params->clear();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (is_param(p.segments[i])) {
      if (route.max_param != 0 && parts[i].size() > route.max_param) return false;
      if (params != nullptr) params->push_back(parts[i]);
    } else if (p.segments[i] != parts[i]) {
      return false;
    }
  }
  return true;
}

const Scope* RouteTable::scope_of(std::string_view path) const {
  const Scope* best = nullptr;
  for (const Scope& s : scopes_) {
    if (path.starts_with(s.prefix) && (best == nullptr || s.prefix.size() > best->prefix.size()))
      best = &s;
  }
  return best;
}

const Route* RouteTable::find(std::string_view method, std::string_view path) const {
  const auto parts = path_segments(path);
  for (const Route& r : routes_) {
    if (r.method == method && matches(r, parts, nullptr)) return &r;
  }
  return nullptr;
}

std::size_t RouteTable::body_cap(std::string_view target, std::size_t configured_max) const {
  const std::string_view path = strip_query(target);
  const auto parts = path_segments(path);
  std::size_t cap = Route::kDefaultMaxBody;
  // By path alone: the method may be any (the body is read before the route answers 405).
  for (const Route& r : routes_) {
    if (matches(r, parts, nullptr)) {
      cap = r.max_body;
      break;
    }
  }
  return std::min(cap, configured_max);
}

Response RouteTable::dispatch(const Request& request) const {
  const std::string_view target = request.target;
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
  const Scope* scope = scope_of(path);
  if (scope != nullptr && scope->admit) {
    if (auto refused = scope->admit(request)) {
      if (refused->route == Response{}.route) refused->route = scope->unmatched_label;
      return std::move(*refused);
    }
  }
  auto finish = [&](Response r) {
    if (scope != nullptr && scope->after) scope->after(request, r);
    return r;
  };

  const auto parts = path_segments(path);
  RouteContext context{request, path, query, {}};
  const Route* first = nullptr;  // of the matching pattern, for admission, label and Allow
  std::string allow;
  for (const Route& r : routes_) {
    std::vector<std::string_view> params;
    if (!matches(r, parts, &params)) continue;
    if (first == nullptr) {
      first = &r;
      if (r.admit) {
        if (auto refused = r.admit(request)) {
          refused->route = r.label;
          return finish(std::move(*refused));
        }
      }
    } else if (r.pattern != first->pattern) {
      continue;
    }
    if (r.method == request.method) {
      if (r.body == BodyFormat::kCbor) {
        const std::string_view media =
            std::string_view(request.content_type).substr(0, request.content_type.find(';'));
        if (media != protocol::kContentType) {
          auto refused = error_response(
              target, 415, to_string(ErrorCode::kUnsupported),
              "expected Content-Type application/cbor, found '" + request.content_type + "'");
          refused.route = r.label;
          return finish(std::move(refused));
        }
      }
      context.params = std::move(params);
      Response response = r.handler(context);
      response.route = r.label;
      return finish(std::move(response));
    }
    if (allow.find(r.method) == std::string::npos) allow += (allow.empty() ? "" : ", ") + r.method;
  }
  if (first != nullptr) {
    Response r = method_not_allowed(target, allow);
    r.route = first->label;
    return finish(std::move(r));
  }
  const std::string reason = scope != nullptr && !scope->not_found_reason.empty()
                                 ? scope->not_found_reason
                                 : "no route for " + std::string(path);
  Response r = error_response(target, 404, to_string(ErrorCode::kNotFound), reason);
  r.route = scope != nullptr ? scope->unmatched_label : "unmatched";
  return finish(std::move(r));
}

}  // namespace warden::issuer::http
