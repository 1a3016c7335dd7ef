#include "platform/base/log.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>

namespace warden::log {
namespace {

bool g_journal = false;

// systemd sets JOURNAL_STREAM=<dev>:<inode> for the stream stderr is connected to; only trust it if
// stderr still is that stream (a child of a service may have redirected it).
bool stderr_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  unsigned long long dev = 0;
  unsigned long long ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

}  // namespace

void init(std::string_view name, std::string_view level) {
  std::shared_ptr<spdlog::logger> logger;
  g_journal = stderr_is_journal();
  if (g_journal) {
    auto sink = std::make_shared<spdlog::sinks::systemd_sink_mt>(std::string(name));
    logger = std::make_shared<spdlog::logger>(std::string(name), sink);
    logger->set_pattern("%v");
  } else {
    logger = spdlog::stderr_color_mt(std::string(name));
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
  }
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") lvl = spdlog::level::info;
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
}

bool to_journal() { return g_journal; }

namespace {

// syslog(3) priorities, as journald's PRIORITY field wants them.
int priority_of(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;
    case spdlog::level::info:
      return 6;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::err:
      return 3;
    default:
      return 2;
  }
}

std::string quoted(std::string_view value) {
  if (!value.empty() && value.find_first_of(" \t\"=") == std::string_view::npos) {
    return std::string(value);
  }
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out + "\"";
}

}  // namespace

void structured(spdlog::level::level_enum level, std::string_view message,
                std::initializer_list<Field> fields) {
  auto logger = spdlog::default_logger();
  if (!logger->should_log(level)) return;
  if (g_journal) {
    // sd_journal_sendv comes with spdlog's systemd sink (platform/base includes no systemd
    // header itself).
    std::vector<std::string> lines;
    lines.reserve(fields.size() + 3);
    lines.push_back("MESSAGE=" + std::string(message));
    lines.push_back("PRIORITY=" + std::to_string(priority_of(level)));
    lines.push_back("SYSLOG_IDENTIFIER=" + logger->name());
    for (const auto& f : fields) lines.push_back(std::string(f.name) + "=" + f.value);
    std::vector<iovec> iov;
    iov.reserve(lines.size());
    for (auto& line : lines) iov.push_back({line.data(), line.size()});
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    return;
  }
  std::string text(message);
  for (const auto& f : fields) {
    text += ' ';
    for (char c : f.name) {
      text += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    text += '=';
    text += quoted(f.value);
  }
  logger->log(level, "{}", text);
}

}  // namespace warden::log
