// Real containers: podman (with runc) started next to a real wardend watching the host's
// /sys/fs/cgroup. The start is measured, a process inside gets a token naming its container and
// image, different from the host's and from another container's, and stopping the container
// revokes that token at the issuer's status list.
#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "tests/e2e/agent_fixture.h"

namespace warden {
namespace {
using namespace e2e;  // NOLINT(google-build-using-namespace): the fixture's helpers

// Tagged per test process: the runtimes' tests run side by side and each re-imports the image,
// which would move a shared tag to a new image id under another test's feet.
const std::string kImage = "localhost/warden-e2e-client:" + std::to_string(::getpid());

// The sandboxes CI runs in may not allow raising RLIMIT_NOFILE/NPROC to the runtimes' defaults.
const std::vector<std::string> kUlimits{"--ulimit", "nofile=1024:1024", "--ulimit",
                                        "nproc=1024:1024"};

test::CommandOutput run(std::vector<std::string> argv) {
  return test::run_command(argv, {}, std::chrono::seconds(60));
}

/// One container runtime as the scenario drives it: start, exec in, remove.
class RuntimeE2ETest : public AgentE2ETest {
 protected:
  void SetUp() override {
    AgentE2ETest::SetUp();
    if (HasFatalFailure()) return;
    if (run({"podman", "--version"}).exit_code != 0) {
      GTEST_SKIP() << "podman is not installed (scripts/bootstrap installs it)";
    }
    // Every runtime's image is built by podman import (scripts/container-image).
    auto image = run({std::string(WARDEN_SOURCE_DIR) + "/scripts/container-image", kImage});
    ASSERT_EQ(image.exit_code, 0) << image.out;
    podman_image_id_ = image.out.substr(0, image.out.find('\n'));
    ASSERT_EQ(podman_image_id_.rfind("sha256:", 0), 0U) << image.out;
    // Whether this kernel can run a container at all (namespaces, cgroups, seccomp).
    std::vector<std::string> probe{"podman", "run"};
    probe.insert(probe.end(), kUlimits.begin(), kUlimits.end());
    probe.insert(probe.end(), {"--rm", kImage, "/usr/bin/sleep", "0"});
    if (auto p = run(probe); p.exit_code != 0) {
      GTEST_SKIP() << "this kernel cannot run containers: " << p.out;
    }
  }

  void TearDown() override {
    for (const auto& name : started_) remove(name);
    if (!podman_image_id_.empty()) run({"podman", "rmi", "--force", kImage});
    AgentE2ETest::TearDown();
    if (daemon_.running()) daemon_.stop(SIGTERM, std::chrono::milliseconds(15000));
    if (!daemon_root_.empty()) run({"rm", "-rf", "--one-file-system", daemon_root_});
  }

  /// A private runtime daemon's directory: short (its sockets must fit sun_path), removed with
  /// everything in it after the test.
  void make_daemon_root(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + ".XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    daemon_root_ = tmpl;
  }
  /// Starts the daemon, its output in `log_name` in the test directory, and waits until `ready`.
  void start_daemon(const std::vector<std::string>& argv, const std::string& log_name,
                    const std::function<bool()>& ready) {
    daemon_ = test::ChildProcess::spawn(argv, {}, dir_.path() / log_name);
    ASSERT_TRUE(
        test::wait_for([&] { return ready() || !daemon_.running(); }, std::chrono::seconds(30)));
    ASSERT_TRUE(daemon_.running()) << slurp(dir_.path() / log_name);
  }

  /// Starts a container named `name` that sleeps, the agent's socket directory at /w; returns
  /// its id as the agent names it.
  virtual std::string start(const std::string& name) = 0;
  /// The runtime's command line running `argv` inside container `name` as `user` ("" = root).
  virtual std::vector<std::string> exec_argv(const std::string& name, const std::string& user,
                                             std::vector<std::string> argv) = 0;
  virtual test::CommandOutput remove(const std::string& name) = 0;
  /// What the token must say of the image (empty digest and "unknown": the runtime records none).
  std::string image_ref_ = kImage;
  std::string image_digest_;

  std::string start_container(const std::string& name) {
    started_.push_back(name);
    return start(name);
  }

  boost::json::object token_inside(const std::string& name, const std::string& user = "",
                                   const std::string& audience = kAudience) {
    auto out =
        run(exec_argv(name, user,
                      {"/usr/bin/curl", "-sS", "--unix-socket", "/w/workload.sock", "-H",
                       "workload.spiffe.io: true", "-H", "content-type: application/json",
                       "--data-binary", token_body(300, audience), "http://localhost/v1/token"}));
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

  // The start is measured, a process inside gets a token naming its container and image,
  // different from the host's and another container's; a process no rule names gets nothing;
  // stopping the container revokes its token at the issuer, not the other container's.
  void scenario() {
    start_agent();
    auto host = curl_json("/v1/token", token_body(300));
    ASSERT_TRUE(host.contains("jti")) << json::serialize(host) << agent_log();

    const std::string pcr_before = container_pcr();
    const std::string name = "warden-e2e-" + std::to_string(::getpid());
    const std::string id = start_container(name);
    ASSERT_FALSE(HasFailure());
    const auto cel = dir_.path() / "state" / "containers.cel";
    ASSERT_TRUE(test::wait_for(
        [&] {
          const std::string log = slurp(cel);
          return log.find(id) != std::string::npos &&
                 (image_digest_.empty() || log.find(image_digest_) != std::string::npos);
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
    EXPECT_EQ(claims.workload->image_digest.value_or(""), image_digest_);
    EXPECT_EQ(claims.workload->image_ref, image_ref_);
    if (image_digest_.empty()) {
      // An unknown image matches no rule with an image selector.
      auto by_image = token_inside(name, "", kImageAudience);
      EXPECT_FALSE(by_image.contains("token")) << json::serialize(by_image);
    }

    const std::string other_name = name + "-b";
    const std::string other = start_container(other_name);
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(test::wait_for([&] { return slurp(cel).find(other) != std::string::npos; },
                               std::chrono::seconds(10)));
    auto theirs = token_inside(other_name);
    ASSERT_TRUE(theirs.contains("jti")) << json::serialize(theirs);
    EXPECT_NE(theirs.at("jti"), inside.at("jti"));
    EXPECT_EQ(verified(theirs).workload->container_id, other);

    auto stranger = token_inside(name, "1000");
    EXPECT_FALSE(stranger.contains("token")) << json::serialize(stranger);
    EXPECT_EQ(stranger.at("error").as_string(), "permission_denied") << json::serialize(stranger);

    EXPECT_FALSE(revoked_at_issuer(claims));
    auto stopped = remove(name);
    ASSERT_EQ(stopped.exit_code, 0) << stopped.out;
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(test::wait_for([&] { return revoked_at_issuer(claims); }, std::chrono::seconds(10)))
        << agent_log();
    const auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    std::printf("container stop -> revoked in the issuer's status list: %lld ms\n",
                static_cast<long long>(latency.count()));
    EXPECT_FALSE(revoked_at_issuer(verified(theirs)));
    EXPECT_EQ(agent_.stop(SIGTERM, std::chrono::milliseconds(15000)), 0) << agent_log();
  }

  std::string podman_image_id_;
  std::vector<std::string> started_;
  std::string daemon_root_;
  test::ChildProcess daemon_;
};

class PodmanE2ETest : public RuntimeE2ETest {
 protected:
  void SetUp() override {
    RuntimeE2ETest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    image_digest_ = podman_image_id_;
    write_agent_config("/sys/fs/cgroup");
  }
  std::string start(const std::string& name) override {
    std::vector<std::string> argv{"podman", "run"};
    argv.insert(argv.end(), kUlimits.begin(), kUlimits.end());
    argv.insert(argv.end(), {"-d", "--name", name, "-v", dir_.path().string() + ":/w", kImage,
                             "/usr/bin/sleep", "600"});
    auto out = run(argv);
    EXPECT_EQ(out.exit_code, 0) << out.out;
    const auto id = out.out.substr(0, out.out.find('\n'));
    EXPECT_EQ(id.size(), 64U) << out.out;
    return id;
  }
  std::vector<std::string> exec_argv(const std::string& name, const std::string& user,
                                     std::vector<std::string> argv) override {
    std::vector<std::string> out{"podman", "exec"};
    if (!user.empty()) out.insert(out.end(), {"--user", user});
    out.push_back(name);
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }
  test::CommandOutput remove(const std::string& name) override {
    return run({"podman", "rm", "-f", "-t", "0", name});
  }
};

TEST_F(PodmanE2ETest, AContainersTokenNamesItAndDiesWithIt) { scenario(); }

// A private dockerd (Debian's docker.io) with the cgroupfs driver: containers at /docker/<id>.
class DockerE2ETest : public RuntimeE2ETest {
 protected:
  void SetUp() override {
    RuntimeE2ETest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    if (run({kDocker, "--version"}).exit_code != 0 || run({"dockerd", "--version"}).exit_code != 0)
      GTEST_SKIP() << "docker.io is not installed (scripts/bootstrap installs it)";
    make_daemon_root("wdock");
    ASSERT_FALSE(HasFatalFailure());
    const std::string& root = daemon_root_;
    host_ = "unix://" + root + "/d.sock";
    start_daemon(
        {"dockerd", "--data-root", root + "/data", "--exec-root", root + "/exec", "--pidfile",
         root + "/pid", "-H", host_, "--exec-opt", "native.cgroupdriver=cgroupfs",
         "--iptables=false", "--ip6tables=false", "--bridge=none", "--default-ulimit",
         "nofile=1024:1024", "--default-ulimit", "nproc=1024:1024"},
        "dockerd.log", [&] { return docker({"info"}).exit_code == 0; });
    ASSERT_FALSE(HasFatalFailure());
    const auto tar = dir_.path() / "image.tar";
    auto made =
        run({std::string(WARDEN_SOURCE_DIR) + "/scripts/container-image", "--tar", tar.string()});
    ASSERT_EQ(made.exit_code, 0) << made.out;
    auto imported = docker({"import", tar.string(), kImage});
    ASSERT_EQ(imported.exit_code, 0) << imported.out;
    image_digest_ = imported.out.substr(0, imported.out.find('\n'));
    ASSERT_EQ(image_digest_.rfind("sha256:", 0), 0U) << imported.out;
    write_agent_config("/sys/fs/cgroup", "docker_root = \"" + root + "/data\"\n");
  }
  // Debian's client; another one earlier on PATH may not speak to Debian's 20.10 daemon.
  static constexpr const char* kDocker = "/usr/bin/docker";
  test::CommandOutput docker(std::vector<std::string> args) {
    args.insert(args.begin(), {kDocker, "-H", host_});
    return run(args);
  }
  std::string start(const std::string& name) override {
    auto out = docker({"run", "-d", "--network", "none", "--name", name, "-v",
                       dir_.path().string() + ":/w", kImage, "/usr/bin/sleep", "600"});
    EXPECT_EQ(out.exit_code, 0) << out.out;
    const auto id = out.out.substr(0, out.out.find('\n'));
    EXPECT_EQ(id.size(), 64U) << out.out;
    return id;
  }
  std::vector<std::string> exec_argv(const std::string& name, const std::string& user,
                                     std::vector<std::string> argv) override {
    std::vector<std::string> out{kDocker, "-H", host_, "exec"};
    if (!user.empty()) out.insert(out.end(), {"--user", user});
    out.push_back(name);
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }
  test::CommandOutput remove(const std::string& name) override {
    return docker({"rm", "-f", name});
  }
  std::string host_;
};

TEST_F(DockerE2ETest, AContainersTokenNamesItAndDiesWithIt) { scenario(); }

// A private containerd driven by ctr: containers at /<namespace>/<id>, no image annotation.
class CtrE2ETest : public RuntimeE2ETest {
 protected:
  void SetUp() override {
    RuntimeE2ETest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    if (run({"containerd", "--version"}).exit_code != 0)
      GTEST_SKIP() << "containerd is not installed (scripts/bootstrap installs it)";
    make_daemon_root("wctr");
    ASSERT_FALSE(HasFatalFailure());
    const std::string& root = daemon_root_;
    address_ = root + "/c.sock";
    std::ofstream(root + "/config.toml")
        << "version = 2\nroot = \"" << root << "/root\"\nstate = \"" << root
        << "/state\"\n[grpc]\naddress = \"" << address_ << "\"\n[ttrpc]\naddress = \"" << root
        << "/c.ttrpc\"\n[debug]\naddress = \"\"\n[metrics]\naddress = \"\"\n";
    start_daemon({"containerd", "--config", root + "/config.toml"}, "containerd.log",
                 [&] { return ctr({"version"}).exit_code == 0; });
    ASSERT_FALSE(HasFatalFailure());
    const auto archive = dir_.path() / "image.tar";
    auto saved = run({"podman", "save", "--quiet", "--format", "docker-archive", "-o",
                      archive.string(), kImage});
    ASSERT_EQ(saved.exit_code, 0) << saved.out;
    auto imported = ctr({"image", "import", archive.string()});
    ASSERT_EQ(imported.exit_code, 0) << imported.out;
    image_ref_ = "unknown";
    write_agent_config("/sys/fs/cgroup", "containerd_state = \"" + root + "/state\"\n");
  }
  static constexpr const char* kNamespace = "warden-e2e";
  test::CommandOutput ctr(std::vector<std::string> args) {
    args.insert(args.begin(), {"ctr", "-a", address_, "-n", kNamespace});
    return run(args);
  }
  std::string start(const std::string& name) override {
    auto out = ctr({"run", "-d", "--mount",
                    "type=bind,src=" + dir_.path().string() + ",dst=/w,options=rbind:rw", kImage,
                    name, "/usr/bin/sleep", "600"});
    EXPECT_EQ(out.exit_code, 0) << out.out;
    return std::string(kNamespace) + "/" + name;
  }
  std::vector<std::string> exec_argv(const std::string& name, const std::string& user,
                                     std::vector<std::string> argv) override {
    std::vector<std::string> out{"ctr",  "-a",        address_,
                                 "-n",   kNamespace,  "task",
                                 "exec", "--exec-id", "e" + std::to_string(++execs_)};
    if (!user.empty()) out.insert(out.end(), {"--user", user});
    out.push_back(name);
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }
  test::CommandOutput remove(const std::string& name) override {
    auto killed = ctr({"task", "delete", "-f", name});
    if (killed.exit_code != 0) return killed;
    return ctr({"container", "rm", name});
  }
  std::string address_;
  int execs_ = 0;
};

TEST_F(CtrE2ETest, AContainersTokenNamesItAndDiesWithIt) { scenario(); }

}  // namespace
}  // namespace warden
