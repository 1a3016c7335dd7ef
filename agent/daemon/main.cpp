#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "platform/base/log.h"
#include "platform/base/version.h"

namespace {
int run(int argc, char** argv) {
  CLI::App app{
      "wardend: the Warden attestation agent. Uses this device's TPM 2.0 to enroll with a "
      "warden-issuer, attest measured boot, IMA and container state, and hand workloads "
      "device-bound tokens over a local Unix socket."};
  app.set_version_flag("--version", std::string(warden::version()));
  std::string config = "/etc/warden/agent.toml";
  std::string log_level = "info";
  app.add_option("-c,--config", config, "configuration file (TOML)")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  warden::log::init("wardend", log_level);
  spdlog::error("the agent daemon is not built yet (see issue 7); nothing to run");
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
