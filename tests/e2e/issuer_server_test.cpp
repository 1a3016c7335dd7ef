// The real warden-issuer binary: a temp config (SQLite), real HTTPS on loopback, sd_notify
// READY=1 on a private NOTIFY_SOCKET, and a clean exit on SIGTERM.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <unistd.h>

#include <gtest/gtest.h>
#include <openssl/x509.h>

#include "attest/eventlog/eventlog.h"
#include "attest/protocol/messages.h"
#include "attest/token/dpop.h"
#include "attest/token/json.h"
#include "attest/token/signer.h"
#include "platform/base/clock.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"
#include "platform/net/https_client.h"
#include "platform/tpm/tpm.h"
#include "tests/support/process.h"
#include "tests/support/swtpm.h"

namespace warden {
namespace {
using test::TempDir;

class IssuerBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto pki = test::run_command({std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki",
                                        (dir_.path() / "pki").string()});
    ASSERT_EQ(pki.exit_code, 0) << pki.out;
    port_ = test::free_tcp_port();
    std::ofstream(config_path()) << "issuer_url = \"https://localhost:" << port_ << "\"\n"
                                 << "[listen]\naddress = \"127.0.0.1\"\nport = " << port_
                                 << "\nthreads = 2\n"
                                 << "[tls]\ncert_file = \""
                                 << (dir_.path() / "pki/server.crt").string() << "\"\nkey_file = \""
                                 << (dir_.path() / "pki/server.key").string()
                                 << "\"\n[store]\nsqlite_path = \""
                                 << (dir_.path() / "issuer.db").string() << "\"\n"
                                 << "[tokens]\nkey_dir = \"" << (dir_.path() / "keys").string()
                                 << "\"\n";
  }
  [[nodiscard]] std::filesystem::path config_path() const { return dir_.path() / "issuer.toml"; }
  std::unique_ptr<net::HttpsClient> client() const {
    net::ClientOptions o;
    o.ca_file = dir_.path() / "pki/ca.crt";
    o.connect_timeout = std::chrono::milliseconds(1000);
    auto c = net::HttpsClient::create("https://localhost:" + std::to_string(port_), o);
    EXPECT_TRUE(c) << c.error().message;
    return std::move(*c);
  }

  TempDir dir_{"warden-issuer-e2e"};
  int port_ = 0;
};

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::filesystem::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    timeval tv{0, 100'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~NotifySocket() { ::close(fd_); }
  std::string receive() {
    char buf[512];
    const auto n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

TEST_F(IssuerBinaryTest, ServesHealthReadinessJwksAndStopsOnSigterm) {
  NotifySocket notify(dir_.path() / "notify.sock");
  auto child = test::ChildProcess::spawn(
      {std::string(WARDEN_BINARY_DIR) + "/issuer/warden-issuer", "--config", config_path().string(),
       "--log-level", "debug"},
      {{"NOTIFY_SOCKET", (dir_.path() / "notify.sock").string()}}, dir_.path() / "issuer.log");
  auto log = [&] {
    std::ifstream in(dir_.path() / "issuer.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  std::string notified;
  ASSERT_TRUE(test::wait_for(
      [&] {
        notified += notify.receive();
        return notified.find("READY=1") != std::string::npos || !child.running();
      },
      std::chrono::milliseconds(20000)))
      << log();
  ASSERT_TRUE(child.running()) << log();

  auto c = client();
  auto health = c->request("GET", "/healthz", "", {});
  ASSERT_TRUE(health) << health.error().message << "\n" << log();
  EXPECT_EQ(health->status, 200U);
  auto ready = c->request("GET", "/readyz", "", {});
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200U) << to_string(ready->body);
  auto jwks = c->request("GET", "/.well-known/jwks.json", "", {});
  ASSERT_TRUE(jwks);
  EXPECT_EQ(jwks->status, 200U);
  auto parsed = json::parse_object(to_string(jwks->body));
  ASSERT_TRUE(parsed) << to_string(jwks->body);
  const auto* keys = parsed->if_contains("keys");
  ASSERT_NE(keys, nullptr);
  ASSERT_TRUE(keys->is_array());
  EXPECT_GE(keys->as_array().size(), 1U);
  auto metrics = c->request("GET", "/metrics", "", {});
  ASSERT_TRUE(metrics);
  EXPECT_NE(to_string(metrics->body).find("warden_issuer_http_requests_total{route=\"/healthz\""),
            std::string::npos);

  struct stat st {};
  ASSERT_EQ(::stat((dir_.path() / "keys/nonce.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  EXPECT_EQ(st.st_size, 32);

  EXPECT_EQ(child.stop(SIGTERM, std::chrono::milliseconds(15000)), 0) << log();
  const std::string text = log();
  EXPECT_NE(text.find("GET /healthz 200"), std::string::npos) << text;  // debug request line
  EXPECT_EQ(text.find("[error]"), std::string::npos) << text;

  // A second start reuses the nonce key and the database.
  auto again = test::ChildProcess::spawn(
      {std::string(WARDEN_BINARY_DIR) + "/issuer/warden-issuer", "-c", config_path().string()}, {},
      dir_.path() / "issuer2.log");
  ASSERT_TRUE(test::wait_for(
      [&] {
        auto r = client()->request("GET", "/readyz", "", {});
        return r && r->status == 200U;
      },
      std::chrono::milliseconds(20000)));
  EXPECT_EQ(again.stop(SIGINT, std::chrono::milliseconds(15000)), 0);
}

// curl as another user (setpriv, util-linux): a real second uid against the real issuer.
test::CommandOutput curl_as(const std::vector<std::string>& ids, std::vector<std::string> args) {
  std::vector<std::string> argv{"setpriv"};
  argv.insert(argv.end(), ids.begin(), ids.end());
  argv.insert(argv.end(), {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}"});
  argv.insert(argv.end(), args.begin(), args.end());
  return test::run_command(argv, {}, std::chrono::seconds(30));
}

// Issue 28: a local unprivileged process (uid 65534) replaced the workload policy over loopback.
// Now loopback TCP without a certificate is refused, the admin socket admits only its owner and
// group (the kernel checks the mode), and root and the socket's group are admins there.
TEST_F(IssuerBinaryTest, NobodyCannotReachTheAdminApiRootAndTheAdminGroupCan) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to play uid 65534 (CI runs as root)";
  // nobody may traverse the test directory: only the socket's own permissions keep it out.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0711), 0);
  const auto run = dir_.path() / "run";
  std::filesystem::create_directory(run);
  ASSERT_EQ(::chmod(run.c_str(), 0755), 0);
  const auto socket = run / "admin.sock";
  std::ofstream(config_path(), std::ios::app)
      << "[admin]\nsocket = \"" << socket.string() << "\"\nsocket_group = \"adm\"\n";
  const auto policy = dir_.path() / "policy.toml";
  std::ofstream(policy) << "version = \"evil-1\"\n";
  ASSERT_EQ(::chmod(policy.c_str(), 0644), 0);
  auto child = test::ChildProcess::spawn(
      {std::string(WARDEN_BINARY_DIR) + "/issuer/warden-issuer", "-c", config_path().string()}, {},
      dir_.path() / "issuer.log");
  auto log = [&] {
    std::ifstream in(dir_.path() / "issuer.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  ASSERT_TRUE(test::wait_for([&] { return std::filesystem::exists(socket) || !child.running(); },
                             std::chrono::milliseconds(20000)))
      << log();
  ASSERT_TRUE(test::wait_for(
      [&] {
        auto r = client()->request("GET", "/readyz", "", {});
        return r && r->status == 200U;
      },
      std::chrono::milliseconds(20000)))
      << log();
  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660U);
  const std::vector<std::string> nobody{"--reuid=65534", "--regid=65534", "--clear-groups"};
  const std::string base = "https://127.0.0.1:" + std::to_string(port_) + "/admin/v1";
  const std::string put = "@" + policy.string();

  // nobody over loopback TCP: 403, whatever the route.
  auto tcp = curl_as(nobody, {"-k", "-X", "PUT", "--data-binary", put, base + "/policy"});
  EXPECT_EQ(tcp.out, "403") << tcp.out;
  tcp = curl_as(nobody, {"-k", base + "/audit"});
  EXPECT_EQ(tcp.out, "403") << tcp.out;
  tcp = curl_as(nobody, {"-k", "-X", "DELETE", base + "/devices/x"});
  EXPECT_EQ(tcp.out, "403") << tcp.out;
  // nobody on the socket: the kernel refuses the connect (EACCES).
  auto sock = curl_as(nobody, {"--unix-socket", socket.string(), "-X", "PUT", "--data-binary", put,
                               "http://localhost/admin/v1/policy"});
  EXPECT_EQ(sock.exit_code, 7) << sock.out;                        // curl: could not connect
  EXPECT_NE(sock.out.find("000"), std::string::npos) << sock.out;  // no HTTP status
  if (std::filesystem::exists("/usr/bin/python3")) {               // curl does not print the errno
    std::vector<std::string> argv{"setpriv"};
    argv.insert(argv.end(), nobody.begin(), nobody.end());
    argv.insert(argv.end(), {"/usr/bin/python3", "-c",
                             "import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
                             "s.connect(sys.argv[1])",
                             socket.string()});
    const auto connect = test::run_command(argv, {}, std::chrono::seconds(30));
    EXPECT_NE(connect.exit_code, 0);
    EXPECT_NE(connect.out.find("PermissionError"), std::string::npos) << connect.out;
  }

  // A member of the socket's group (still uid 65534) is admin, and the audit log says who.
  const std::vector<std::string> admin_group{"--reuid=65534", "--regid=65534", "--groups=adm"};
  auto member = curl_as(admin_group, {"--unix-socket", socket.string(), "-X", "PUT",
                                      "--data-binary", put, "http://localhost/admin/v1/policy"});
  EXPECT_EQ(member.out, "200") << member.out;
  // root is admin on the socket.
  const auto audit = test::run_command(
      {"curl", "-sS", "--unix-socket", socket.string(), "http://localhost/admin/v1/audit"});
  ASSERT_EQ(audit.exit_code, 0) << audit.out;
  EXPECT_NE(audit.out.find("\"actor\":\"uid 65534\""), std::string::npos) << audit.out;
  EXPECT_NE(audit.out.find("evil-1"), std::string::npos) << audit.out;
  EXPECT_EQ(child.stop(SIGTERM, std::chrono::milliseconds(15000)), 0) << log();
  EXPECT_FALSE(std::filesystem::exists(socket));
  // The database and its companions are the issuer's alone.
  for (const char* name : {"issuer.db", "issuer.db-wal", "issuer.db-shm", "keys/nonce.key"}) {
    if (::stat((dir_.path() / name).c_str(), &st) != 0) continue;
    EXPECT_EQ(st.st_mode & 0077, 0U) << name;
  }
}

// With the loopback flag the unsafe mode works, and says so loudly at start.
TEST_F(IssuerBinaryTest, UnauthenticatedLoopbackAdminOnlyWhenConfiguredAndLoudly) {
  std::ofstream(config_path(), std::ios::app)
      << "[admin]\nsocket = \"\"\nallow_unauthenticated_loopback = true\n";
  auto child = test::ChildProcess::spawn(
      {std::string(WARDEN_BINARY_DIR) + "/issuer/warden-issuer", "-c", config_path().string()}, {},
      dir_.path() / "issuer.log");
  ASSERT_TRUE(test::wait_for(
      [&] {
        auto r = client()->request("GET", "/readyz", "", {});
        return r && r->status == 200U;
      },
      std::chrono::milliseconds(20000)));
  auto r = client()->request("GET", "/admin/v1/devices", "", {});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200U);
  EXPECT_EQ(child.stop(SIGTERM, std::chrono::milliseconds(15000)), 0);
  std::ifstream in(dir_.path() / "issuer.log");
  const std::string text(std::istreambuf_iterator<char>(in), {});
  EXPECT_NE(text.find("admin.allow_unauthenticated_loopback = true: EVERY local process"),
            std::string::npos)
      << text;
}

TEST_F(IssuerBinaryTest, MissingCertificateIsAClearStartupError) {
  std::ofstream(config_path()) << "[tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"x\"\n"
                               << "[store]\nsqlite_path = \"" << (dir_.path() / "i.db").string()
                               << "\"\n[tokens]\nkey_dir = \"" << (dir_.path() / "keys").string()
                               << "\"\n[listen]\nport = " << port_ << "\n";
  const auto out = test::run_command(
      {std::string(WARDEN_BINARY_DIR) + "/issuer/warden-issuer", "-c", config_path().string()}, {},
      std::chrono::seconds(30));
  EXPECT_EQ(out.exit_code, 1) << out.out;
  EXPECT_NE(out.out.find("tls.cert_file"), std::string::npos) << out.out;
}

// ---- issue 31: a second, genuine device choosing its own group --------------------------------

// A crypto-agile (sha256) boot log: an S-CRTM version event in PCR 0 and a separator in each of
// PCRs 0..7, and the (pcr, digest) pairs the firmware would have extended.
std::pair<Bytes, std::vector<std::pair<unsigned, Bytes>>> boot_log() {
  namespace ev = attest::eventlog;
  std::vector<std::pair<unsigned, Bytes>> extends;
  ByteWriter w;
  ByteWriter spec;
  spec.bytes(std::string_view("Spec ID Event03\0", 16)).u32le(0).u8(0).u8(2).u8(0).u8(2).u32le(1);
  spec.u16le(0x0B).u16le(32).u8(0);
  const Bytes spec_bytes = std::move(spec).take();
  w.u32le(0).u32le(ev::kEvNoAction).bytes(Bytes(20, 0));
  w.u32le(static_cast<std::uint32_t>(spec_bytes.size())).bytes(spec_bytes);
  auto event = [&](unsigned pcr, std::uint32_t type, ByteSpan data) {
    const Bytes digest = ossl::sha256(data);
    w.u32le(pcr).u32le(type).u32le(1).u16le(0x0B).bytes(digest);
    w.u32le(static_cast<std::uint32_t>(data.size())).bytes(data);
    extends.emplace_back(pcr, digest);
  };
  event(0, ev::kEvSCrtmVersion, to_bytes(std::string_view("warden-e2e-crtm")));
  const Bytes sep(4, 0);
  for (unsigned pcr = 0; pcr < 8; ++pcr) event(pcr, ev::kEvSeparator, sep);
  return {std::move(w).take(), std::move(extends)};
}

Bytes der_of_pem_file(const std::filesystem::path& path) {
  auto pem = read_file(path);
  EXPECT_TRUE(pem);
  auto cert = ossl::certificate_from_pem(warden::to_string(*pem));
  EXPECT_TRUE(cert) << cert.error().message;
  unsigned char* out = nullptr;
  const int len = i2d_X509(cert->get(), &out);
  Bytes der(out, out + len);
  OPENSSL_free(out);
  return der;
}

// The attacker's device: its own swtpm, EK certificate from a manufacturer CA the issuer trusts,
// and every request built here (not by wardend), the enroll request naming the group that a
// `match.group` rule grants. It is refused until an admin assigns the group on the socket.
TEST_F(IssuerBinaryTest, ADeviceGetsNoGroupGrantUntilAnAdminAssignsTheGroup) {
  auto swtpm = test::Swtpm::start();
  tpm::Tpm tpm(swtpm->tcti());
  const auto [log, extends] = boot_log();
  for (const auto& [pcr, digest] : extends)
    ASSERT_TRUE(tpm.extend_pcr(pcr, TpmAlg::kSha256, digest));
  const auto policy = dir_.path() / "policy.toml";
  std::ofstream(policy) << "version = \"e2e-groups\"\n"
                        << "[[workload]]\nname = \"payments\"\naudiences = [\"payments\"]\n"
                        << "scopes = [\"pay\"]\n[workload.match]\ngroup = \"payments-*\"\n";
  const auto socket = dir_.path() / "admin.sock";
  {
    // policy_file is a top-level key: before the tables SetUp wrote.
    std::ifstream in(config_path());
    const std::string text(std::istreambuf_iterator<char>(in), {});
    std::ofstream(config_path()) << "policy_file = \"" << policy.string() << "\"\n"
                                 << text << "[enrollment]\nmanufacturer_ca_files = [\""
                                 << swtpm->ca_cert().string() << "\"]\n"
                                 << "[admin]\nsocket = \"" << socket.string() << "\"\n";
  }
  auto child = test::ChildProcess::spawn(
      {std::string(WARDEN_BINARY_DIR) + "/issuer/warden-issuer", "-c", config_path().string()}, {},
      dir_.path() / "issuer.log");
  auto log_text = [&] {
    std::ifstream in(dir_.path() / "issuer.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  ASSERT_TRUE(test::wait_for(
      [&] {
        auto r = client()->request("GET", "/readyz", "", {});
        return (r && r->status == 200U) || !child.running();
      },
      std::chrono::milliseconds(20000)))
      << log_text();
  ASSERT_TRUE(child.running()) << log_text();
  auto c = client();
  auto post = [&](const std::string& target, const Bytes& body) -> net::Response {
    auto r = c->request("POST", target, protocol::kContentType, body);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : net::Response{};
  };

  // Enroll, claiming the payments group, then activate with the TPM.
  auto ak = tpm.create_ak();
  ASSERT_TRUE(ak) << ak.error().message;
  auto ek = tpm.endorsement_key();
  ASSERT_TRUE(ek) << ek.error().message;
  protocol::EnrollRequest enroll;
  enroll.ek_public = ek->public_area;
  enroll.ek_cert = ek->certificate;
  enroll.ek_chain = {der_of_pem_file(swtpm->issuer_cert())};
  enroll.ak_public = ak->public_area;
  enroll.ak_name = ak->name();
  enroll.metadata = {"attacker-host", "attacker-machine", std::string("payments-prod"), "e2e"};
  auto r = post("/v1/enroll", protocol::encode(enroll));
  ASSERT_EQ(r.status, 200U) << to_string(r.body) << log_text();
  auto enrolled = protocol::decode_enroll_response(r.body);
  ASSERT_TRUE(enrolled) << enrolled.error().message;
  auto secret = tpm.activate_credential(*ak, enrolled->credential_blob, enrolled->encrypted_secret);
  ASSERT_TRUE(secret) << secret.error().message;
  auto proof = protocol::activation_proof(secret->view(), enrolled->enrollment_id, ak->name());
  ASSERT_TRUE(proof);
  r = post("/v1/enroll/" + enrolled->enrollment_id + "/activate",
           protocol::encode(protocol::ActivateRequest{enrolled->enrollment_id, *proof}));
  ASSERT_EQ(r.status, 200U) << to_string(r.body);
  auto activated = protocol::decode_activate_response(r.body);
  ASSERT_TRUE(activated);
  const std::string device = activated->device_id;

  // The same EK again: 409, and the answer does not name the device.
  r = post("/v1/enroll", protocol::encode(enroll));
  EXPECT_EQ(r.status, 409U);
  EXPECT_EQ(to_string(r.body).find(device), std::string::npos) << to_string(r.body);

  // Attest: quote, certified binding key, session key signed by it.
  r = post("/v1/challenge", protocol::encode(protocol::ChallengeRequest{device}));
  ASSERT_EQ(r.status, 200U) << to_string(r.body);
  auto challenge = protocol::decode_challenge_response(r.body);
  ASSERT_TRUE(challenge);
  const Bytes& nonce = challenge->nonce;
  const std::string selection_text = "sha256:0,1,2,3,4,5,6,7";
  auto selection = PcrSelection::parse(selection_text);
  ASSERT_TRUE(selection);
  auto quote = tpm.quote(*ak, *selection, nonce);
  ASSERT_TRUE(quote) << quote.error().message;
  auto bk = tpm.create_binding_key(*ak, nonce);
  ASSERT_TRUE(bk) << bk.error().message;
  SystemRandom random;
  SystemClock clock;
  auto session = token::EcSigner::generate(random);
  ASSERT_TRUE(session);
  protocol::AttestRequest attest;
  attest.device_id = device;
  attest.nonce = nonce;
  attest.quote = {quote->attest, quote->signature};
  attest.pcr_selection = selection_text;
  attest.boot_log = log;
  attest.binding_key = {bk->public_area, {bk->certify_attest, bk->certify_signature}};
  auto jkt = base64url_decode(session->public_jwk().thumbprint());
  ASSERT_TRUE(jkt);
  auto sig = tpm.sign(*bk, ossl::sha256(protocol::session_key_signed_bytes(nonce, *jkt)));
  ASSERT_TRUE(sig) << sig.error().message;
  ByteWriter tpmt;  // TPMT_SIGNATURE: ECDSA, SHA-256, r, s
  tpmt.u16be(0x0018).u16be(0x000B);
  tpmt.tpm2b(ByteSpan(sig->raw).first(32)).tpm2b(ByteSpan(sig->raw).subspan(32));
  attest.session_key = protocol::SessionKey{json::serialize(session->public_jwk().to_json()),
                                            std::move(tpmt).take()};
  r = post("/v1/attest", protocol::encode(attest));
  ASSERT_EQ(r.status, 200U) << to_string(r.body);
  auto attested = protocol::decode_attest_response(r.body);
  ASSERT_TRUE(attested) << attested.error().message;
  ASSERT_EQ(attested->verdict, protocol::Verdict::kPass);
  ASSERT_TRUE(attested->device_token);

  auto ask_token = [&] {
    protocol::TokenRequest t;
    t.device_token = *attested->device_token;
    auto p =
        token::create_proof(*session, {"POST", c->url("/v1/token"), std::nullopt, std::nullopt},
                            clock.unix_now(), random);
    EXPECT_TRUE(p) << p.error().message;
    t.proof = p ? *p : std::string();
    t.selectors.uid = 1000;
    t.audience = "payments";
    t.scopes = {"pay"};
    return post("/v1/token", protocol::encode(t));
  };
  r = ask_token();
  EXPECT_EQ(r.status, 403U) << to_string(r.body);
  auto refusal = protocol::decode_error_response(r.body);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->code, "permission_denied") << refusal->reason;

  // The admin sees the request, assigns the group on the socket, and the same device token works.
  auto admin = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{"curl", "-sS", "--unix-socket", socket.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_command(argv, {}, std::chrono::seconds(30));
  };
  auto listed = admin({"http://localhost/admin/v1/devices"});
  ASSERT_EQ(listed.exit_code, 0) << listed.out;
  EXPECT_NE(listed.out.find("\"requested_group\":\"payments-prod\""), std::string::npos)
      << listed.out;
  EXPECT_NE(listed.out.find("\"group\":null"), std::string::npos) << listed.out;
  auto bad = admin({"-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data",
                    R"({"group": 7})", "http://localhost/admin/v1/devices/" + device + "/group"});
  EXPECT_EQ(bad.out, "400") << bad.out;
  auto put = admin({"-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data",
                    R"({"group": "payments-prod"})",
                    "http://localhost/admin/v1/devices/" + device + "/group"});
  EXPECT_EQ(put.out, "204") << put.out;
  // Over loopback TCP without a certificate the route is refused like every admin route.
  auto tcp = c->request("PUT", "/admin/v1/devices/" + device + "/group", "application/json",
                        to_bytes(std::string_view(R"({"group": "payments-eu"})")));
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->status, 403U);

  // Other replicas see it within 1 s; this is the replica that served it: at once.
  r = ask_token();
  EXPECT_EQ(r.status, 200U) << to_string(r.body);
  auto audit = admin({"http://localhost/admin/v1/audit?device=" + device});
  EXPECT_NE(audit.out.find("admin.device_group"), std::string::npos) << audit.out;
  EXPECT_EQ(child.stop(SIGTERM, std::chrono::milliseconds(15000)), 0) << log_text();
}

std::size_t rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
  }
  return 0;
}

// Issue 31: 1,100 idle TCP connections (no ClientHello) from 127.0.0.2 against the real issuer:
// they get its per-address share, 127.0.0.1's /readyz and requests are served throughout, the
// idle ones close at limits.handshake_timeout_ms, and the issuer's memory is reported.
TEST_F(IssuerBinaryTest, IdleConnectionFloodFromOneAddressDoesNotStarveOthers) {
  std::ofstream(config_path(), std::ios::app)
      << "[limits]\nhandshake_timeout_ms = 3000\nmax_connections_per_address = 256\n";
  auto child = test::ChildProcess::spawn({std::string(WARDEN_BINARY_DIR) + "/issuer/warden-issuer",
                                          "--config", config_path().string()},
                                         {}, dir_.path() / "issuer.log");
  ASSERT_TRUE(test::wait_for(
      [&] {
        auto r = client()->request("GET", "/readyz", "", {});
        return r && r->status == 200U;
      },
      std::chrono::milliseconds(20000)));
  const std::size_t before = rss_kib(child.pid());
  std::vector<int> flood;
  for (int i = 0; i < 1100; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(0x7f000002);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&from), sizeof(from)), 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port_));
    to.sin_addr.s_addr = htonl(0x7f000001);
    ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)), 0)
        << std::strerror(errno);
    flood.push_back(fd);
  }
  const std::size_t during = rss_kib(child.pid());
  auto c = client();
  auto ready = c->request("GET", "/readyz", "", {});
  ASSERT_TRUE(ready) << ready.error().message;
  EXPECT_EQ(ready->status, 200U);
  auto metrics = c->request("GET", "/metrics", "", {});
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200U) << "loopback may read /metrics";
  EXPECT_NE(to_string(metrics->body).find("warden_issuer_refused_connections_total 844\n"),
            std::string::npos)
      << to_string(metrics->body);
  // The issuer closes the idle ones at the handshake deadline: each socket reads end of file.
  for (const int fd : flood) {
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char byte = 0;
    EXPECT_LE(::recv(fd, &byte, 1, 0), 0);
    ::close(fd);
  }
  ASSERT_TRUE(test::wait_for(
      [&] {
        auto r = client()->request("GET", "/metrics", "", {});
        return r &&
               to_string(r->body).find("warden_issuer_open_connections 1\n") != std::string::npos;
      },
      std::chrono::milliseconds(10000)));
  const std::size_t after = rss_kib(child.pid());
  std::printf("issuer RSS (KiB): before the flood %zu, during %zu, after %zu\n", before, during,
              after);
  RecordProperty("rss_kib_before", static_cast<int>(before));
  RecordProperty("rss_kib_during", static_cast<int>(during));
  RecordProperty("rss_kib_after", static_cast<int>(after));
  EXPECT_EQ(child.stop(SIGTERM, std::chrono::milliseconds(15000)), 0);
}

}  // namespace
}  // namespace warden
