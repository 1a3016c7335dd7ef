#include "agent/config/agent_config.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace warden::agent {
namespace {

constexpr std::string_view kMinimal = R"(
[issuer]
url = "https://issuer.example:8443"
ca_file = "/etc/warden/issuer-ca.pem"
)";

std::string with(std::string_view extra) { return std::string(kMinimal) + std::string(extra); }

TEST(AgentConfig, DefaultsFromMinimalFile) {
  auto c = parse_agent_config(kMinimal);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->issuer_url, "https://issuer.example:8443");
  EXPECT_EQ(c->tcti, "device:/dev/tpmrm0");
  EXPECT_EQ(c->pcrs.to_string(), PcrSelection::parse("sha256:0-10")->to_string());
  EXPECT_EQ(c->container_pcr, 15u);
  EXPECT_TRUE(c->quoted_pcrs().banks[0].pcrs.test(15));
  EXPECT_EQ(c->state_dir, "/var/lib/warden");
  EXPECT_EQ(c->workload_socket, "/run/warden/workload.sock");
  EXPECT_EQ(c->workload_socket_mode, 0666u);
  EXPECT_EQ(c->admin_socket, "/run/warden/admin.sock");
  EXPECT_EQ(c->admin_socket_mode, 0660u);
  EXPECT_EQ(c->admin_group, "warden");
  EXPECT_EQ(c->api_max_connections, 1024u);
  EXPECT_EQ(c->api_admin_max_connections, 64u);
  EXPECT_EQ(c->api_max_connections_per_uid, 128u);
  EXPECT_EQ(c->api_max_watch_per_uid, 16u);
  EXPECT_EQ(c->api_idle_timeout.count(), 60'000);
  EXPECT_EQ(c->api_request_timeout.count(), 10'000);
  EXPECT_EQ(c->api_refusal_burst, 20u);
  EXPECT_EQ(c->api_refusals_per_second, 5u);
  EXPECT_EQ(c->pcr_poll_interval.count(), 1000);
  EXPECT_EQ(c->token_ttl.count(), 300);
  EXPECT_EQ(c->token_format, TokenFormat::kJwt);
  EXPECT_EQ(c->proof_mode, ProofMode::kSession);
  EXPECT_EQ(c->proc_root, "/proc");
  EXPECT_EQ(c->log_level, "info");
}

TEST(AgentConfig, ShippedExampleParses) {
  std::ifstream in(std::string(WARDEN_SOURCE_DIR) + "/etc/agent.toml");
  ASSERT_TRUE(in);
  std::stringstream text;
  text << in.rdbuf();
  auto c = parse_agent_config(text.str());
  ASSERT_TRUE(c.has_value()) << c.error().message;
}

TEST(AgentConfig, ErrorsNameTheKey) {
  struct Case {
    std::string text;
    std::string key;
  };
  const std::vector<Case> cases = {
      {"", "issuer.url"},
      {"[issuer]\nurl = \"http://plain\"\nca_file = \"/x\"\n", "issuer.url"},
      {"[issuer]\nurl = \"https://x\"\n", "issuer.ca_file"},
      {with("[tpm]\ncontainer_pcr = 16\n"), "tpm.container_pcr"},
      {with("[tpm]\ncontainer_pcr = 23\n"), "tpm.container_pcr"},
      {with("[tpm]\ncontainer_pcr = 24\n"), "tpm.container_pcr"},
      {with("[tpm]\npcrs = \"sha256:0-15\"\n"), "tpm.pcrs"},
      {with("[tpm]\npcrs = \"md5:1\"\n"), "tpm.pcrs"},
      {with("[api]\nworkload_socket_mode = \"0999\"\n"), "api.workload_socket_mode"},
      {with("[api]\nadmin_socket_mode = \"0666\"\n"), "api.admin_socket_mode"},
      {with("[api]\nworkload_socket = \"relative.sock\"\n"), "api.workload_socket"},
      {with("[api]\nmax_connections = 0\n"), "api.max_connections"},
      {with("[api]\nmax_connections = 65537\n"), "api.max_connections"},
      {with("[api]\nadmin_max_connections = 0\n"), "api.admin_max_connections"},
      {with("[api]\nmax_connections_per_uid = 0\n"), "api.max_connections_per_uid"},
      {with("[api]\nmax_watch_per_uid = 70000\n"), "api.max_watch_per_uid"},
      {with("[api]\nrequest_timeout_ms = 99\n"), "api.request_timeout_ms"},
      {with("[api]\nidle_timeout_ms = 3600001\n"), "api.idle_timeout_ms"},
      {with("[api]\nrefusal_burst = 0\n"), "api.refusal_burst"},
      {with("[api]\nrefusals_per_second = \"many\"\n"), "api.refusals_per_second"},
      {with("[posture]\npcr_poll_interval_ms = 99\n"), "posture.pcr_poll_interval_ms"},
      {with("[posture]\nima_poll_interval_ms = \"fast\"\n"), "posture.ima_poll_interval_ms"},
      {with("[token]\nformat = \"paseto\"\n"), "token.format"},
      {with("[token]\nttl_seconds = 7200\n"), "token.ttl_seconds"},
      {with("[agent]\nproof_mode = \"hsm\"\n"), "agent.proof_mode"},
      {with("[agent]\nlog_level = \"loud\"\n"), "agent.log_level"},
      {with("[agent]\nstate_dirr = \"/x\"\n"), "agent.state_dirr"},
      {with("[agent]\nuser = \"war den\"\n"), "agent.user"},
      {with("[nonsense]\nx = 1\n"), "[nonsense]"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    auto r = parse_agent_config(c.text);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find(c.key), std::string::npos) << r.error().message;
  }
}

TEST(AgentConfig, ResettablePcrNeedsOptIn) {
  auto r = parse_agent_config(with("[tpm]\ncontainer_pcr = 16\nallow_resettable_pcr = true\n"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->container_pcr, 16u);
}

TEST(AgentConfig, SyntaxErrorGivesLine) {
  auto r = parse_agent_config("[issuer\nurl=");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kMalformed);
  EXPECT_NE(r.error().message.find("line 1"), std::string::npos) << r.error().message;
}

TEST(AgentConfig, EnvironmentOverridesFile) {
  Environment env{
      {"WARDEN_API_WORKLOAD_SOCKET", "/tmp/w.sock"}, {"WARDEN_POSTURE_PCR_POLL_INTERVAL_MS", "250"},
      {"WARDEN_TPM_ALLOW_RESETTABLE_PCR", "true"},   {"WARDEN_TPM_CONTAINER_PCR", "23"},
      {"WARDEN_API_ADMIN_SOCKET_MODE", "0600"},      {"WARDEN_API_MAX_CONNECTIONS", "3"},
      {"WARDEN_API_REQUEST_TIMEOUT_MS", "2500"},     {"WARDEN_API_MAX_CONNECTIONS_PER_UID", "7"}};
  auto c = parse_agent_config(with("[api]\nworkload_socket = \"/run/x.sock\"\n"), env);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->workload_socket, "/tmp/w.sock");
  EXPECT_EQ(c->pcr_poll_interval.count(), 250);
  EXPECT_EQ(c->container_pcr, 23u);
  EXPECT_EQ(c->admin_socket_mode, 0600u);
  EXPECT_EQ(c->api_max_connections, 3u);
  EXPECT_EQ(c->api_request_timeout.count(), 2500);
  EXPECT_EQ(c->api_max_connections_per_uid, 7u);
  auto bad = parse_agent_config(kMinimal, Environment{{"WARDEN_TOKEN_TTL_SECONDS", "soon"}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("WARDEN_TOKEN_TTL_SECONDS"), std::string::npos);
}

TEST(AgentConfig, PolicyFilesAreAbsolutePathsFromFileOrEnvironment) {
  auto c = parse_agent_config(with("[posture]\npolicy_files = [\"/etc/warden/a.json\"]\n"));
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_EQ(c->policy_files.size(), 1u);
  EXPECT_EQ(c->policy_files[0], "/etc/warden/a.json");
  auto env = parse_agent_config(
      kMinimal, Environment{{"WARDEN_POSTURE_POLICY_FILES", "/etc/a.json:/etc/b.json"}});
  ASSERT_TRUE(env.has_value()) << env.error().message;
  EXPECT_EQ(env->policy_files.size(), 2u);
  auto relative = parse_agent_config(with("[posture]\npolicy_files = [\"a.json\"]\n"));
  ASSERT_FALSE(relative.has_value());
  EXPECT_NE(relative.error().message.find("posture.policy_files"), std::string::npos);
  auto scalar = parse_agent_config(with("[posture]\npolicy_files = \"/etc/a.json\"\n"));
  ASSERT_FALSE(scalar.has_value());
}

}  // namespace
}  // namespace warden::agent
