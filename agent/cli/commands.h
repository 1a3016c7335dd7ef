#pragma once

#include <CLI/CLI.hpp>

namespace warden::cli {

/// Where a subcommand's callback leaves the process exit code.
struct CommandResult {
  int exit_code = 0;
};

/// Adds every wardenctl command group to `app`. Each group lives in its own file
/// (tpm_command.cpp, eventlog_command.cpp, ...) and registers itself from here.
void register_commands(CLI::App& app, CommandResult& result);

/// `wardenctl tpm info|ek|pcrs|quote|seal|unseal` (tpm_command.cpp).
void register_tpm_commands(CLI::App& app, CommandResult& result);
/// wardenctl eventlog show|replay (eventlog_command.cpp).
void register_eventlog_commands(CLI::App& app, CommandResult& result);
/// wardenctl token inspect|verify (token_command.cpp).
void register_token_commands(CLI::App& app, CommandResult& result);
/// status, identity, proof, secret get|put, revoke, reattest over the agent's sockets
/// (agent_commands.cpp).
void register_agent_commands(CLI::App& app, CommandResult& result);
/// Adds `wardenctl token --audience A ...` (fetch from the agent) to the token command.
void add_token_fetch(CLI::App* token, CommandResult& result);
/// `wardenctl ima replay FILE`.
void register_ima_commands(CLI::App& app, CommandResult& result);

}  // namespace warden::cli
