#include <gtest/gtest.h>

#include "agent/posture/policy.h"

namespace warden::agent::posture {
namespace {

void expect_row(Trigger trigger, Source source, Action action) {
  const PolicyRow& row = policy_for(trigger);
  EXPECT_EQ(row.trigger, trigger);
  EXPECT_EQ(row.source, source) << to_string(row.source);
  EXPECT_EQ(row.action, action) << to_string(row.action);
  EXPECT_FALSE(row.why.empty());
}

TEST(PosturePolicy, ContainerStartIsInformational) {
  expect_row(Trigger::kContainerStarted, Source::kContainer, Action::kNone);
}
TEST(PosturePolicy, ContainerStopRevokesThatWorkload) {
  expect_row(Trigger::kContainerStopped, Source::kContainer, Action::kRevokeWorkload);
}
TEST(PosturePolicy, NewImaEntriesAskForReattestation) {
  expect_row(Trigger::kImaCountGrew, Source::kIma, Action::kReattest);
}
TEST(PosturePolicy, ImaPcrMoveAsksForReattestation) {
  expect_row(Trigger::kImaPcrChanged, Source::kPcr, Action::kReattest);
}
TEST(PosturePolicy, OtherPcrMoveRevokesAll) {
  expect_row(Trigger::kPcrChanged, Source::kPcr, Action::kRevokeAll);
}
TEST(PosturePolicy, ContainerPcrTheLogDoesNotExplainRevokesAll) {
  expect_row(Trigger::kContainerPcrUnexplained, Source::kPcr, Action::kRevokeAll);
}
TEST(PosturePolicy, ResetCountChangeRevokesAll) {
  expect_row(Trigger::kResetCountChanged, Source::kResetCount, Action::kRevokeAll);
}
TEST(PosturePolicy, ConfigChangeAsksForReattestation) {
  expect_row(Trigger::kConfigChanged, Source::kConfig, Action::kReattest);
}
TEST(PosturePolicy, PolicyFileChangeAsksForReattestation) {
  expect_row(Trigger::kPolicyFileChanged, Source::kPolicy, Action::kReattest);
}
TEST(PosturePolicy, TamperedStateFileRevokesAll) {
  expect_row(Trigger::kStateFileChanged, Source::kStateFile, Action::kRevokeAll);
}
TEST(PosturePolicy, StateDirGoneRevokesAll) {
  expect_row(Trigger::kStateDirGone, Source::kStateFile, Action::kRevokeAll);
}
TEST(PosturePolicy, TpmLossRevokesAll) {
  expect_row(Trigger::kTpmLost, Source::kTpm, Action::kRevokeAll);
}
TEST(PosturePolicy, TpmBackAsksForReattestation) {
  expect_row(Trigger::kTpmBack, Source::kTpm, Action::kReattest);
}

TEST(PosturePolicy, ClassifyKeepsTheObservedValues) {
  Observation o{Trigger::kContainerStopped,
                "abc",
                "running",
                "stopped",
                "abc",
                "docker",
                "system.slice/docker-abc.scope",
                std::chrono::steady_clock::time_point{}};
  const Change c = classify(o);
  EXPECT_EQ(c.source, Source::kContainer);
  EXPECT_EQ(c.action, Action::kRevokeWorkload);
  EXPECT_EQ(c.subject, "abc");
  EXPECT_EQ(c.old_value, "running");
  EXPECT_EQ(c.new_value, "stopped");
  EXPECT_EQ(c.workload, "abc");
  EXPECT_EQ(c.runtime, "docker");
  EXPECT_EQ(c.cgroup_path, "system.slice/docker-abc.scope");
}

}  // namespace
}  // namespace warden::agent::posture
