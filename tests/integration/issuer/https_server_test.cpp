// The issuer's HTTPS server on loopback with a fake IssuerService: routing, error mapping, every
// limit, TLS versions, admin client certificates, metrics. Certificates come from
// scripts/make-test-pki.
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "attest/protocol/messages.h"
#include "attest/token/json.h"
#include "issuer/http/router.h"
#include "issuer/http/server.h"
#include "platform/base/file.h"
#include "platform/net/https_client.h"
#include "tests/support/process.h"

namespace warden::issuer::http {
namespace {
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using test::TempDir;
using warden::to_string;

class FakeService final : public IssuerService {
 public:
  std::optional<Error> fail_with;
  bool is_ready = true;
  RequestTarget last_target;
  std::string last_actor;
  std::string last_state;
  std::string last_toml;
  std::string last_version;
  AuditFilter last_filter;
  std::size_t last_limit = 0;
  std::string last_after;
  std::chrono::milliseconds delay{0};

  template <class T>
  Result<T> answer(T value) {
    if (fail_with) return fail(*fail_with);
    return value;
  }
  Result<protocol::EnrollResponse> enroll(const protocol::EnrollRequest&) override {
    return answer(protocol::EnrollResponse{"enr-1", {1}, {2}, 99});
  }
  Result<protocol::ActivateResponse> activate(std::string_view id,
                                              const protocol::ActivateRequest&) override {
    return answer(protocol::ActivateResponse{"dev-" + std::string(id)});
  }
  std::atomic<int> challenges{0};
  std::string last_deleted;
  Status admin_delete_device(std::string_view id, std::string_view actor) override {
    last_deleted = std::string(id);
    last_actor = std::string(actor);
    if (id != "dev-1") return fail(ErrorCode::kNotFound, "no device " + std::string(id));
    return ok();
  }
  Result<protocol::ChallengeResponse> challenge(const protocol::ChallengeRequest& r) override {
    ++challenges;
    std::this_thread::sleep_for(delay);
    if (r.device_id == "junk") return fail(ErrorCode::kBadSignature, "junk");
    return answer(protocol::ChallengeResponse{Bytes(16, 7), r.device_id.size()});
  }
  Result<protocol::AttestResponse> attest(const protocol::AttestRequest& r, ByteSpan) override {
    protocol::AttestResponse res;
    res.verdict = r.device_id == "good" ? protocol::Verdict::kPass : protocol::Verdict::kFail;
    res.policy_version = "v1";
    return answer(res);
  }
  Result<protocol::TokenResponse> token(const protocol::TokenRequest&,
                                        const RequestTarget& target) override {
    last_target = target;
    return answer(protocol::TokenResponse{std::string("jwt"), "jti-1", 5, 6});
  }
  // hold_tokens: token_async keeps each request's completion, like a store whose commit is
  // still running, until the test completes it.
  bool hold_tokens = false;
  std::mutex held_mu;
  std::vector<std::function<void(Result<protocol::TokenResponse>)>> held;
  void token_async(const protocol::TokenRequest& request, const RequestTarget& target,
                   std::function<void(Result<protocol::TokenResponse>)> done) override {
    if (!hold_tokens) return IssuerService::token_async(request, target, std::move(done));
    std::lock_guard lock(held_mu);
    held.push_back(std::move(done));
  }
  std::size_t held_count() {
    std::lock_guard lock(held_mu);
    return held.size();
  }
  Result<protocol::RevokeResponse> revoke(const protocol::RevokeRequest&) override {
    return answer(protocol::RevokeResponse{3});
  }
  Result<std::string> jwks_json() override { return answer(std::string(R"({"keys":[]})")); }
  Result<std::string> status_list_jwt(std::string_view id) override {
    if (id != "main") return fail(ErrorCode::kNotFound, "no status list " + std::string(id));
    return answer(std::string("eyJ.status.list"));
  }
  Status ready() override {
    if (!is_ready) return fail(ErrorCode::kUnavailable, "store down");
    return ok();
  }
  Result<DevicePage> admin_list_devices(std::size_t limit, std::string_view after) override {
    last_limit = limit;
    last_after = std::string(after);
    return answer(DevicePage{});
  }
  Result<DeviceDetail> admin_get_device(std::string_view id) override {
    if (id != "dev-1") return fail(ErrorCode::kNotFound, "no device " + std::string(id));
    DeviceDetail detail;
    detail.device.id = "dev-1";
    return answer(std::move(detail));
  }
  Status admin_set_device_state(std::string_view, std::string_view state,
                                std::string_view actor) override {
    last_state = std::string(state);
    last_actor = std::string(actor);
    if (fail_with) return fail(*fail_with);
    return ok();
  }
  Result<PolicyVersion> admin_put_policy(std::string_view version, std::string_view toml,
                                         std::string_view actor) override {
    last_version = std::string(version);
    last_toml = std::string(toml);
    last_actor = std::string(actor);
    PolicyVersion stored;
    stored.version = "v2";
    return answer(std::move(stored));
  }
  Result<std::vector<PolicyVersion>> admin_list_policies() override {
    return answer(std::vector<PolicyVersion>{});
  }
  Result<std::vector<AuditRecord>> admin_audit(const AuditFilter& filter) override {
    last_filter = filter;
    return answer(std::vector<AuditRecord>{});
  }
};

void make_pki(const std::filesystem::path& dir) {
  const auto out =
      test::run_command({std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki", dir.string()});
  ASSERT_EQ(out.exit_code, 0) << out.out;
}

// What a raw TLS exchange returned: the status (0 if none) and the body.
struct RawResult {
  unsigned status = 0;
  std::string body;
  std::string error;
};

class HttpsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    make_pki(dir_.path());
    config_.listen.address = "127.0.0.1";
    config_.listen.port = 0;
    config_.listen.threads = 2;
    config_.tls.cert_file = (dir_.path() / "server.crt").string();
    config_.tls.key_file = (dir_.path() / "server.key").string();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  void start() {
    auto s = HttpsServer::create(config_, service_);
    ASSERT_TRUE(s) << s.error().message;
    server_ = std::move(*s);
    server_->start();
  }
  std::unique_ptr<net::HttpsClient> client(bool with_cert = false) {
    net::ClientOptions o;
    o.ca_file = dir_.path() / "ca.crt";
    o.io_timeout = std::chrono::milliseconds(5000);
    if (with_cert) {
      o.client_cert_file = dir_.path() / "client.crt";
      o.client_key_file = dir_.path() / "client.key";
    }
    auto c = net::HttpsClient::create("https://localhost:" + std::to_string(server_->port()), o);
    EXPECT_TRUE(c) << c.error().message;
    return std::move(*c);
  }
  net::Response post_cbor(std::string_view target, const Bytes& body) {
    auto r = client()->request("POST", target, protocol::kContentType, body);
    EXPECT_TRUE(r) << r.error().message;
    return r ? std::move(*r) : net::Response{};
  }
  static protocol::ErrorResponse cbor_error(const net::Response& r) {
    EXPECT_EQ(r.content_type, protocol::kContentType);
    auto e = protocol::decode_error_response(r.body);
    EXPECT_TRUE(e) << e.error().message;
    return e ? *e : protocol::ErrorResponse{};
  }

  // A TLS connection driven by hand, for what a well-behaved client never does.
  struct Raw {
    asio::io_context io;
    asio::ssl::context ssl{asio::ssl::context::tls_client};
    std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> stream;
  };
  /// `from`: the client's source address (all of 127.0.0.0/8 is loopback).
  std::unique_ptr<Raw> raw_connect(bool tls12 = false, const char* from = nullptr) {
    auto raw = std::make_unique<Raw>();
    if (tls12) SSL_CTX_set_max_proto_version(raw->ssl.native_handle(), TLS1_2_VERSION);
    raw->ssl.load_verify_file((dir_.path() / "ca.crt").string());
    raw->ssl.set_verify_mode(asio::ssl::verify_peer);
    raw->stream = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(raw->io, raw->ssl);
    if (from != nullptr) {
      raw->stream->next_layer().open(asio::ip::tcp::v4());
      raw->stream->next_layer().bind({asio::ip::make_address(from), 0});
    }
    raw->stream->next_layer().connect({asio::ip::make_address("127.0.0.1"), server_->port()});
    return raw;
  }
  static RawResult raw_read(Raw& raw) {
    RawResult out;
    boost::beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> res;
    boost::system::error_code ec;
    bhttp::read(*raw.stream, buffer, res, ec);
    if (ec) {
      out.error = ec.message();
      return out;
    }
    out.status = res.result_int();
    out.body = res.body();
    return out;
  }
  static void raw_write(Raw& raw, std::string_view bytes) {
    boost::system::error_code ec;
    asio::write(*raw.stream, asio::buffer(bytes), ec);
  }

  TempDir dir_{"warden-https-server"};
  IssuerConfig config_;
  FakeService service_;
  std::unique_ptr<HttpsServer> server_;
};

TEST_F(HttpsServerTest, AgentRoutesSpeakCbor) {
  start();
  auto c = client();
  auto challenge = c->request("POST", "/v1/challenge", protocol::kContentType,
                              protocol::encode(protocol::ChallengeRequest{"dev-1"}));
  ASSERT_TRUE(challenge) << challenge.error().message;
  EXPECT_EQ(challenge->status, 200U);
  EXPECT_EQ(challenge->content_type, protocol::kContentType);
  auto decoded = protocol::decode_challenge_response(challenge->body);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->nonce, Bytes(16, 7));

  auto activate = c->request("POST", "/v1/enroll/enr-9/activate", protocol::kContentType,
                             protocol::encode(protocol::ActivateRequest{"enr-9", Bytes(32, 1)}));
  ASSERT_TRUE(activate);
  EXPECT_EQ(activate->status, 200U);
  EXPECT_EQ(protocol::decode_activate_response(activate->body)->device_id, "dev-enr-9");

  auto mismatch = c->request("POST", "/v1/enroll/enr-8/activate", protocol::kContentType,
                             protocol::encode(protocol::ActivateRequest{"enr-9", Bytes(32, 1)}));
  ASSERT_TRUE(mismatch);
  EXPECT_EQ(mismatch->status, 400U);
  EXPECT_EQ(cbor_error(*mismatch).code, "invalid_argument");

  protocol::TokenRequest token;
  token.device_token = Bytes(10, 1);
  token.proof = "a.b.c";
  token.audience = "aud";
  token.ttl = 60;
  auto tok = c->request("POST", "/v1/token?x=1", protocol::kContentType, protocol::encode(token));
  ASSERT_TRUE(tok) << tok.error().message;
  EXPECT_EQ(tok->status, 200U) << to_string(tok->body);
  EXPECT_EQ(service_.last_target.method, "POST");
  EXPECT_EQ(service_.last_target.url,
            "https://localhost:" + std::to_string(server_->port()) + "/v1/token");

  protocol::RevokeRequest revoke;
  revoke.device_id = "dev-1";
  revoke.reason = "lost";
  revoke.timestamp = 1;
  revoke.signature = Bytes(8, 2);
  auto rev = c->request("POST", "/v1/revoke", protocol::kContentType, protocol::encode(revoke));
  ASSERT_TRUE(rev);
  EXPECT_EQ(rev->status, 200U) << to_string(rev->body);
  EXPECT_EQ(protocol::decode_revoke_response(rev->body)->revoked, 3U);

  auto get = c->request("GET", "/v1/challenge", "", {});
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405U);
  EXPECT_EQ(get->headers["allow"], "POST");
  auto unknown = c->request("POST", "/v1/nothing", protocol::kContentType, {});
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404U);
  EXPECT_EQ(cbor_error(*unknown).code, "not_found");
  auto json = c->request("POST", "/v1/challenge", "application/json", to_bytes("{}"));
  ASSERT_TRUE(json);
  EXPECT_EQ(json->status, 415U);
  EXPECT_EQ(cbor_error(*json).code, "unsupported");
}

TEST_F(HttpsServerTest, ServiceErrorsMapToStatuses) {
  config_.limits.refusal_burst = 1000;  // every case is a refusal from 127.0.0.1
  start();
  const std::vector<std::pair<ErrorCode, unsigned>> cases{
      {ErrorCode::kMalformed, 400},         {ErrorCode::kInvalidArgument, 400},
      {ErrorCode::kBadSignature, 401},      {ErrorCode::kProofMismatch, 401},
      {ErrorCode::kUntrusted, 401},         {ErrorCode::kPermissionDenied, 403},
      {ErrorCode::kPolicyViolation, 403},   {ErrorCode::kRevoked, 403},
      {ErrorCode::kNotFound, 404},          {ErrorCode::kConflict, 409},
      {ErrorCode::kAlreadyExists, 409},     {ErrorCode::kReplay, 409},
      {ErrorCode::kExpired, 401},           {ErrorCode::kNotYetValid, 401},
      {ErrorCode::kUnknownKey, 401},        {ErrorCode::kNonceMismatch, 401},
      {ErrorCode::kAudienceMismatch, 403},  {ErrorCode::kAlgorithmNotAllowed, 403},
      {ErrorCode::kPcrDigestMismatch, 403}, {ErrorCode::kReplayMismatch, 403},
      {ErrorCode::kLimitExceeded, 413},     {ErrorCode::kUnavailable, 503},
      {ErrorCode::kInternal, 500},          {ErrorCode::kIo, 500}};
  auto c = client();
  for (const auto& [code, status] : cases) {
    service_.fail_with = Error{code, "detail of " + std::string(to_string(code)), 0, 0};
    auto r = c->request("POST", "/v1/challenge", protocol::kContentType,
                        protocol::encode(protocol::ChallengeRequest{"dev-1"}));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, status) << to_string(code);
    const auto e = cbor_error(*r);
    EXPECT_EQ(e.code, to_string(code));
    if (code == ErrorCode::kInternal) {
      EXPECT_EQ(e.reason, "internal error");  // details stay in the log
    } else {
      EXPECT_EQ(e.reason, "detail of " + std::string(to_string(code)));
    }
  }
}

TEST_F(HttpsServerTest, MalformedAndOversizedCborAre400) {
  start();
  auto garbage = post_cbor("/v1/attest", {0xa2, 0x01});  // truncated map
  EXPECT_EQ(garbage.status, 400U);
  EXPECT_EQ(cbor_error(garbage).code, "malformed");
  auto not_a_map = post_cbor("/v1/challenge", {0x01});
  EXPECT_EQ(not_a_map.status, 400U);
  EXPECT_EQ(cbor_error(not_a_map).code, "malformed");
  auto long_id = post_cbor("/v1/challenge",
                           protocol::encode(protocol::ChallengeRequest{std::string(5000, 'd')}));
  EXPECT_EQ(long_id.status, 400U);
  EXPECT_EQ(cbor_error(long_id).code, "limit_exceeded");
}

TEST_F(HttpsServerTest, PublicRoutes) {
  start();
  auto c = client();
  auto jwks = c->request("GET", "/.well-known/jwks.json", "", {});
  ASSERT_TRUE(jwks);
  EXPECT_EQ(jwks->status, 200U);
  EXPECT_EQ(jwks->content_type, "application/json");
  EXPECT_EQ(to_string(jwks->body), R"({"keys":[]})");
  auto list = c->request("GET", "/v1/status-lists/main", "", {});
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 200U);
  EXPECT_EQ(list->content_type, "application/statuslist+jwt");
  EXPECT_EQ(to_string(list->body), "eyJ.status.list");
  auto alias = c->request("GET", "/v1/status/main", "", {});
  ASSERT_TRUE(alias);
  EXPECT_EQ(alias->status, 200U);
  auto missing = c->request("GET", "/v1/status-lists/other", "", {});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404U);
  EXPECT_EQ(missing->content_type, "application/json");
  auto health = c->request("GET", "/healthz", "", {});
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200U);
  auto ready = c->request("GET", "/readyz", "", {});
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200U);
  service_.is_ready = false;
  auto not_ready = c->request("GET", "/readyz", "", {});
  ASSERT_TRUE(not_ready);
  EXPECT_EQ(not_ready->status, 503U);
  EXPECT_NE(to_string(not_ready->body).find("store down"), std::string::npos);
}

TEST_F(HttpsServerTest, MetricsAreValidPrometheusText) {
  start();
  auto c = client();
  protocol::AttestRequest attest;
  attest.device_id = "good";
  attest.nonce = Bytes(16, 1);
  attest.quote = {Bytes(10, 1), Bytes(10, 2)};
  attest.pcr_selection = "sha256:0";
  attest.binding_key.public_area = Bytes(10, 3);
  attest.binding_key.certify = {Bytes(10, 4), Bytes(10, 5)};
  auto a = c->request("POST", "/v1/attest", protocol::kContentType, protocol::encode(attest));
  ASSERT_TRUE(a);
  ASSERT_EQ(a->status, 200U) << to_string(a->body);
  (void)c->request("GET", "/healthz", "", {});
  auto m = c->request("GET", "/metrics", "", {});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200U);
  EXPECT_EQ(m->content_type, "text/plain; version=0.0.4");
  const std::string text = to_string(m->body);
  std::istringstream lines(text);
  std::string line;
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      EXPECT_TRUE(line.starts_with("# HELP ") || line.starts_with("# TYPE ")) << line;
      continue;
    }
    const auto space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    const std::string name = line.substr(0, line.find_first_of("{ "));
    EXPECT_TRUE(name.starts_with("warden_issuer_")) << line;
    const auto brace = line.find('{');
    if (brace != std::string::npos) {
      EXPECT_EQ(line[space - 1], '}') << line;
    }
    std::size_t used = 0;
    (void)std::stod(line.substr(space + 1), &used);
    EXPECT_EQ(used, line.size() - space - 1) << line;
    ++samples;
  }
  EXPECT_GT(samples, 10);
  EXPECT_NE(text.find("warden_issuer_http_requests_total{route=\"/v1/attest\",status=\"200\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("warden_issuer_attestations_total{verdict=\"pass\"} 1"), std::string::npos);
  EXPECT_NE(text.find("warden_issuer_open_connections 1"), std::string::npos);
  EXPECT_NE(text.find("warden_issuer_http_request_duration_seconds_count{route=\"/healthz\"} 1"),
            std::string::npos);
}

TEST_F(HttpsServerTest, OversizedHeaderIs431) {
  config_.limits.max_header_bytes = 1024;
  start();
  auto raw = raw_connect();
  raw->stream->handshake(asio::ssl::stream_base::client);
  raw_write(*raw,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  const auto r = raw_read(*raw);
  EXPECT_EQ(r.status, 431U) << r.error;
  EXPECT_NE(r.body.find("max_header_bytes"), std::string::npos) << r.body;
}

TEST_F(HttpsServerTest, OversizedBodyIs413) {
  config_.limits.max_body_bytes = 1000;
  start();
  auto r = client()->request("POST", "/v1/attest", protocol::kContentType, Bytes(5000, 0xa0));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 413U);
  const auto e = cbor_error(*r);
  EXPECT_EQ(e.code, "limit_exceeded");
  EXPECT_NE(e.reason.find("max_body_bytes"), std::string::npos) << e.reason;
}

TEST_F(HttpsServerTest, SlowClientGets408) {
  config_.limits.read_timeout_ms = 300;
  start();
  auto raw = raw_connect();
  raw->stream->handshake(asio::ssl::stream_base::client);
  raw_write(*raw, "POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n");
  const auto started = std::chrono::steady_clock::now();
  const auto r = raw_read(*raw);
  EXPECT_EQ(r.status, 408U) << r.error;
  EXPECT_NE(r.body.find("read_timeout_ms"), std::string::npos) << r.body;
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(250));
}

TEST_F(HttpsServerTest, ConnectionCapGives503) {
  config_.limits.max_connections = 2;
  start();
  auto a = client();
  auto b = client();
  ASSERT_EQ(a->request("GET", "/healthz", "", {})->status, 200U);
  ASSERT_EQ(b->request("GET", "/healthz", "", {})->status, 200U);
  auto c = client();
  auto refused = c->request("GET", "/healthz", "", {});
  ASSERT_TRUE(refused) << refused.error().message;
  EXPECT_EQ(refused->status, 503U);
  EXPECT_NE(to_string(refused->body).find("max_connections"), std::string::npos);
  a.reset();  // closes one connection: room again
  ASSERT_TRUE(test::wait_for(
      [&] {
        auto r = client()->request("GET", "/healthz", "", {});
        return r && r->status == 200U;
      },
      std::chrono::milliseconds(3000)));
}

TEST_F(HttpsServerTest, Tls12RefusedByDefault) {
  start();
  auto raw = raw_connect(/*tls12=*/true);
  boost::system::error_code ec;
  raw->stream->handshake(asio::ssl::stream_base::client, ec);
  EXPECT_TRUE(ec) << "TLS 1.2 handshake succeeded";
}

TEST_F(HttpsServerTest, Tls12AllowedWhenConfigured) {
  config_.tls.min_version = "1.2";
  start();
  auto raw = raw_connect(/*tls12=*/true);
  boost::system::error_code ec;
  raw->stream->handshake(asio::ssl::stream_base::client, ec);
  ASSERT_FALSE(ec) << ec.message();
  raw_write(*raw, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(raw_read(*raw).status, 200U);
}

TEST_F(HttpsServerTest, AdminNeedsClientCertificateWhenCaConfigured) {
  config_.tls.admin_client_ca = (dir_.path() / "ca.crt").string();
  start();
  auto anonymous = client()->request("POST", "/admin/v1/devices/dev-1/revoke", "", {});
  ASSERT_TRUE(anonymous) << anonymous.error().message;
  EXPECT_EQ(anonymous->status, 403U);
  EXPECT_EQ(anonymous->content_type, "application/json");
  auto body = json::parse_object(to_string(anonymous->body));
  ASSERT_TRUE(body);
  EXPECT_EQ(json::get_string(*body, "error"), "permission_denied");
  EXPECT_TRUE(service_.last_state.empty());
  // Agents without certificates still reach the agent API.
  EXPECT_EQ(post_cbor("/v1/challenge", protocol::encode(protocol::ChallengeRequest{"d"})).status,
            200U);

  auto admin = client(/*with_cert=*/true);
  auto revoked = admin->request("POST", "/admin/v1/devices/dev-1/revoke", "", {});
  ASSERT_TRUE(revoked) << revoked.error().message;
  EXPECT_EQ(revoked->status, 200U) << to_string(revoked->body);
  EXPECT_EQ(service_.last_state, "revoked");
  EXPECT_EQ(service_.last_actor, "warden-admin");
  auto enabled = admin->request("POST", "/admin/v1/devices/dev-1/enable", "", {});
  ASSERT_TRUE(enabled);
  EXPECT_EQ(service_.last_state, "enabled");

  // A certificate from another CA does not count.
  TempDir other("warden-https-other");
  make_pki(other.path());
  net::ClientOptions o;
  o.ca_file = dir_.path() / "ca.crt";
  o.client_cert_file = other.path() / "client.crt";
  o.client_key_file = other.path() / "client.key";
  auto stranger =
      net::HttpsClient::create("https://localhost:" + std::to_string(server_->port()), o);
  ASSERT_TRUE(stranger);
  auto denied = (*stranger)->request("GET", "/admin/v1/devices", "", {});
  ASSERT_TRUE(denied) << denied.error().message;
  EXPECT_EQ(denied->status, 403U);
}

TEST_F(HttpsServerTest, AdminRoutes) {
  config_.admin.allow_unauthenticated_loopback = true;  // loopback clients are admins
  start();
  auto c = client();
  auto list = c->request("GET", "/admin/v1/devices?limit=5&after=dev%2D3", "", {});
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 200U);
  EXPECT_EQ(service_.last_limit, 5U);
  EXPECT_EQ(service_.last_after, "dev-3");
  auto one = c->request("GET", "/admin/v1/devices/dev-1", "", {});
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200U);
  auto none = c->request("GET", "/admin/v1/devices/dev-2", "", {});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404U);
  auto err = json::parse_object(to_string(none->body));
  ASSERT_TRUE(err);
  EXPECT_EQ(json::get_string(*err, "error"), "not_found");
  EXPECT_EQ(json::get_string(*err, "reason"), "no device dev-2");
  auto put =
      c->request("PUT", "/admin/v1/policy?version=v2", "application/toml", to_bytes("[pcrs]\n"));
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 200U);
  EXPECT_EQ(service_.last_version, "v2");
  EXPECT_EQ(service_.last_toml, "[pcrs]\n");
  auto no_version = c->request("PUT", "/admin/v1/policies", "application/toml", to_bytes("x"));
  ASSERT_TRUE(no_version);
  EXPECT_EQ(no_version->status, 200U);
  EXPECT_EQ(service_.last_version, "");
  auto state = c->request("PUT", "/admin/v1/devices/dev-1/state", "application/json",
                          to_bytes(R"({"state":"revoked"})"));
  ASSERT_TRUE(state);
  EXPECT_EQ(state->status, 204U);
  EXPECT_EQ(service_.last_state, "revoked");
  auto no_state =
      c->request("PUT", "/admin/v1/devices/dev-1/state", "application/json", to_bytes("[]"));
  ASSERT_TRUE(no_state);
  EXPECT_EQ(no_state->status, 400U);
  auto policies = c->request("GET", "/admin/v1/policies", "", {});
  ASSERT_TRUE(policies);
  EXPECT_EQ(policies->status, 200U);
  auto audit = c->request("GET", "/admin/v1/audit?device=dev-1&since=100&limit=7", "", {});
  ASSERT_TRUE(audit);
  EXPECT_EQ(audit->status, 200U);
  EXPECT_EQ(service_.last_filter.device_id, "dev-1");
  EXPECT_EQ(service_.last_filter.since, 100);
  EXPECT_EQ(service_.last_filter.limit, 7U);
  auto bad = c->request("GET", "/admin/v1/audit?since=yesterday", "", {});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400U);
  EXPECT_EQ(service_.last_actor, "loopback (unauthenticated)");
  auto removed = c->request("DELETE", "/admin/v1/devices/dev-1", "", {});
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->status, 204U);
  EXPECT_EQ(service_.last_deleted, "dev-1");
  auto unknown = c->request("DELETE", "/admin/v1/devices/dev-9", "", {});
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404U);
}

// Without a client CA, the admin socket or the explicit flag, nobody is an admin over TCP, not
// even on loopback; the reason names the keys that would change that.
TEST_F(HttpsServerTest, AdminIsRefusedOnLoopbackUnlessConfigured) {
  start();
  auto c = client();
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"PUT", "/admin/v1/policy"},
                                                        {"GET", "/admin/v1/audit"},
                                                        {"POST", "/admin/v1/devices/dev-1/revoke"},
                                                        {"DELETE", "/admin/v1/devices/dev-1"}}) {
    auto r = c->request(method, target, "application/toml", to_bytes("version = \"x\"\n"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 403U) << method << " " << target;
    auto body = json::parse_object(to_string(r->body));
    ASSERT_TRUE(body);
    const auto reason = json::get_string(*body, "reason").value_or("");
    for (const char* key :
         {"tls.admin_client_ca", "admin.socket", "admin.allow_unauthenticated_loopback"}) {
      EXPECT_NE(reason.find(key), std::string::npos) << key << " in " << reason;
    }
  }
  EXPECT_TRUE(service_.last_toml.empty());
  EXPECT_TRUE(service_.last_state.empty());
  EXPECT_TRUE(service_.last_deleted.empty());
}

// One HTTP/1.1 exchange over a Unix socket; the status, or -errno when connect() failed.
int unix_exchange(const std::filesystem::path& socket, const std::string& request,
                  std::string* body = nullptr) {
  asio::io_context io;
  asio::local::stream_protocol::socket s(io);
  boost::system::error_code ec;
  s.connect(asio::local::stream_protocol::endpoint(socket.string()), ec);
  if (ec) return -ec.value();
  asio::write(s, asio::buffer(request), ec);
  boost::beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(s, buffer, res, ec);
  if (ec) return 0;
  if (body != nullptr) *body = res.body();
  return static_cast<int>(res.result_int());
}

TEST_F(HttpsServerTest, AdminSocketAdmitsByItsPermissionsAndNamesTheCallerByUid) {
  const auto socket = dir_.path() / "admin.sock";
  config_.admin.socket = socket.string();
  start();
  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660U);
  EXPECT_EQ(st.st_gid, ::getegid());
  std::string body;
  EXPECT_EQ(
      unix_exchange(socket, "GET /admin/v1/devices?limit=3 HTTP/1.1\r\nHost: x\r\n\r\n", &body),
      200)
      << body;
  EXPECT_EQ(service_.last_limit, 3U);
  EXPECT_EQ(unix_exchange(socket,
                          "POST /admin/v1/devices/dev-1/revoke HTTP/1.1\r\nHost: x\r\n"
                          "Content-Length: 0\r\n\r\n"),
            200);
  EXPECT_EQ(service_.last_actor, "uid " + std::to_string(::geteuid()));
  EXPECT_EQ(unix_exchange(socket, "DELETE /admin/v1/devices/dev-1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            204);
  EXPECT_EQ(service_.last_deleted, "dev-1");
  // The socket is for admins: agent routes are not served there.
  EXPECT_EQ(
      unix_exchange(socket, "POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
      404);
  // TCP without a certificate still is not admin.
  auto tcp = client()->request("GET", "/admin/v1/devices", "", {});
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->status, 403U);
  server_->stop();
  server_.reset();
  EXPECT_FALSE(std::filesystem::exists(socket)) << "the socket file is removed at stop";
}

TEST_F(HttpsServerTest, AdminSocketIsNotStolenFromALiveIssuerNorReplacesAFile) {
  const auto socket = dir_.path() / "admin.sock";
  config_.admin.socket = socket.string();
  start();
  auto second = HttpsServer::create(config_, service_);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("another process serves"), std::string::npos)
      << second.error().message;
  EXPECT_EQ(unix_exchange(socket, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
  config_.admin.socket = (dir_.path() / "issuer.toml").string();
  ASSERT_TRUE(write_file_atomic(config_.admin.socket, to_bytes("x"), 0600));
  auto file = HttpsServer::create(config_, service_);
  ASSERT_FALSE(file);
  EXPECT_NE(file.error().message.find("not a socket"), std::string::npos);
  config_.admin.socket = (dir_.path() / "missing/admin.sock").string();
  EXPECT_FALSE(HttpsServer::create(config_, service_));
}

// A flood of refused requests from one address: after its budget, 429 without reaching the
// service, while another client address is served as usual.
TEST_F(HttpsServerTest, RefusalFloodFromOneAddressIsCutOffAndOthersAreServed) {
  config_.limits.refusal_burst = 20;
  config_.limits.refusal_per_minute = 6;
  start();
  const std::string junk = to_string(protocol::encode(protocol::ChallengeRequest{"junk"}));
  const std::string request =
      "POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: "
      "application/cbor\r\nContent-Length: " +
      std::to_string(junk.size()) + "\r\n\r\n" + junk;
  constexpr int kFlood = 2000;
  std::map<unsigned, int> statuses;
  auto raw = raw_connect(false, "127.0.0.2");
  raw->stream->handshake(asio::ssl::stream_base::client);
  boost::beast::flat_buffer buffer;
  for (int i = 0; i < kFlood; ++i) {
    raw_write(*raw, request);
    bhttp::response<bhttp::string_body> res;
    boost::system::error_code ec;
    bhttp::read(*raw->stream, buffer, res, ec);
    ASSERT_FALSE(ec) << i << ": " << ec.message();
    ++statuses[res.result_int()];
  }
  EXPECT_EQ(statuses[401], 20) << "the burst reaches the service";
  EXPECT_GE(statuses[429], kFlood - 25);
  EXPECT_LE(service_.challenges.load(), 25) << "the rest never reached the service";
  // Another address (the agents of other devices) is served.
  auto other = post_cbor("/v1/challenge", protocol::encode(protocol::ChallengeRequest{"dev-1"}));
  EXPECT_EQ(other.status, 200U);
  EXPECT_EQ(protocol::decode_challenge_response(other.body)->nonce, Bytes(16, 7));
}

// limits.max_body_bytes defaults to the largest attest request the protocol allows; the other
// routes keep caps of their own far below it.
TEST_F(HttpsServerTest, AttestBodiesUpToTheProtocolMaximumAreReadOtherRoutesAreCapped) {
  start();
  auto big = post_cbor("/v1/attest", Bytes(5 * 1024 * 1024, 0xa0));
  EXPECT_EQ(big.status, 400U) << "read and decoded (junk CBOR), not refused as too large";
  auto challenge = post_cbor("/v1/challenge", Bytes(2 * 1024 * 1024, 0xa0));
  EXPECT_EQ(challenge.status, 413U);
  EXPECT_NE(cbor_error(challenge).reason.find("on this route"), std::string::npos);
}

// A token waits for its record's commit without holding a server thread: with one thread, four
// tokens wait at once and other requests are still served; each token is answered only when the
// service completes it, with what it completed with.
TEST_F(HttpsServerTest, TokensWaitForTheirCommitWithoutHoldingAThread) {
  config_.listen.threads = 1;
  service_.hold_tokens = true;
  start();
  protocol::TokenRequest token;
  token.device_token = Bytes(10, 1);
  token.proof = "a.b.c";
  token.audience = "aud";
  token.ttl = 60;
  const Bytes body = protocol::encode(token);
  constexpr std::size_t kClients = 4;
  std::atomic<int> answered{0};
  std::mutex mu;
  std::vector<net::Response> responses;
  std::vector<std::thread> clients;
  for (std::size_t i = 0; i < kClients; ++i) {
    clients.emplace_back([&] {
      auto r = client()->request("POST", "/v1/token", protocol::kContentType, body);
      ++answered;
      ASSERT_TRUE(r) << r.error().message;
      std::lock_guard lock(mu);
      responses.push_back(std::move(*r));
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (service_.held_count() < kClients && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(service_.held_count(), kClients);
  auto health = client()->request("GET", "/healthz", "", {});
  ASSERT_TRUE(health) << health.error().message;
  EXPECT_EQ(health->status, 200U);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(answered.load(), 0) << "a token was answered before the service completed it";

  for (std::size_t i = 0; i + 1 < kClients; ++i) {
    service_.held[i](protocol::TokenResponse{std::string("jwt"), "jti-" + std::to_string(i), 5, 6});
  }
  service_.held.back()(fail(ErrorCode::kAlreadyExists, "token jti-3 is already recorded"));
  for (auto& t : clients) t.join();
  ASSERT_EQ(responses.size(), kClients);
  std::set<std::string> jtis;
  int refused = 0;
  for (const auto& r : responses) {
    if (r.status == 200U) {
      auto decoded = protocol::decode_token_response(r.body);
      ASSERT_TRUE(decoded) << decoded.error().message;
      jtis.insert(decoded->jti);
    } else {
      EXPECT_EQ(r.status, 409U);
      EXPECT_EQ(cbor_error(r).code, to_string(ErrorCode::kAlreadyExists));
      ++refused;
    }
  }
  EXPECT_EQ(jtis, (std::set<std::string>{"jti-0", "jti-1", "jti-2"}));
  EXPECT_EQ(refused, 1);
}

TEST_F(HttpsServerTest, StopLetsInFlightRequestsFinish) {
  service_.delay = std::chrono::milliseconds(600);
  start();
  auto c = client();
  ASSERT_EQ(c->request("GET", "/healthz", "", {})->status, 200U);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    server_->stop();
  });
  auto r = c->request("POST", "/v1/challenge", protocol::kContentType,
                      protocol::encode(protocol::ChallengeRequest{"dev-1"}));
  stopper.join();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200U);
  EXPECT_EQ(r->headers["connection"], "close");
}

TEST_F(HttpsServerTest, StopFinishesAndRefusesNewConnections) {
  start();
  auto c = client();
  ASSERT_EQ(c->request("GET", "/healthz", "", {})->status, 200U);
  const auto port = server_->port();
  server_->stop();
  auto after = net::HttpsClient::create("https://localhost:" + std::to_string(port), [&] {
    net::ClientOptions o;
    o.ca_file = dir_.path() / "ca.crt";
    return o;
  }());
  ASSERT_TRUE(after);
  auto r = (*after)->request("GET", "/healthz", "", {});
  EXPECT_FALSE(r);
}

std::size_t rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
  }
  return 0;
}

// Issue 31: idle TCP connections (no ClientHello) from one address take only that address's
// share of the connections and are closed at limits.handshake_timeout_ms; another address's
// /readyz and TLS requests are served throughout; memory is given back after the flood.
TEST_F(HttpsServerTest, IdleTcpFloodFromOneAddressLeavesOtherAddressesServed) {
  config_.limits.max_connections = 1024;
  config_.limits.max_connections_per_address = 256;
  config_.limits.handshake_timeout_ms = 60'000;  // the flood holds its sockets for the test
  start();
  ASSERT_EQ(client()->request("GET", "/readyz", "", {})->status, 200U);
  const std::size_t before = rss_kib();
  asio::io_context io;
  constexpr int kFlood = 1100;
  std::vector<std::unique_ptr<asio::ip::tcp::socket>> flood;
  for (int i = 0; i < kFlood; ++i) {
    auto s = std::make_unique<asio::ip::tcp::socket>(io);
    s->open(asio::ip::tcp::v4());
    s->bind({asio::ip::make_address("127.0.0.2"), 0});
    boost::system::error_code ec;
    s->connect({asio::ip::make_address("127.0.0.1"), server_->port()}, ec);
    ASSERT_FALSE(ec) << i << ": " << ec.message();
    flood.push_back(std::move(s));
  }
  ASSERT_TRUE(test::wait_for([&] { return server_->metrics().open_connections() == 256; },
                             std::chrono::milliseconds(10000)))
      << server_->metrics().open_connections();
  const std::size_t during = rss_kib();
  auto ready = client()->request("GET", "/readyz", "", {});
  ASSERT_TRUE(ready) << ready.error().message;
  EXPECT_EQ(ready->status, 200U);
  auto challenge =
      post_cbor("/v1/challenge", protocol::encode(protocol::ChallengeRequest{"dev-1"}));
  EXPECT_EQ(challenge.status, 200U);
  EXPECT_TRUE(test::wait_for(
      [&] {
        return server_->metrics().render().find("warden_issuer_refused_connections_total 844\n") !=
               std::string::npos;
      },
      std::chrono::milliseconds(5000)))
      << "all but 256 of the flood refused: " << server_->metrics().render();
  flood.clear();
  ASSERT_TRUE(test::wait_for([&] { return server_->metrics().open_connections() == 0; },
                             std::chrono::milliseconds(10000)));
  const std::size_t after = rss_kib();
  std::printf("RSS (KiB) before the flood %zu, during %zu, after %zu\n", before, during, after);
  RecordProperty("rss_kib_before", static_cast<int>(before));
  RecordProperty("rss_kib_during", static_cast<int>(during));
  RecordProperty("rss_kib_after", static_cast<int>(after));
}

TEST_F(HttpsServerTest, ConnectionWithoutClientHelloIsClosedAtTheHandshakeDeadline) {
  config_.limits.handshake_timeout_ms = 200;
  config_.limits.read_timeout_ms = 60'000;
  start();
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  std::array<char, 16> buf{};
  boost::system::error_code ec;
  const std::size_t n = s.read_some(asio::buffer(buf), ec);  // blocks until the server closes
  EXPECT_EQ(n, 0U);
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
  EXPECT_TRUE(test::wait_for([&] { return server_->metrics().open_connections() == 0; },
                             std::chrono::milliseconds(5000)));
}

// Issue 31: Transfer-Encoding other than one final "chunked", or next to Content-Length, is
// refused before the body is used (Beast alone accepts some of these).
TEST_F(HttpsServerTest, AmbiguousOrUnknownTransferEncodingIsRefused) {
  start();
  const std::string body = to_string(protocol::encode(protocol::ChallengeRequest{"dev-1"}));
  const std::string head =
      "POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor\r\n";
  const std::string cl = "Content-Length: " + std::to_string(body.size()) + "\r\n";
  const std::vector<std::pair<std::string, unsigned>> shapes = {
      {head + "Transfer-Encoding: gzip\r\n" + cl + "\r\n" + body, 400},
      {head + "Transfer-Encoding: x\r\n chunked\r\n" + cl + "\r\n" + body, 400},
      {head + "Transfer-Encoding:\r\n chunked\r\n" + cl + "\r\n" + body, 400},
      {head + cl + "Transfer-Encoding: chunked\r\n\r\n" + body, 400},
      {head + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
      {head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {head + "Transfer-Encoding: gzip\r\n\r\n" + body, 501},
      {head + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
  };
  for (const auto& [request, status] : shapes) {
    auto raw = raw_connect();
    raw->stream->handshake(asio::ssl::stream_base::client);
    raw_write(*raw, request);
    const auto r = raw_read(*raw);
    EXPECT_EQ(r.status, status) << request << r.error;
  }
  EXPECT_EQ(service_.challenges.load(), 0);
  // One final "chunked" is read as usual.
  auto raw = raw_connect();
  raw->stream->handshake(asio::ssl::stream_base::client);
  std::ostringstream chunk;
  chunk << std::hex << body.size();
  raw_write(*raw, head + "Transfer-Encoding: chunked\r\n\r\n" + chunk.str() + "\r\n" + body +
                      "\r\n0\r\n\r\n");
  EXPECT_EQ(raw_read(*raw).status, 200U);
}

// Issue 31: /metrics is for the host's scraper and admin clients unless metrics.allow_remote.
TEST_F(HttpsServerTest, MetricsAreRefusedToRemoteCallersUnlessAllowed) {
  Metrics metrics;
  Request request;
  request.method = "GET";
  request.target = "/metrics";
  request.host = "issuer.test";
  request.peer.address = "192.0.2.7";
  Router closed(service_, metrics, RouterOptions{});
  EXPECT_EQ(closed.handle(request).status, 403U);
  request.peer.loopback = true;
  EXPECT_EQ(closed.handle(request).status, 200U);
  request.peer.loopback = false;
  request.peer.client_cert_verified = true;
  EXPECT_EQ(closed.handle(request).status, 200U);
  RouterOptions open;
  open.metrics_allow_remote = true;
  Router opened(service_, metrics, open);
  request.peer.client_cert_verified = false;
  EXPECT_EQ(opened.handle(request).status, 200U);
}

}  // namespace
}  // namespace warden::issuer::http
