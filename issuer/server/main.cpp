#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "platform/base/log.h"
#include "platform/base/version.h"

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
  spdlog::error("the issuer service is not built yet (see issue 6); nothing to serve");
  return 2;
}
