// Pure pieces of the agent core: the token cache's ownership rules, the state files' parsers,
// the backoff schedule.
#include <gtest/gtest.h>

#include "agent/api/handlers.h"
#include "agent/issuer_client.h"
#include "agent/session_key.h"
#include "agent/state_store.h"
#include "agent/token_cache.h"
#include "tests/support/process.h"

namespace warden::agent {
namespace {

os::Selectors workload(uid_t uid, std::string container = {}) {
  os::Selectors s;
  s.uid = uid;
  s.container_id = std::move(container);
  s.exe_path = "/usr/bin/app";
  return s;
}

TEST(TokenCache, KeyIgnoresScopeOrderButNotIdentityOrFormat) {
  const auto id = workload_identity(workload(1000));
  EXPECT_EQ(TokenCache::key(id, "aud", {"b", "a"}, TokenFormat::kJwt, 300),
            TokenCache::key(id, "aud", {"a", "b", "a"}, TokenFormat::kJwt, 300));
  EXPECT_NE(TokenCache::key(id, "aud", {"a"}, TokenFormat::kJwt, 300),
            TokenCache::key(id, "aud", {"a"}, TokenFormat::kCwt, 300));
  EXPECT_NE(TokenCache::key(id, "aud", {}, TokenFormat::kJwt, 300),
            TokenCache::key(workload_identity(workload(1001)), "aud", {}, TokenFormat::kJwt, 300));
  // A separator inside a field cannot make two tuples collide.
  EXPECT_NE(TokenCache::key(id, std::string("a\0b", 3), {}, TokenFormat::kJwt, 300),
            TokenCache::key(id, "a", {"b"}, TokenFormat::kJwt, 300));
}

TEST(TokenCache, KeyHonoursTheRequestedTtl) {
  // A token issued for ttl 300 must not answer a request for ttl 1 (it would outlive it).
  const auto id = workload_identity(workload(1000));
  EXPECT_NE(TokenCache::key(id, "aud", {}, TokenFormat::kJwt, 300),
            TokenCache::key(id, "aud", {}, TokenFormat::kJwt, 1));
  TokenCache cache;
  cache.put(TokenCache::key(id, "aud", {}, TokenFormat::kJwt, 300),
            {"tok", "jti-1", 100, 400, "owner", "", 0, ""});
  EXPECT_EQ(cache.find(TokenCache::key(id, "aud", {}, TokenFormat::kJwt, 1), 251), nullptr);
  EXPECT_NE(cache.find(TokenCache::key(id, "aud", {}, TokenFormat::kJwt, 300), 251), nullptr);
}

TEST(TokenCache, NeverReturnsAnExpiredToken) {
  TokenCache cache;
  cache.put("k", {"tok", "jti-1", 100, 200, "owner", "", 0, ""});
  ASSERT_NE(cache.find("k", 199), nullptr);
  EXPECT_EQ(cache.find("k", 200), nullptr);
  EXPECT_EQ(cache.by_jti("jti-1", 200), nullptr);
  ASSERT_NE(cache.by_jti("jti-1", 150), nullptr);
}

TEST(TokenCache, RemoveContainerDropsOnlyItsTokens) {
  TokenCache cache;
  cache.put("a", {"t", "ja", 0, 100, "o", "c1", 0, ""});
  cache.put("b", {"t", "jb", 0, 100, "o", "c2", 0, ""});
  EXPECT_EQ(cache.remove_container("c1"), std::vector<std::string>{"ja"});
  EXPECT_EQ(cache.by_jti("ja", 1), nullptr);
  EXPECT_NE(cache.by_jti("jb", 1), nullptr);
  EXPECT_TRUE(cache.remove_container("").empty());
}

TEST(TokenCache, ReplacingAnEntryForgetsTheOldJti) {
  TokenCache cache;
  cache.put("k", {"t1", "old", 0, 100, "o", "", 0, ""});
  cache.put("k", {"t2", "new", 0, 100, "o", "", 0, ""});
  EXPECT_EQ(cache.by_jti("old", 1), nullptr);
  EXPECT_EQ(cache.size(), 1U);
}

TEST(StateFiles, EnrollmentRoundTripsAndRejectsGarbage) {
  EnrollmentRecord rec;
  rec.device_id = "dev-1";
  rec.ak.public_area = Bytes{0, 2, 1, 2};
  rec.ak.private_area = Bytes{0, 1, 9};
  const Bytes bytes = serialize(rec);
  auto back = parse_enrollment(bytes);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->device_id, "dev-1");
  EXPECT_EQ(back->ak.public_area, rec.ak.public_area);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(parse_enrollment(ByteSpan(bytes).first(n))) << n;
  }
  Bytes wrong = bytes;
  wrong[4] = 2;  // version
  auto refused = parse_enrollment(wrong);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("version"), std::string::npos) << refused.error().message;
}

TEST(StateFiles, SealedSecretKeepsItsSelectorRules) {
  SealedSecret s;
  SelectorMatch m;
  m.uid = 1000;
  m.exe_sha256 = "ab";
  s.allow = {m};
  s.blob.selection = *PcrSelection::parse("sha256:0,7");
  s.blob.public_area = Bytes{1, 2};
  s.blob.private_area = Bytes{3};
  auto back = parse_sealed_secret(serialize(s));
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->allow.size(), 1U);
  EXPECT_EQ(back->allow[0].uid, 1000U);
  EXPECT_EQ(back->allow[0].exe_sha256, "ab");
  EXPECT_FALSE(back->allow[0].gid);
}

TEST(StateFiles, SecretNamesCannotEscapeTheDirectory) {
  EXPECT_TRUE(StateStore::check_secret_name("db-password.v2"));
  for (const char* bad : {"", "../x", ".hidden", "a/b", "a b"}) {
    EXPECT_FALSE(StateStore::check_secret_name(bad)) << bad;
  }
  // The store and the local API agree at 128 (docs/local-api.md).
  EXPECT_TRUE(StateStore::check_secret_name(std::string(128, 'a')));
  EXPECT_FALSE(StateStore::check_secret_name(std::string(129, 'a')));
  EXPECT_TRUE(api::valid_secret_name(std::string(128, 'a')));
  EXPECT_FALSE(api::valid_secret_name(std::string(129, 'a')));
  EXPECT_FALSE(api::valid_secret_name(".hidden"));
}

TEST(StateStore, ASecretNameOf128CharactersIsStoredAnd129IsRefused) {
  test::TempDir dir;
  StateStore store(dir.path() / "state");
  ASSERT_TRUE(store.prepare());
  SealedSecret s;
  SelectorMatch m;
  m.uid = 1000;
  s.allow = {m};
  s.blob.selection = *PcrSelection::parse("sha256:0,7");
  s.blob.public_area = Bytes{1, 2};
  s.blob.private_area = Bytes{3};
  const std::string longest(128, 'n');
  auto saved = store.save_secret(longest, s);
  ASSERT_TRUE(saved) << saved.error().message;
  auto loaded = store.load_secret(longest);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_TRUE(loaded->has_value());
  EXPECT_FALSE(store.save_secret(longest + "n", s));
}

TEST(StateStore, MissingEnrollmentIsNotAnError) {
  test::TempDir dir;
  StateStore store(dir.path() / "state");
  ASSERT_TRUE(store.prepare());
  auto rec = store.load_enrollment();
  ASSERT_TRUE(rec);
  EXPECT_FALSE(*rec);
}

class CountingRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override {
    for (auto& b : out) b = static_cast<std::uint8_t>(n_++);
  }

 private:
  unsigned n_ = 0;
};

TEST(Backoff, DoublesWithinJitterAndCaps) {
  CountingRandom random;
  Backoff b(std::chrono::milliseconds(100), std::chrono::milliseconds(1000), random);
  std::int64_t window = 100;
  for (int i = 0; i < 8; ++i) {
    const auto d = b.next().count();
    EXPECT_GE(d, window / 2) << i;
    EXPECT_LE(d, window) << i;
    window = std::min<std::int64_t>(window * 2, 1000);
  }
  b.reset();
  EXPECT_LE(b.next().count(), 100);
}

TEST(SessionKey, SignsUntilWiped) {
  ASSERT_TRUE(init_locked_key_memory());
  SystemRandom random;
  auto key = SessionKey::generate(random);
  ASSERT_TRUE(key);
  EXPECT_EQ((*key)->raw_thumbprint().size(), 32U);
  EXPECT_TRUE((*key)->sign(to_bytes("input")));
  (*key)->wipe();
  auto after = (*key)->sign(to_bytes("input"));
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, ErrorCode::kRevoked);
}

TEST(TpmtSignature, EncodesEcdsaSha256) {
  Bytes raw(64, 1);
  auto sig = tpmt_signature_ecdsa_sha256(raw);
  ASSERT_TRUE(sig);
  ASSERT_EQ(sig->size(), 4U + 2 + 32 + 2 + 32);
  EXPECT_EQ((*sig)[1], 0x18);
  EXPECT_EQ((*sig)[3], 0x0B);
  EXPECT_FALSE(tpmt_signature_ecdsa_sha256(Bytes(63, 1)));
}

}  // namespace
}  // namespace warden::agent
