// The polled posture sources (IMA, TPM, PCRs, reset counts) and the own-write expectations, on
// fakes: no TPM, no securityfs, no thread.

#include <gtest/gtest.h>

#include "agent/posture/container_log.h"
#include "agent/posture/ima_source.h"
#include "agent/posture/own_writes.h"
#include "agent/posture/pcr_source.h"
#include "agent/posture/reset_count_source.h"
#include "agent/posture/tpm_source.h"
#include "platform/base/encoding.h"
#include "tests/support/process.h"
#include "tests/unit/agent/posture_fakes.h"

namespace warden::agent::posture {
namespace {

using namespace std::chrono_literals;
using test::FakeClock;
using test::FakeImaCounter;
using test::FakeObserver;
using test::FakePcrExtender;
using test::FakeTpmProbe;

const std::string kZero(64, '0');
const std::string kOne(64, '1');
const std::string kTwo(64, '2');

// ---- IMA --------------------------------------------------------------------------------------

struct ImaSourceTest : ::testing::Test {
  FakeImaCounter counter;
  FakeObserver observer;
  Counters counters;
  FakeClock clock;
  ImaSource source{counter, observer, counters, clock.now()};
};

TEST_F(ImaSourceTest, GrowthIsReportedOncePerNewCount) {
  counter.count = 100;
  ASSERT_TRUE(source.start());
  source.poll();
  EXPECT_TRUE(observer.seen.empty());
  counter.count = 105;
  source.poll();
  source.poll();
  ASSERT_EQ(observer.seen.size(), 1U);
  EXPECT_EQ(observer.seen[0].trigger, Trigger::kImaCountGrew);
  EXPECT_EQ(observer.seen[0].old_value, "100");
  EXPECT_EQ(observer.seen[0].new_value, "105");
  counter.count = 107;
  source.poll();
  ASSERT_EQ(observer.seen.size(), 2U);
  EXPECT_EQ(observer.seen[1].old_value, "100");  // against the reference, not the last report
  EXPECT_EQ(counters.ima_polls, 4U);
}

TEST_F(ImaSourceTest, RebaselineMakesTheCurrentCountTheReference) {
  counter.count = 1;
  ASSERT_TRUE(source.start());
  counter.count = 2;
  source.poll();
  source.rebaseline();
  source.poll();
  EXPECT_EQ(observer.seen.size(), 1U);
  counter.count = 3;
  source.poll();
  ASSERT_EQ(observer.seen.size(), 2U);
  EXPECT_EQ(observer.seen[1].old_value, "2");
}

TEST_F(ImaSourceTest, UnreadableCountIsAnErrorAtStartAndSkippedLater) {
  counter.unreadable = true;
  EXPECT_FALSE(source.start());
  counter.unreadable = false;
  ASSERT_TRUE(source.start());
  counter.unreadable = true;
  source.poll();
  EXPECT_TRUE(observer.seen.empty());
}

// ---- TPM, PCRs, reset counts ------------------------------------------------------------------

struct TpmSourceTest : ::testing::Test {
  TpmSourceTest() {
    probe.reading.pcrs = {{"sha256:7", kZero}, {"sha256:10", kZero}};
    probe.reading.reset_count = 3;
    probe.reading.restart_count = 0;
  }
  FakeTpmProbe probe;
  FakeObserver observer;
  Counters counters;
  FakeClock clock;
  TpmSource source{probe, observer, counters, clock.now(), 10, nullptr};
};

TEST_F(TpmSourceTest, UnreachableAtStartIsAnError) {
  probe.unreachable = true;
  auto started = source.start();
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message.find("TPM baseline"), std::string::npos);
}

TEST_F(TpmSourceTest, BootPcrChangeIsReportedOnce) {
  ASSERT_TRUE(source.start());
  source.poll();
  EXPECT_TRUE(observer.seen.empty());
  probe.reading.pcrs["sha256:7"] = kOne;
  source.poll();
  source.poll();
  ASSERT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kPcrChanged});
  EXPECT_EQ(observer.seen[0].subject, "pcr sha256:7");
  EXPECT_EQ(observer.seen[0].old_value, kZero);
  EXPECT_EQ(observer.seen[0].new_value, kOne);
}

TEST_F(TpmSourceTest, ImaPcrChangeIsItsOwnTrigger) {
  ASSERT_TRUE(source.start());
  probe.reading.pcrs["sha256:10"] = kOne;
  source.poll();
  EXPECT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kImaPcrChanged});
}

TEST_F(TpmSourceTest, PcrBackAtTheReferenceThenMovedAgainIsReportedAgain) {
  ASSERT_TRUE(source.start());
  probe.reading.pcrs["sha256:7"] = kOne;
  source.poll();
  probe.reading.pcrs["sha256:7"] = kZero;
  source.poll();
  probe.reading.pcrs["sha256:7"] = kOne;
  source.poll();
  EXPECT_EQ(observer.seen.size(), 2U);
}

TEST_F(TpmSourceTest, PcrMissingFromTheReadingIsReportedAbsent) {
  ASSERT_TRUE(source.start());
  probe.reading.pcrs.erase("sha256:7");
  source.poll();
  ASSERT_EQ(observer.seen.size(), 1U);
  EXPECT_EQ(observer.seen[0].new_value, "absent");
}

TEST_F(TpmSourceTest, ResetAndRestartCountsAreReportedBeforePcrs) {
  ASSERT_TRUE(source.start());
  probe.reading.reset_count = 4;
  probe.reading.restart_count = 1;
  probe.reading.pcrs["sha256:7"] = kOne;
  source.poll();
  ASSERT_EQ(observer.triggers(),
            (std::vector<Trigger>{Trigger::kResetCountChanged, Trigger::kResetCountChanged,
                                  Trigger::kPcrChanged}));
  EXPECT_EQ(observer.seen[0].subject, "resetCount");
  EXPECT_EQ(observer.seen[0].old_value, "3");
  EXPECT_EQ(observer.seen[0].new_value, "4");
  EXPECT_EQ(observer.seen[1].subject, "restartCount");
}

TEST_F(TpmSourceTest, LostTpmIsReportedOnceAndRetriedOncePerInterval) {
  ASSERT_TRUE(source.start());
  probe.unreachable = true;
  source.poll();
  ASSERT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kTpmLost});
  EXPECT_EQ(observer.seen[0].new_value, "unreachable: tpm: connection refused");
  const int reads = probe.reads;
  clock.advance(200ms);
  source.poll();  // within the retry interval: no read
  EXPECT_EQ(probe.reads, reads);
  clock.advance(TpmSource::kRetryInterval);
  source.poll();
  EXPECT_EQ(probe.reads, reads + 1);
  EXPECT_EQ(observer.seen.size(), 1U);
  EXPECT_EQ(counters.tpm_errors, 2U);
  probe.unreachable = false;
  clock.advance(TpmSource::kRetryInterval);
  source.poll();
  EXPECT_EQ(observer.triggers(), (std::vector<Trigger>{Trigger::kTpmLost, Trigger::kTpmBack}));
}

TEST_F(TpmSourceTest, RebaselineTakesTheReadingAsReference) {
  ASSERT_TRUE(source.start());
  probe.reading.pcrs["sha256:7"] = kOne;
  source.poll();
  source.rebaseline();
  source.poll();
  EXPECT_EQ(observer.seen.size(), 1U);
  probe.reading.pcrs["sha256:7"] = kTwo;
  source.poll();
  ASSERT_EQ(observer.seen.size(), 2U);
  EXPECT_EQ(observer.seen[1].old_value, kOne);
}

TEST_F(TpmSourceTest, RebaselineWithTheTpmUnreachableKeepsTheReferenceButForgetsReports) {
  ASSERT_TRUE(source.start());
  probe.reading.pcrs["sha256:7"] = kOne;
  source.poll();
  probe.unreachable = true;
  source.rebaseline();
  probe.unreachable = false;
  source.poll();  // the same value as reported before: reported again, against the old reference
  ASSERT_EQ(observer.seen.size(), 2U);
  EXPECT_EQ(observer.seen[1].old_value, kZero);
}

TEST(PcrSource, ContainerPcrIsHeldToTheContainerLog) {
  warden::test::TempDir dir("warden-posture-unit");
  FakePcrExtender extender;
  ContainerLogOptions options;
  options.path = dir.path() / "containers.cel";
  options.pcr = 15;
  auto log = ContainerEventLog::open(options, extender);
  ASSERT_TRUE(log) << log.error().message;
  FakeObserver observer;
  PcrSource pcrs(observer, 10, log->get());
  const std::string start = (*log)->expected_value().at(TpmAlg::kSha256);
  TpmProbe::Reading reading;
  reading.pcrs = {{"sha256:15", start}};
  pcrs.rebaseline(reading);
  pcrs.check(reading.pcrs, {});
  EXPECT_TRUE(observer.seen.empty());
  // An append moves PCR and log together: nothing to report.
  ASSERT_TRUE((*log)->append({attest::cel::ContainerEvent::kStart, std::string(64, 'a'), "", "",
                              "docker", "/system.slice/docker-a.scope"}));
  reading.pcrs["sha256:15"] = hex_encode(*extender.values.get(TpmAlg::kSha256, 15));
  pcrs.check(reading.pcrs, {});
  EXPECT_TRUE(observer.seen.empty());
  // An extend behind the log's back is.
  reading.pcrs["sha256:15"] = kOne;
  pcrs.check(reading.pcrs, {});
  ASSERT_EQ(observer.triggers(), std::vector<Trigger>{Trigger::kContainerPcrUnexplained});
  EXPECT_EQ(observer.seen[0].subject, "pcr sha256:15 (container log)");
}

TEST(ResetCountSource, RestartCountAloneIsReported) {
  FakeObserver observer;
  ResetCountSource resets(observer);
  TpmProbe::Reading reading;
  resets.rebaseline(reading);
  reading.restart_count = 1;
  resets.check(reading, {});
  resets.check(reading, {});
  ASSERT_EQ(observer.seen.size(), 1U);
  EXPECT_EQ(observer.seen[0].subject, "restartCount");
}

// ---- own writes -------------------------------------------------------------------------------

TEST(OwnWrites, OneExpectationCoversOneWrite) {
  FakeClock clock;
  OwnWrites writes(clock.now());
  writes.expect("/state/./blob");
  EXPECT_TRUE(writes.consume("/state/blob"));
  EXPECT_FALSE(writes.consume("/state/blob"));
}

TEST(OwnWrites, ExpectationsLapse) {
  FakeClock clock;
  OwnWrites writes(clock.now());
  writes.expect("/state/blob");
  clock.advance(OwnWrites::kLifetime + 1ms);
  EXPECT_FALSE(writes.consume("/state/blob"));
}

}  // namespace
}  // namespace warden::agent::posture
