#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "agent/cli/commands.h"
#include "platform/base/log.h"
#include "platform/base/version.h"

namespace {
int run(int argc, char** argv) {
  CLI::App app{
      "wardenctl: inspect and drive Warden: the TPM, event logs, tokens, and the local "
      "agent."};
  app.set_version_flag("--version", std::string(warden::version()));
  app.require_subcommand(1);
  app.footer(
      "Examples:\n  wardenctl eventlog replay /sys/kernel/security/tpm0/binary_bios_measurements\n"
      "  wardenctl tpm quote --tcti device:/dev/tpmrm0 --pcrs sha256:0-7 --nonce 0011 --out q/\n"
      "  wardenctl status --json");
  warden::log::init("wardenctl", "warn");
  warden::cli::CommandResult result;
  warden::cli::register_commands(app, result);
  CLI11_PARSE(app, argc, argv);
  return result.exit_code;
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
