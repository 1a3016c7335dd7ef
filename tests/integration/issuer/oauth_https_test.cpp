// The OAuth routes and the status list's validators over the real HTTPS server: the headers a
// relying party sends (Authorization, If-None-Match) reach the routes, and a 304 goes out
// without a body.
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "attest/token/jwt.h"
#include "attest/token/signer.h"
#include "issuer/http/server.h"
#include "issuer/service.h"
#include "issuer/signing_keys.h"
#include "platform/net/https_client.h"
#include "tests/support/process.h"
#include "tests/support/test_issuer.h"

namespace warden::issuer {
namespace {

class OAuthHttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto pki = test::run_command(
        {std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki", dir_.path().string()});
    ASSERT_EQ(pki.exit_code, 0) << pki.out;
    config_.listen.address = "127.0.0.1";
    config_.listen.port = 0;
    config_.listen.threads = 1;
    config_.tls.cert_file = (dir_.path() / "server.crt").string();
    config_.tls.key_file = (dir_.path() / "server.key").string();
    config_.admin.socket = "";
    config_.issuer_url = "https://localhost";
    auto issuer = test::open_test_issuer(dir_.path(), config_, clock_, random_);
    ASSERT_TRUE(issuer) << issuer.error().message;
    store_ = std::move(issuer->store);
    keys_ = std::move(issuer->keys);
    service_ = std::move(issuer->service);
    auto server = http::HttpsServer::create(config_, *service_);
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    server_->start();
    net::ClientOptions co;
    co.ca_file = dir_.path() / "ca.crt";
    auto client =
        net::HttpsClient::create("https://localhost:" + std::to_string(server_->port()), co);
    ASSERT_TRUE(client) << client.error().message;
    client_ = std::move(*client);
  }
  void TearDown() override {
    if (server_) server_->stop(std::chrono::milliseconds(0));
  }

  test::TempDir dir_{"warden-oauth-https"};
  SystemClock clock_;
  SystemRandom random_;
  IssuerConfig config_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<IssuerService> service_;
  std::unique_ptr<http::HttpsServer> server_;
  std::unique_ptr<net::HttpsClient> client_;
};

TEST_F(OAuthHttpsTest, StatusListRevalidatesWithA304WithoutBody) {
  auto first = client_->request("GET", "/v1/status/1", "", {});
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->status, 200U);
  EXPECT_EQ(first->headers["cache-control"], "max-age=2");
  const std::string etag = first->headers["etag"];
  ASSERT_FALSE(etag.empty());
  auto again = client_->request("GET", "/v1/status/1", "", {}, {{"If-None-Match", etag}});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->status, 304U);
  EXPECT_TRUE(again->body.empty());
  EXPECT_EQ(again->headers["etag"], etag);
  // The connection is still in step: the next answer is the next request's.
  ASSERT_TRUE(store_->set_status_bit("1", 1, true));
  auto flipped = client_->request("GET", "/v1/status/1", "", {}, {{"If-None-Match", etag}});
  ASSERT_TRUE(flipped) << flipped.error().message;
  EXPECT_EQ(flipped->status, 200U);
  EXPECT_NE(flipped->headers["etag"], etag);
}

// RFC 9110 8.6: a 304 must not carry a Content-Length other than the 200's, but Beast's
// prepare_payload() sets 0. Enabled with the one-line fix in issuer/http/server.cpp (erase the
// field for 304 after prepare_payload), which is not this module's file.
TEST_F(OAuthHttpsTest, NotModifiedCarriesNoContentLength) {
  auto first = client_->request("GET", "/v1/status/1", "", {});
  ASSERT_TRUE(first) << first.error().message;
  auto again =
      client_->request("GET", "/v1/status/1", "", {}, {{"If-None-Match", first->headers["etag"]}});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->status, 304U);
  EXPECT_EQ(again->headers.count("content-length"), 0U) << again->headers["content-length"];
}

TEST_F(OAuthHttpsTest, IntrospectionAndMetadata) {
  auto metadata = client_->request("GET", "/.well-known/oauth-authorization-server", "", {});
  ASSERT_TRUE(metadata) << metadata.error().message;
  ASSERT_EQ(metadata->status, 200U);
  EXPECT_EQ(boost::json::parse(warden::to_string(metadata->body)).at("introspection_endpoint"),
            "https://localhost/oauth/introspect");

  const std::string form = "token=a.b.c";
  auto none = client_->request("POST", "/oauth/introspect", "application/x-www-form-urlencoded",
                               to_bytes(form));
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->status, 401U);
  EXPECT_EQ(none->headers["www-authenticate"], R"(Bearer realm="warden-issuer")");
  auto bearer = client_->request("POST", "/oauth/introspect", "application/x-www-form-urlencoded",
                                 to_bytes(form), {{"Authorization", "Bearer nobody"}});
  ASSERT_TRUE(bearer) << bearer.error().message;
  EXPECT_EQ(bearer->status, 401U);
  EXPECT_NE(bearer->headers["www-authenticate"].find("invalid_token"), std::string::npos);
}

}  // namespace
}  // namespace warden::issuer
