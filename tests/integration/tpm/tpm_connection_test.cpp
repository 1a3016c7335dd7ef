// The one connection a Tpm and its copies share (platform/tpm/esys.h, detail::Connection): kept
// open across operations on swtpm, serialised across threads, reopened after the TPM was lost.
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "platform/tpm/state_poller.h"
#include "platform/tpm/tpm.h"
#include "tests/support/swtpm.h"

namespace warden::test {
namespace {

class TpmConnection : public SwtpmTest {};

PcrSelection boot_pcrs() { return *PcrSelection::parse("sha256:0-9"); }

TEST_F(TpmConnection, CopiesAndPollersShareOneContextKeptOpenOnSwtpm) {
  const tpm::Tpm tpm(tpm_->tcti());
  const tpm::Tpm copy = tpm;  // NOLINT(performance-unnecessary-copy-initialization): the point
  tpm::StatePoller poller(tpm, boot_pcrs());
  ASSERT_TRUE(tpm.probe());
  ASSERT_TRUE(copy.read_pcrs(boot_pcrs()));
  ASSERT_TRUE(poller.read());
  ASSERT_TRUE(copy.random(16));
  EXPECT_EQ(tpm.connections_opened(), 1u);
  EXPECT_EQ(poller.stats().opens, 0u);  // it found the context open
  // A separate Tpm is a separate connection.
  const tpm::Tpm other(tpm_->tcti());
  ASSERT_TRUE(other.probe());
  EXPECT_EQ(other.connections_opened(), 1u);
  EXPECT_EQ(tpm.connections_opened(), 1u);
}

// swtpm has three object slots and one ESYS context must not run two commands at once: threads
// extending, polling and quoting through copies all succeed, and the extends all land.
TEST_F(TpmConnection, ThreadsOnCopiesNeverInterleaveCommands) {
  const tpm::Tpm tpm(tpm_->tcti());
  auto ak = tpm.create_ak();
  ASSERT_TRUE(ak) << ak.error().message;
  std::atomic<int> failures{0};
  constexpr int kRounds = 10;
  std::vector<std::thread> threads;
  threads.emplace_back([&, t = tpm] {
    for (int i = 0; i < kRounds; ++i) {
      if (!t.extend_pcr(16, TpmAlg::kSha256, Bytes(32, static_cast<std::uint8_t>(i)))) ++failures;
    }
  });
  threads.emplace_back([&, t = tpm] {
    tpm::StatePoller poller(t, boot_pcrs());
    for (int i = 0; i < kRounds; ++i) {
      if (!poller.read()) ++failures;
    }
  });
  threads.emplace_back([&, t = tpm] {
    for (int i = 0; i < kRounds; ++i) {
      if (!t.quote(*ak, boot_pcrs(), Bytes(16, 1))) ++failures;
    }
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(tpm.connections_opened(), 1u);
}

// A killed emulator shows at the next command (tcti:IO failure): that closes the context, and the
// next operation opens a new one.
TEST_F(TpmConnection, ATransportFailureClosesTheContextAndTheNextOperationReopens) {
  const tpm::Tpm tpm(tpm_->tcti());
  ASSERT_TRUE(tpm.probe());
  EXPECT_EQ(tpm.connections_opened(), 1u);
  tpm_->kill();
  auto lost = tpm.read_pcrs(boot_pcrs());
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, ErrorCode::kTpm) << lost.error().message;
  // Reopening is tried (and fails: nothing listens).
  auto again = tpm.read_pcrs(boot_pcrs());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kUnavailable) << again.error().message;
}

}  // namespace
}  // namespace warden::test
