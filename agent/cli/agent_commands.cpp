// wardenctl commands that talk to a running wardend over its local sockets:
// status, identity, token (fetch), proof, secret get|put, revoke, reattest.
// Exit codes: 0 ok, 1 the agent refused or failed, 2 usage, 3 cannot reach the agent.

#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include <boost/json.hpp>
#include <openssl/crypto.h>

#include "agent/cli/agent_client.h"
#include "agent/cli/commands.h"
#include "agent/config/agent_config.h"
#include "attest/token/json.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/secret.h"

namespace warden::cli {
namespace json = boost::json;
namespace {

constexpr std::size_t kMaxSecretFile = 48 * 1024;  // base64 of it stays under the 64 KiB cap

struct Connection {
  std::string config = "/etc/warden/agent.toml";
  std::string socket;        ///< empty: from the config, else the default
  std::string admin_socket;  ///< same
  bool json = false;
};

void add_connection_options(CLI::App* cmd, Connection& c) {
  cmd->add_option("--socket", c.socket,
                  "workload socket (default: api.workload_socket from --config, else "
                  "/run/warden/workload.sock)")
      ->envname("WARDEN_WORKLOAD_SOCKET");
  cmd->add_option("--admin-socket", c.admin_socket,
                  "admin socket (default: api.admin_socket from --config, else "
                  "/run/warden/admin.sock)")
      ->envname("WARDEN_ADMIN_SOCKET");
  cmd->add_option("-c,--config", c.config, "agent configuration to read socket paths from")
      ->capture_default_str();
  cmd->add_flag("--json", c.json, "print the agent's JSON response");
}

int usage(const std::string& message) {
  std::cerr << "wardenctl: " << message << "\n";
  return 2;
}

int report(const Error& e) {
  std::cerr << "wardenctl: " << e.message << "\n";
  return e.code == ErrorCode::kUnavailable || e.code == ErrorCode::kPermissionDenied ? 3 : 1;
}

/// The socket paths: explicit options, else the agent config when it exists, else defaults.
Result<agent::AgentConfig> socket_paths(const Connection& c) {
  agent::AgentConfig defaults;
  const bool explicit_paths = !c.socket.empty() && !c.admin_socket.empty();
  std::error_code ec;
  if (!explicit_paths && std::filesystem::exists(c.config, ec)) {
    auto text = read_file(c.config, 1 << 20);
    if (!text) return fail(text.error().context("config " + c.config));
    auto parsed = agent::parse_agent_config(to_string(*text), agent::warden_environment());
    // The client needs only the socket paths; a config missing issuer keys still names them.
    if (parsed) defaults = std::move(*parsed);
  }
  if (!c.socket.empty()) defaults.workload_socket = c.socket;
  if (!c.admin_socket.empty()) defaults.admin_socket = c.admin_socket;
  return defaults;
}

enum class Which { kWorkload, kAdmin };

/// One request; on success the parsed body (an object), else the exit code already reported.
struct Outcome {
  int exit_code = 0;
  ApiResponse response;
  json::object body;
};

Outcome request(const Connection& c, Which which, std::string_view method, std::string_view target,
                std::string_view body = {}) {
  Outcome out;
  auto paths = socket_paths(c);
  if (!paths) {
    out.exit_code = report(paths.error());
    return out;
  }
  const auto& socket = which == Which::kAdmin ? paths->admin_socket : paths->workload_socket;
  auto r = call_agent(socket, method, target, body);
  if (!r) {
    auto e = std::move(r).error();
    if (e.code == ErrorCode::kPermissionDenied && which == Which::kAdmin) {
      e.message += " (the admin socket is for root and the agent's admin group)";
    }
    out.exit_code = report(e);
    return out;
  }
  out.response = std::move(*r);
  if (out.response.status >= 300) {
    std::cerr << "wardenctl: " << describe_error(out.response) << "\n";
    out.exit_code = 1;
    return out;
  }
  // The response is capped at 1 MiB by call_agent; the depth is Boost.JSON's default.
  auto v = warden::json::parse_object(out.response.body, {.max_size = 1U << 20U, .max_depth = 32});
  if (!v) {
    std::cerr << "wardenctl: the agent answered HTTP " << out.response.status
              << " with a body that is not a JSON object\n";
    out.exit_code = 1;
    return out;
  }
  out.body = std::move(*v);
  return out;
}

std::string text_of(const json::value* v) {
  if (v == nullptr || v->is_null()) return "-";
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}

std::string time_of(const json::value* v) {
  if (v == nullptr || !v->is_int64()) return text_of(v);
  const std::time_t t = v->as_int64();
  std::tm tm{};
  char buf[32];
  if (gmtime_r(&t, &tm) == nullptr || std::strftime(buf, sizeof(buf), "%FT%TZ", &tm) == 0) {
    return std::to_string(t);
  }
  return std::string(buf) + " (" + std::to_string(t) + ")";
}

/// Human output: one "key: value" line per member, in the order the agent sent them.
int print(const Connection& c, const Outcome& o, std::initializer_list<std::string_view> times) {
  if (c.json) {
    std::cout << o.response.body << "\n";
    return 0;
  }
  for (const auto& kv : o.body) {
    bool is_time = false;
    for (auto t : times) is_time = is_time || kv.key() == t;
    std::cout << std::string(kv.key()) << ": "
              << (is_time ? time_of(&kv.value()) : text_of(&kv.value())) << "\n";
  }
  return 0;
}

struct TokenArgs {
  Connection c;
  std::string audience;
  std::vector<std::string> scopes;
  std::optional<int> ttl;
  std::string format;
};

int fetch_token(const TokenArgs& a) {
  if (a.audience.empty()) return usage("token: --audience is required (or use inspect|verify)");
  json::object req{{"audience", a.audience}};
  if (!a.scopes.empty()) {
    json::array scopes;
    for (const auto& s : a.scopes) scopes.emplace_back(s);
    req["scopes"] = std::move(scopes);
  }
  if (a.ttl) req["ttl"] = *a.ttl;
  if (!a.format.empty()) req["format"] = a.format;
  auto o = request(a.c, Which::kWorkload, "POST", "/v1/token", json::serialize(req));
  if (o.exit_code != 0) return o.exit_code;
  if (a.c.json) return print(a.c, o, {});
  // The token alone on stdout, so that TOKEN=$(wardenctl token ...) works; the rest on stderr.
  std::cout << text_of(o.body.if_contains("token")) << "\n";
  std::cerr << "token_type: " << text_of(o.body.if_contains("token_type"))
            << "\njti: " << text_of(o.body.if_contains("jti"))
            << "\nexpires_at: " << time_of(o.body.if_contains("expires_at")) << "\n";
  return 0;
}

struct ProofArgs {
  Connection c;
  std::string jti, htm, htu;
};

int fetch_proof(const ProofArgs& a) {
  const json::object req{{"jti", a.jti}, {"htm", a.htm}, {"htu", a.htu}};
  auto o = request(a.c, Which::kWorkload, "POST", "/v1/proof", json::serialize(req));
  if (o.exit_code != 0) return o.exit_code;
  if (a.c.json) return print(a.c, o, {});
  std::cout << text_of(o.body.if_contains("proof")) << "\n";
  return 0;
}

struct SecretGetArgs {
  Connection c;
  std::string name;
  bool base64 = false;
};

int secret_get(SecretGetArgs& a) {
  auto o = request(a.c, Which::kWorkload, "GET", "/v1/secrets/" + a.name);
  const auto wipe = [&o] {
    OPENSSL_cleanse(o.response.body.data(), o.response.body.size());
    if (auto* v = o.body.if_contains("value"); v != nullptr && v->is_string()) {
      OPENSSL_cleanse(v->as_string().data(), v->as_string().size());
    }
  };
  if (o.exit_code != 0) return o.exit_code;
  const auto* value = o.body.if_contains("value");
  if (value == nullptr || !value->is_string()) {
    wipe();
    std::cerr << "wardenctl: the agent's answer has no \"value\" string\n";
    return 1;
  }
  int rc = 0;
  if (a.c.json) {
    std::cout << o.response.body << "\n";
  } else if (a.base64) {
    std::cout << std::string_view(value->as_string()) << "\n";
  } else {
    auto raw = base64_decode(value->as_string());
    if (!raw) {
      std::cerr << "wardenctl: the agent's \"value\" is not base64\n";
      rc = 1;
    } else {
      SecretBytes secret(*raw);
      OPENSSL_cleanse(raw->data(), raw->size());
      std::fwrite(secret.data(), 1, secret.size(), stdout);
    }
  }
  std::fflush(stdout);
  wipe();
  return rc;
}

struct SecretPutArgs {
  Connection c;
  std::string name;
  std::string from_file;
  std::optional<std::int64_t> uid, gid;
  std::string unit, exe_path, exe_sha256, container_id, container_runtime;
};

int secret_put(const SecretPutArgs& a) {
  Result<Bytes> raw = fail(ErrorCode::kInvalidArgument, "no input");
  if (a.from_file == "-") {
    std::string data((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    raw = to_bytes(data);
    OPENSSL_cleanse(data.data(), data.size());
  } else {
    raw = read_file(a.from_file, kMaxSecretFile + 1);
  }
  if (!raw) return report(raw.error().context(a.from_file));
  const SecretBytes secret(*raw);
  OPENSSL_cleanse(raw->data(), raw->size());
  if (secret.size() > kMaxSecretFile) {
    return usage("secret put: " + a.from_file + " is larger than " +
                 std::to_string(kMaxSecretFile) + " bytes");
  }
  json::object allow;
  if (a.uid) allow["uid"] = *a.uid;
  if (a.gid) allow["gid"] = *a.gid;
  if (!a.unit.empty()) allow["systemd_unit"] = a.unit;
  if (!a.exe_path.empty()) allow["exe_path"] = a.exe_path;
  if (!a.exe_sha256.empty()) allow["exe_sha256"] = a.exe_sha256;
  if (!a.container_id.empty()) allow["container_id"] = a.container_id;
  if (!a.container_runtime.empty()) allow["container_runtime"] = a.container_runtime;
  if (allow.empty()) {
    return usage(
        "secret put: name at least one reader with --allow-uid, --allow-gid, "
        "--allow-unit, --allow-exe-path, --allow-exe-sha256 or --allow-container-id");
  }
  std::string value = base64_encode(secret.view());
  std::string body = json::serialize(json::object{{"value", value}, {"allow", json::array{allow}}});
  OPENSSL_cleanse(value.data(), value.size());
  auto o = request(a.c, Which::kAdmin, "PUT", "/v1/secrets/" + a.name, body);
  OPENSSL_cleanse(body.data(), body.size());
  if (o.exit_code != 0) return o.exit_code;
  if (a.c.json) return print(a.c, o, {});
  std::cout << "sealed " << a.name << "\n";
  return 0;
}

}  // namespace

void add_token_fetch(CLI::App* token, CommandResult& result) {
  auto a = std::make_shared<TokenArgs>();
  token->add_option("--audience", a->audience, "audience (relying party) of the token");
  token->add_option("--scope", a->scopes, "scope to request (repeatable)")->allow_extra_args(false);
  token->add_option("--ttl", a->ttl, "lifetime in seconds (default: the agent's token.ttl)")
      ->check(CLI::PositiveNumber);
  token->add_option("--format", a->format, "jwt or cwt (default: the agent's token.format)")
      ->check(CLI::IsMember({"jwt", "cwt"}));
  add_connection_options(token, a->c);
  token->callback([token, a, &result] {
    if (token->get_subcommands().empty()) result.exit_code = fetch_token(*a);
  });
}

void register_agent_commands(CLI::App& app, CommandResult& result) {
  {
    auto c = std::make_shared<Connection>();
    auto* cmd = app.add_subcommand("status", "The agent's state (admin socket)");
    add_connection_options(cmd, *c);
    cmd->footer("Example:\n  wardenctl status --json");
    cmd->callback([c, &result] {
      auto o = request(*c, Which::kAdmin, "GET", "/v1/status");
      result.exit_code = o.exit_code != 0 ? o.exit_code : print(*c, o, {"since"});
    });
  }
  {
    auto c = std::make_shared<Connection>();
    auto* cmd = app.add_subcommand("identity", "What the agent sees of this process");
    add_connection_options(cmd, *c);
    cmd->footer("Example:\n  wardenctl identity --socket /run/warden/workload.sock");
    cmd->callback([c, &result] {
      auto o = request(*c, Which::kWorkload, "GET", "/v1/identity");
      result.exit_code = o.exit_code != 0 ? o.exit_code : print(*c, o, {});
    });
  }
  {
    auto a = std::make_shared<ProofArgs>();
    auto* cmd = app.add_subcommand("proof", "A DPoP proof for a token the agent issued to you");
    cmd->add_option("--jti", a->jti, "jti of the token")->required();
    cmd->add_option("--htm", a->htm, "HTTP method of the request, e.g. GET")->required();
    cmd->add_option("--htu", a->htu, "HTTP URI of the request")->required();
    add_connection_options(cmd, a->c);
    cmd->footer("Example:\n  wardenctl proof --jti JTI --htm GET --htu https://rp.example/api");
    cmd->callback([a, &result] { result.exit_code = fetch_proof(*a); });
  }
  {
    auto* secret = app.add_subcommand("secret", "Sealed secrets");
    secret->footer("Example:\n  wardenctl secret get db-password");
    secret->require_subcommand(1);
    auto g = std::make_shared<SecretGetArgs>();
    auto* get = secret->add_subcommand(
        "get", "Write the unsealed secret to stdout (raw bytes; --base64 for text)");
    get->add_option("NAME", g->name, "secret name")->required();
    get->add_flag("--base64", g->base64, "print base64 and a newline instead of raw bytes");
    add_connection_options(get, g->c);
    get->footer("Example:\n  wardenctl secret get db-password --base64");
    get->callback([g, &result] { result.exit_code = secret_get(*g); });

    auto p = std::make_shared<SecretPutArgs>();
    auto* put = secret->add_subcommand("put", "Seal a secret to this device (admin socket)");
    put->footer("Example:\n  wardenctl secret put db-password --from-file pw.txt --allow-uid 1000");
    put->add_option("NAME", p->name, "secret name ([A-Za-z0-9._-]{1,128})")->required();
    put->add_option("--from-file", p->from_file, "file holding the secret; - for stdin")
        ->required();
    put->add_option("--allow-uid", p->uid, "reader's uid");
    put->add_option("--allow-gid", p->gid, "reader's gid");
    put->add_option("--allow-unit", p->unit, "reader's systemd unit");
    put->add_option("--allow-exe-path", p->exe_path, "reader's executable path");
    put->add_option("--allow-exe-sha256", p->exe_sha256, "sha256 of the reader's executable");
    put->add_option("--allow-container-id", p->container_id, "reader's container id");
    put->add_option("--allow-container-runtime", p->container_runtime,
                    "reader's container runtime");
    add_connection_options(put, p->c);
    put->callback([p, &result] { result.exit_code = secret_put(*p); });
  }
  {
    auto c = std::make_shared<Connection>();
    auto reason = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand(
        "revoke", "Revoke this device's tokens and wipe the session key (admin socket)");
    cmd->add_option("--reason", *reason, "recorded with the revocation");
    add_connection_options(cmd, *c);
    cmd->footer("Example:\n  wardenctl revoke --reason \"disk replaced\"");
    cmd->callback([c, reason, &result] {
      json::object body;
      if (!reason->empty()) body["reason"] = *reason;
      auto o = request(*c, Which::kAdmin, "POST", "/v1/revoke", json::serialize(body));
      if (o.exit_code != 0) {
        result.exit_code = o.exit_code;
      } else if (c->json) {
        result.exit_code = print(*c, o, {});
      } else {
        std::cout << "revoked\n";
      }
    });
  }
  {
    auto c = std::make_shared<Connection>();
    auto* cmd = app.add_subcommand("reattest", "Attest again now (admin socket)");
    add_connection_options(cmd, *c);
    cmd->footer("Example:\n  wardenctl reattest");
    cmd->callback([c, &result] {
      auto o = request(*c, Which::kAdmin, "POST", "/v1/reattest", "{}");
      result.exit_code = o.exit_code != 0 ? o.exit_code : print(*c, o, {"since"});
    });
  }
}

}  // namespace warden::cli
