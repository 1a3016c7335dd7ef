#pragma once
// /etc/warden/agent.toml: every key, its default and its validation. Documented in
// docs/agent-config.md; layered as defaults -> file -> environment (WARDEN_<SECTION>_<KEY>).

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "platform/base/error.h"
#include "platform/base/pcr_selection.h"

namespace warden::agent {

enum class ProofMode { kSession, kTpm };
enum class TokenFormat { kJwt, kCwt };

struct AgentConfig {
  // [issuer]
  std::string issuer_url;                ///< required, https://
  std::filesystem::path issuer_ca_file;  ///< required: PEM CA pinned for the issuer's TLS
  // [tpm]
  std::string tcti = "device:/dev/tpmrm0";
  PcrSelection pcrs;            ///< boot PCRs; default sha256:0-9,10
  unsigned container_pcr = 15;  // 14 is shim's (MokList); 15 is unused by firmware and bootloaders
  bool allow_resettable_pcr = false;
  /// TCG boot event log; empty: <securityfs_root>/tpm0/binary_bios_measurements. Absent file:
  /// the attestation carries an empty log.
  std::filesystem::path event_log;
  /// Container Canonical Event Log (CBOR); empty: <state_dir>/containers.cel. Absent: none sent.
  std::filesystem::path cel_log;
  // [agent]
  std::filesystem::path state_dir = "/var/lib/warden";
  std::string log_level = "info";
  /// Started as root: the user to switch to once sockets and state dir are set up (keeping
  /// CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE). Empty: keep running as started (systemd's User=).
  std::string user;
  ProofMode proof_mode = ProofMode::kSession;
  // [api]
  std::filesystem::path workload_socket = "/run/warden/workload.sock";
  mode_t workload_socket_mode = 0666;
  std::filesystem::path admin_socket = "/run/warden/admin.sock";
  mode_t admin_socket_mode = 0660;
  std::string admin_group = "warden";
  /// Workload-socket connections open at once (watch streams included); more are closed at
  /// accept. The admin socket has a pool of its own.
  unsigned api_max_connections = 1024;
  unsigned api_admin_max_connections = 64;
  /// Connections one uid may hold open on each socket (root exempt on the admin socket only).
  unsigned api_max_connections_per_uid = 128;
  unsigned api_max_watch_per_uid = 16;
  /// Between requests on a keep-alive connection.
  std::chrono::milliseconds api_idle_timeout{60'000};
  /// From a request's first byte to its last.
  std::chrono::milliseconds api_request_timeout{10'000};
  /// Refused requests (token, proof, secret) a uid may make in a burst, and the rate at which
  /// its budget refills; over budget its requests get 429 without reaching the agent's core.
  unsigned api_refusal_burst = 20;
  unsigned api_refusals_per_second = 5;
  // [posture]
  std::chrono::milliseconds pcr_poll_interval{1000};
  std::chrono::milliseconds ima_poll_interval{1000};
  std::chrono::milliseconds status_list_poll_interval{30000};
  /// How often a serving agent asks the issuer whether its device was revoked there.
  std::chrono::milliseconds device_status_poll_interval{5000};
  std::filesystem::path proc_root = "/proc";
  std::filesystem::path cgroupfs_root = "/sys/fs/cgroup";
  std::filesystem::path securityfs_root = "/sys/kernel/security";
  /// Where the container runtimes keep the records the agent reads (image identity; containerd's
  /// tasks confirm `ctr run` containers): dockerd's --data-root, containers-storage's graphroot,
  /// containerd's `state`.
  std::filesystem::path docker_root = "/var/lib/docker";
  std::filesystem::path podman_storage = "/var/lib/containers/storage";
  std::filesystem::path containerd_state = "/run/containerd";
  std::vector<std::filesystem::path> policy_files;  ///< watched; a change asks to re-attest
  // [token]
  std::chrono::seconds token_ttl{300};
  std::chrono::seconds token_max_ttl{3600};
  TokenFormat token_format = TokenFormat::kJwt;

  /// The selection actually quoted: `pcrs` plus the container PCR in every bank.
  [[nodiscard]] PcrSelection quoted_pcrs() const;
  [[nodiscard]] std::filesystem::path event_log_path() const;
  [[nodiscard]] std::filesystem::path cel_log_path() const;
  /// <securityfs_root>/ima/binary_runtime_measurements
  [[nodiscard]] std::filesystem::path ima_log_path() const;
};

using Environment = std::map<std::string, std::string, std::less<>>;

/// Parses TOML text, applies WARDEN_<SECTION>_<KEY> overrides from `env`, validates.
/// Errors are kInvalidArgument/kMalformed and name the key ("config: api.workload_socket_mode: …").
Result<AgentConfig> parse_agent_config(std::string_view toml_text, const Environment& env = {});

/// Reads `path` and the process environment. A missing file is an error.
Result<AgentConfig> load_agent_config(const std::filesystem::path& path);

/// The process environment's WARDEN_* variables.
Environment warden_environment();

std::string_view to_string(ProofMode mode);
std::string_view to_string(TokenFormat format);

}  // namespace warden::agent
