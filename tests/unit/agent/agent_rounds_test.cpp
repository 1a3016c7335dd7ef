// Coalesced attestation rounds, without timing: each fake round blocks until the test releases
// it, so who arrived during which round is fixed before it ends.
#include "agent/agent_rounds.h"

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace warden::agent {
namespace {

using namespace std::chrono_literals;

// A round trip to an issuer that answers only when released; each round's result names it.
class BlockingRounds {
 public:
  Status run_round(std::unique_lock<std::mutex>& lock) {
    const int number = ++started_;
    changed_.notify_all();
    // Like Agent::round: the agent's lock is released while the issuer answers.
    changed_.wait(lock, [&] { return released_ >= number; });
    return fail(ErrorCode::kUnavailable, "round " + std::to_string(number));
  }
  Status join(std::unique_lock<std::mutex>& lock) {
    return rounds_.join(lock, [&] { return run_round(lock); });
  }
  void release(int round) {
    std::lock_guard lock(mu_);
    released_ = round;
    changed_.notify_all();
  }
  void wait_started(int rounds) {
    std::unique_lock lock(mu_);
    ASSERT_TRUE(changed_.wait_for(lock, 30s, [&] { return started_ >= rounds; }));
  }
  [[nodiscard]] std::size_t waiting() {
    std::lock_guard lock(mu_);
    return rounds_.waiting();
  }
  [[nodiscard]] int started() {
    std::lock_guard lock(mu_);
    return started_;
  }
  std::mutex mu_;

 private:
  SharedRounds rounds_;
  std::condition_variable changed_;
  int started_ = 0;
  int released_ = 0;
};

std::string message(const Status& s) { return s ? "ok" : s.error().message; }

TEST(SharedRounds, CallersArrivingDuringARoundShareTheNextOne) {
  BlockingRounds issuer;
  std::string first;
  std::thread starter([&] {
    std::unique_lock lock(issuer.mu_);
    first = message(issuer.join(lock));
  });
  issuer.wait_started(1);

  constexpr std::size_t kLate = 5;
  std::vector<std::string> results(kLate);
  std::vector<std::thread> late;
  for (std::size_t i = 0; i < kLate; ++i) {
    late.emplace_back([&, i] {
      std::unique_lock lock(issuer.mu_);
      results[i] = message(issuer.join(lock));
    });
  }
  ASSERT_TRUE(test::wait_for([&] { return issuer.waiting() == kLate; }, 30s));

  issuer.release(1);
  starter.join();
  EXPECT_EQ(first, "round 1");
  issuer.wait_started(2);
  issuer.release(2);
  for (auto& t : late) t.join();
  // One more round trip for all five, and none of them took the round already running.
  EXPECT_EQ(issuer.started(), 2);
  for (const auto& r : results) EXPECT_EQ(r, "round 2");
  EXPECT_EQ(issuer.waiting(), 0U);
}

TEST(SharedRounds, ACallerAfterARoundEndedStartsANewOne) {
  BlockingRounds issuer;
  issuer.release(2);
  std::unique_lock lock(issuer.mu_);
  EXPECT_EQ(message(issuer.join(lock)), "round 1");
  EXPECT_EQ(message(issuer.join(lock)), "round 2");
}

}  // namespace
}  // namespace warden::agent
