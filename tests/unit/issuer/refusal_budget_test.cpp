#include "issuer/refusal_budget.h"

#include <gtest/gtest.h>

namespace warden::issuer {
namespace {

using Clock = RefusalBudget::Clock;
using std::chrono::seconds;

TEST(RefusalBudget, RecordsABurstThenCountsAndReportsWhatItSuppressed) {
  RefusalBudget budget({.burst = 3, .per_second = 0.5, .max_keys = 16});
  const auto t0 = Clock::time_point{} + seconds(1000);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(budget.charge("dev-1", t0).record) << i;
  EXPECT_TRUE(budget.exhausted("dev-1", t0));
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(budget.charge("dev-1", t0).record);
  // Another key has its own bucket.
  EXPECT_FALSE(budget.exhausted("dev-2", t0));
  EXPECT_TRUE(budget.charge("dev-2", t0).record);
  // Two seconds refill one refusal, which brings the count of the suppressed ones with it.
  const auto next = budget.charge("dev-1", t0 + seconds(2));
  ASSERT_TRUE(next.record);
  EXPECT_EQ(next.suppressed, 10U);
  EXPECT_EQ(next.suppressed_for, seconds(2));
  EXPECT_FALSE(budget.charge("dev-1", t0 + seconds(2)).record);
  const auto summaries = budget.drain(t0 + seconds(3));
  ASSERT_EQ(summaries.size(), 1U);
  EXPECT_EQ(summaries[0].key, "dev-1");
  EXPECT_EQ(summaries[0].suppressed, 1U);
  EXPECT_TRUE(budget.drain(t0 + seconds(4)).empty());
}

TEST(RefusalBudget, ManyKeysShareOneBucketOnceTheMapIsFull) {
  RefusalBudget budget({.burst = 2, .per_second = 0.001, .max_keys = 4});
  const auto t = Clock::time_point{} + seconds(1);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(budget.charge("k" + std::to_string(i), t).record);
  }
  // Keys beyond max_keys: all in the overflow bucket, so a spray of fresh keys stays bounded.
  std::size_t recorded = 0;
  for (int i = 4; i < 1000; ++i) {
    const auto c = budget.charge("k" + std::to_string(i), t);
    EXPECT_EQ(c.key, RefusalBudget::kOverflowKey);
    if (c.record) ++recorded;
  }
  EXPECT_EQ(recorded, 2U);
}

TEST(QuoteUntrusted, CutsEscapesAndSaysHowLongItWas) {
  EXPECT_EQ(quote_untrusted("api"), "\"api\"");
  EXPECT_EQ(quote_untrusted("a\"b\n"), "\"a\\x22b\\x0a\"");
  const std::string cut = quote_untrusted(std::string(1024, 'x'));
  EXPECT_EQ(cut, "\"" + std::string(128, 'x') + "\"…(1024 bytes)");
}

}  // namespace
}  // namespace warden::issuer
