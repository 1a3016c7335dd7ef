#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "issuer/config.h"
#include "issuer/http/server.h"
#include "issuer/seal_authority.h"
#include "issuer/service.h"
#include "issuer/signing_keys.h"
#include "issuer/ssf/push.h"
#include "issuer/ssf/streams.h"
#include "issuer/store/store.h"
#include "platform/base/clock.h"
#include "platform/base/file.h"
#include "platform/base/log.h"
#include "platform/base/secret.h"
#include "platform/base/version.h"

namespace {

using warden::issuer::IssuerConfig;
constexpr std::size_t kNonceKeyBytes = 32;
constexpr int kHousekeepingSeconds = 60;

warden::Result<std::unique_ptr<warden::issuer::Store>> open_store(const IssuerConfig& config) {
  if (config.store.backend == "postgres") {
    return warden::issuer::open_postgres_store(config.store.postgres_conninfo,
                                               config.store.pool_size);
  }
  return warden::issuer::open_sqlite_store(config.store.sqlite_path);
}

// The HMAC key of challenge nonces, shared by replicas through tokens.key_dir: read it, or make
// one (32 random bytes, 0600, written atomically) on first start.
warden::Result<warden::SecretBytes> nonce_key(const IssuerConfig& config, warden::Random& random) {
  const std::filesystem::path path = std::filesystem::path(config.tokens.key_dir) / "nonce.key";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    auto bytes = warden::read_file(path, 4096);
    if (!bytes) return warden::fail(std::move(bytes).error().context("nonce key"));
    warden::SecretBytes key(*bytes);
    OPENSSL_cleanse(bytes->data(), bytes->size());
    if (key.size() < kNonceKeyBytes) {
      return warden::fail(warden::ErrorCode::kInvalidArgument,
                          "nonce key " + path.string() + ": expected at least 32 bytes, found " +
                              std::to_string(key.size()));
    }
    return key;
  }
  warden::SecretBytes key(kNonceKeyBytes);
  random.fill({key.data(), key.size()});
  if (auto written = warden::write_file_atomic(path, key.view(), 0600); !written) {
    return warden::fail(std::move(written).error().context("nonce key"));
  }
  spdlog::info("generated nonce key {}", path.string());
  return key;
}

// sd_notify(3) without libsystemd: the issuer does not link platform/os (scripts/check-includes);
// the protocol is one datagram to $NOTIFY_SOCKET.
void notify_systemd(std::string_view state) {
  const char* socket_path = std::getenv("NOTIFY_SOCKET");
  if (socket_path == nullptr || socket_path[0] == '\0') return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t len = std::strlen(socket_path);
  if (len >= sizeof(addr.sun_path) || (socket_path[0] != '/' && socket_path[0] != '@')) return;
  std::memcpy(addr.sun_path, socket_path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  if (::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&addr), addr_len) < 0) {
    spdlog::warn("sd_notify {}: {}", socket_path, std::strerror(errno));
  }
  ::close(fd);
}

// Who can reach the admin API, said once at start; the unauthenticated mode loudly.
void log_admin_access(const IssuerConfig& config) {
  if (config.admin.allow_unauthenticated_loopback) {
    spdlog::warn(
        "!!! admin.allow_unauthenticated_loopback = true: EVERY local process (any user) can "
        "replace the policy, revoke or remove devices and read the audit log over loopback TCP. "
        "Use admin.socket or tls.admin_client_ca instead. !!!");
  }
  if (config.admin.socket.empty() && config.tls.admin_client_ca.empty() &&
      !config.admin.allow_unauthenticated_loopback) {
    spdlog::warn(
        "no admin access configured (admin.socket, tls.admin_client_ca): admin routes answer 403");
  }
}

int run(const std::string& config_path) {
  // Everything the issuer creates (database, WAL, keys, the admin socket before its chmod) is
  // its own alone, whatever umask it was started with; files that need more say so.
  ::umask(077);
  auto config = warden::issuer::load_config(config_path);
  if (!config) {
    spdlog::error("{}", config.error().message);
    return 2;
  }
  log_admin_access(*config);
  auto store = open_store(*config);
  if (!store) {
    spdlog::error("store: {}", store.error().message);
    return 1;
  }
  if (auto migrated = (*store)->migrate(); !migrated) {
    spdlog::error("store migration: {}", migrated.error().message);
    return 1;
  }
  warden::SystemClock clock;
  warden::SystemRandom random;
  auto keys = warden::issuer::SigningKeys::open(config->tokens.key_dir, **store, clock);
  if (!keys) {
    spdlog::error("{}", keys.error().message);
    return 1;
  }
  // Signs the PCR policies sealed secrets unseal under (docs/sealing.md); never rotates.
  auto seal = warden::issuer::SealAuthority::open(config->tokens.key_dir);
  if (!seal) {
    spdlog::error("{}", seal.error().message);
    return 1;
  }
  auto nonce = nonce_key(*config, random);
  if (!nonce) {
    spdlog::error("{}", nonce.error().message);
    return 1;
  }
  warden::issuer::IssuerService::Options options;
  options.config = &*config;
  options.store = store->get();
  options.keys = keys->get();
  options.seal_authority = seal->get();
  options.clock = &clock;
  options.random = &random;
  options.nonce_key = std::move(*nonce);
  options.issuer_url = config->issuer_url;
  auto service = warden::issuer::IssuerService::create(std::move(options));
  if (!service) {
    spdlog::error("{}", service.error().message);
    return 1;
  }
  // Shared Signals (docs/ssf.md): the transmitter lives in the service; push streams are
  // delivered from its outbox by the deliverer, woken by every commit that wrote events. The
  // housekeeping below drops delivered events past ssf.retention_s.
  std::unique_ptr<warden::issuer::ssf::PushDeliverer> push;
  if (auto* transmitter = (*service)->ssf(); transmitter != nullptr) {
    warden::issuer::ssf::PushOptions po;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    po.owner = std::string(host) + ":" + std::to_string(::getpid());
    po.workers = config->ssf.push_workers;
    po.timeout = std::chrono::milliseconds(config->ssf.push_timeout_ms);
    po.backoff_initial = std::chrono::milliseconds(config->ssf.push_backoff_initial_ms);
    po.backoff_max = std::chrono::milliseconds(config->ssf.push_backoff_max_ms);
    po.lease = std::max<std::chrono::seconds>(
        po.lease, std::chrono::duration_cast<std::chrono::seconds>(po.timeout) * 2);
    po.ca_file = config->ssf.push_ca_file;
    po.allow_http_loopback = config->ssf.allow_http_loopback;
    push = std::make_unique<warden::issuer::ssf::PushDeliverer>(*transmitter, clock, po);
    if (auto started = push->start(); !started) {
      spdlog::error("shared signals push: {}", started.error().message);
      return 1;
    }
    (*service)->set_on_events_committed([p = push.get()] { p->notify(); });
    spdlog::info(
        "shared signals transmitter enabled (/.well-known/ssf-configuration, {} push "
        "workers)",
        po.workers);
  }

  // Pool threads inherit this mask, so only sigtimedwait below sees SIGTERM/SIGINT.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto server = warden::issuer::http::HttpsServer::create(*config, **service);
  if (!server) {
    spdlog::error("{}", server.error().message);
    return 1;
  }
  (*server)->start();
  spdlog::info("warden-issuer {} ready on {}:{} (store {}, signing key {})", warden::version(),
               config->listen.address, (*server)->port(), config->store.backend,
               (*keys)->current_kid());
  notify_systemd("READY=1\nSTATUS=serving");

  const std::int64_t max_ttl =
      std::max(config->tokens.device_token_ttl_s, config->tokens.workload_token_ttl_s);
  for (;;) {
    const timespec wait{kHousekeepingSeconds, 0};
    const int sig = sigtimedwait(&set, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("signal {}: finishing in-flight requests", sig);
      break;
    }
    if (auto rotated = (*keys)->rotate_if_due(config->tokens.key_rotation_s, max_ttl); !rotated) {
      spdlog::warn("signing key rotation: {}", rotated.error().message);
    }
    (*service)->housekeeping();
  }
  notify_systemd("STOPPING=1");
  (*server)->stop();
  if (push) {
    (*service)->set_on_events_committed({});
    push->stop();
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "warden-issuer: the Warden verifier and token service. Enrolls devices by their TPM "
      "endorsement key, appraises their quotes and event logs against policy, and issues "
      "short-lived device-bound tokens over HTTPS (agent API /v1/*, public JWKS and status "
      "lists, admin API /admin/v1/*, /healthz, /readyz, /metrics).\n\n"
      "Needs a TOML configuration (docs/issuer-config.md): at least tls.cert_file and "
      "tls.key_file (scripts/make-test-pki makes a throwaway CA and certificates for tests), "
      "and a writable store.sqlite_path and tokens.key_dir (signing keys and the nonce key are "
      "generated there on first start). Stops gracefully on SIGTERM or SIGINT."};
  app.set_version_flag("--version", std::string(warden::version()));
  std::string config = "/etc/warden/issuer.toml";
  std::string log_level = "info";
  app.add_option("-c,--config", config, "configuration file (TOML)")->capture_default_str();
  app.add_option("--log-level", log_level,
                 "trace, debug (one line per request), info, warn or error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  warden::log::init("warden-issuer", log_level);
  return run(config);
}
