// The HTTPS client against a real TLS server on loopback, with a CA and certificates made by
// scripts/make-test-pki.
#include "platform/net/https_client.h"

#include <atomic>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "tests/support/process.h"

namespace warden::net {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using test::TempDir;

void make_pki(const std::filesystem::path& dir, const std::vector<std::string>& names = {}) {
  std::vector<std::string> argv{std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki",
                                dir.string()};
  argv.insert(argv.end(), names.begin(), names.end());
  const auto out = test::run_command(argv);
  ASSERT_EQ(out.exit_code, 0) << out.out;
}

struct ServerOptions {
  bool tls12_only = false;
  bool close_after_each = false;  ///< closes without "Connection: close", like an idle timeout
  std::size_t body_size = 0;      ///< 0: echo the request
  std::chrono::milliseconds reply_delay{0};  ///< waits this long before each response
};

// A sequential blocking TLS server: one connection at a time, many requests per connection.
class TestServer {
 public:
  TestServer(const std::filesystem::path& pki, ServerOptions options)
      : options_(options), ssl_(asio::ssl::context::tls_server) {
    ssl_.use_certificate_chain_file((pki / "server.crt").string());
    ssl_.use_private_key_file((pki / "server.key").string(), asio::ssl::context::pem);
    if (options.tls12_only) SSL_CTX_set_max_proto_version(ssl_.native_handle(), TLS1_2_VERSION);
    acceptor_.open(asio::ip::tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~TestServer() {
    stop_ = true;
    boost::system::error_code ec;
    asio::ip::tcp::socket wake(io_);
    wake.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
    thread_.join();
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] int connections() const { return connections_; }
  [[nodiscard]] std::string last_host() const {
    std::lock_guard lock(mutex_);
    return last_host_;
  }

 private:
  void serve() {
    while (!stop_) {
      asio::ssl::stream<asio::ip::tcp::socket> stream(io_, ssl_);
      boost::system::error_code ec;
      acceptor_.accept(stream.lowest_layer(), ec);
      if (ec || stop_) return;
      stream.handshake(asio::ssl::stream_base::server, ec);
      if (ec) continue;
      ++connections_;
      beast::flat_buffer buffer;
      for (;;) {
        http::request<http::string_body> req;
        http::read(stream, buffer, req, ec);
        if (ec) break;
        {
          std::lock_guard lock(mutex_);
          last_host_ = std::string(req[http::field::host]);
        }
        std::this_thread::sleep_for(options_.reply_delay);
        http::response<http::string_body> res{http::status::ok, 11};
        res.set(http::field::content_type, "text/plain");
        res.body() = options_.body_size ? std::string(options_.body_size, 'x')
                                        : std::string(req.method_string()) + " " +
                                              std::string(req.target()) + " " + req.body();
        res.keep_alive(true);
        res.prepare_payload();
        http::write(stream, res, ec);
        if (ec || options_.close_after_each) break;
      }
      stream.lowest_layer().close(ec);
    }
  }

  ServerOptions options_;
  asio::io_context io_;
  asio::ssl::context ssl_;
  asio::ip::tcp::acceptor acceptor_{io_};
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::string last_host_;
  std::thread thread_;
};

class HttpsClientTest : public ::testing::Test {
 protected:
  void SetUp() override { make_pki(dir_.path()); }
  ClientOptions options() const {
    ClientOptions o;
    o.ca_file = dir_.path() / "ca.crt";
    o.connect_timeout = std::chrono::milliseconds(3000);
    o.io_timeout = std::chrono::milliseconds(3000);
    return o;
  }
  std::unique_ptr<HttpsClient> client(const TestServer& server, ClientOptions o,
                                      std::string_view host = "localhost",
                                      std::string_view prefix = "") {
    auto c = HttpsClient::create(
        "https://" + std::string(host) + ":" + std::to_string(server.port()) + std::string(prefix),
        std::move(o));
    EXPECT_TRUE(c) << c.error().message;
    return c ? std::move(*c) : nullptr;
  }
  TempDir dir_{"warden-https-client"};
};

TEST_F(HttpsClientTest, Tls13RequestAndKeepAliveReuse) {
  TestServer server(dir_.path(), {});
  auto c = client(server, options(), "localhost", "/api");
  ASSERT_TRUE(c);
  for (int i = 0; i < 3; ++i) {
    auto r = c->request("POST", "/v1/x?a=1", "application/cbor", to_bytes("hello"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200U);
    EXPECT_EQ(r->content_type, "text/plain");
    EXPECT_EQ(r->headers.at("content-type"), "text/plain");
    EXPECT_EQ(to_string(r->body), "POST /api/v1/x?a=1 hello");
  }
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.last_host(), "localhost:" + std::to_string(server.port()));
  EXPECT_EQ(c->url("/v1/token"),
            "https://localhost:" + std::to_string(server.port()) + "/api/v1/token");
}

TEST_F(HttpsClientTest, IpAddressMatchesIpSan) {
  TestServer server(dir_.path(), {});
  auto c = client(server, options(), "127.0.0.1");
  ASSERT_TRUE(c);
  auto r = c->request("GET", "/", "", {});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200U);
}

TEST_F(HttpsClientTest, WrongCaIsUntrusted) {
  TestServer server(dir_.path(), {});
  TempDir other("warden-https-other");
  make_pki(other.path());
  auto o = options();
  o.ca_file = other.path() / "ca.crt";
  auto c = client(server, o);
  ASSERT_TRUE(c);
  auto r = c->request("GET", "/", "", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUntrusted) << r.error().message;
}

TEST_F(HttpsClientTest, HostNameMismatchIsUntrusted) {
  TempDir other("warden-https-other");
  make_pki(other.path(), {"issuer.example"});
  TestServer server(other.path(), {});
  auto o = options();
  o.ca_file = other.path() / "ca.crt";
  auto c = client(server, o, "localhost");
  ASSERT_TRUE(c);
  auto r = c->request("GET", "/", "", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUntrusted) << r.error().message;
}

TEST_F(HttpsClientTest, ReconnectsWhenServerClosedIdleConnection) {
  TestServer server(dir_.path(), {.close_after_each = true});
  auto c = client(server, options());
  ASSERT_TRUE(c);
  for (int i = 0; i < 3; ++i) {
    auto r = c->request("GET", "/again", "", {});
    ASSERT_TRUE(r) << "request " << i << ": " << r.error().message;
    EXPECT_EQ(to_string(r->body), "GET /again ");
  }
  EXPECT_EQ(server.connections(), 3);
}

TEST_F(HttpsClientTest, Tls12ServerRefusedUnlessAllowed) {
  TestServer server(dir_.path(), {.tls12_only = true});
  auto strict = client(server, options());
  ASSERT_TRUE(strict);
  auto refused = strict->request("GET", "/", "", {});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable) << refused.error().message;

  auto o = options();
  o.allow_tls12 = true;
  auto lenient = client(server, o);
  ASSERT_TRUE(lenient);
  auto r = lenient->request("GET", "/", "", {});
  ASSERT_TRUE(r) << r.error().message;
}

TEST_F(HttpsClientTest, OversizedResponseIsLimitExceeded) {
  TestServer server(dir_.path(), {.body_size = 10000});
  auto o = options();
  o.max_response_bytes = 1000;
  auto c = client(server, o);
  ASSERT_TRUE(c);
  auto r = c->request("GET", "/", "", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded) << r.error().message;
}

// io_timeout bounds each wait for the server (a slower answer is kTimeout, in about io_timeout);
// a patient client still gets the slow answer.
TEST_F(HttpsClientTest, SlowServerTimesOut) {
  TestServer server(dir_.path(), {.reply_delay = std::chrono::milliseconds(1500)});
  auto o = options();
  o.io_timeout = std::chrono::milliseconds(300);
  auto c = client(server, o);
  ASSERT_TRUE(c);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c->request("GET", "/slow", "", {});
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout) << r.error().message;
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::milliseconds(1200));
  o.io_timeout = std::chrono::milliseconds(5000);
  auto patient = client(server, o);
  auto again = patient->request("GET", "/after", "", {});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->status, 200U);
}

TEST_F(HttpsClientTest, NobodyListeningIsUnavailable) {
  const int port = test::free_tcp_port();
  auto c = HttpsClient::create("https://127.0.0.1:" + std::to_string(port), options());
  ASSERT_TRUE(c);
  auto r = (*c)->request("GET", "/", "", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable) << r.error().message;
}

TEST(ParseUrl, AcceptsAndRejects) {
  auto u = parse_url("https://issuer.example:8443/base?x=1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "issuer.example");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->target, "/base?x=1");
  auto v6 = parse_url("https://[::1]:9000");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9000);
  EXPECT_EQ(v6->target, "/");
  auto plain = parse_url("http://h");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->port, 80);
  for (const char* bad : {"issuer.example", "ftp://x", "https://", "https://h:0", "https://h:70000",
                          "https://h:x", "https://u@h", "https://[::1"}) {
    auto r = parse_url(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    }
  }
  ClientOptions with_ca;
  with_ca.ca_file = "/x";
  EXPECT_FALSE(HttpsClient::create("http://h", with_ca));
  EXPECT_FALSE(HttpsClient::create("https://h", ClientOptions{}));
}

}  // namespace
}  // namespace warden::net
