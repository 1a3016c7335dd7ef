#include "agent/cli/commands.h"

namespace warden::cli {

void register_commands(CLI::App& app, CommandResult& result) {
  (void)app;
  (void)result;
}

}  // namespace warden::cli
