// The push client (issuer/ssf/http_client.h) against real receivers on loopback: plain http
// where allowed, HTTPS checked against a test CA, hanging, huge, early-closing and non-HTTP
// receivers.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "issuer/ssf/http_client.h"
#include "tests/integration/issuer/ssf_receiver.h"
#include "tests/support/process.h"

namespace warden::issuer::ssf {
namespace {
using test::Receiver;
using test::ReceiverReply;
using namespace std::chrono_literals;

Receiver::Behaviour answer(unsigned status, std::string body = {}, std::string type = {}) {
  return [=](const test::ReceivedPost&) {
    return ReceiverReply{ReceiverReply::Mode::kRespond, status, type, body};
  };
}
Receiver::Behaviour act(ReceiverReply::Mode mode) {
  return [=](const test::ReceivedPost&) { return ReceiverReply{mode, 0, {}, {}}; };
}

std::unique_ptr<HttpClient> client(HttpClientOptions options) {
  auto c = HttpClient::create(std::move(options));
  EXPECT_TRUE(c) << c.error().message;
  return c ? std::move(*c) : nullptr;
}
HttpClientOptions loopback_http(std::chrono::milliseconds deadline = 10s) {
  HttpClientOptions o;
  o.deadline = deadline;
  o.allow_http_loopback = true;
  return o;
}
Endpoint endpoint(const std::string& url) {
  auto ep = parse_endpoint(url);
  EXPECT_TRUE(ep) << ep.error().message;
  return ep ? *ep : Endpoint{};
}
const PostRequest kSet{"application/secevent+jwt", "application/json", "Bearer r-token",
                       "eyJ0eXAiOiJzZWNldmVudCtqd3QifQ.e30.sig"};

TEST(PushEndpoint, ParsesHostPortAndTarget) {
  auto ep = parse_endpoint("HTTPS://rp.example:8443/ssf/events?stream=a");
  ASSERT_TRUE(ep) << ep.error().message;
  EXPECT_EQ(ep->scheme, "https");
  EXPECT_EQ(ep->host, "rp.example");
  EXPECT_EQ(ep->port, 8443);
  EXPECT_EQ(ep->target, "/ssf/events?stream=a");
  ep = parse_endpoint("https://[::1]/x");
  ASSERT_TRUE(ep) << ep.error().message;
  EXPECT_EQ(ep->host, "::1");
  EXPECT_EQ(ep->port, 443);
  ep = parse_endpoint("http://127.0.0.1");
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->port, 80);
  EXPECT_EQ(ep->target, "/");
}

TEST(PushEndpoint, RejectsWhatCouldInjectOrMislead) {
  for (const char* bad :
       {"ftp://rp.example/", "rp.example/events", "https://user:pw@rp.example/",
        "https://rp.example/a b", "https://rp.example/a\r\nX-Injected: 1", "https://rp.example/#f",
        "https://rp.example:0/", "https://rp.example:65536/", "https://rp.example:x/",
        "https://[::1/", "https://[zz::1]/", "https://rp_example/", "https:///events",
        "https://[::1]x/"}) {
    auto ep = parse_endpoint(bad);
    EXPECT_FALSE(ep) << bad;
    if (!ep) {
      EXPECT_EQ(ep.error().code, ErrorCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_FALSE(parse_endpoint("https://rp.example/" + std::string(3000, 'a')));
}

TEST(PushEndpoint, LoopbackAddresses) {
  EXPECT_TRUE(is_loopback_address("127.0.0.1"));
  EXPECT_TRUE(is_loopback_address("127.8.9.10"));
  EXPECT_TRUE(is_loopback_address("::1"));
  EXPECT_TRUE(is_loopback_address("::ffff:127.0.0.1"));
  EXPECT_FALSE(is_loopback_address("localhost"));  // a name is not resolved here
  EXPECT_FALSE(is_loopback_address("10.0.0.1"));
  EXPECT_FALSE(is_loopback_address("::ffff:10.0.0.1"));
}

TEST(PushClient, PostsTheSetWithRfc8935Headers) {
  Receiver rx(answer(202));
  auto c = client(loopback_http());
  auto res = c->post(endpoint(rx.url("/events?x=1")), kSet);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 202);
  const auto got = rx.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].target, "/events?x=1");
  EXPECT_EQ(got[0].content_type, "application/secevent+jwt");
  EXPECT_EQ(got[0].accept, "application/json");
  EXPECT_EQ(got[0].authorization, "Bearer r-token");
  EXPECT_EQ(got[0].body, kSet.body);
}

TEST(PushClient, NoAuthorizationHeaderWhenTheStreamHasNone) {
  Receiver rx(answer(202));
  auto c = client(loopback_http());
  PostRequest rq = kSet;
  rq.authorization = {};
  ASSERT_TRUE(c->post(endpoint(rx.url()), rq));
  ASSERT_EQ(rx.received().size(), 1u);
  EXPECT_EQ(rx.received()[0].authorization, "");
}

TEST(PushClient, PlainHttpRefusedUnlessAllowed) {
  Receiver rx(answer(202));
  HttpClientOptions o;
  auto c = client(o);
  auto res = c->post(endpoint(rx.url()), kSet);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(rx.received().empty());
}

TEST(PushClient, PlainHttpToANameThatResolvesToLoopbackOnlyIsAllowed) {
  Receiver rx(answer(202));
  auto res = client(loopback_http())->post(endpoint(rx.url("/events", "localhost")), kSet);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 202);
}

TEST(PushClient, PlainHttpToANonLoopbackHostRefusedBeforeConnecting) {
  auto c = client(loopback_http(60s));
  for (const char* url : {"http://192.0.2.1:9/events", "http://[2001:db8::1]:9/events",
                          "http://[::ffff:192.0.2.1]:9/"}) {
    auto res = c->post(endpoint(url), kSet);
    ASSERT_FALSE(res) << url;
    EXPECT_EQ(res.error().code, ErrorCode::kInvalidArgument) << url;
    EXPECT_NE(res.error().message.find("non-loopback"), std::string::npos) << url;
  }
}

TEST(PushClient, ErrorStatusAndBodyAreReturned) {
  Receiver rx(
      answer(400, R"({"err":"invalid_key","description":"unknown kid"})", "application/json"));
  auto c = client(loopback_http());
  auto res = c->post(endpoint(rx.url()), kSet);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(res->content_type, "application/json");
  EXPECT_EQ(res->body, R"({"err":"invalid_key","description":"unknown kid"})");
  EXPECT_FALSE(res->body_truncated);
}

TEST(PushClient, RedirectsAreNotFollowed) {
  Receiver target(answer(202));
  Receiver rx([&](const test::ReceivedPost&) {
    return ReceiverReply{ReceiverReply::Mode::kRespond, 307, "text/plain", target.url()};
  });
  auto c = client(loopback_http());
  auto res = c->post(endpoint(rx.url()), kSet);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 307);
  EXPECT_TRUE(target.received().empty());
}

TEST(PushClient, HugeBodyIsCutAtTheCapAndTheStatusKept) {
  Receiver rx(answer(202, std::string(4 << 20, 'x'), "text/plain"));
  HttpClientOptions o = loopback_http();
  o.max_body = 1024;
  auto c = client(o);
  auto res = c->post(endpoint(rx.url()), kSet);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 202);
  EXPECT_TRUE(res->body_truncated);
  EXPECT_LE(res->body.size(), 1024u);
}

TEST(PushClient, HangingReceiverEndsAtTheDeadline) {
  Receiver rx(act(ReceiverReply::Mode::kHang));
  auto c = client(loopback_http(300ms));
  auto res = c->post(endpoint(rx.url()), kSet);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kTimeout) << res.error().message;
  // The client is usable again after a timeout.
  rx.set_behaviour(answer(202));
  auto again = c->post(endpoint(rx.url()), kSet);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->status, 202);
}

// The error of one post to a receiver that misbehaves as `mode` says.
Error post_error(ReceiverReply::Mode mode) {
  Receiver rx(act(mode));
  auto res = client(loopback_http())->post(endpoint(rx.url()), kSet);
  return res ? Error{ErrorCode::kInternal, "answered " + std::to_string(res->status), 0, 0}
             : res.error();
}

TEST(PushClient, ConnectionClosedBeforeAResponseIsUnavailable) {
  const Error e = post_error(ReceiverReply::Mode::kCloseEarly);
  EXPECT_EQ(e.code, ErrorCode::kUnavailable) << e.message;
}

TEST(PushClient, NonHttpAnswerIsMalformed) {
  const Error e = post_error(ReceiverReply::Mode::kGarbage);
  EXPECT_EQ(e.code, ErrorCode::kMalformed) << e.message;
}

TEST(PushClient, ConnectionRefusedIsUnavailable) {
  std::string url;
  {
    Receiver gone(answer(202));
    url = gone.url();
  }
  auto c = client(loopback_http());
  auto res = c->post(endpoint(url), kSet);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable) << res.error().message;
}

TEST(PushClient, Ipv6Loopback) {
  std::unique_ptr<Receiver> rx;
  try {
    rx = std::make_unique<Receiver>(answer(202), std::nullopt, "::1");
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  auto c = client(loopback_http());
  auto res = c->post(endpoint(rx->url()), kSet);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 202);
}

TEST(PushClient, CancelAbortsAPostInFlightAndEveryLaterOne) {
  Receiver rx(act(ReceiverReply::Mode::kHang));
  auto c = client(loopback_http(120s));
  std::thread canceller([&] {
    rx.wait_for(1);
    c->cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  auto res = c->post(endpoint(rx.url()), kSet);
  canceller.join();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(res.error().message.find("cancelled"), std::string::npos) << res.error().message;
  // Far below the 120 s deadline: the abort did not wait for it.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 60s);
  rx.set_behaviour(answer(202));
  EXPECT_FALSE(c->post(endpoint(rx.url()), kSet));
  EXPECT_EQ(rx.received().size(), 1u);
}

class PushClientTls : public ::testing::Test {
 protected:
  void SetUp() override { test::make_pki(dir_.path()); }
  HttpClientOptions options() const {
    HttpClientOptions o;
    o.ca_file = dir_.path() / "ca.crt";
    return o;
  }
  test::TempDir dir_{"warden-ssf-tls"};
};

TEST_F(PushClientTls, VerifiesTheReceiverAgainstTheCaFileByNameAndAddress) {
  Receiver rx(answer(202), dir_.path());
  auto c = client(options());
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    auto res = c->post(endpoint(rx.url("/events", host)), kSet);
    ASSERT_TRUE(res) << host << ": " << res.error().message;
    EXPECT_EQ(res->status, 202);
  }
  ASSERT_EQ(rx.received().size(), 2u);
  EXPECT_EQ(rx.received()[1].body, kSet.body);
}

TEST_F(PushClientTls, AnotherCaIsRefused) {
  Receiver rx(answer(202), dir_.path());
  test::TempDir other("warden-ssf-tls-other");
  test::make_pki(other.path());
  HttpClientOptions o;
  o.ca_file = other.path() / "ca.crt";
  auto c = client(o);
  auto res = c->post(endpoint(rx.url()), kSet);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kUntrusted) << res.error().message;
  EXPECT_TRUE(rx.received().empty());
}

TEST_F(PushClientTls, TheSystemTrustStoreDoesNotKnowATestCa) {
  Receiver rx(answer(202), dir_.path());
  auto c = client(HttpClientOptions{});
  auto res = c->post(endpoint(rx.url()), kSet);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kUntrusted) << res.error().message;
}

TEST_F(PushClientTls, ACertificateForAnotherNameIsRefused) {
  test::TempDir other("warden-ssf-tls-name");
  test::make_pki(other.path(), {"rp.example"});
  Receiver rx(answer(202), other.path());
  HttpClientOptions o;
  o.ca_file = other.path() / "ca.crt";
  auto c = client(o);
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    auto res = c->post(endpoint(rx.url("/events", host)), kSet);
    ASSERT_FALSE(res) << host;
    EXPECT_EQ(res.error().code, ErrorCode::kUntrusted) << res.error().message;
  }
}

TEST_F(PushClientTls, PlainHttpToAnHttpsReceiverFails) {
  Receiver rx(answer(202), dir_.path());
  auto c = client(loopback_http(2s));
  auto res = c->post(endpoint("http://127.0.0.1:" + std::to_string(rx.port()) + "/"), kSet);
  EXPECT_FALSE(res);
}

TEST(PushClientOptions, AMissingCaFileIsAnError) {
  HttpClientOptions o;
  o.ca_file = "/nonexistent/ca.crt";
  auto c = HttpClient::create(o);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace warden::issuer::ssf
