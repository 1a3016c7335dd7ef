#include <csignal>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "issuer/config.h"
#include "issuer/signing_keys.h"
#include "issuer/store/store.h"
#include "platform/base/clock.h"
#include "platform/base/log.h"
#include "platform/base/version.h"

namespace {

using warden::issuer::IssuerConfig;

warden::Result<std::unique_ptr<warden::issuer::Store>> open_store(const IssuerConfig& config) {
  if (config.store.backend == "postgres") {
    return warden::issuer::open_postgres_store(config.store.postgres_conninfo,
                                               config.store.pool_size);
  }
  return warden::issuer::open_sqlite_store(config.store.sqlite_path);
}

int run(const std::string& config_path) {
  auto config = warden::issuer::load_config(config_path);
  if (!config) {
    spdlog::error("{}", config.error().message);
    return 2;
  }
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
  auto keys = warden::issuer::SigningKeys::open(config->tokens.key_dir, **store, clock);
  if (!keys) {
    spdlog::error("{}", keys.error().message);
    return 1;
  }
  spdlog::info("store ready ({}), signing key {}", config->store.backend, (*keys)->current_kid());

  // The HTTPS server is not built yet; until it is, the process holds its resources and exits
  // cleanly on SIGTERM/SIGINT.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("signal {}: shutting down", sig);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "warden-issuer: the Warden verifier and token service. Enrolls devices by their TPM "
      "endorsement key, appraises their quotes and event logs against policy, and issues "
      "short-lived device-bound tokens."};
  app.set_version_flag("--version", std::string(warden::version()));
  std::string config = "/etc/warden/issuer.toml";
  std::string log_level = "info";
  app.add_option("-c,--config", config, "configuration file (TOML)")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  warden::log::init("warden-issuer", log_level);
  return run(config);
}
