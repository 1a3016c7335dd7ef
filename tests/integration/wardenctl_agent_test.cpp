// wardenctl (the real binary) against an in-process LocalServer with a fake WorkloadService:
// the client commands' requests, human and --json output, exit codes and refusals.
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <thread>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "agent/api/local_server.h"
#include "tests/support/fake_workload_service.h"
#include "tests/support/process.h"

namespace warden::agent::api {
namespace {

const std::string kWardenctl = std::string(WARDEN_BINARY_DIR) + "/agent/wardenctl";

class WardenctlAgentTest : public ::testing::Test {
 protected:
  void SetUp() override { start(0666); }
  void start(mode_t admin_mode) {
    std::filesystem::permissions(dir_.path(), std::filesystem::perms(0755));
    LocalServerOptions o;
    o.workload_socket = workload();
    o.admin_socket = admin();
    o.admin_socket_mode = admin_mode;
    auto s = LocalServer::start(io_, o, service_, resolver_, bus_);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    server_ = std::move(*s);
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    boost::asio::post(io_, [this] {
      server_->stop();
      io_.stop();
    });
    thread_.join();
  }
  std::filesystem::path workload() const { return dir_.path() / "workload.sock"; }
  std::filesystem::path admin() const { return dir_.path() / "admin.sock"; }

  /// wardenctl ARGS --socket W --admin-socket A, stdout and stderr interleaved.
  ::warden::test::CommandOutput ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{kWardenctl};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--socket", workload().string(), "--admin-socket", admin().string(),
                             "--config", (dir_.path() / "absent.toml").string()});
    return ::warden::test::run_command(argv);
  }
  /// Same through a shell, stdout only (to `out`), stderr discarded.
  int ctl_stdout(const std::string& args, std::string& out) {
    const auto file = dir_.path() / "stdout";
    const auto r = ::warden::test::run_command(
        {"sh", "-c",
         kWardenctl + " " + args + " --socket " + workload().string() + " --admin-socket " +
             admin().string() + " >" + file.string() + " 2>/dev/null"});
    std::ifstream in(file, std::ios::binary);
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return r.exit_code;
  }

  ::warden::test::TempDir dir_;
  boost::asio::io_context io_;
  test::FakeWorkloadService service_;
  os::WorkloadIdentityResolver resolver_;
  EventBus bus_;
  std::unique_ptr<LocalServer> server_;
  std::thread thread_;
};

TEST_F(WardenctlAgentTest, StatusHumanAndJson) {
  auto r = ctl({"status"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("state: serving"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("enrolled: true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("since: 2023-11-14T22:13:20Z (1700000000)"), std::string::npos) << r.out;
  r = ctl({"status", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto v = boost::json::parse(r.out).as_object();
  EXPECT_EQ(v.at("state").as_string(), "serving");
  EXPECT_EQ(v.at("since").as_int64(), 1'700'000'000);
}

TEST_F(WardenctlAgentTest, TokenSendsAudienceScopesTtlFormat) {
  std::string out;
  ASSERT_EQ(ctl_stdout("token --audience https://rp.example --scope read --scope write --ttl 60 "
                       "--format cwt",
                       out),
            0);
  EXPECT_EQ(out, "eyJ.fake.token\n");  // the token alone on stdout
  EXPECT_EQ(service_.synced().last_token.audience, "https://rp.example");
  EXPECT_EQ(service_.synced().last_token.scopes, (std::vector<std::string>{"read", "write"}));
  ASSERT_TRUE(service_.synced().last_token.ttl.has_value());
  EXPECT_EQ(service_.synced().last_token.ttl->count(), 60);
  EXPECT_EQ(service_.synced().last_token.format, TokenFormat::kCwt);
  EXPECT_EQ(service_.synced().last_caller.uid, getuid());

  auto r = ctl({"token", "--audience", "a", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(boost::json::parse(r.out).at("jti").as_string(), "jti-1");
  EXPECT_FALSE(service_.synced().last_token.ttl.has_value());
  r = ctl({"token"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--audience is required"), std::string::npos) << r.out;
}

TEST_F(WardenctlAgentTest, ProofAndIdentity) {
  std::string out;
  ASSERT_EQ(ctl_stdout("proof --jti j1 --htm POST --htu https://rp.example/x", out), 0);
  EXPECT_EQ(out, "eyJ.fake.proof\n");
  EXPECT_EQ(service_.synced().last_proof.jti, "j1");
  EXPECT_EQ(service_.synced().last_proof.htm, "POST");
  EXPECT_EQ(service_.synced().last_proof.htu, "https://rp.example/x");
  const auto r = ctl({"identity"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("uid: " + std::to_string(getuid())), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exe_sha256: "), std::string::npos) << r.out;
}

TEST_F(WardenctlAgentTest, SecretGetRawOrBase64) {
  std::string out;
  ASSERT_EQ(ctl_stdout("secret get db", out), 0);
  EXPECT_EQ(out, "hunter2");  // raw bytes, no newline
  ASSERT_EQ(ctl_stdout("secret get db --base64", out), 0);
  EXPECT_EQ(out, "aHVudGVyMg==\n");
  const auto r = ctl({"secret", "get", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("none that this caller may read (not_found, HTTP 404)"), std::string::npos)
      << r.out;
}

TEST_F(WardenctlAgentTest, SecretPutSealsFileForSelectorsWithoutEchoingIt) {
  const auto file = dir_.path() / "s.bin";
  {
    std::ofstream f(file, std::ios::binary);
    f << std::string("p\0ss", 4);
  }
  auto r = ctl({"secret", "put", "db", "--from-file", file.string(), "--allow-uid", "1000",
                "--allow-exe-sha256", std::string(64, 'a')});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "sealed db\n");
  EXPECT_EQ(service_.synced().sealed_name, "db");
  EXPECT_EQ(service_.synced().sealed_value, std::string("p\0ss", 4));
  ASSERT_EQ(service_.synced().sealed_matches.size(), 1u);
  EXPECT_EQ(service_.synced().sealed_matches[0].uid, 1000u);
  EXPECT_EQ(service_.synced().sealed_matches[0].exe_sha256, std::string(64, 'a'));
  EXPECT_FALSE(service_.synced().sealed_matches[0].gid.has_value());

  r = ctl({"secret", "put", "db", "--from-file", file.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("name at least one reader"), std::string::npos) << r.out;
  r = ctl({"secret", "put", "../x", "--from-file", file.string(), "--allow-uid", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("HTTP 400"), std::string::npos) << r.out;
}

TEST_F(WardenctlAgentTest, RevokeAndReattest) {
  auto r = ctl({"revoke", "--reason", "lost laptop"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "revoked\n");
  EXPECT_EQ(service_.synced().revoked_reason, "lost laptop");
  r = ctl({"revoke"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(service_.synced().revoked_reason, "admin request");
  r = ctl({"reattest"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("state: reattesting"), std::string::npos) << r.out;
}

TEST_F(WardenctlAgentTest, NoDaemonIsAClearError) {
  const auto absent = (dir_.path() / "absent.sock").string();
  const auto r = ::warden::test::run_command({kWardenctl, "identity", "--socket", absent});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.out.find("cannot connect to " + absent + ": is wardend running?"), std::string::npos)
      << r.out;
}

TEST_F(WardenctlAgentTest, OtherUidRefusedOnAdminSocket) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run wardenctl as nobody";
  const std::vector<std::string> as_nobody{"setpriv", "--reuid=65534", "--regid=65534",
                                           "--clear-groups", kWardenctl};
  auto with_sockets = [&](std::vector<std::string> args) {
    auto argv = as_nobody;
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--socket", workload().string(), "--admin-socket", admin().string()});
    return ::warden::test::run_command(argv);
  };
  // The fixture's admin socket is 0666: the connection is accepted and the server refuses uid
  // 65534 from the kernel's credentials.
  auto r = with_sockets({"status"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("permission_denied, HTTP 403"), std::string::npos) << r.out;
  r = with_sockets({"revoke"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(service_.synced().revoked_reason.empty());
  // The workload socket serves nobody, as nobody.
  r = with_sockets({"identity"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("uid: 65534"), std::string::npos) << r.out;
  // With the production mode the filesystem refuses first.
  ASSERT_EQ(::chmod(admin().c_str(), 0660), 0);
  r = with_sockets({"status"});
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_NE(r.out.find("permission denied"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace warden::agent::api
