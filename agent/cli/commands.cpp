#include "agent/cli/commands.h"

namespace warden::cli {

void register_commands(CLI::App& app, CommandResult& result) {
  register_tpm_commands(app, result);
  register_eventlog_commands(app, result);
  register_token_commands(app, result);
  register_ima_commands(app, result);
  register_agent_commands(app, result);
}

}  // namespace warden::cli
