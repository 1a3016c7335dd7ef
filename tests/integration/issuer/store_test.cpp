// One Store suite, run against SQLite and a private PostgreSQL server.
#include "issuer/store/store.h"

#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "issuer/store/sql.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"

namespace warden::issuer {
namespace {

struct SqliteBackend {
  static void SetUpTestSuite() {}
  static void TearDownTestSuite() {}
  std::unique_ptr<test::TempDir> dir = std::make_unique<test::TempDir>("warden-store");
  Result<std::unique_ptr<Store>> open(const std::string& /*name*/) {
    return open_sqlite_store((dir->path() / "issuer.db").string());
  }
  /// Another store on the database open() made: a second replica.
  Result<std::unique_ptr<Store>> reopen() { return open(""); }
  Result<std::unique_ptr<sql::Connection>> connect() {
    return sql::connect_sqlite((dir->path() / "issuer.db").string());
  }
};

struct PostgresBackend {
  static inline std::unique_ptr<test::Postgres> server;
  static inline std::string why;
  static void SetUpTestSuite() {
    if (!server) server = test::Postgres::start(why);
  }
  static void TearDownTestSuite() { server.reset(); }
  Result<std::unique_ptr<Store>> open(const std::string& name) {
    if (!server) return fail(ErrorCode::kUnavailable, "no postgres: " + why);
    conninfo = server->create_database(name);
    return open_postgres_store(conninfo, 4);
  }
  Result<std::unique_ptr<Store>> reopen() { return open_postgres_store(conninfo, 4); }
  Result<std::unique_ptr<sql::Connection>> connect() { return sql::connect_postgres(conninfo); }
  std::string conninfo;
};

template <class Backend>
class StoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Backend::SetUpTestSuite(); }
  static void TearDownTestSuite() { Backend::TearDownTestSuite(); }

  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto store = backend_.open("t_" + name);
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    auto migrated = store_->migrate();
    ASSERT_TRUE(migrated) << migrated.error().message;
  }

  static Device make_device(const std::string& id) {
    Device d;
    d.id = id;
    d.ek_public_hash = "ek-" + id;
    d.ek_cert_pem = "-----BEGIN CERTIFICATE-----\n...";
    d.ak_public = {0x00, 0x01, 0x02, 0xff};
    d.ak_name = {0x00, 0x0b, 0xaa};
    d.group = "edge";
    d.created_at = 1000;
    return d;
  }

  Backend backend_;
  std::unique_ptr<Store> store_;
};

using Backends = ::testing::Types<SqliteBackend, PostgresBackend>;
class BackendNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, SqliteBackend> ? "Sqlite" : "Postgres";
  }
};
TYPED_TEST_SUITE(StoreTest, Backends, BackendNames);

TYPED_TEST(StoreTest, MigrationsAreVersionedAndIdempotent) {
  auto v = this->store_->schema_version();
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 6);
  ASSERT_TRUE(this->store_->migrate());
  EXPECT_EQ(*this->store_->schema_version(), 6);
  EXPECT_TRUE(this->store_->ping());
}

TYPED_TEST(StoreTest, DevicesRoundTripAndRejectDuplicates) {
  auto d = this->make_device("dev-a");
  ASSERT_TRUE(this->store_->add_device(d));
  auto got = this->store_->get_device("dev-a");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->ek_public_hash, "ek-dev-a");
  EXPECT_EQ(got->ak_public, d.ak_public);
  EXPECT_EQ(got->ak_name, d.ak_name);
  EXPECT_EQ(got->group, "edge");
  EXPECT_EQ(got->state, DeviceState::kEnabled);
  EXPECT_FALSE(got->reset_count.has_value());
  EXPECT_EQ(got->last_reasons_json, "[]");

  auto dup = this->store_->add_device(d);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::kAlreadyExists);
  auto other = this->make_device("dev-b");
  other.ek_public_hash = d.ek_public_hash;  // same EK, other id
  EXPECT_EQ(this->store_->add_device(other).error().code, ErrorCode::kAlreadyExists);

  auto by_ek = this->store_->find_device_by_ek("ek-dev-a");
  ASSERT_TRUE(by_ek && by_ek->has_value());
  EXPECT_EQ((*by_ek)->id, "dev-a");
  EXPECT_FALSE(this->store_->find_device_by_ek("nope")->has_value());
  EXPECT_EQ(this->store_->get_device("nope").error().code, ErrorCode::kNotFound);
}

TYPED_TEST(StoreTest, ListsDevicesInPages) {
  for (const char* id : {"c", "a", "b", "d"})
    ASSERT_TRUE(this->store_->add_device(this->make_device(id)));
  auto first = this->store_->list_devices(2);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 2U);
  EXPECT_EQ((*first)[0].id, "a");
  EXPECT_EQ((*first)[1].id, "b");
  auto second = this->store_->list_devices(10, "b");
  ASSERT_EQ(second->size(), 2U);
  EXPECT_EQ((*second)[0].id, "c");
}

TYPED_TEST(StoreTest, RevokesEnablesAndRecordsAttestation) {
  ASSERT_TRUE(this->store_->add_device(this->make_device("d1")));
  ASSERT_TRUE(this->store_->set_device_state("d1", DeviceState::kRevoked));
  EXPECT_EQ(this->store_->get_device("d1")->state, DeviceState::kRevoked);
  ASSERT_TRUE(this->store_->set_device_state("d1", DeviceState::kEnabled));
  EXPECT_EQ(this->store_->get_device("d1")->state, DeviceState::kEnabled);
  EXPECT_EQ(this->store_->set_device_state("zz", DeviceState::kRevoked).error().code,
            ErrorCode::kNotFound);

  AttestationUpdate u{7,
                      3,
                      5000,
                      "reject",
                      R"([{"code":"pcr_digest_mismatch"}])",
                      std::nullopt,
                      std::nullopt,
                      std::nullopt};
  ASSERT_TRUE(this->store_->record_attestation("d1", u));
  auto d = this->store_->get_device("d1");
  EXPECT_EQ(d->reset_count, 7U);
  EXPECT_EQ(d->restart_count, 3U);
  EXPECT_EQ(d->last_attested_at, 5000);
  EXPECT_EQ(d->last_verdict, "reject");
  EXPECT_EQ(d->last_reasons_json, u.reasons_json);
}

// Issue 31: the group is the operator's, the request is kept apart; a revocation is dated.
TYPED_TEST(StoreTest, GroupIsAssignedApartFromTheRequestAndRevocationIsDated) {
  auto d = this->make_device("d1");
  d.group.clear();
  d.requested_group = "payments-prod";
  ASSERT_TRUE(this->store_->add_device(d));
  auto got = this->store_->get_device("d1");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->group, "");
  EXPECT_EQ(got->requested_group, "payments-prod");
  EXPECT_EQ(got->revoked_at, 0);
  ASSERT_TRUE(this->store_->set_device_group("d1", "payments-eu"));
  got = this->store_->get_device("d1");
  EXPECT_EQ(got->group, "payments-eu");
  EXPECT_EQ(got->requested_group, "payments-prod");
  EXPECT_EQ(this->store_->set_device_group("zz", "x").error().code, ErrorCode::kNotFound);

  ASSERT_TRUE(this->store_->revoke_device("d1", 5000));
  got = this->store_->get_device("d1");
  EXPECT_EQ(got->state, DeviceState::kRevoked);
  EXPECT_EQ(got->revoked_at, 5000);
  ASSERT_TRUE(this->store_->set_device_state("d1", DeviceState::kEnabled));
  ASSERT_TRUE(this->store_->revoke_device("d1", 4000));  // a slower replica's older revocation
  got = this->store_->get_device("d1");
  EXPECT_EQ(got->state, DeviceState::kRevoked);
  EXPECT_EQ(got->revoked_at, 5000);
  EXPECT_EQ(this->store_->revoke_device("zz", 1).error().code, ErrorCode::kNotFound);
}

// Issue 31: one pending enrollment per EK (the newest wins) and a bound on all of them (the
// oldest go first).
TYPED_TEST(StoreTest, PendingEnrollmentsAreOnePerEkAndBounded) {
  auto pending = [](std::string id, std::string ek, std::int64_t created) {
    return Enrollment{std::move(id), std::move(ek), "", {1}, {1}, "req", {2}, created, 9999};
  };
  ASSERT_TRUE(this->store_->put_enrollment(pending("a1", "ek-a", 10), 3));
  ASSERT_TRUE(this->store_->put_enrollment(pending("a2", "ek-a", 11), 3));
  EXPECT_EQ(this->store_->take_enrollment("a1").error().code, ErrorCode::kNotFound);
  auto a2 = this->store_->take_enrollment("a2");
  ASSERT_TRUE(a2) << a2.error().message;
  EXPECT_EQ(a2->requested_group, "req");

  for (int i = 0; i < 5; ++i) {
    const std::string n = std::to_string(i);
    ASSERT_TRUE(this->store_->put_enrollment(pending("e" + n, "ek-" + n, 100 + i), 3));
  }
  // Bound 3: the two oldest were evicted, the three newest remain.
  EXPECT_EQ(this->store_->take_enrollment("e0").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(this->store_->take_enrollment("e1").error().code, ErrorCode::kNotFound);
  for (const char* id : {"e2", "e3", "e4"}) EXPECT_TRUE(this->store_->take_enrollment(id)) << id;
}

TYPED_TEST(StoreTest, NonceIsConsumedOnceAndOlderNoncesAreRefused) {
  ASSERT_TRUE(this->store_->add_device(this->make_device("d1")));
  Bytes n1(32, 1), n2(32, 2), n0(32, 9);
  ASSERT_TRUE(this->store_->consume_nonce("d1", n1, 100));
  auto again = this->store_->consume_nonce("d1", n1, 100);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kReplay);
  ASSERT_TRUE(this->store_->consume_nonce("d1", n2, 101));
  EXPECT_EQ(this->store_->consume_nonce("d1", n0, 50).error().code, ErrorCode::kReplay);
  EXPECT_EQ(this->store_->consume_nonce("zz", n0, 500).error().code, ErrorCode::kNotFound);
}

TYPED_TEST(StoreTest, ConcurrentNonceUseAcceptsExactlyOne) {
  ASSERT_TRUE(this->store_->add_device(this->make_device("d1")));
  Bytes nonce(32, 7);
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (this->store_->consume_nonce("d1", nonce, 100)) ++accepted;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 1);
}

TYPED_TEST(StoreTest, EnrollmentIsTakenOnce) {
  Enrollment e{"enr-1", "ek", "", {1, 2}, {3}, "g", {9, 9}, 10, 20};
  ASSERT_TRUE(this->store_->put_enrollment(e, 100));
  Enrollment same_id = e;
  same_id.ek_public_hash = "other-ek";
  EXPECT_EQ(this->store_->put_enrollment(same_id, 100).error().code, ErrorCode::kAlreadyExists);
  auto taken = this->store_->take_enrollment("enr-1");
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->secret_hash, (Bytes{9, 9}));
  EXPECT_EQ(taken->ak_public, (Bytes{1, 2}));
  EXPECT_EQ(this->store_->take_enrollment("enr-1").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(
      this->store_->put_enrollment(Enrollment{"old", "ek2", "", {1}, {1}, "", {1}, 1, 5}, 100));
  ASSERT_TRUE(
      this->store_->put_enrollment(Enrollment{"new", "ek3", "", {1}, {1}, "", {1}, 1, 50}, 100));
  EXPECT_EQ(*this->store_->purge_enrollments(10), 1U);
  EXPECT_TRUE(this->store_->take_enrollment("new"));
}

// DELETE /admin/v1/devices/{id}: the record goes, so that the EK can enroll again; the tokens
// and the audit history stay.
TYPED_TEST(StoreTest, RemovedDeviceIsGoneAndItsEkCanEnrollAgain) {
  auto d = this->make_device("dev-r");
  ASSERT_TRUE(this->store_->add_device(d));
  ASSERT_TRUE(this->store_->add_token({"jr", "dev-r", "L", 1, 100, 500, false}));
  ASSERT_TRUE(this->store_->append_audit({0, 5, "dev-r", "attest", "accept", "", "", "[]"}));
  ASSERT_TRUE(this->store_->remove_device("dev-r"));
  EXPECT_EQ(this->store_->get_device("dev-r").error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(this->store_->find_device_by_ek(d.ek_public_hash)->has_value());
  EXPECT_EQ(this->store_->remove_device("dev-r").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(this->store_->get_token("jr"));
  EXPECT_EQ(this->store_->query_audit({std::string("dev-r"), std::nullopt, 10})->size(), 1U);
  d.id = "dev-r2";
  EXPECT_TRUE(this->store_->add_device(d)) << "the same EK enrolls again";
}

TYPED_TEST(StoreTest, PolicyVersionsKeepOneActive) {
  EXPECT_FALSE(this->store_->active_policy()->has_value());
  auto p1 = this->store_->add_policy("v1", "a = 1\n", 10, true);
  ASSERT_TRUE(p1) << p1.error().message;
  auto p2 = this->store_->add_policy("v2", "a = 2\n", 20, true);
  ASSERT_TRUE(p2);
  EXPECT_GT(p2->id, p1->id);
  auto active = this->store_->active_policy();
  ASSERT_TRUE(active && active->has_value());
  EXPECT_EQ((*active)->version, "v2");
  EXPECT_EQ((*active)->toml, "a = 2\n");
  ASSERT_TRUE(this->store_->add_policy("draft", "a = 3\n", 30, false));
  EXPECT_EQ((*this->store_->active_policy())->version, "v2");
  auto all = this->store_->list_policies();
  ASSERT_EQ(all->size(), 3U);
  EXPECT_FALSE((*all)[0].active);
  EXPECT_TRUE((*all)[1].active);
}

TYPED_TEST(StoreTest, AuditIsAppendOnlyAndFiltered) {
  for (int i = 0; i < 5; ++i) {
    AuditRecord a{0,    100 + i, i % 2 == 0 ? "even" : "odd", "attest", "accept", "sha256:ab",
                  "v1", "[]"};
    auto id = this->store_->append_audit(a);
    ASSERT_TRUE(id) << id.error().message;
  }
  auto all = this->store_->query_audit({});
  ASSERT_EQ(all->size(), 5U);
  EXPECT_EQ((*all)[0].time, 104);  // newest first
  auto even = this->store_->query_audit({std::string("even"), std::nullopt, 100});
  EXPECT_EQ(even->size(), 3U);
  auto since = this->store_->query_audit({std::string("even"), 102, 100});
  EXPECT_EQ(since->size(), 2U);
  auto limited = this->store_->query_audit({std::nullopt, std::nullopt, 2});
  EXPECT_EQ(limited->size(), 2U);
  EXPECT_EQ((*limited)[0].policy_version, "v1");
}

// Issue 32: a revoke request is applied once, whichever replica sees it, by its unique key.
TYPED_TEST(StoreTest, RevokeRequestIsRecordedOnceAcrossReplicas) {
  auto other = this->backend_.reopen();
  ASSERT_TRUE(other) << other.error().message;
  std::atomic<int> recorded{0};
  std::atomic<int> replays{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    Store& store = i % 2 == 0 ? *this->store_ : **other;
    threads.emplace_back([&store, &recorded, &replays] {
      auto r = store.record_revoke_request("d1", 5000, "aa", 4000);
      if (r) {
        ++recorded;
      } else if (r.error().code == ErrorCode::kReplay) {
        ++replays;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(recorded.load(), 1);
  EXPECT_EQ(replays.load(), 7);
  // Another request of the same device and second (another digest) is another request.
  EXPECT_TRUE(this->store_->record_revoke_request("d1", 5000, "bb", 4000));
  EXPECT_EQ(this->store_->record_revoke_request("d1", 5000, "bb", 4000).error().code,
            ErrorCode::kReplay);
  // Another timestamp or another device is another request.
  EXPECT_TRUE(this->store_->record_revoke_request("d1", 5001, "aa", 4000));
  EXPECT_TRUE((*other)->record_revoke_request("d2", 5000, "aa", 4000));
  // Requests signed before forget_before are forgotten (their timestamps are refused anyway).
  EXPECT_TRUE(this->store_->record_revoke_request("d3", 9000, "aa", 5001));
  EXPECT_TRUE(this->store_->record_revoke_request("d1", 5000, "aa", 5001));
  EXPECT_EQ(this->store_->record_revoke_request("d1", 5001, "aa", 5001).error().code,
            ErrorCode::kReplay);
}

// The upgrade to schema 5 keeps the revoke requests applied under schema 4 (found in the audit).
TYPED_TEST(StoreTest, SchemaFiveUpgradeKeepsAppliedRevokeRequests) {
  {
    auto c = this->backend_.connect();
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(
        (*c)->exec_script("DROP TABLE revoke_requests; DROP TABLE ssf_receivers; "
                          "DROP TABLE ssf_streams; DROP TABLE ssf_events; "
                          "DROP TABLE ssf_deliveries; "
                          "DELETE FROM schema_version WHERE version >= 5;"));
  }
  ASSERT_EQ(*this->store_->schema_version(), 4);
  AuditRecord applied{
      0,    100, "d1", "revoke",
      "ok", "",  "",   R"([{"timestamp":1700000000,"reason":"x","revoked":1,"jtis":[]}])"};
  ASSERT_TRUE(this->store_->append_audit(applied));
  AuditRecord other{0, 101, "d1", "attest", "accept", "", "", R"([{"timestamp":1700000005}])"};
  ASSERT_TRUE(this->store_->append_audit(other));
  ASSERT_TRUE(this->store_->migrate());
  EXPECT_EQ(*this->store_->schema_version(), 6);
  EXPECT_EQ(this->store_->record_revoke_request("d1", 1700000000, "aa", 0).error().code,
            ErrorCode::kReplay);
  EXPECT_TRUE(this->store_->record_revoke_request("d1", 1700000005, "aa", 0));
  // The applied request's digest is not known: every request of that second is refused.
  EXPECT_EQ(this->store_->record_revoke_request("d1", 1700000000, "bb", 0).error().code,
            ErrorCode::kReplay);
}

TYPED_TEST(StoreTest, StatusListAllocatesAtomicallyAndSetsBits) {
  ASSERT_TRUE(this->store_->create_status_list("L1", 64));
  EXPECT_EQ(this->store_->create_status_list("L1", 64).error().code, ErrorCode::kAlreadyExists);
  std::mutex mu;
  std::set<std::uint64_t> seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 16; ++i) {
        auto idx = this->store_->allocate_status_index("L1");
        ASSERT_TRUE(idx) << idx.error().message;
        std::lock_guard lock(mu);
        EXPECT_TRUE(seen.insert(*idx).second) << "index handed out twice: " << *idx;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen.size(), 64U);
  EXPECT_EQ(this->store_->allocate_status_index("L1").error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(this->store_->allocate_status_index("nope").error().code, ErrorCode::kNotFound);

  ASSERT_TRUE(this->store_->set_status_bit("L1", 0, true));
  ASSERT_TRUE(this->store_->set_status_bit("L1", 9, true));
  ASSERT_TRUE(this->store_->set_status_bit("L1", 9, true));  // idempotent
  ASSERT_TRUE(this->store_->set_status_bit("L1", 63, true));
  ASSERT_TRUE(this->store_->set_status_bit("L1", 63, false));
  EXPECT_EQ(this->store_->set_status_bit("L1", 64, true).error().code, ErrorCode::kInvalidArgument);
  auto list = this->store_->get_status_list("L1");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->bits, 64U);
  EXPECT_EQ(list->next_index, 64U);
  ASSERT_EQ(list->bytes.size(), 8U);
  EXPECT_EQ(list->bytes[0], 0x01);
  EXPECT_EQ(list->bytes[1], 0x02);
  EXPECT_EQ(list->bytes[7], 0x00);
}

TYPED_TEST(StoreTest, SigningKeysAreRecordedAndRetired) {
  ASSERT_TRUE(this->store_->put_signing_key({"k1", "ES256", "PEM1", 10, 0, 0}));
  ASSERT_TRUE(this->store_->put_signing_key({"k2", "ES256", "PEM2", 20, 0, 0}));
  ASSERT_TRUE(this->store_->retire_signing_key("k1", 20, 920));
  auto keys = this->store_->list_signing_keys();
  ASSERT_EQ(keys->size(), 2U);
  EXPECT_EQ((*keys)[0].kid, "k1");
  EXPECT_EQ((*keys)[0].retired_at, 20);
  EXPECT_EQ((*keys)[0].not_after, 920);
  EXPECT_EQ((*keys)[1].retired_at, 0);
  EXPECT_EQ(this->store_->retire_signing_key("k9", 1, 1).error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace warden::issuer

namespace warden::issuer {
namespace {

TYPED_TEST(StoreTest, AttestationKeepsBindingKeyAndImaStateUntilReplaced) {
  ASSERT_TRUE(this->store_->add_device(this->make_device("d1")));
  auto fresh = this->store_->get_device("d1");
  ASSERT_TRUE(fresh);
  EXPECT_TRUE(fresh->binding_key_public.empty());
  EXPECT_EQ(fresh->ima_entries, 0U);
  EXPECT_TRUE(fresh->ima_state.empty());

  AttestationUpdate pass{1, 0, 100, "accept", "[]", Bytes{0x00, 0x5a, 0x01}, 42, Bytes{7, 7, 7}};
  ASSERT_TRUE(this->store_->record_attestation("d1", pass));
  auto d = this->store_->get_device("d1");
  EXPECT_EQ(d->binding_key_public, (Bytes{0x00, 0x5a, 0x01}));
  EXPECT_EQ(d->ima_entries, 42U);
  EXPECT_EQ(d->ima_state, (Bytes{7, 7, 7}));

  // A refusal records the verdict but leaves the binding key and IMA state alone.
  AttestationUpdate refused{
      1, 0, 200, "reject", R"([{"code":"x"}])", std::nullopt, std::nullopt, std::nullopt};
  ASSERT_TRUE(this->store_->record_attestation("d1", refused));
  d = this->store_->get_device("d1");
  EXPECT_EQ(d->last_verdict, "reject");
  EXPECT_EQ(d->binding_key_public, (Bytes{0x00, 0x5a, 0x01}));
  EXPECT_EQ(d->ima_entries, 42U);
}

TYPED_TEST(StoreTest, StatusIndexBlocksAreDisjointAndEndAtTheListSize) {
  ASSERT_TRUE(this->store_->create_status_list("B", 100));
  std::mutex mu;
  std::set<std::uint64_t> seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        auto block = this->store_->allocate_status_indexes("B", 16);
        if (!block) {
          EXPECT_EQ(block.error().code, ErrorCode::kLimitExceeded) << block.error().message;
          return;
        }
        EXPECT_LT(block->first, block->second);
        EXPECT_LE(block->second, 100U);
        std::lock_guard lock(mu);
        for (auto i = block->first; i < block->second; ++i)
          EXPECT_TRUE(seen.insert(i).second) << "index handed out twice: " << i;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen.size(), 100U);
  EXPECT_EQ(this->store_->allocate_status_indexes("nope", 16).error().code, ErrorCode::kNotFound);
}

TYPED_TEST(StoreTest, TokenIssueRecordsTokenAndAuditTogether) {
  ASSERT_TRUE(this->store_->add_device(this->make_device("d1")));
  AuditRecord a{0, 100, "d1", "token", "accept", "", "v1", R"([{"jti":"j1"}])"};
  ASSERT_TRUE(this->store_->record_token_issue({"j1", "d1", "L", 0, 100, 400, false}, a));
  auto token = this->store_->get_token("j1");
  ASSERT_TRUE(token) << token.error().message;
  EXPECT_EQ(token->expires_at, 400);
  // A duplicate jti fails as a whole: no second audit record.
  EXPECT_EQ(this->store_->record_token_issue({"j1", "d1", "L", 1, 100, 400, false}, a).error().code,
            ErrorCode::kAlreadyExists);
  auto audit = this->store_->query_audit({std::string("d1"), std::nullopt, 10});
  ASSERT_TRUE(audit) << audit.error().message;
  ASSERT_EQ(audit->size(), 1U);
  EXPECT_EQ((*audit)[0].action, "token");
  EXPECT_EQ((*audit)[0].reasons_json, R"([{"jti":"j1"}])");
}

// Concurrent issues are committed in shared transactions (group commit): each call returns only
// once its own records are committed, and a refused record fails alone, not its batch.
TYPED_TEST(StoreTest, ConcurrentTokenIssuesCommitBeforeReturningAndFailAlone) {
  ASSERT_TRUE(this->store_->add_device(this->make_device("d1")));
  ASSERT_TRUE(this->store_->record_token_issue(
      {"taken", "d1", "L", 0, 100, 400, false},
      {0, 100, "d1", "token", "accept", "", "v1", R"([{"jti":"taken"}])"}));
  constexpr int kThreads = 12;
  constexpr int kEach = 30;
  std::atomic<int> accepted{0};
  std::atomic<int> duplicates{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < kEach; ++k) {
        const bool dup = k % 7 == 3;
        const std::string jti = dup ? "taken" : "j" + std::to_string(i) + "-" + std::to_string(k);
        const auto index = static_cast<std::uint64_t>(1 + i * kEach + k);
        auto issued = this->store_->record_token_issue(
            {jti, "d1", "L", index, 100, 400, false},
            {0, 100, "d1", "token", "accept", "", "v1", "[{\"jti\":\"" + jti + "\"}]"});
        if (dup) {
          if (!issued && issued.error().code == ErrorCode::kAlreadyExists) {
            ++duplicates;
          } else {
            ++wrong;
          }
          continue;
        }
        // Returned means committed: visible at once to any connection.
        auto read = this->store_->get_token(jti);
        if (issued && read && read->status_index == index) {
          ++accepted;
        } else {
          ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  int dups_each = 0;
  for (int k = 0; k < kEach; ++k) dups_each += k % 7 == 3 ? 1 : 0;
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(duplicates.load(), kThreads * dups_each);
  EXPECT_EQ(accepted.load(), kThreads * (kEach - dups_each));
  // One audit record per accepted token (plus the first), none for a refused one.
  auto audit = this->store_->query_audit({std::string("d1"), std::nullopt, 1000});
  ASSERT_TRUE(audit) << audit.error().message;
  EXPECT_EQ(audit->size(), static_cast<std::size_t>(accepted.load() + 1));
}

// The non-blocking form the HTTP server uses: queued issues complete on the store's commit
// thread, each only once its records are committed (visible to any connection when `done` runs),
// and a duplicate fails alone while the records queued with it commit.
TYPED_TEST(StoreTest, AsyncTokenIssuesCompleteAfterCommitOffTheCallersThread) {
  ASSERT_TRUE(this->store_->add_device(this->make_device("d1")));
  ASSERT_TRUE(this->store_->record_token_issue(
      {"taken", "d1", "L", 0, 100, 400, false},
      {0, 100, "d1", "token", "accept", "", "v1", R"([{"jti":"taken"}])"}));
  const auto before = this->store_->issue_commit_stats();
  constexpr int kIssues = 200;
  const auto caller = std::this_thread::get_id();
  std::mutex mu;
  std::condition_variable cv;
  int completed = 0;
  std::atomic<int> accepted{0};
  std::atomic<int> duplicates{0};
  std::atomic<int> wrong{0};
  for (int k = 0; k < kIssues; ++k) {
    const bool dup = k % 9 == 4;
    const std::string jti = dup ? "taken" : "a" + std::to_string(k);
    const auto index = static_cast<std::uint64_t>(1 + k);
    this->store_->record_token_issue_async(
        {jti, "d1", "L", index, 100, 400, false},
        {0, 100, "d1", "token", "accept", "", "v1", "[{\"jti\":\"" + jti + "\"}]"},
        [&, jti, index, dup](Status issued) {
          if (std::this_thread::get_id() == caller) {
            ++wrong;  // a server thread must not run the commit
          } else if (dup) {
            if (!issued && issued.error().code == ErrorCode::kAlreadyExists) {
              ++duplicates;
            } else {
              ++wrong;
            }
          } else {
            auto read = this->store_->get_token(jti);
            if (issued && read && read->status_index == index) {
              ++accepted;
            } else {
              ++wrong;
            }
          }
          std::lock_guard lock(mu);
          ++completed;
          cv.notify_all();
        });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return completed == kIssues; }))
        << completed << " of " << kIssues << " issues completed";
  }
  int dups = 0;
  for (int k = 0; k < kIssues; ++k) dups += k % 9 == 4 ? 1 : 0;
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(duplicates.load(), dups);
  EXPECT_EQ(accepted.load(), kIssues - dups);
  const auto after = this->store_->issue_commit_stats();
  EXPECT_EQ(after.records - before.records, static_cast<std::uint64_t>(kIssues));
  EXPECT_GE(after.commits - before.commits, 1U);
  auto audit = this->store_->query_audit({std::string("d1"), std::nullopt, 1000});
  ASSERT_TRUE(audit) << audit.error().message;
  EXPECT_EQ(audit->size(), static_cast<std::size_t>(accepted.load() + 1));
}

TYPED_TEST(StoreTest, AttestationOutcomeConsumesTheNonceAndRecordsTogether) {
  ASSERT_TRUE(this->store_->add_device(this->make_device("d1")));
  Bytes nonce(32, 3);
  AttestationUpdate u;
  u.reset_count = 4;
  u.attested_at = 100;
  u.verdict = "accept";
  u.ima_entries = 7;
  AuditRecord a{0, 100, "d1", "attest", "accept", "ev", "v1", "[]"};
  ASSERT_TRUE(this->store_->record_attestation_outcome("d1", nonce, 200, u, a));
  auto d = this->store_->get_device("d1");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->last_verdict, "accept");
  EXPECT_EQ(d->ima_entries, 7U);
  // The same nonce again: refused as a replay, and nothing of it is written.
  u.verdict = "reject";
  u.ima_entries = 9;
  EXPECT_EQ(this->store_->record_attestation_outcome("d1", nonce, 200, u, a).error().code,
            ErrorCode::kReplay);
  d = this->store_->get_device("d1");
  EXPECT_EQ(d->last_verdict, "accept");
  EXPECT_EQ(d->ima_entries, 7U);
  auto audit = this->store_->query_audit({std::string("d1"), std::nullopt, 10});
  ASSERT_TRUE(audit) << audit.error().message;
  EXPECT_EQ(audit->size(), 1U);
  EXPECT_EQ(this->store_->record_attestation_outcome("zz", Bytes(32, 4), 300, u, a).error().code,
            ErrorCode::kNotFound);
}

TYPED_TEST(StoreTest, TokensAreRecordedListedAndRevokedOnce) {
  ASSERT_TRUE(this->store_->add_device(this->make_device("d1")));
  ASSERT_TRUE(this->store_->add_device(this->make_device("d2")));
  ASSERT_TRUE(this->store_->add_token({"j1", "d1", "L", 0, 100, 400, false}));
  ASSERT_TRUE(this->store_->add_token({"j2", "d1", "L", 1, 110, 150, false}));  // expires early
  ASSERT_TRUE(this->store_->add_token({"j3", "d1", "L", 2, 120, 500, false}));
  ASSERT_TRUE(this->store_->add_token({"j4", "d2", "L", 3, 130, 500, false}));
  EXPECT_EQ(this->store_->add_token({"j1", "d2", "L", 9, 1, 2, false}).error().code,
            ErrorCode::kAlreadyExists);

  auto t = this->store_->get_token("j3");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->device_id, "d1");
  EXPECT_EQ(t->list_id, "L");
  EXPECT_EQ(t->status_index, 2U);
  EXPECT_EQ(t->expires_at, 500);
  EXPECT_FALSE(t->revoked);
  EXPECT_EQ(this->store_->get_token("nope").error().code, ErrorCode::kNotFound);

  auto live = this->store_->live_tokens("d1", 200);
  ASSERT_TRUE(live);
  ASSERT_EQ(live->size(), 2U);
  EXPECT_EQ((*live)[0].jti, "j1");
  EXPECT_EQ((*live)[1].jti, "j3");

  auto first = this->store_->mark_token_revoked("j1");
  ASSERT_TRUE(first);
  EXPECT_TRUE(*first);
  auto second = this->store_->mark_token_revoked("j1");
  ASSERT_TRUE(second);
  EXPECT_FALSE(*second);
  EXPECT_EQ(this->store_->mark_token_revoked("nope").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(this->store_->get_token("j1")->revoked);
  live = this->store_->live_tokens("d1", 200);
  ASSERT_EQ(live->size(), 1U);
  EXPECT_EQ((*live)[0].jti, "j3");
}

// The database, its WAL and its shared-memory index are the issuer's alone, whatever the umask
// of the process that opened them: a local user must not read pending enrollments or poll the
// WAL. Files an older issuer left readable are tightened.
TEST(SqliteStoreFiles, AreOwnerOnlyWhateverTheUmask) {
  test::TempDir dir("warden-store-mode");
  const std::string path = (dir.path() / "issuer.db").string();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    EXPECT_FALSE(std::filesystem::exists(path + suffix));
  }
  const mode_t old = ::umask(022);
  {
    auto store = open_sqlite_store(path);
    ASSERT_TRUE(store) << store.error().message;
    ASSERT_TRUE((*store)->migrate());
    Device d;
    d.id = "d";
    d.ek_public_hash = "ek";
    d.ak_public = {1};
    d.ak_name = {2};
    ASSERT_TRUE((*store)->add_device(d));
    for (const char* suffix : {"", "-wal", "-shm"}) {
      struct stat st {};
      ASSERT_EQ(::stat((path + suffix).c_str(), &st), 0) << suffix;
      EXPECT_EQ(st.st_mode & 0777, 0600U) << path << suffix;
    }
  }
  // An existing, world-readable database (the demo's, before): opening it tightens it.
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  {
    auto store = open_sqlite_store(path);
    ASSERT_TRUE(store) << store.error().message;
    ASSERT_TRUE((*store)->get_device("d"));
    for (const char* suffix : {"", "-wal", "-shm"}) {
      struct stat st {};
      if (::stat((path + suffix).c_str(), &st) != 0) continue;
      EXPECT_EQ(st.st_mode & 0777, 0600U) << path << suffix;
    }
  }
  ::umask(old);
}

// ---- Shared Signals (schema 6) ---------------------------------------------------------------

SsfStream ssf_stream(const std::string& id, const std::string& receiver, std::string_view method,
                     std::vector<std::string> types) {
  SsfStream s;
  s.id = id;
  s.receiver = receiver;
  s.delivery_method = std::string(method);
  s.endpoint_url = "https://rp.test/" + id;
  s.authorization_header = "Bearer rp-secret";
  s.events_requested = types;
  s.events_delivered = std::move(types);
  s.aud = receiver;
  s.created_at = s.updated_at = 10;
  return s;
}

constexpr std::string_view kPushUrn = "urn:ietf:rfc:8935";
constexpr std::string_view kPollUrn = "urn:ietf:rfc:8936";
const std::string kRevokedType =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const std::string kComplianceType =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";

TYPED_TEST(StoreTest, SsfReceiversAreFoundByTokenHashAndRemovalDisablesStreams) {
  Store& st = *this->store_;
  ASSERT_TRUE(st.add_ssf_receiver({"rp1", "hash1", 5}));
  EXPECT_EQ(st.add_ssf_receiver({"rp1", "hash2", 5}).error().code, ErrorCode::kAlreadyExists);
  auto found = st.find_ssf_receiver("hash1");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->name, "rp1");
  EXPECT_FALSE(*st.find_ssf_receiver("nope"));
  ASSERT_TRUE(st.add_ssf_stream(ssf_stream("s1", "rp1", kPushUrn, {kRevokedType}), 2));
  ASSERT_TRUE(st.add_ssf_stream(ssf_stream("s2", "rp1", kPollUrn, {kRevokedType}), 2));
  EXPECT_EQ(st.add_ssf_stream(ssf_stream("s3", "rp1", kPollUrn, {}), 2).error().code,
            ErrorCode::kLimitExceeded);
  auto got = st.get_ssf_stream("s1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->authorization_header, "Bearer rp-secret");
  EXPECT_EQ(got->events_delivered, std::vector<std::string>{kRevokedType});
  ASSERT_TRUE(st.append_ssf_event({kRevokedType, "{}"}, 20));
  ASSERT_TRUE(st.remove_ssf_receiver("rp1", 30));
  EXPECT_EQ(st.remove_ssf_receiver("rp1", 30).error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(*st.find_ssf_receiver("hash1"));
  EXPECT_EQ(st.get_ssf_stream("s1")->status, "disabled");
  EXPECT_TRUE(st.pending_ssf("s2", 10)->empty());  // a disabled stream holds nothing
  ASSERT_TRUE(st.remove_ssf_stream("s2"));
  EXPECT_EQ(st.get_ssf_stream("s2").error().code, ErrorCode::kNotFound);
}

TYPED_TEST(StoreTest, SsfEventsFanOutToTheStreamsThatDeliverTheirType) {
  Store& st = *this->store_;
  ASSERT_TRUE(st.add_ssf_stream(ssf_stream("a", "rp", kPushUrn, {kRevokedType}), 16));
  ASSERT_TRUE(
      st.add_ssf_stream(ssf_stream("b", "rp", kPollUrn, {kRevokedType, kComplianceType}), 16));
  SsfStream paused = ssf_stream("c", "rp", kPollUrn, {kComplianceType});
  paused.status = "paused";
  ASSERT_TRUE(st.add_ssf_stream(paused, 16));
  SsfStream off = ssf_stream("d", "rp", kPollUrn, {kComplianceType});
  off.status = "disabled";
  ASSERT_TRUE(st.add_ssf_stream(off, 16));

  auto first = st.append_ssf_event({kRevokedType, R"({"n":1})"}, 100);
  auto second = st.append_ssf_event({kComplianceType, R"({"n":2})"}, 101);
  auto only = st.append_ssf_event({"verification", R"({"n":3})"}, 102, "a");
  ASSERT_TRUE(first && second && only);
  EXPECT_LT(*first, *second);
  auto of = [&](const char* id) {
    std::vector<std::int64_t> seqs;
    auto pending = st.pending_ssf(id, 10);
    EXPECT_TRUE(pending) << pending.error().message;
    for (const auto& d : *pending) seqs.push_back(d.event.seq);
    return seqs;
  };
  EXPECT_EQ(of("a"), (std::vector<std::int64_t>{*first, *only}));
  EXPECT_EQ(of("b"), (std::vector<std::int64_t>{*first, *second}));
  EXPECT_EQ(of("c"), (std::vector<std::int64_t>{*second}));  // held while paused
  EXPECT_TRUE(of("d").empty());
  auto pending = st.pending_ssf("b", 1);
  ASSERT_EQ(pending->size(), 1U);
  EXPECT_EQ(pending->front().event.payload_json, R"({"n":1})");
  EXPECT_EQ(pending->front().stream.id, "b");

  // An acknowledged delivery is done for its stream only.
  ASSERT_TRUE(st.ssf_delivered("b", *first, 110));
  EXPECT_EQ(of("b"), (std::vector<std::int64_t>{*second}));
  EXPECT_EQ(of("a"), (std::vector<std::int64_t>{*first, *only}));
}

TYPED_TEST(StoreTest, SsfPushLeasesAreExclusiveOrderedAndRetried) {
  Store& st = *this->store_;
  ASSERT_TRUE(st.add_ssf_stream(ssf_stream("p1", "rp", kPushUrn, {kRevokedType}), 16));
  ASSERT_TRUE(st.add_ssf_stream(ssf_stream("p2", "rp", kPushUrn, {kRevokedType}), 16));
  ASSERT_TRUE(st.add_ssf_stream(ssf_stream("poll", "rp", kPollUrn, {kRevokedType}), 16));
  auto e1 = st.append_ssf_event({kRevokedType, "{}"}, 100);
  auto e2 = st.append_ssf_event({kRevokedType, "{}"}, 100);
  ASSERT_TRUE(e1 && e2);

  // Two replicas: the second finds nothing while the first holds both streams' heads.
  auto other = this->backend_.reopen();
  ASSERT_TRUE(other) << other.error().message;
  auto a = st.claim_ssf_push("replica-a", 200, 30, 10);
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_EQ(a->size(), 2U);  // one per stream: the oldest of each, never the poll stream
  for (const auto& d : *a) {
    EXPECT_EQ(d.event.seq, *e1);
    EXPECT_EQ(d.stream.endpoint_url, "https://rp.test/" + d.stream.id);
    EXPECT_EQ(d.attempts, 0U);
  }
  EXPECT_TRUE((*other)->claim_ssf_push("replica-b", 200, 30, 10)->empty());
  EXPECT_TRUE(st.claim_ssf_push("replica-a", 229, 30, 10)->empty());

  // p1's head delivered: its next event is due. p2's head failed: it is retried later, in order.
  ASSERT_TRUE(st.ssf_delivered("p1", *e1, 201));
  ASSERT_TRUE(st.ssf_failed("p2", *e1, 260, "503"));
  auto b = (*other)->claim_ssf_push("replica-b", 202, 30, 10);
  ASSERT_EQ(b->size(), 1U);
  EXPECT_EQ(b->front().stream.id, "p1");
  EXPECT_EQ(b->front().event.seq, *e2);
  // At 260 p2's head is due again (attempt 2), and replica-b's lease of p1's e2 has run out.
  auto retry = st.claim_ssf_push("replica-a", 260, 30, 10);
  ASSERT_TRUE(retry);
  ASSERT_EQ(retry->size(), 2U);
  std::map<std::string, std::pair<std::int64_t, std::uint32_t>> by_stream;
  for (const auto& d : *retry) by_stream[d.stream.id] = {d.event.seq, d.attempts};
  EXPECT_EQ(by_stream["p2"], std::make_pair(*e1, 1U));
  EXPECT_EQ(by_stream["p1"], std::make_pair(*e2, 0U));
}

// Many claimers at once on one database: every delivery goes to exactly one of them.
TYPED_TEST(StoreTest, SsfConcurrentClaimersNeverShareADelivery) {
  Store& st = *this->store_;
  constexpr int kStreams = 12;
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(
        st.add_ssf_stream(ssf_stream("s" + std::to_string(i), "rp", kPushUrn, {kRevokedType}), 64));
  }
  ASSERT_TRUE(st.append_ssf_event({kRevokedType, "{}"}, 100));
  auto other = this->backend_.reopen();
  ASSERT_TRUE(other);
  std::vector<std::string> got_a;
  std::vector<std::string> got_b;
  std::thread ta([&] {
    for (int i = 0; i < 6; ++i) {
      auto c = st.claim_ssf_push("a", 200, 60, 2);
      if (c) {
        for (const auto& d : *c) got_a.push_back(d.stream.id);
      }
    }
  });
  std::thread tb([&] {
    for (int i = 0; i < 6; ++i) {
      auto c = (*other)->claim_ssf_push("b", 200, 60, 2);
      if (c) {
        for (const auto& d : *c) got_b.push_back(d.stream.id);
      }
    }
  });
  ta.join();
  tb.join();
  std::set<std::string> all(got_a.begin(), got_a.end());
  for (const auto& id : got_b) EXPECT_TRUE(all.insert(id).second) << id << " claimed twice";
  EXPECT_EQ(all.size() + 0, got_a.size() + got_b.size());
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kStreams));
}

TYPED_TEST(StoreTest, SsfUndeliveredEventsSurviveARestartAndRetentionDropsOnlyDelivered) {
  ASSERT_TRUE(this->store_->add_ssf_stream(ssf_stream("s", "rp", kPollUrn, {kRevokedType}), 16));
  auto old = this->store_->append_ssf_event({kRevokedType, "{}"}, 100);
  auto kept = this->store_->append_ssf_event({kRevokedType, "{}"}, 100);
  ASSERT_TRUE(old && kept);
  ASSERT_TRUE(this->store_->ssf_delivered("s", *old, 150));
  this->store_.reset();  // a restart
  auto reopened = this->backend_.reopen();
  ASSERT_TRUE(reopened);
  Store& st = **reopened;
  auto pending = st.pending_ssf("s", 10);
  ASSERT_EQ(pending->size(), 1U);
  EXPECT_EQ(pending->front().event.seq, *kept);
  auto purged = st.purge_ssf(151);
  ASSERT_TRUE(purged) << purged.error().message;
  EXPECT_EQ(*purged, 2U);  // the delivered row and its event; the pending one stays
  EXPECT_EQ(st.pending_ssf("s", 10)->size(), 1U);
  EXPECT_EQ(*st.purge_ssf(151), 0U);
}

TYPED_TEST(StoreTest, DeviceChangeRevokesWritesEventsAndIsAllOrNothing) {
  Store& st = *this->store_;
  ASSERT_TRUE(st.add_device(this->make_device("dev")));
  ASSERT_TRUE(st.create_status_list("L", 64));
  ASSERT_TRUE(st.add_token({"t1", "dev", "L", 1, 10, 1000, false}));
  ASSERT_TRUE(st.add_token({"t2", "dev", "L", 2, 11, 1000, false}));
  ASSERT_TRUE(st.add_token({"old", "dev", "L", 3, 1, 50, false}));  // expired at 100
  ASSERT_TRUE(st.add_ssf_stream(ssf_stream("s", "rp", kPollUrn, {kRevokedType}), 16));
  DeviceChange change;
  change.device_id = "dev";
  change.now = 100;
  change.revoke_live_tokens = true;
  change.device = DeviceChange::DeviceAction::kRevoke;
  change.events = [](const std::vector<TokenRecord>& revoked) {
    std::vector<SsfEventDraft> out;
    for (const auto& t : revoked) out.push_back({kRevokedType, "{\"jti\":\"" + t.jti + "\"}"});
    return out;
  };

  // The event write fails: neither the tokens nor the device change.
  {
    auto c = this->backend_.connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE((*c)->exec_script("ALTER TABLE ssf_events RENAME TO ssf_events_away;"));
  }
  EXPECT_FALSE(st.apply_device_change(change));
  EXPECT_FALSE(st.get_token("t1")->revoked);
  EXPECT_EQ(st.get_device("dev")->state, DeviceState::kEnabled);
  EXPECT_EQ(st.get_status_list("L")->bytes[0], 0);
  {
    auto c = this->backend_.connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE((*c)->exec_script("ALTER TABLE ssf_events_away RENAME TO ssf_events;"));
  }

  auto revoked = st.apply_device_change(change);
  ASSERT_TRUE(revoked) << revoked.error().message;
  ASSERT_EQ(revoked->size(), 2U);
  EXPECT_EQ((*revoked)[0].jti, "t1");
  EXPECT_EQ((*revoked)[1].jti, "t2");
  EXPECT_TRUE(st.get_token("t2")->revoked);
  EXPECT_FALSE(st.get_token("old")->revoked);
  EXPECT_EQ(st.get_device("dev")->state, DeviceState::kRevoked);
  EXPECT_EQ(st.get_device("dev")->revoked_at, 100);
  EXPECT_EQ(st.get_status_list("L")->bytes[0], 0b110);
  auto pending = st.pending_ssf("s", 10);
  ASSERT_EQ(pending->size(), 2U);
  EXPECT_EQ(pending->at(1).event.payload_json, R"({"jti":"t2"})");
  // Nothing left to flip: no events.
  EXPECT_TRUE(st.apply_device_change(change)->empty());
  EXPECT_EQ(st.pending_ssf("s", 10)->size(), 2U);

  // A named token already marked gets its bit again; removing an absent device fails whole.
  DeviceChange gone;
  gone.device_id = "nobody";
  gone.now = 100;
  gone.device = DeviceChange::DeviceAction::kRemove;
  gone.tokens = {*st.get_token("old")};
  EXPECT_EQ(st.apply_device_change(gone).error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(st.get_token("old")->revoked);
}

}  // namespace
}  // namespace warden::issuer
