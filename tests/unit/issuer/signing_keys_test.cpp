#include "issuer/signing_keys.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace warden::issuer {
namespace {

TEST(SigningKeys, GeneratedOnFirstStartWithMode0600AndReloaded) {
  test::TempDir dir("warden-keys");
  auto store = open_sqlite_store((dir.path() / "db").string());
  ASSERT_TRUE(store && (*store)->migrate());
  FakeClock clock;
  auto keys = SigningKeys::open(dir.path() / "keys", **store, clock);
  ASSERT_TRUE(keys) << keys.error().message;
  auto kid = (*keys)->current_kid();
  ASSERT_FALSE(kid.empty());
  struct stat st {};
  ASSERT_EQ(stat((dir.path() / "keys" / (kid + ".pem")).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  ASSERT_NE((*keys)->current_key(), nullptr);

  auto again = SigningKeys::open(dir.path() / "keys", **store, clock);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->current_kid(), kid);
}

TEST(SigningKeys, RotationKeepsPreviousKeyPublishedUntilItsTokensExpire) {
  test::TempDir dir("warden-keys");
  auto store = open_sqlite_store((dir.path() / "db").string());
  ASSERT_TRUE(store && (*store)->migrate());
  FakeClock clock;
  auto keys = SigningKeys::open(dir.path() / "keys", **store, clock);
  ASSERT_TRUE(keys);
  auto old_kid = (*keys)->current_kid();
  ASSERT_TRUE((*keys)->rotate(300));
  EXPECT_NE((*keys)->current_kid(), old_kid);
  auto published = (*keys)->published();
  ASSERT_TRUE(published);
  EXPECT_EQ(published->size(), 2U);
  clock.advance(std::chrono::seconds(301));
  published = (*keys)->published();
  ASSERT_EQ(published->size(), 1U);
  EXPECT_EQ((*published)[0].kid, (*keys)->current_kid());
}

}  // namespace
}  // namespace warden::issuer
