#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace warden::log {

/// Sets up the process-wide logger for program `name`: journald with structured fields when
/// JOURNAL_STREAM says stderr is connected to the journal (we run under systemd), stderr otherwise.
/// `level` is one of trace, debug, info, warn, error; unknown values mean info.
void init(std::string_view name, std::string_view level = "info");

/// True when init() chose the journal.
bool to_journal();

/// A structured field: `name` in journald syntax (upper case, digits, underscores; e.g.
/// "WARDEN_SOURCE"), `value` any text (quoted when printed to stderr).
struct Field {
  std::string_view name;
  std::string value;
};

/// Logs `message` with structured fields: journald fields when logging to the journal,
/// ` name=value` pairs (lower-cased names, values quoted when they contain spaces) on stderr.
void structured(spdlog::level::level_enum level, std::string_view message,
                std::initializer_list<Field> fields);

}  // namespace warden::log
