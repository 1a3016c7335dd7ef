#include "issuer/cache/ttl_cache.h"

#include <string>

#include <gtest/gtest.h>

namespace warden::issuer {
namespace {

using namespace std::chrono_literals;
using Cache = TtlCache<std::string, int>;

TEST(TtlCacheTest, AnEntryExpiresByTheInjectedClock) {
  FakeClock clock;
  Cache cache(clock, {1s, 8});
  auto seen = cache.find("a");
  EXPECT_FALSE(seen.value);
  ASSERT_TRUE(cache.put("a", 1, seen));
  EXPECT_EQ(cache.find("a").value, 1);
  clock.advance(999ms);
  EXPECT_EQ(cache.find("a").value, 1);
  clock.advance(1ms);
  EXPECT_FALSE(cache.find("a").value);
  EXPECT_EQ(cache.last("a"), 1);  // kept for last() until replaced
}

TEST(TtlCacheTest, AClockSetBackMakesAnEntryStale) {
  FakeClock clock(2000);
  Cache cache(clock, {10s, 8});
  ASSERT_TRUE(cache.put("a", 1, cache.find("a")));
  clock.set(1999);
  EXPECT_FALSE(cache.find("a").value);
}

TEST(TtlCacheTest, AnEntryWithItsOwnExpiry) {
  FakeClock clock(1000);
  Cache cache(clock, {1s, 8});
  ASSERT_TRUE(cache.put_until("t", 7, cache.find("t"), Cache::TimePoint(1010s)));
  clock.set(1009);
  EXPECT_EQ(cache.find("t").value, 7);
  clock.set(1010);
  EXPECT_FALSE(cache.find("t").value);
}

// A load that started before an eviction may have read the row before the write: not stored.
TEST(TtlCacheTest, ALoadThatRacedAnEvictionIsNotStored) {
  FakeClock clock;
  Cache cache(clock, {1s, 8});
  const auto before = cache.find("a");
  cache.evict("b");  // any eviction, any key
  EXPECT_FALSE(cache.put("a", 1, before));
  EXPECT_FALSE(cache.find("a").value);
  EXPECT_TRUE(cache.put("a", 2, cache.find("a")));
  EXPECT_EQ(cache.find("a").value, 2);
}

TEST(TtlCacheTest, EvictAndInvalidateAll) {
  FakeClock clock;
  Cache cache(clock, {1h, 8});
  ASSERT_TRUE(cache.put("a", 1, cache.find("a")));
  ASSERT_TRUE(cache.put("b", 2, cache.find("b")));
  cache.evict("a");
  EXPECT_FALSE(cache.find("a").value);
  EXPECT_FALSE(cache.last("a"));
  EXPECT_EQ(cache.find("b").value, 2);
  cache.invalidate_all();
  EXPECT_FALSE(cache.find("b").value);
  EXPECT_EQ(cache.last("b"), 2);
}

TEST(TtlCacheTest, KeepDecidesBetweenTheCachedAndTheLoadedValue) {
  FakeClock clock;
  Cache cache(clock, {1s, 8});
  ASSERT_TRUE(cache.put("p", 5, cache.find("p")));
  clock.advance(2s);
  auto newer_wins = [](int loaded) { return [loaded](int cached) { return cached > loaded; }; };
  EXPECT_FALSE(cache.put("p", 4, cache.find("p"), newer_wins(4)));
  EXPECT_EQ(cache.last("p"), 5);
  EXPECT_TRUE(cache.put("p", 6, cache.find("p"), newer_wins(6)));
  EXPECT_EQ(cache.find("p").value, 6);
}

TEST(TtlCacheTest, AFullCacheDropsTheExpiredFirstThenEverything) {
  FakeClock clock;
  Cache cache(clock, {1s, 2});
  ASSERT_TRUE(cache.put("a", 1, cache.find("a")));
  clock.advance(500ms);
  ASSERT_TRUE(cache.put("b", 2, cache.find("b")));
  clock.advance(600ms);  // a expired, b fresh
  ASSERT_TRUE(cache.put("c", 3, cache.find("c")));
  EXPECT_EQ(cache.size(), 2U);
  EXPECT_EQ(cache.find("b").value, 2);
  ASSERT_TRUE(cache.put("d", 4, cache.find("d")));  // none expired: cleared
  EXPECT_EQ(cache.size(), 1U);
  EXPECT_EQ(cache.find("d").value, 4);
}

}  // namespace
}  // namespace warden::issuer
