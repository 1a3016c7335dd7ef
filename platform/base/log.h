#pragma once

#include <string_view>

#include <spdlog/spdlog.h>

namespace warden::log {

/// Sets up the process-wide logger for program `name`: journald with structured fields when
/// JOURNAL_STREAM says stderr is connected to the journal (we run under systemd), stderr otherwise.
/// `level` is one of trace, debug, info, warn, error; unknown values mean info.
void init(std::string_view name, std::string_view level = "info");

/// True when init() chose the journal.
bool to_journal();

}  // namespace warden::log
