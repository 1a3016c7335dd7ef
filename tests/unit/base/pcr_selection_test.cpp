#include "platform/base/pcr_selection.h"

#include <gtest/gtest.h>

namespace warden {
namespace {

TEST(PcrSelection, ParsesListsRangesAndBanks) {
  auto s = PcrSelection::parse("sha256:0-3,7+sha1:10");
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_EQ(s->banks.size(), 2U);
  EXPECT_EQ(s->banks[0].alg, TpmAlg::kSha256);
  EXPECT_EQ(s->banks[0].pcrs.to_ulong(), 0x8FUL);
  EXPECT_EQ(s->to_string(), "sha256:0,1,2,3,7+sha1:10");
}

TEST(PcrSelection, RejectsBadInputWithReason) {
  EXPECT_FALSE(PcrSelection::parse(""));
  EXPECT_FALSE(PcrSelection::parse("sha256"));
  EXPECT_FALSE(PcrSelection::parse("md5:1"));
  EXPECT_FALSE(PcrSelection::parse("sha256:24"));
  EXPECT_FALSE(PcrSelection::parse("sha256:1+sha256:2"));
  auto e = PcrSelection::parse("sha256:x");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("\"x\" is not a PCR index"), std::string::npos);
}

}  // namespace
}  // namespace warden
