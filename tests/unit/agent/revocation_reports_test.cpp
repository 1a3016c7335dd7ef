// The revocation report queue: due at once, backoff after transient failures, the bound.
#include "agent/revocation_reports.h"

#include <gtest/gtest.h>

namespace warden::agent {
namespace {

using std::chrono::milliseconds;

class StepRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override {
    for (auto& b : out) b = static_cast<std::uint8_t>(n_ += 37);
  }

 private:
  std::uint8_t n_ = 0;
};

RevocationReport report(std::string device, std::vector<std::string> jtis, std::uint8_t key = 1,
                        std::string reason = "container gone") {
  RevocationReport r;
  r.request.device_id = std::move(device);
  r.request.reason = std::move(reason);
  r.request.jtis = std::move(jtis);
  r.key.public_area = Bytes{0, 1, key};
  return r;
}

class ReportQueueTest : public ::testing::Test {
 protected:
  ReportQueue make(std::size_t capacity = 256) {
    ReportQueue::Options o;
    o.capacity = capacity;
    return ReportQueue(clock_, random_, o);
  }
  FakeClock clock_;
  StepRandom random_;
};

TEST_F(ReportQueueTest, AReportIsDueAtOnceAndPendingUntilFinished) {
  auto q = make();
  EXPECT_FALSE(q.next_due());
  q.push(report("dev-1", {"j1"}));
  EXPECT_EQ(q.next_due(), milliseconds(0));
  auto taken = q.take(false);
  ASSERT_EQ(taken.size(), 1U);
  EXPECT_EQ(taken[0].report.request.jtis, std::vector<std::string>{"j1"});
  EXPECT_EQ(q.pending(), 1U);  // being sent still counts
  EXPECT_TRUE(q.take(false).empty());
  q.finish();
  EXPECT_EQ(q.pending(), 0U);
}

TEST_F(ReportQueueTest, RetriesBackOffFromHalfASecondDoublingToThirtySeconds) {
  auto q = make();
  q.push(report("dev-1", {"j1"}));
  auto taken = q.take(false);
  std::int64_t window = 500;
  for (unsigned i = 0; i < 10; ++i) {
    ASSERT_EQ(taken.size(), 1U) << i;
    EXPECT_EQ(taken[0].failures, i);
    const auto delay = q.retry(std::move(taken[0])).count();
    EXPECT_GE(delay, window / 2) << i;
    EXPECT_LE(delay, window) << i;
    EXPECT_EQ(q.pending(), 1U);
    EXPECT_EQ(q.next_due(), milliseconds(delay));
    // Not before its time, due once it has passed.
    clock_.advance(milliseconds(delay - 1));
    EXPECT_TRUE(q.take(false).empty()) << i;
    clock_.advance(milliseconds(1));
    taken = q.take(false);
    window = std::min<std::int64_t>(window * 2, 30'000);
  }
  ASSERT_EQ(taken.size(), 1U);
  q.finish();
  EXPECT_EQ(q.pending(), 0U);
}

TEST_F(ReportQueueTest, TakeAllIgnoresTheBackoffAndAReportWaitingDoesNotDelayANewOne) {
  auto q = make();
  q.push(report("dev-1", {"j1"}));
  auto first = q.take(false);
  ASSERT_EQ(first.size(), 1U);
  (void)q.retry(std::move(first[0]));
  q.push(report("dev-1", {"j2"}));
  auto due = q.take(false);
  ASSERT_EQ(due.size(), 1U);
  EXPECT_EQ(due[0].report.request.jtis, std::vector<std::string>{"j2"});
  q.finish();
  auto all = q.take(true);
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].report.request.jtis, std::vector<std::string>{"j1"});
}

TEST_F(ReportQueueTest, AWallClockSetBackDoesNotHoldAReportBeyondTheLongestBackoff) {
  auto q = make();
  q.push(report("dev-1", {"j1"}));
  auto taken = q.take(false);
  (void)q.retry(std::move(taken[0]));
  clock_.advance(-std::chrono::hours(1));
  EXPECT_LE(*q.next_due(), milliseconds(30'000));
  EXPECT_EQ(q.take(false).size(), 1U);
}

TEST_F(ReportQueueTest, AFullQueueMergesTheSameKeysReportsIntoOneRevokingAll) {
  auto q = make(4);
  q.push(report("dev-1", {"j1"}));
  q.push(report("dev-1", {"j2", "j3"}, 2));  // another binding key: kept apart
  q.push(report("dev-1", {"j4"}));
  q.push(report("dev-1", {"j5"}));
  q.push(report("dev-1", {"j6"}, 1, "container c6 gone"));
  EXPECT_EQ(q.pending(), 2U);
  auto all = q.take(true);
  ASSERT_EQ(all.size(), 2U);
  EXPECT_EQ(all[0].report.request.jtis, (std::vector<std::string>{"j2", "j3"}));
  EXPECT_TRUE(all[1].report.request.jtis.empty());  // every token of the device
  EXPECT_EQ(all[1].report.key.public_area, (Bytes{0, 1, 1}));
  EXPECT_NE(all[1].report.request.reason.find("merged 4 reports"), std::string::npos)
      << all[1].report.request.reason;
  EXPECT_NE(all[1].report.request.reason.find("container c6 gone"), std::string::npos);
}

TEST_F(ReportQueueTest, AFullQueueOfOtherKeysDropsTheOldestAndStaysBounded) {
  auto q = make(2);
  q.push(report("dev-1", {"j1"}, 1));
  q.push(report("dev-1", {"j2"}, 2));
  q.push(report("dev-1", {"j3"}, 3));
  EXPECT_EQ(q.pending(), 2U);
  auto all = q.take(true);
  ASSERT_EQ(all.size(), 2U);
  EXPECT_EQ(all[0].report.request.jtis, std::vector<std::string>{"j2"});
  EXPECT_EQ(all[1].report.request.jtis, std::vector<std::string>{"j3"});
}

TEST_F(ReportQueueTest, AMergedReasonStaysWithinWhatTheIssuerTakes) {
  auto q = make(1);
  q.push(report("dev-1", {"j1"}));
  q.push(report("dev-1", {"j2"}, 1, std::string(1024, 'r')));
  auto all = q.take(true);
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].report.request.reason.size(), 1024U);
}

TEST(ReportOutcome, ReplayIsDeliveredUnreachableIsRetriedRefusalsAreDropped) {
  const auto of = [](ErrorCode c) { return classify_report_error(Error{c, "x", 0, 0}); };
  EXPECT_EQ(of(ErrorCode::kReplay), ReportOutcome::kDelivered);
  for (auto c : {ErrorCode::kUnavailable, ErrorCode::kTimeout, ErrorCode::kIo, ErrorCode::kInternal,
                 ErrorCode::kExpired, ErrorCode::kNotYetValid}) {
    EXPECT_EQ(of(c), ReportOutcome::kRetry) << to_string(c);
  }
  for (auto c : {ErrorCode::kBadSignature, ErrorCode::kUnknownKey, ErrorCode::kNotFound,
                 ErrorCode::kPermissionDenied, ErrorCode::kMalformed, ErrorCode::kLimitExceeded}) {
    EXPECT_EQ(of(c), ReportOutcome::kDrop) << to_string(c);
  }
}

TEST(ReportOutcome, ATpmOutOfReachIsRetriedAKeyItRefusesIsDropped) {
  const auto of = [](ErrorCode c, std::uint32_t rc) {
    return classify_signing_error(Error{c, "sign", rc, 0});
  };
  EXPECT_EQ(of(ErrorCode::kUnavailable, 0), ReportOutcome::kRetry);   // no connection
  EXPECT_EQ(of(ErrorCode::kTpm, 0x000A000A), ReportOutcome::kRetry);  // TCTI: I/O error
  EXPECT_EQ(of(ErrorCode::kTpm, 0x00070001), ReportOutcome::kRetry);  // ESAPI
  EXPECT_EQ(of(ErrorCode::kTpm, 0x0000009F), ReportOutcome::kDrop);   // TPM_RC_INTEGRITY
  EXPECT_EQ(of(ErrorCode::kTpm, 0), ReportOutcome::kDrop);            // the TPM's answer unusable
  EXPECT_EQ(of(ErrorCode::kInvalidArgument, 0), ReportOutcome::kDrop);
}

}  // namespace
}  // namespace warden::agent
