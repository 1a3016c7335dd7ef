#include "platform/base/refusal_budget.h"

#include <gtest/gtest.h>

namespace warden {
namespace {

using std::chrono::seconds;

// The budget's clock, set by the test.
struct FakeNow {
  RefusalBudget::TimePoint t = RefusalBudget::TimePoint{} + seconds(1000);
  RefusalBudget::Now now() {
    return [this] { return t; };
  }
};

TEST(RefusalBudget, RecordsABurstThenCountsAndReportsWhatItSuppressed) {
  FakeNow clock;
  RefusalBudget budget({.burst = 3, .per_second = 0.5, .max_keys = 16}, clock.now());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(budget.charge("dev-1").record) << i;
  EXPECT_TRUE(budget.exhausted("dev-1"));
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(budget.charge("dev-1").record);
  // Another key has its own bucket.
  EXPECT_FALSE(budget.exhausted("dev-2"));
  EXPECT_TRUE(budget.charge("dev-2").record);
  // Two seconds refill one refusal, which brings the count of the suppressed ones with it.
  clock.t += seconds(2);
  const auto next = budget.charge("dev-1");
  ASSERT_TRUE(next.record);
  EXPECT_EQ(next.suppressed, 10U);
  EXPECT_EQ(next.suppressed_for, seconds(2));
  EXPECT_FALSE(budget.charge("dev-1").record);
  clock.t += seconds(1);
  const auto summaries = budget.drain();
  ASSERT_EQ(summaries.size(), 1U);
  EXPECT_EQ(summaries[0].key, "dev-1");
  EXPECT_EQ(summaries[0].suppressed, 1U);
  clock.t += seconds(1);
  EXPECT_TRUE(budget.drain().empty());
}

TEST(RefusalBudget, ManyKeysShareOneBucketOnceTheMapIsFull) {
  FakeNow clock;
  RefusalBudget budget({.burst = 2, .per_second = 0.001, .max_keys = 4}, clock.now());
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(budget.charge("k" + std::to_string(i)).record);
  }
  // Keys beyond max_keys: all in the overflow bucket, so a spray of fresh keys stays bounded.
  std::size_t recorded = 0;
  for (int i = 4; i < 1000; ++i) {
    const auto c = budget.charge("k" + std::to_string(i));
    EXPECT_EQ(c.key, RefusalBudget::kOverflowKey);
    if (c.record) ++recorded;
  }
  EXPECT_EQ(recorded, 2U);
  EXPECT_EQ(budget.size(), 4U);
  // A key never charged is checked against the bucket it would be charged to.
  EXPECT_TRUE(budget.exhausted("never-seen"));
}

TEST(RefusalBudget, DebtBelowEmptyIsPaidBackByWaiting) {
  FakeNow clock;
  RefusalBudget budget({.burst = 2, .per_second = 1, .max_keys = 16, .max_debt = 2}, clock.now());
  for (int i = 0; i < 10; ++i) (void)budget.charge("uid 7");
  // Two of the ten fitted; the rest took the bucket to -2 (not -8): three seconds to one.
  clock.t += seconds(2);
  EXPECT_TRUE(budget.exhausted("uid 7"));
  clock.t += seconds(1);
  EXPECT_FALSE(budget.exhausted("uid 7"));
}

TEST(RefusalBudget, WithoutDebtAnEmptyBucketKeepsWhatItRefilled) {
  FakeNow clock;
  RefusalBudget budget({.burst = 1, .per_second = 0.5, .max_keys = 16}, clock.now());
  EXPECT_TRUE(budget.charge("a").record);
  clock.t += seconds(1);  // half a refusal back
  EXPECT_FALSE(budget.charge("a").record);
  clock.t += seconds(1);
  EXPECT_TRUE(budget.charge("a").record);
}

TEST(RefusalBudget, ARefilledBucketIsForgotten) {
  FakeNow clock;
  RefusalBudget budget({.burst = 2, .per_second = 1, .max_keys = 16}, clock.now());
  EXPECT_FALSE(budget.exhausted("a"));  // no bucket: nothing to check
  EXPECT_TRUE(budget.charge("a").record);
  EXPECT_EQ(budget.size(), 1U);
  clock.t += seconds(5);
  EXPECT_FALSE(budget.exhausted("a"));
  EXPECT_EQ(budget.size(), 0U);
}

}  // namespace
}  // namespace warden
