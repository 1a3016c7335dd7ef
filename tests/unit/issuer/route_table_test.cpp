#include "issuer/http/route_table.h"

#include <gtest/gtest.h>

#include "attest/protocol/messages.h"

namespace warden::issuer::http {
namespace {

Handler echo(std::string name) {
  return [name](const RouteContext& c) {
    std::string body = name;
    for (auto p : c.params) body += "|" + std::string(p);
    return make_response(200, "text/plain", body);
  };
}

Request request(std::string method, std::string target, std::string content_type = "") {
  Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.content_type = std::move(content_type);
  return r;
}

TEST(RouteTableTest, MatchesMethodAndPatternWithParameters) {
  RouteTable table;
  table.add(Route{"GET", "/things/{id}", BodyFormat::kNone, "", echo("get")});
  table.add(Route{"DELETE", "/things/{id}", BodyFormat::kNone, "", echo("delete")});
  table.add(Route{"POST", "/things/{id}/{verb}", BodyFormat::kNone, "/things/x", echo("verb")});
  auto r = table.dispatch(request("GET", "/things/a1?x=1"));
  EXPECT_EQ(r.status, 200U);
  EXPECT_EQ(r.body, "get|a1");
  EXPECT_EQ(r.route, "/things/{id}");  // the pattern is the metrics label
  EXPECT_EQ(table.dispatch(request("DELETE", "/things/a1")).body, "delete|a1");
  r = table.dispatch(request("POST", "/things//b/go/"));  // empty segments do not count
  EXPECT_EQ(r.body, "verb|b|go");
  EXPECT_EQ(r.route, "/things/x");
  EXPECT_NE(table.find("DELETE", "/things/q"), nullptr);
  EXPECT_EQ(table.find("PUT", "/things/q"), nullptr);
}

TEST(RouteTableTest, UnknownPathIs404AndWrongMethod405WithAllow) {
  RouteTable table;
  table.add(Route{"GET", "/things/{id}", BodyFormat::kNone, "", echo("get")});
  table.add(Route{"DELETE", "/things/{id}", BodyFormat::kNone, "", echo("delete")});
  auto missing = table.dispatch(request("GET", "/nothing/here"));
  EXPECT_EQ(missing.status, 404U);
  EXPECT_EQ(missing.route, "unmatched");
  EXPECT_NE(missing.body.find("no route for /nothing/here"), std::string::npos) << missing.body;
  auto wrong = table.dispatch(request("PUT", "/things/a"));
  EXPECT_EQ(wrong.status, 405U);
  EXPECT_EQ(wrong.headers.at("allow"), "GET, DELETE");
  EXPECT_EQ(wrong.route, "/things/{id}");
}

TEST(RouteTableTest, RefusesACborRouteWithAnotherBodyFormat) {
  RouteTable table;
  table.add(Route{"POST", "/v1/thing", BodyFormat::kCbor, "", echo("cbor")});
  auto refused = table.dispatch(request("POST", "/v1/thing", "application/json"));
  EXPECT_EQ(refused.status, 415U);
  EXPECT_EQ(refused.content_type, protocol::kContentType);  // errors under /v1/ are CBOR
  EXPECT_EQ(refused.route, "/v1/thing");
  EXPECT_EQ(table.dispatch(request("POST", "/v1/thing", "application/cbor; x=y")).status, 200U);
}

TEST(RouteTableTest, ScopesAdmitCountAndAnswerTheirOwn404) {
  RouteTable table;
  int after = 0;
  Scope scope("/admin/", "/admin/unmatched", "nothing there");
  scope.admit = [](const Request& r) -> std::optional<Response> {
    if (r.peer.loopback) return std::nullopt;
    return make_response(403, "text/plain", "no");
  };
  scope.after = [&after](const Request&, const Response&) { ++after; };
  table.add_scope(std::move(scope));
  table.add(Route{"GET", "/admin/x", BodyFormat::kNone, "", echo("x")});
  auto refused = table.dispatch(request("GET", "/admin/x"));
  EXPECT_EQ(refused.status, 403U);
  EXPECT_EQ(refused.route, "/admin/unmatched");
  EXPECT_EQ(after, 0);  // refused at admission: not counted
  auto ok = request("GET", "/admin/x");
  ok.peer.loopback = true;
  EXPECT_EQ(table.dispatch(ok).status, 200U);
  ok.target = "/admin/y";
  auto missing = table.dispatch(ok);
  EXPECT_EQ(missing.status, 404U);
  EXPECT_EQ(missing.route, "/admin/unmatched");
  EXPECT_NE(missing.body.find("nothing there"), std::string::npos);
  EXPECT_EQ(after, 2);
}

TEST(RouteTableTest, RouteAdmissionRunsBeforeTheMethodCheck) {
  RouteTable table;
  Route r{"GET", "/metrics", BodyFormat::kNone, "", echo("m")};
  r.admit = [](const Request&) -> std::optional<Response> {
    return make_response(403, "text/plain", "no");
  };
  table.add(std::move(r));
  auto refused = table.dispatch(request("POST", "/metrics"));
  EXPECT_EQ(refused.status, 403U);
  EXPECT_EQ(refused.route, "/metrics");
}

TEST(RouteTableTest, LongParametersDoNotMatchAndBodyCapsFollowTheRoute) {
  RouteTable table;
  Route r{"GET", "/s/{id}", BodyFormat::kNone, "", echo("s")};
  r.max_param = 3;
  r.max_body = 10;
  table.add(std::move(r));
  Route big{"POST", "/big", BodyFormat::kNone, "", echo("b")};
  big.max_body = Route::kConfiguredMax;
  table.add(std::move(big));
  EXPECT_EQ(table.dispatch(request("GET", "/s/abc")).status, 200U);
  EXPECT_EQ(table.dispatch(request("GET", "/s/abcd")).status, 404U);
  EXPECT_EQ(table.body_cap("/s/abc?q", 100), 10U);
  EXPECT_EQ(table.body_cap("/big", 5000), 5000U);
  EXPECT_EQ(table.body_cap("/other", 1U << 30), Route::kDefaultMaxBody);
}

}  // namespace
}  // namespace warden::issuer::http
