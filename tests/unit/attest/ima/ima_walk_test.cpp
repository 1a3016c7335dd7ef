#include "attest/ima/ima_walk.h"

#include <vector>

#include <gtest/gtest.h>

#include "platform/base/bytes.h"

namespace warden::attest::ima {
namespace {

/// A binary list with the boundaries of its entries, in either byte order.
struct Walked {
  ByteWriter w;
  std::vector<std::size_t> starts;
  bool big_endian = false;

  void u32(std::uint32_t v) { big_endian ? w.u32be(v) : w.u32le(v); }
  void ng(std::string_view path) {
    starts.push_back(w.data().size());
    u32(10);
    w.bytes(Bytes(20, 0x11));  // template hash: not checked by a walk
    u32(6);
    w.bytes(std::string_view("ima-ng"));
    ByteWriter data;
    const Bytes d = to_bytes(std::string("sha256:") + '\0' + std::string(32, 'd'));
    const Bytes n = to_bytes(std::string(path) + '\0');
    for (const Bytes& f : {d, n}) {
      big_endian ? data.u32be(static_cast<std::uint32_t>(f.size()))
                 : data.u32le(static_cast<std::uint32_t>(f.size()));
      data.bytes(f);
    }
    u32(static_cast<std::uint32_t>(data.data().size()));
    w.bytes(data.data());
  }
  // The kernel writes the legacy `ima` template as digest[20], u32 name length, name: not the
  // 20 + 256 bytes it hashes.
  void legacy(std::string_view path) {
    starts.push_back(w.data().size());
    u32(10);
    w.bytes(Bytes(20, 0x22));
    u32(3);
    w.bytes(std::string_view("ima"));
    w.bytes(Bytes(20, 0x33));
    u32(static_cast<std::uint32_t>(path.size()));
    w.bytes(path);
  }
  [[nodiscard]] ByteSpan list() const { return w.data(); }
};

Walked mixed(bool big_endian) {
  Walked l;
  l.big_endian = big_endian;
  l.ng("boot_aggregate");
  l.legacy("/sbin/init");
  l.ng("/usr/bin/bash");
  l.legacy("/a/path/longer/than/twenty/bytes/so/a/fixed/skip/would/land/elsewhere");
  l.ng("/usr/bin/true");
  return l;
}

void expect_every_offset(const Walked& l) {
  for (std::size_t i = 0; i < l.starts.size(); ++i) {
    auto at = entry_offset(l.list(), i);
    ASSERT_TRUE(at) << at.error().message;
    EXPECT_EQ(*at, l.starts[i]) << "entry " << i;
  }
  auto end = entry_offset(l.list(), l.starts.size());
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_EQ(*end, l.list().size());
}

TEST(ImaWalk, OffsetOfEveryEntryWithTheLegacyTemplateLittleEndian) {
  expect_every_offset(mixed(false));
}

TEST(ImaWalk, OffsetOfEveryEntryBigEndian) { expect_every_offset(mixed(true)); }

TEST(ImaWalk, AnOffsetPastTheEndSaysTheListWasReset) {
  const Walked l = mixed(false);
  auto past = entry_offset(l.list(), l.starts.size() + 1);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code, ErrorCode::kInvalidArgument);
}

TEST(ImaWalk, EmptyListHasOnlyOffsetZero) {
  auto zero = entry_offset(ByteSpan{}, 0);
  ASSERT_TRUE(zero) << zero.error().message;
  EXPECT_EQ(*zero, 0u);
  EXPECT_FALSE(entry_offset(ByteSpan{}, 1));
}

TEST(ImaWalk, ATruncatedEntryIsAnError) {
  const Walked l = mixed(false);
  const ByteSpan cut = l.list().subspan(0, l.list().size() - 3);
  EXPECT_FALSE(entry_offset(cut, 1));
}

}  // namespace
}  // namespace warden::attest::ima
