#include "agent/lifecycle.h"

#include <gtest/gtest.h>

namespace warden::agent {
namespace {

TEST(Lifecycle, FirstStartEnrollsAttestsThenServes) {
  Lifecycle l;
  EXPECT_EQ(l.state(), AgentState::kStarting);
  ASSERT_TRUE(l.transition(AgentState::kEnrolling));
  ASSERT_TRUE(l.transition(AgentState::kAttesting));
  EXPECT_FALSE(l.serving());
  ASSERT_TRUE(l.transition(AgentState::kServing));
  EXPECT_TRUE(l.serving());
}

TEST(Lifecycle, RevocationStopsServingUntilReattested) {
  Lifecycle l;
  ASSERT_TRUE(l.transition(AgentState::kAttesting));
  ASSERT_TRUE(l.transition(AgentState::kServing));
  ASSERT_TRUE(l.transition(AgentState::kRevoked));
  EXPECT_FALSE(l.serving());
  auto direct = l.transition(AgentState::kServing);
  ASSERT_FALSE(direct);
  EXPECT_EQ(direct.error().message, "lifecycle: transition revoked -> serving is not allowed");
  ASSERT_TRUE(l.transition(AgentState::kReattesting));
  ASSERT_TRUE(l.transition(AgentState::kServing));
}

TEST(Lifecycle, NamesRoundTrip) {
  for (auto s :
       {AgentState::kStarting, AgentState::kEnrolling, AgentState::kAttesting, AgentState::kServing,
        AgentState::kReattesting, AgentState::kRevoked, AgentState::kDegraded}) {
    EXPECT_EQ(state_from_string(to_string(s)), s);
  }
  EXPECT_FALSE(state_from_string("bogus"));
}

}  // namespace
}  // namespace warden::agent
