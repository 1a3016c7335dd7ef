#include "platform/base/log.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

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

}  // namespace warden::log
