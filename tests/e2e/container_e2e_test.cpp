// Real containers: podman (with runc) started next to a real wardend watching the host's
// /sys/fs/cgroup. The start is measured, a process inside gets a token naming its container and
// image, different from the host's and from another container's, and stopping the container
// revokes that token at the issuer's status list.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/e2e/agent_fixture.h"

namespace warden {
namespace {
using namespace e2e;  // NOLINT(google-build-using-namespace): the fixture's helpers

constexpr const char* kImage = "localhost/warden-e2e-client:1";

class PodmanE2ETest : public AgentE2ETest {
 protected:
  void SetUp() override {
    AgentE2ETest::SetUp();
    if (HasFatalFailure()) return;
    if (test::run_command({"podman", "--version"}).exit_code != 0) {
      GTEST_SKIP() << "podman is not installed (scripts/bootstrap installs it)";
    }
    auto image =
        test::run_command({std::string(WARDEN_SOURCE_DIR) + "/scripts/container-image", kImage});
    ASSERT_EQ(image.exit_code, 0) << image.out;
    image_id_ = image.out.substr(0, image.out.find('\n'));
    ASSERT_EQ(image_id_.rfind("sha256:", 0), 0U) << image.out;
    // Whether this kernel can run a container at all (namespaces, cgroups, seccomp).
    auto probe = podman({"run", "--rm", kImage, "/usr/bin/sleep", "0"});
    if (probe.exit_code != 0) GTEST_SKIP() << "this kernel cannot run containers: " << probe.out;
    write_agent_config("/sys/fs/cgroup");
  }

  void TearDown() override {
    for (const auto& name : started_) podman({"rm", "-f", "-t", "0", name});
    AgentE2ETest::TearDown();
  }

  // The sandboxes CI runs in may not allow raising RLIMIT_NOFILE/NPROC to podman's defaults.
  static test::CommandOutput podman(std::vector<std::string> args) {
    std::vector<std::string> argv{"podman"};
    if (args[0] == "run") {
      args.insert(args.begin() + 1,
                  {"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_command(argv, {}, std::chrono::seconds(60));
  }

  /// Starts a container that sleeps, with the agent's socket directory at /w; its full id.
  std::string start_container(const std::string& name) {
    started_.push_back(name);
    auto out = podman({"run", "-d", "--name", name, "-v", dir_.path().string() + ":/w", kImage,
                       "/usr/bin/sleep", "600"});
    EXPECT_EQ(out.exit_code, 0) << out.out;
    const auto id = out.out.substr(0, out.out.find('\n'));
    EXPECT_EQ(id.size(), 64U) << out.out;
    return id;
  }

  boost::json::object token_inside(const std::string& name, const std::string& user = "") {
    std::vector<std::string> args{"exec"};
    if (!user.empty()) args.insert(args.end(), {"--user", user});
    args.insert(args.end(),
                {name, "/usr/bin/curl", "-sS", "--unix-socket", "/w/workload.sock", "-H",
                 "workload.spiffe.io: true", "-H", "content-type: application/json",
                 "--data-binary", token_body(300), "http://localhost/v1/token"});
    auto out = podman(args);
    EXPECT_EQ(out.exit_code, 0) << out.out;
    auto obj = json::parse_object(out.out);
    EXPECT_TRUE(obj) << out.out;
    return obj ? *obj : boost::json::object{};
  }

  std::string container_pcr() {
    auto out = test::run_command({"tpm2_pcrread", "sha256:15"}, tpm_->tools_env());
    EXPECT_EQ(out.exit_code, 0) << out.out;
    return out.out;
  }

  token::Claims verified(const boost::json::object& tok) {
    token::JwtVerifyOptions vo;
    vo.checks.now = unix_now();
    vo.checks.audience = std::string(kAudience);
    auto v = token::verify_jwt(std::string(tok.at("token").as_string()), issuer_jwks(), vo);
    EXPECT_TRUE(v) << v.error().message;
    return v ? v->claims : token::Claims{};
  }

  bool revoked_at_issuer(const token::Claims& claims) {
    const std::string& uri = claims.status->uri;
    auto r = client()->request("GET", uri.substr(uri.find("/v1/")), "", {});
    if (!r || r->status != 200U) return false;
    auto list = token::verify_status_list_jwt(to_string(r->body), issuer_jwks(), unix_now());
    return list && !token::check_status(claims, *list);
  }

  std::string image_id_;
  std::vector<std::string> started_;
};

TEST_F(PodmanE2ETest, AContainersTokenNamesItAndDiesWithIt) {
  start_agent();
  auto host = curl_json("/v1/token", token_body(300));
  ASSERT_TRUE(host.contains("jti")) << json::serialize(host) << agent_log();

  const std::string pcr_before = container_pcr();
  const std::string name = "warden-e2e-" + std::to_string(::getpid());
  const std::string id = start_container(name);
  ASSERT_FALSE(HasFailure());
  // The start is measured: the container PCR moves and the log names the container and image.
  const auto cel = dir_.path() / "state" / "containers.cel";
  ASSERT_TRUE(test::wait_for(
      [&] {
        const std::string log = slurp(cel);
        return log.find(id) != std::string::npos && log.find(image_id_) != std::string::npos;
      },
      std::chrono::seconds(10)))
      << agent_log();
  EXPECT_NE(container_pcr(), pcr_before);

  auto inside = token_inside(name);
  ASSERT_TRUE(inside.contains("token")) << json::serialize(inside) << agent_log();
  EXPECT_NE(inside.at("jti"), host.at("jti"));
  const auto claims = verified(inside);
  ASSERT_TRUE(claims.workload && claims.status);
  EXPECT_EQ(claims.workload->container_id, id);
  EXPECT_EQ(claims.workload->image_digest, image_id_);
  EXPECT_EQ(claims.workload->image_ref, kImage);

  // Another container of the same image: a token of its own.
  const std::string other = start_container(name + "-b");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(test::wait_for([&] { return slurp(cel).find(other) != std::string::npos; },
                             std::chrono::seconds(10)));
  auto theirs = token_inside(name + "-b");
  ASSERT_TRUE(theirs.contains("jti")) << json::serialize(theirs);
  EXPECT_NE(theirs.at("jti"), inside.at("jti"));
  EXPECT_EQ(verified(theirs).workload->container_id, other);

  // A process of the container that no rule names (uid 1000 inside) gets nothing.
  auto stranger = token_inside(name, "1000");
  EXPECT_FALSE(stranger.contains("token")) << json::serialize(stranger);
  EXPECT_EQ(stranger.at("error").as_string(), "permission_denied") << json::serialize(stranger);

  // Stopping the container revokes its token at the issuer; the other container's stays good.
  EXPECT_FALSE(revoked_at_issuer(claims));
  auto stopped = podman({"rm", "-f", "-t", "0", name});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.out;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(test::wait_for([&] { return revoked_at_issuer(claims); }, std::chrono::seconds(10)))
      << agent_log();
  const auto latency =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::printf("container stop -> revoked in the issuer's status list: %lld ms\n",
              static_cast<long long>(latency.count()));
  EXPECT_FALSE(revoked_at_issuer(verified(theirs)));
  EXPECT_EQ(agent_.stop(SIGTERM, std::chrono::milliseconds(15000)), 0) << agent_log();
}

}  // namespace
}  // namespace warden
