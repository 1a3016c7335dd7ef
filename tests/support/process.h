#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace warden::test {

/// Output and exit status of a finished command.
struct CommandOutput {
  int exit_code = -1;  ///< -1 when killed by a signal or not started
  std::string out;     ///< stdout and stderr, interleaved
};

/// Runs argv[0] (looked up on PATH) to completion with extra environment variables, killing it
/// after `timeout`.
CommandOutput run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env = {},
                          std::chrono::seconds timeout = std::chrono::seconds(60));

/// A child process that is killed (SIGTERM, then SIGKILL) when this object is destroyed, and
/// by the kernel (PR_SET_PDEATHSIG) if the test process dies first.
class ChildProcess {
 public:
  ChildProcess() = default;
  /// Starts argv with stdout and stderr appended to `log`.
  static ChildProcess spawn(const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& env,
                            const std::filesystem::path& log);
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  /// True while the child has not exited (reaps it if it has).
  bool running();
  /// Sends `sig`, waits up to `grace`, then SIGKILLs; returns the exit status (-1 if signalled).
  int stop(int sig = 15, std::chrono::milliseconds grace = std::chrono::milliseconds(3000));
  /// Waits for exit up to `timeout`; returns the exit code or -1 (signal/timeout).
  int wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

/// Waits until `cond` holds or `timeout` passes, polling every few milliseconds.
template <class Cond>
bool wait_for(Cond cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    struct timespec ts {
      0, 5'000'000
    };
    nanosleep(&ts, nullptr);
  }
  return cond();
}

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction unless
/// WARDEN_KEEP_TEST_DIRS is set.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "warden-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A TCP port on 127.0.0.1 that was free when asked (and, with `pair`, port+1 too).
int free_tcp_port(bool pair = false);

}  // namespace warden::test
