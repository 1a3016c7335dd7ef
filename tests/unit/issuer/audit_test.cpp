#include <gtest/gtest.h>

#include "issuer/audit/audit_log.h"
#include "issuer/audit/records.h"
#include "tests/support/process.h"

namespace warden::issuer::audit {
namespace {

TEST(AuditRecords, EachActionHasItsStoredNameAndDetails) {
  auto r = to_record(Event{7, "d1", Action::kRevoke, Decision::kOk, "", "",
                           RevokeApplied{1700000000, "posture", 2, {"j1", "j2"}}});
  EXPECT_EQ(r.time, 7);
  EXPECT_EQ(r.device_id, "d1");
  EXPECT_EQ(r.action, "revoke");
  EXPECT_EQ(r.decision, "ok");
  // The timestamp is the first member: schema 5's upgrade reads it back from older records.
  EXPECT_EQ(r.reasons_json,
            R"([{"timestamp":1700000000,"reason":"posture","revoked":2,"jtis":["j1","j2"]}])");

  r = to_record(Event{1, "d1", Action::kToken, Decision::kAccept, "", "p1",
                      TokenGrant{"rule-a", "jti-1", "https://api", 5}});
  EXPECT_EQ(r.action, "token");
  EXPECT_EQ(r.decision, "accept");
  EXPECT_EQ(r.policy_version, "p1");
  EXPECT_EQ(r.reasons_json,
            R"([{"rule":"rule-a","jti":"jti-1","audience":"https://api","status_index":5}])");

  r = to_record(Event{1, "d1", Action::kAttest, Decision::kReject, "ab", "p1",
                      Reasons{{"pcr_digest_mismatch", "pcr 7", std::string("x"), std::nullopt}}});
  EXPECT_EQ(r.evidence_hash, "ab");
  EXPECT_EQ(r.reasons_json, R"([{"code":"pcr_digest_mismatch","subject":"pcr 7","expected":"x"}])");

  EXPECT_EQ(
      to_record(Event{1, "", Action::kActivate, Decision::kOk, "", "", Reasons{}}).reasons_json,
      "[]");
  EXPECT_EQ(to_string(Action::kEnroll), "enroll");
  EXPECT_EQ(to_string(Action::kRefusalsSuppressed), "refusals_suppressed");
  EXPECT_EQ(to_string(Action::kDeviceState), "admin.device_state");
  EXPECT_EQ(to_string(Action::kDeviceDelete), "admin.device_delete");
  EXPECT_EQ(to_string(Action::kDeviceGroup), "admin.device_group");
  EXPECT_EQ(to_string(Action::kPolicy), "admin.policy");
  EXPECT_EQ(to_record(Event{1, "d", Action::kDeviceGroup, Decision::kOk, "", "",
                            DeviceGroupSet{"alice", "edge", "", "asked"}})
                .reasons_json,
            R"([{"actor":"alice","group":"edge","previous_group":"","requested_group":"asked"}])");
  EXPECT_EQ(
      to_record(Event{1, "", Action::kPolicy, Decision::kOk, "", "v", PolicyStored{"a", 3, 2}})
          .reasons_json,
      R"([{"actor":"a","id":3,"workload_rules":2}])");
}

TEST(AuditRecords, UnvouchedReasonsAreBoundedInNumberAndLength) {
  Reasons many(40, protocol::Reason{"bad_signature", std::string(300, 's'), std::nullopt,
                                    std::string(10, 'f')});
  const Reasons kept = bound_unvouched(many);
  ASSERT_EQ(kept.size(), 16U);
  EXPECT_EQ(kept.back().code, "limit_exceeded");
  EXPECT_EQ(kept.back().found, std::optional<std::string>("25 more not recorded"));
  EXPECT_EQ(kept[0].subject, std::string(128, 's') + "…(300 bytes)");
  EXPECT_EQ(kept[0].found, std::optional<std::string>(std::string(10, 'f')));
  // A few short reasons pass unchanged.
  const Reasons few(3, protocol::Reason{"expired", "nonce", std::string("x"), std::nullopt});
  EXPECT_EQ(bound_unvouched(few), few);
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = open_sqlite_store((dir_.path() / "audit.db").string());
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    ASSERT_TRUE(store_->migrate());
  }
  test::TempDir dir_{"warden-audit"};
  FakeClock clock_{1'700'000'000};
  std::unique_ptr<Store> store_;
};

TEST_F(AuditLogTest, WritesTypedRecordsAtTheClocksTime) {
  AuditLog log(*store_, clock_, {});
  log.write(Event{0, "d1", Action::kDeviceState, Decision::kOk, "", "",
                  DeviceStateSet{"alice", "revoked", 3}});
  auto records = store_->query_audit({});
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 1U);
  EXPECT_EQ((*records)[0].time, 1'700'000'000);
  EXPECT_EQ((*records)[0].action, "admin.device_state");
  EXPECT_EQ((*records)[0].reasons_json,
            R"([{"actor":"alice","state":"revoked","tokens_revoked":3}])");
}

TEST_F(AuditLogTest, RefusalsOverTheBudgetBecomeOneSummary) {
  AuditLog log(*store_, clock_, {.refusal_burst = 2, .refusal_per_second = 1e-6, .max_devices = 8});
  for (int i = 0; i < 5; ++i) {
    log.refusal(Event{0, "d1", Action::kToken, Decision::kReject, "", "p", Reasons{}});
  }
  ASSERT_EQ(store_->query_audit({})->size(), 2U);
  log.housekeeping();
  auto records = store_->query_audit({});
  ASSERT_EQ(records->size(), 3U);
  EXPECT_EQ((*records)[0].action, "refusals_suppressed");
  EXPECT_EQ((*records)[0].decision, "reject");
  EXPECT_NE((*records)[0].reasons_json.find("3 refusals suppressed for device d1"),
            std::string::npos)
      << (*records)[0].reasons_json;
}

}  // namespace
}  // namespace warden::issuer::audit
