#include "agent/config/agent_config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include <toml++/toml.h>

#include "platform/base/file.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX

namespace warden::agent {
namespace {

enum class Kind { kString, kInt, kBool, kMode, kPathList };
struct Key {
  std::string_view section;
  std::string_view name;
  Kind kind;
};

constexpr std::array<Key, 40> kKeys{{
    {"issuer", "url", Kind::kString},
    {"issuer", "ca_file", Kind::kString},
    {"tpm", "tcti", Kind::kString},
    {"tpm", "pcrs", Kind::kString},
    {"tpm", "container_pcr", Kind::kInt},
    {"tpm", "allow_resettable_pcr", Kind::kBool},
    {"tpm", "event_log", Kind::kString},
    {"tpm", "cel_log", Kind::kString},
    {"agent", "state_dir", Kind::kString},
    {"agent", "log_level", Kind::kString},
    {"agent", "user", Kind::kString},
    {"agent", "proof_mode", Kind::kString},
    {"api", "workload_socket", Kind::kString},
    {"api", "workload_socket_mode", Kind::kMode},
    {"api", "admin_socket", Kind::kString},
    {"api", "admin_socket_mode", Kind::kMode},
    {"api", "admin_group", Kind::kString},
    {"api", "max_connections", Kind::kInt},
    {"api", "admin_max_connections", Kind::kInt},
    {"api", "max_connections_per_uid", Kind::kInt},
    {"api", "max_watch_per_uid", Kind::kInt},
    {"api", "idle_timeout_ms", Kind::kInt},
    {"api", "request_timeout_ms", Kind::kInt},
    {"api", "refusal_burst", Kind::kInt},
    {"api", "refusals_per_second", Kind::kInt},
    {"posture", "pcr_poll_interval_ms", Kind::kInt},
    {"posture", "ima_poll_interval_ms", Kind::kInt},
    {"posture", "status_list_poll_interval_ms", Kind::kInt},
    {"posture", "device_status_poll_interval_ms", Kind::kInt},
    {"posture", "proc_root", Kind::kString},
    {"posture", "cgroupfs_root", Kind::kString},
    {"posture", "securityfs_root", Kind::kString},
    {"posture", "docker_root", Kind::kString},
    {"posture", "podman_storage", Kind::kString},
    {"posture", "containerd_state", Kind::kString},
    {"posture", "policy_files", Kind::kPathList},
    {"token", "ttl_seconds", Kind::kInt},
    {"token", "max_ttl_seconds", Kind::kInt},
    {"token", "format", Kind::kString},
}};

std::string key_name(const Key& k) { return std::string(k.section) + "." + std::string(k.name); }

std::string env_name(const Key& k) {
  std::string out = "WARDEN_";
  for (char c : std::string(k.section) + "_" + std::string(k.name)) {
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

tl::unexpected<Error> bad(const Key& k, const std::string& what) {
  return fail(ErrorCode::kInvalidArgument, "config: " + key_name(k) + ": " + what);
}

Result<std::int64_t> parse_int(std::string_view text, int base) {
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                "expected an integer, found \"" + std::string(text) + "\"");
  }
  return v;
}

/// Applies one environment override onto the parsed table.
Status apply_env(toml::table& root, const Key& k, const std::string& value) {
  auto* section = root[k.section].as_table();
  if (section == nullptr) {
    root.insert_or_assign(k.section, toml::table{});
    section = root[k.section].as_table();
  }
  switch (k.kind) {
    case Kind::kString:
    case Kind::kMode:
      section->insert_or_assign(k.name, value);
      break;
    case Kind::kInt: {
      auto v = parse_int(value, 10);
      if (!v) return bad(k, "from " + env_name(k) + ": " + v.error().message);
      section->insert_or_assign(k.name, *v);
      break;
    }
    case Kind::kPathList: {
      // In the environment: paths separated by ':' (as in PATH).
      toml::array paths;
      std::size_t start = 0;
      while (start <= value.size()) {
        const auto end = std::min(value.find(':', start), value.size());
        if (end > start) paths.push_back(value.substr(start, end - start));
        start = end + 1;
      }
      section->insert_or_assign(k.name, std::move(paths));
      break;
    }
    case Kind::kBool:
      if (value != "true" && value != "false") {
        return bad(k, "from " + env_name(k) + ": expected true or false, found \"" + value + "\"");
      }
      section->insert_or_assign(k.name, value == "true");
      break;
  }
  return ok();
}

const toml::node* find(const toml::table& root, const Key& k) {
  const auto* section = root[k.section].as_table();
  return section == nullptr ? nullptr : section->get(k.name);
}

Status read_string(const toml::table& root, const Key& k, std::string& out) {
  const auto* node = find(root, k);
  if (node == nullptr) return ok();
  const auto* s = node->as_string();
  if (s == nullptr) return bad(k, "expected a string");
  out = s->get();
  return ok();
}

Status read_int(const toml::table& root, const Key& k, std::int64_t& out) {
  const auto* node = find(root, k);
  if (node == nullptr) return ok();
  const auto* i = node->as_integer();
  if (i == nullptr) return bad(k, "expected an integer");
  out = i->get();
  return ok();
}

Status read_bool(const toml::table& root, const Key& k, bool& out) {
  const auto* node = find(root, k);
  if (node == nullptr) return ok();
  const auto* b = node->as_boolean();
  if (b == nullptr) return bad(k, "expected true or false");
  out = b->get();
  return ok();
}

/// A socket mode: an octal string ("0660") or a TOML integer (0o660).
Status read_mode(const toml::table& root, const Key& k, mode_t& out) {
  const auto* node = find(root, k);
  if (node == nullptr) return ok();
  std::int64_t v = 0;
  if (const auto* s = node->as_string()) {
    auto parsed = parse_int(s->get(), 8);
    if (!parsed) return bad(k, "expected an octal mode like \"0660\", found \"" + s->get() + "\"");
    v = *parsed;
  } else if (const auto* i = node->as_integer()) {
    v = i->get();
  } else {
    return bad(k, "expected an octal mode like \"0660\"");
  }
  if (v < 0 || v > 0777) return bad(k, "expected a mode between 0 and 0777");
  out = static_cast<mode_t>(v);
  return ok();
}

const Key& key(std::string_view section, std::string_view name) {
  for (const auto& k : kKeys) {
    if (k.section == section && k.name == name) return k;
  }
  std::abort();  // programming error: every key read is in kKeys
}

Status check_known_keys(const toml::table& root) {
  for (const auto& [section_name, section_node] : root) {
    const auto* section = section_node.as_table();
    if (section == nullptr) {
      return fail(ErrorCode::kInvalidArgument,
                  "config: " + std::string(section_name.str()) + ": expected a [section]");
    }
    bool known_section = false;
    for (const auto& k : kKeys) known_section = known_section || k.section == section_name.str();
    if (!known_section) {
      return fail(ErrorCode::kInvalidArgument,
                  "config: unknown section [" + std::string(section_name.str()) + "]");
    }
    for (const auto& [name, node] : *section) {
      bool known = false;
      for (const auto& k : kKeys)
        known = known || (k.section == section_name.str() && k.name == name.str());
      if (!known) {
        return fail(ErrorCode::kInvalidArgument, "config: unknown key " +
                                                     std::string(section_name.str()) + "." +
                                                     std::string(name.str()));
      }
    }
  }
  return ok();
}

Status read_interval(const toml::table& root, std::string_view name,
                     std::chrono::milliseconds& out) {
  std::int64_t ms = out.count();
  WARDEN_TRY_STATUS(read_int(root, key("posture", name), ms));
  if (ms < 100) {
    return bad(key("posture", name), "expected at least 100 ms, found " + std::to_string(ms));
  }
  out = std::chrono::milliseconds(ms);
  return ok();
}

Status read_config(const toml::table& root, AgentConfig& c) {
  WARDEN_TRY_STATUS(check_known_keys(root));
  std::string s;

  WARDEN_TRY_STATUS(read_string(root, key("issuer", "url"), c.issuer_url));
  if (c.issuer_url.empty())
    return bad(key("issuer", "url"), "required (e.g. \"https://issuer.example:8443\")");
  if (c.issuer_url.rfind("https://", 0) != 0) {
    return bad(key("issuer", "url"), "expected an https:// URL, found \"" + c.issuer_url + "\"");
  }
  s.clear();
  WARDEN_TRY_STATUS(read_string(root, key("issuer", "ca_file"), s));
  if (s.empty()) return bad(key("issuer", "ca_file"), "required (PEM file of the issuer's CA)");
  c.issuer_ca_file = s;

  WARDEN_TRY_STATUS(read_string(root, key("tpm", "tcti"), c.tcti));
  if (c.tcti.empty()) return bad(key("tpm", "tcti"), "must not be empty");
  s = "sha256:0-9,10";
  WARDEN_TRY_STATUS(read_string(root, key("tpm", "pcrs"), s));
  auto pcrs = PcrSelection::parse(s);
  if (!pcrs) return bad(key("tpm", "pcrs"), pcrs.error().message);
  if (pcrs->empty()) return bad(key("tpm", "pcrs"), "expected at least one PCR");
  c.pcrs = *pcrs;
  std::int64_t pcr = c.container_pcr;
  WARDEN_TRY_STATUS(read_int(root, key("tpm", "container_pcr"), pcr));
  WARDEN_TRY_STATUS(read_bool(root, key("tpm", "allow_resettable_pcr"), c.allow_resettable_pcr));
  if (pcr < 0 || pcr >= static_cast<std::int64_t>(kPcrCount)) {
    return bad(key("tpm", "container_pcr"), "expected 0..23, found " + std::to_string(pcr));
  }
  if ((pcr == 16 || pcr == 23) && !c.allow_resettable_pcr) {
    return bad(
        key("tpm", "container_pcr"),
        "PCR " + std::to_string(pcr) +
            " can be reset from the OS; choose another or set tpm.allow_resettable_pcr = true");
  }
  c.container_pcr = static_cast<unsigned>(pcr);
  for (const auto& bank : c.pcrs.banks) {
    if (bank.pcrs.test(c.container_pcr)) {
      return bad(key("tpm", "pcrs"), "must not contain the container PCR " + std::to_string(pcr));
    }
  }

  s = c.state_dir.string();
  WARDEN_TRY_STATUS(read_string(root, key("agent", "state_dir"), s));
  if (s.empty() || s.front() != '/')
    return bad(key("agent", "state_dir"), "expected an absolute path");
  c.state_dir = s;
  WARDEN_TRY_STATUS(read_string(root, key("agent", "log_level"), c.log_level));
  static constexpr std::array<std::string_view, 6> kLevels{"trace", "debug", "info",
                                                           "warn",  "error", "off"};
  if (std::find(kLevels.begin(), kLevels.end(), c.log_level) == kLevels.end()) {
    return bad(key("agent", "log_level"),
               "expected trace|debug|info|warn|error|off, found \"" + c.log_level + "\"");
  }
  WARDEN_TRY_STATUS(read_string(root, key("agent", "user"), c.user));
  if (c.user.find_first_of(":/ \t\n") != std::string::npos)
    return bad(key("agent", "user"), "expected a user name, found \"" + c.user + "\"");
  s = "session";
  WARDEN_TRY_STATUS(read_string(root, key("agent", "proof_mode"), s));
  if (s == "session") {
    c.proof_mode = ProofMode::kSession;
  } else if (s == "tpm") {
    c.proof_mode = ProofMode::kTpm;
  } else {
    return bad(key("agent", "proof_mode"), "expected session|tpm, found \"" + s + "\"");
  }

  for (auto [name, path] : {std::pair{"workload_socket", &c.workload_socket},
                            std::pair{"admin_socket", &c.admin_socket}}) {
    s = path->string();
    WARDEN_TRY_STATUS(read_string(root, key("api", name), s));
    if (s.empty() || s.front() != '/') return bad(key("api", name), "expected an absolute path");
    if (s.size() >= 108)
      return bad(key("api", name), "longer than a Unix socket path allows (107)");
    *path = s;
  }
  if (c.workload_socket == c.admin_socket) {
    return bad(key("api", "admin_socket"), "must differ from api.workload_socket");
  }
  WARDEN_TRY_STATUS(read_mode(root, key("api", "workload_socket_mode"), c.workload_socket_mode));
  WARDEN_TRY_STATUS(read_mode(root, key("api", "admin_socket_mode"), c.admin_socket_mode));
  if ((c.admin_socket_mode & 0007) != 0) {
    return bad(key("api", "admin_socket_mode"), "must not grant access to other users");
  }
  WARDEN_TRY_STATUS(read_string(root, key("api", "admin_group"), c.admin_group));
  for (auto [name, field] : {std::pair{"max_connections", &c.api_max_connections},
                             std::pair{"admin_max_connections", &c.api_admin_max_connections},
                             std::pair{"max_connections_per_uid", &c.api_max_connections_per_uid},
                             std::pair{"max_watch_per_uid", &c.api_max_watch_per_uid},
                             std::pair{"refusal_burst", &c.api_refusal_burst},
                             std::pair{"refusals_per_second", &c.api_refusals_per_second}}) {
    std::int64_t v = *field;
    WARDEN_TRY_STATUS(read_int(root, key("api", name), v));
    if (v < 1 || v > 65536) {
      return bad(key("api", name), "expected 1 to 65536, found " + std::to_string(v));
    }
    *field = static_cast<unsigned>(v);
  }
  for (auto [name, field] : {std::pair{"idle_timeout_ms", &c.api_idle_timeout},
                             std::pair{"request_timeout_ms", &c.api_request_timeout}}) {
    std::int64_t ms = field->count();
    WARDEN_TRY_STATUS(read_int(root, key("api", name), ms));
    if (ms < 100 || ms > 3'600'000) {
      return bad(key("api", name), "expected 100 to 3600000 ms, found " + std::to_string(ms));
    }
    *field = std::chrono::milliseconds(ms);
  }

  WARDEN_TRY_STATUS(read_interval(root, "pcr_poll_interval_ms", c.pcr_poll_interval));
  WARDEN_TRY_STATUS(read_interval(root, "ima_poll_interval_ms", c.ima_poll_interval));
  WARDEN_TRY_STATUS(
      read_interval(root, "status_list_poll_interval_ms", c.status_list_poll_interval));
  WARDEN_TRY_STATUS(
      read_interval(root, "device_status_poll_interval_ms", c.device_status_poll_interval));
  for (auto [name, path] :
       {std::pair{"proc_root", &c.proc_root}, std::pair{"cgroupfs_root", &c.cgroupfs_root},
        std::pair{"securityfs_root", &c.securityfs_root}, std::pair{"docker_root", &c.docker_root},
        std::pair{"podman_storage", &c.podman_storage},
        std::pair{"containerd_state", &c.containerd_state}}) {
    s = path->string();
    WARDEN_TRY_STATUS(read_string(root, key("posture", name), s));
    if (s.empty() || s.front() != '/')
      return bad(key("posture", name), "expected an absolute path");
    *path = s;
  }

  for (auto [name, path] :
       {std::pair{"event_log", &c.event_log}, std::pair{"cel_log", &c.cel_log}}) {
    s = path->string();
    WARDEN_TRY_STATUS(read_string(root, key("tpm", name), s));
    if (!s.empty() && s.front() != '/') return bad(key("tpm", name), "expected an absolute path");
    *path = s;
  }

  if (const auto* node = find(root, key("posture", "policy_files")); node != nullptr) {
    const auto* paths = node->as_array();
    if (paths == nullptr) return bad(key("posture", "policy_files"), "expected an array of paths");
    for (const auto& element : *paths) {
      const auto* path = element.as_string();
      if (path == nullptr || path->get().empty() || path->get().front() != '/') {
        return bad(key("posture", "policy_files"), "expected absolute paths");
      }
      c.policy_files.emplace_back(path->get());
    }
  }

  std::int64_t ttl = c.token_ttl.count();
  std::int64_t max_ttl = c.token_max_ttl.count();
  WARDEN_TRY_STATUS(read_int(root, key("token", "ttl_seconds"), ttl));
  WARDEN_TRY_STATUS(read_int(root, key("token", "max_ttl_seconds"), max_ttl));
  if (max_ttl < 1 || max_ttl > 86400) {
    return bad(key("token", "max_ttl_seconds"),
               "expected 1..86400, found " + std::to_string(max_ttl));
  }
  if (ttl < 1 || ttl > max_ttl) {
    return bad(key("token", "ttl_seconds"), "expected 1..token.max_ttl_seconds (" +
                                                std::to_string(max_ttl) + "), found " +
                                                std::to_string(ttl));
  }
  c.token_ttl = std::chrono::seconds(ttl);
  c.token_max_ttl = std::chrono::seconds(max_ttl);
  s = "jwt";
  WARDEN_TRY_STATUS(read_string(root, key("token", "format"), s));
  if (s == "jwt") {
    c.token_format = TokenFormat::kJwt;
  } else if (s == "cwt") {
    c.token_format = TokenFormat::kCwt;
  } else {
    return bad(key("token", "format"), "expected jwt|cwt, found \"" + s + "\"");
  }
  return ok();
}

}  // namespace

PcrSelection AgentConfig::quoted_pcrs() const {
  PcrSelection out = pcrs;
  for (auto& bank : out.banks) bank.pcrs.set(container_pcr);
  return out;
}

std::filesystem::path AgentConfig::event_log_path() const {
  return event_log.empty() ? securityfs_root / "tpm0" / "binary_bios_measurements" : event_log;
}

std::filesystem::path AgentConfig::cel_log_path() const {
  return cel_log.empty() ? state_dir / "containers.cel" : cel_log;
}

std::filesystem::path AgentConfig::ima_log_path() const {
  return securityfs_root / "ima" / "binary_runtime_measurements";
}

Result<AgentConfig> parse_agent_config(std::string_view toml_text, const Environment& env) {
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return fail(ErrorCode::kMalformed,
                "config: TOML syntax error at line " + std::to_string(where.line) + ", column " +
                    std::to_string(where.column) + ": " + std::string(e.description()));
  }
  for (const auto& k : kKeys) {
    if (auto it = env.find(env_name(k)); it != env.end()) {
      WARDEN_TRY_STATUS(apply_env(root, k, it->second));
    }
  }
  AgentConfig config;
  WARDEN_TRY_STATUS(read_config(root, config));
  return config;
}

Result<AgentConfig> load_agent_config(const std::filesystem::path& path) {
  auto bytes = read_file(path, 1 << 20);
  if (!bytes) return fail(bytes.error().context("config: " + path.string()));
  return parse_agent_config(::warden::to_string(ByteSpan(*bytes)), warden_environment());
}

Environment warden_environment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.rfind("WARDEN_", 0) != 0) continue;
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

std::string_view to_string(ProofMode mode) { return mode == ProofMode::kTpm ? "tpm" : "session"; }
std::string_view to_string(TokenFormat format) {
  return format == TokenFormat::kCwt ? "cwt" : "jwt";
}

}  // namespace warden::agent
