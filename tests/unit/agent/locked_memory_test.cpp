// Unsealed secrets and keys live in the mlock'd secure heap (agent::init_locked_key_memory,
// SecretBytes) and are cleansed when released.
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "agent/session_key.h"
#include "platform/base/secret.h"

namespace warden::agent {
namespace {

/// The "Locked:" figure (kB) of the mapping that holds `address`, from /proc/self/smaps.
long locked_kb_of(const void* address) {
  const auto a = reinterpret_cast<std::uintptr_t>(address);  // NOLINT
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t start = 0, end = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> start >> dash >> end && dash == '-') {
      inside = start <= a && a < end;
      continue;
    }
    if (inside && line.rfind("Locked:", 0) == 0) return std::stol(line.substr(7));
  }
  return -1;
}

struct CapturedLog {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  CapturedLog() {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "test", std::make_shared<spdlog::sinks::ostream_sink_st>(out)));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
};

TEST(LockedSecrets, SecretBytesAreLockedAndWipedOnRelease) {
  CapturedLog log;
  auto heap = init_locked_key_memory();
  ASSERT_TRUE(heap) << heap.error().message;
  SecretBytes secret(to_bytes("correct horse battery staple"));
  ASSERT_TRUE(secret.in_secure_heap()) << "SecretBytes did not come from the secure heap";
  if (*heap == LockedMemory::kLocked) {
    EXPECT_GT(locked_kb_of(secret.view().data()), 0) << "the secure heap's pages are not mlock'd";
  } else {
    EXPECT_NE(log.out.str().find("mlock of"), std::string::npos) << log.out.str();
  }

  // The secure heap stays mapped after a free, so its bytes can be inspected.
  const std::uint8_t* where = secret.view().data();
  const std::size_t size = secret.size();
  secret.wipe();
  EXPECT_TRUE(secret.empty());
  EXPECT_TRUE(std::all_of(where, where + size, [](std::uint8_t b) { return b == 0; }));

  SecretBytes moved_from(to_bytes("second secret"));
  SecretBytes moved_to(std::move(moved_from));
  EXPECT_TRUE(moved_from.empty());  // NOLINT(bugprone-use-after-move): moving wipes the source
  EXPECT_TRUE(moved_to.in_secure_heap());
}

// Runs in a fresh process: without CAP_IPC_LOCK and with no mlock budget the kernel refuses
// mlock. Returns 0 when the refusal is reported, logged, and the heap still serves SecretBytes.
int init_with_mlock_refused() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3]{};
  if (::syscall(SYS_capget, &header, caps) != 0) return 3;
  caps[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
  if (::syscall(SYS_capset, &header, caps) != 0) return 4;
  const rlimit none{0, 0};
  if (::setrlimit(RLIMIT_MEMLOCK, &none) != 0) return 5;
  CapturedLog captured;
  auto heap = init_locked_key_memory();
  if (!heap) return 6;
  if (*heap != LockedMemory::kUnlocked) return 7;
  if (captured.out.str().find("mlock of") == std::string::npos) return 8;
  SecretBytes secret(to_bytes("still cleansed, not dumped"));
  return secret.in_secure_heap() ? 0 : 9;
}

TEST(LockedSecrets, RefusedMlockIsLoggedAndReportedUnlocked) {
  // A fresh process: the secure heap of this one may already be set up.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::_Exit(init_with_mlock_refused()), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace warden::agent
