// wardenctl's front: the offline commands (eventlog, ima, --version) run here, in an executable
// that links only attest and libcrypto, so they start in about a millisecond; every other
// command is handed, argv unchanged, to wardenctl-full (TPM, agent sockets, tokens), whose
// 24 shared libraries cost ~15 ms to load (docs/PERFORMANCE.md, "Issue 27").
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "agent/cli/commands.h"
#include "platform/base/version.h"

namespace {

// The first word that is not an option names the command group.
bool offline(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--version") return true;
    if (arg.starts_with("-")) return false;  // a global option: the full grammar decides
    return arg == "eventlog" || arg == "ima";
  }
  return false;
}

std::string self_dir() {
  std::array<char, 4096> buf{};
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return ".";
  std::string path(buf.data(), static_cast<std::size_t>(n));
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

int exec_full(char** argv) {
  const std::string dir = self_dir();
  // Build tree: next to this executable; installed: libexec/warden (not on PATH).
  for (const std::string& candidate :
       {dir + "/wardenctl-full", dir + "/../libexec/warden/wardenctl-full"}) {
    ::execv(candidate.c_str(), argv);
    if (errno != ENOENT) {
      std::fprintf(stderr, "wardenctl: %s: %s\n", candidate.c_str(), std::strerror(errno));
      return 1;
    }
  }
  std::fprintf(stderr,
               "wardenctl: wardenctl-full not found next to %s or in %s/../libexec/warden\n",
               dir.c_str(), dir.c_str());
  return 1;
}

int run_offline(int argc, char** argv) {
  CLI::App app{"wardenctl: offline commands (event logs, IMA lists)."};
  app.set_version_flag("--version", std::string(warden::version()));
  app.require_subcommand(1);
  app.footer("Example:\n  wardenctl eventlog replay binary_bios_measurements");
  warden::cli::CommandResult result;
  warden::cli::register_eventlog_commands(app, result);
  warden::cli::register_ima_commands(app, result);
  CLI11_PARSE(app, argc, argv);
  return result.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  if (!offline(argc, argv)) return exec_full(argv);
  try {
    return run_offline(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
