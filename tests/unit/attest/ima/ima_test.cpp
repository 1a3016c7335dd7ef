#include "attest/ima/ima.h"

#include <gtest/gtest.h>

#include "attest/ima/ima_stream.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::attest::ima {
namespace {

Bytes b(std::string_view s) { return to_bytes(s); }

void field(ByteWriter& w, ByteSpan data) {
  w.u32le(static_cast<std::uint32_t>(data.size()));
  w.bytes(data);
}

Bytes d_ng(std::string_view algo, ByteSpan digest) {
  ByteWriter w;
  w.bytes(algo).u8(':').u8(0).bytes(digest);
  return std::move(w).take();
}

Bytes n_ng(std::string_view path) {
  ByteWriter w;
  w.bytes(path).u8(0);
  return std::move(w).take();
}

/// A list built in both forms, entry by entry.
struct ListBuilder {
  ByteWriter binary;
  std::string ascii;

  void add(std::string_view tmpl, const std::vector<Bytes>& fields, const std::string& ascii_fields,
           bool violation = false) {
    ByteWriter data;
    for (const Bytes& f : fields) field(data, f);
    Bytes hash = violation ? Bytes(20, 0) : *ossl::digest(ossl::Hash::kSha1, data.data());
    binary.u32le(10).bytes(hash).u32le(static_cast<std::uint32_t>(tmpl.size())).bytes(tmpl);
    field(binary, data.data());
    ascii += "10 " + hex_encode(hash) + " " + std::string(tmpl) + " " + ascii_fields + "\n";
  }
  void ng(std::string_view path, std::string_view content, bool violation = false) {
    Bytes digest = ossl::sha256(b(content));
    add("ima-ng", {d_ng("sha256", digest), n_ng(path)},
        "sha256:" + hex_encode(digest) + " " + std::string(path), violation);
  }
  void sig(std::string_view path, ByteSpan sig) {
    Bytes digest = ossl::sha256(b(path));
    add("ima-sig", {d_ng("sha256", digest), n_ng(path), Bytes(sig.begin(), sig.end())},
        "sha256:" + hex_encode(digest) + " " + std::string(path) + " " + hex_encode(sig));
  }
  void buf(std::string_view name, ByteSpan buffer) {
    Bytes digest = ossl::sha256(buffer);
    add("ima-buf", {d_ng("sha256", digest), n_ng(name), Bytes(buffer.begin(), buffer.end())},
        "sha256:" + hex_encode(digest) + " " + std::string(name) + " " + hex_encode(buffer));
  }
  void modsig(std::string_view path, ByteSpan sig) {
    Bytes digest = ossl::sha256(b(path));
    Bytes d_mod = d_ng("sha256", ossl::sha256(b("stripped")));
    add("ima-modsig",
        {d_ng("sha256", digest), n_ng(path), Bytes{}, d_mod, Bytes(sig.begin(), sig.end())},
        "sha256:" + hex_encode(digest) + " " + std::string(path) +
            "  sha256:" + hex_encode(ossl::sha256(b("stripped"))) + " " + hex_encode(sig));
  }
  void ngv2(std::string_view path) {
    Bytes digest = ossl::sha256(b(path));
    ByteWriter d;
    d.bytes(std::string_view("ima:sha256:")).u8(0).bytes(digest);
    add("ima-ngv2", {std::move(d).take(), n_ng(path)},
        "ima:sha256:" + hex_encode(digest) + " " + std::string(path));
  }
  void legacy(std::string_view path) {
    Bytes digest = *ossl::digest(ossl::Hash::kSha1, b(path));
    Bytes hashed = digest;
    hashed.insert(hashed.end(), path.begin(), path.end());
    hashed.resize(20 + 256, 0);
    Bytes hash = *ossl::digest(ossl::Hash::kSha1, hashed);
    binary.u32le(10).bytes(hash).u32le(3).bytes(std::string_view("ima")).bytes(digest);
    binary.u32le(static_cast<std::uint32_t>(path.size())).bytes(path);
    ascii +=
        "10 " + hex_encode(hash) + " ima " + hex_encode(digest) + " " + std::string(path) + "\n";
  }
  [[nodiscard]] ByteSpan bin() const { return binary.data(); }
  [[nodiscard]] ByteSpan text() const {
    // NOLINTNEXTLINE(*-reinterpret-cast): the text as bytes
    return {reinterpret_cast<const std::uint8_t*>(ascii.data()), ascii.size()};
  }
};

ListBuilder every_template() {
  ListBuilder l;
  l.ng("boot_aggregate", "x");
  l.ng("/usr/bin/bash", "bash");
  l.ng("/home/user/My Documents/a b.sh", "spaces");
  Bytes sig = *hex_decode("030204aabbccdd0004deadbeef");
  l.sig("/usr/lib/libc.so.6", sig);
  l.sig("/etc/with space", Bytes{});
  l.buf("kexec-cmdline", b("root=/dev/sda1 ro"));
  l.modsig("/lib/modules/x.ko", b("modsig-bytes"));
  l.ngv2("/usr/bin/true");
  l.legacy("/sbin/init");
  l.ng("/tmp/violated", "v", /*violation=*/true);
  return l;
}

std::vector<EntryView> views_of(const std::vector<Entry>& entries) { return views(entries); }

// Reference replay written out longhand.
Bytes manual_pcr10(const std::vector<Entry>& entries, TpmAlg alg) {
  Bytes pcr(hash_size(alg), 0);
  for (const Entry& e : entries) {
    Bytes d;
    if (e.violation()) {
      d.assign(hash_size(alg), 0xff);
    } else if (alg == TpmAlg::kSha1) {
      d = e.template_hash;
    } else {
      d = *ossl::digest(to_ossl(alg), e.template_data);
    }
    pcr.insert(pcr.end(), d.begin(), d.end());
    pcr = *ossl::digest(to_ossl(alg), pcr);
  }
  return pcr;
}

TEST(ImaParse, EveryTemplateBinary) {
  ListBuilder l = every_template();
  EXPECT_EQ(detect_format(l.bin()), Format::kBinary);
  auto entries = parse_binary(l.bin());
  ASSERT_TRUE(entries) << entries.error().message;
  ASSERT_EQ(entries->size(), 10u);
  const auto& e = *entries;
  EXPECT_EQ(e[0].path, "boot_aggregate");
  EXPECT_EQ(e[0].digest_algo, "sha256");
  EXPECT_EQ(e[0].file_digest, ossl::sha256(b("x")));
  EXPECT_EQ(e[2].path, "/home/user/My Documents/a b.sh");
  EXPECT_EQ(e[3].template_name, "ima-sig");
  EXPECT_EQ(hex_encode(e[3].signature), "030204aabbccdd0004deadbeef");
  EXPECT_TRUE(e[4].signature.empty());
  EXPECT_EQ(to_string(e[5].buffer), "root=/dev/sda1 ro");
  EXPECT_EQ(to_string(e[6].modsig), "modsig-bytes");
  EXPECT_EQ(e[7].digest_type, "ima");
  EXPECT_EQ(e[7].digest_algo, "sha256");
  EXPECT_EQ(e[8].template_name, "ima");
  EXPECT_EQ(e[8].path, "/sbin/init");
  EXPECT_EQ(e[8].digest_algo, "sha1");
  EXPECT_TRUE(e[9].violation());
  for (const Entry& x : e) EXPECT_EQ(x.pcr, 10u);
}

TEST(ImaParse, AsciiEqualsBinary) {
  ListBuilder l = every_template();
  EXPECT_EQ(detect_format(l.text()), Format::kAscii);
  auto bin = parse(l.bin());
  auto txt = parse(l.text());
  ASSERT_TRUE(bin) << bin.error().message;
  ASSERT_TRUE(txt) << txt.error().message;
  ASSERT_EQ(bin->size(), txt->size());
  for (std::size_t i = 0; i < bin->size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ((*bin)[i].template_data, (*txt)[i].template_data);
    EXPECT_EQ((*bin)[i].path, (*txt)[i].path);
    EXPECT_EQ((*bin)[i].signature, (*txt)[i].signature);
    EXPECT_EQ((*bin)[i].file_digest, (*txt)[i].file_digest);
  }
  auto rb = replay(*bin, initial_state());
  auto rt = replay(*txt, initial_state());
  ASSERT_TRUE(rb && rt);
  EXPECT_EQ(rb->state.pcrs, rt->state.pcrs);
  EXPECT_TRUE(rb->problems.empty());
  EXPECT_TRUE(rt->problems.empty()) << rt->problems[0].message;
}

TEST(ImaReplay, MatchesManualExtendBothBanks) {
  ListBuilder l = every_template();
  auto entries = parse(l.bin());
  ASSERT_TRUE(entries);
  auto r = replay(*entries, initial_state());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->state.entries, 10u);
  EXPECT_EQ(*r->state.pcrs.get(TpmAlg::kSha1, 10), manual_pcr10(*entries, TpmAlg::kSha1));
  EXPECT_EQ(*r->state.pcrs.get(TpmAlg::kSha256, 10), manual_pcr10(*entries, TpmAlg::kSha256));
  EXPECT_EQ(*r->state.pcrs.get(TpmAlg::kSha256, 0), Bytes(32, 0));
}

TEST(ImaReplay, ViolationExtendsAllOnes) {
  ListBuilder l;
  l.ng("/tmp/x", "x", true);
  auto entries = parse(l.bin());
  ASSERT_TRUE(entries);
  auto r = replay(*entries, initial_state());
  ASSERT_TRUE(r);
  Bytes expect(20, 0);
  expect.resize(40, 0xff);
  EXPECT_EQ(*r->state.pcrs.get(TpmAlg::kSha1, 10), *ossl::digest(ossl::Hash::kSha1, expect));
  EXPECT_TRUE(r->problems.empty());
}

TEST(ImaReplay, PaddedSha1RuleForOldKernels) {
  ListBuilder l;
  l.ng("/a", "a");
  auto entries = parse(l.bin());
  ASSERT_TRUE(entries);
  ReplayOptions opt;
  opt.rule = BankRule::kPaddedSha1;
  auto r = replay(*entries, initial_state(opt), opt);
  ASSERT_TRUE(r);
  Bytes in(32, 0);
  Bytes padded = (*entries)[0].template_hash;
  padded.resize(32, 0);
  in.insert(in.end(), padded.begin(), padded.end());
  EXPECT_EQ(*r->state.pcrs.get(TpmAlg::kSha256, 10), ossl::sha256(in));
}

TEST(ImaReplay, IncrementalEqualsFull) {
  ListBuilder l = every_template();
  auto entries = parse(l.bin());
  ASSERT_TRUE(entries);
  auto full = replay(*entries, initial_state());
  ASSERT_TRUE(full);
  std::span<const Entry> all(*entries);
  auto first = replay(all.first(4), initial_state());
  ASSERT_TRUE(first);
  EXPECT_EQ(first->state.entries, 4u);
  auto second = replay(all.subspan(4), first->state);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->state.entries, 10u);
  EXPECT_EQ(second->state.pcrs, full->state.pcrs);
}

TEST(ImaReplay, TamperedTemplateHashIsFlagged) {
  ListBuilder l = every_template();
  auto entries = parse(l.bin());
  ASSERT_TRUE(entries);
  (*entries)[2].template_data.back() ^= 1;  // alter the path's NUL
  auto r = replay(*entries, initial_state());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->problems.size(), 1u);
  EXPECT_EQ(r->problems[0].index, 2u);
  EXPECT_EQ(r->problems[0].code, ErrorCode::kReplayMismatch);
  EXPECT_NE(r->problems[0].message.find("template hash"), std::string::npos);
}

TEST(ImaReplay, ShortestPrefixMatchingQuote) {
  ListBuilder l = every_template();
  auto entries = parse(l.bin());
  ASSERT_TRUE(entries);
  std::span<const Entry> all(*entries);
  auto part = replay(all.first(6), initial_state());
  ASSERT_TRUE(part);
  Bytes quoted = *part->state.pcrs.get(TpmAlg::kSha256, 10);
  auto r = replay_to_quote(all, initial_state(), TpmAlg::kSha256, quoted);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->state.entries, 6u);
  EXPECT_EQ(r->state.pcrs, part->state.pcrs);
  auto bad = replay_to_quote(all, initial_state(), TpmAlg::kSha256, Bytes(32, 7));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kReplayMismatch);
}

TEST(ImaBootAggregate, Banks) {
  PcrValues pcrs;
  pcrs.init_bank(TpmAlg::kSha1);
  pcrs.init_bank(TpmAlg::kSha256);
  ASSERT_TRUE(pcrs.extend(TpmAlg::kSha256, 9, Bytes(32, 1)));
  ASSERT_TRUE(pcrs.extend(TpmAlg::kSha1, 0, Bytes(20, 1)));
  Bytes cat256, cat1;
  for (unsigned i = 0; i < 10; ++i) {
    const Bytes* v = pcrs.get(TpmAlg::kSha256, i);
    cat256.insert(cat256.end(), v->begin(), v->end());
  }
  for (unsigned i = 0; i < 8; ++i) {
    const Bytes* v = pcrs.get(TpmAlg::kSha1, i);
    cat1.insert(cat1.end(), v->begin(), v->end());
  }
  Entry e;
  e.path = "boot_aggregate";
  e.digest_algo = "sha256";
  e.file_digest = ossl::sha256(cat256);
  auto ok256 = check_boot_aggregate(e, pcrs);
  ASSERT_TRUE(ok256) << ok256.error().message;
  EXPECT_EQ(*ok256, BootAggregate::kMatch);
  e.digest_algo = "sha1";
  e.file_digest = *ossl::digest(ossl::Hash::kSha1, cat1);
  EXPECT_TRUE(check_boot_aggregate(e, pcrs));
  e.file_digest[0] ^= 1;
  auto bad = check_boot_aggregate(e, pcrs);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kPcrDigestMismatch);
  e.file_digest.assign(20, 0);
  EXPECT_EQ(*check_boot_aggregate(e, pcrs), BootAggregate::kNoTpm);
}

TEST(ImaParse, MalformedInputGivesReasonAndOffset) {
  ListBuilder l = every_template();
  Bytes bin(l.bin().begin(), l.bin().end());
  bin.resize(bin.size() - 3);
  auto r = parse_binary(bin);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("offset"), std::string::npos) << r.error().message;
  auto a = parse_ascii("10 zz ima-ng sha1:00 x\n");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("line 1"), std::string::npos);
  auto pcr = parse_ascii("99 " + std::string(40, '0') + " ima-ng sha1:00 x\n");
  ASSERT_FALSE(pcr);
  ByteWriter w;
  w.u32le(10).bytes(Bytes(20, 1)).u32le(0xffffffff);
  EXPECT_FALSE(parse_binary(w.data()));
}

// The views point into the list and say what the owning entries say, for every template.
TEST(ImaParseView, ViewsEqualOwningEntries) {
  ListBuilder l = every_template();
  auto owned = parse_binary(l.bin());
  auto views = parse_binary_view(l.bin());
  ASSERT_TRUE(owned);
  ASSERT_TRUE(views) << views.error().message;
  ASSERT_EQ(views->size(), owned->size());
  auto in_list = [&](ByteSpan s) {
    return s.empty() ||
           (s.data() >= l.bin().data() && s.data() + s.size() <= l.bin().data() + l.bin().size());
  };
  for (std::size_t i = 0; i < views->size(); ++i) {
    SCOPED_TRACE(i);
    const EntryView& v = (*views)[i];
    const Entry& e = (*owned)[i];
    EXPECT_EQ(v.pcr, e.pcr);
    EXPECT_EQ(Bytes(v.template_hash.begin(), v.template_hash.end()), e.template_hash);
    EXPECT_EQ(v.template_name, e.template_name);
    EXPECT_EQ(v.digest_type, e.digest_type);
    EXPECT_EQ(v.digest_algo, e.digest_algo);
    EXPECT_EQ(Bytes(v.file_digest.begin(), v.file_digest.end()), e.file_digest);
    EXPECT_EQ(v.path, e.path);
    EXPECT_EQ(Bytes(v.signature.begin(), v.signature.end()), e.signature);
    EXPECT_EQ(Bytes(v.buffer.begin(), v.buffer.end()), e.buffer);
    EXPECT_EQ(Bytes(v.modsig.begin(), v.modsig.end()), e.modsig);
    EXPECT_EQ(v.violation(), e.violation());
    EXPECT_TRUE(in_list(v.template_hash) && in_list(v.template_data) && in_list(v.file_digest));
    if (e.template_name == "ima") {
      // Not in the list: rebuilt by the replay and by Entry::from.
      EXPECT_TRUE(v.template_data.empty());
      EXPECT_EQ(e.template_data.size(), 276u);
    } else {
      EXPECT_EQ(Bytes(v.template_data.begin(), v.template_data.end()), e.template_data);
    }
    // Round trip through the owning form.
    EXPECT_EQ(Entry::from(v).template_data, e.template_data);
    EXPECT_EQ(Entry::from(e.view()).path, e.path);
  }
}

TEST(ImaParseView, MalformedInputFailsLikeOwningParse) {
  ListBuilder l = every_template();
  Bytes bin(l.bin().begin(), l.bin().end());
  bin.resize(bin.size() - 3);
  auto v = parse_binary_view(bin);
  auto o = parse_binary(bin);
  ASSERT_FALSE(v);
  ASSERT_FALSE(o);
  EXPECT_EQ(v.error().message, o.error().message);
}

// Views (a legacy entry's template data rebuilt on the fly) replay like owning entries, in every
// bank and both rules, and a tampered legacy entry is still caught by its template hash.
TEST(ImaReplayView, ViewsReplayLikeOwningEntries) {
  ListBuilder l = every_template();
  auto owned = parse_binary(l.bin());
  auto views = parse_binary_view(l.bin());
  ASSERT_TRUE(owned && views);
  for (BankRule rule : {BankRule::kTemplateDataHash, BankRule::kPaddedSha1}) {
    ReplayOptions opt;
    opt.rule = rule;
    opt.banks = {TpmAlg::kSha1, TpmAlg::kSha256, TpmAlg::kSha384};
    auto a = replay(*owned, initial_state(opt), opt);
    auto b = replay(*views, initial_state(opt), opt);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->state.pcrs, b->state.pcrs);
    EXPECT_TRUE(b->problems.empty());
  }
  EXPECT_EQ(*replay(*views, initial_state())->state.pcrs.get(TpmAlg::kSha256, 10),
            manual_pcr10(*owned, TpmAlg::kSha256));
  std::vector<Entry> tampered = *owned;
  tampered[8].path = "/sbin/evil";  // the legacy entry: its template hash no longer matches
  auto t = replay(views_of(tampered), initial_state());
  ASSERT_TRUE(t);
  ASSERT_EQ(t->problems.size(), 0u);  // owning entries keep the template data they were built with
  Entry rebuilt = tampered[8];
  rebuilt.template_data.clear();  // as a binary list's view has it: rebuilt from the path
  tampered[8] = rebuilt;
  auto t2 = replay(views_of(tampered), initial_state());
  ASSERT_TRUE(t2);
  ASSERT_EQ(t2->problems.size(), 1u);
  EXPECT_EQ(t2->problems[0].index, 8u);
}

// Replaying only sha256 gives the same sha256 bank as replaying both, and leaves sha1 out.
TEST(ImaReplayView, OnlyTheRequestedBanks) {
  ListBuilder l = every_template();
  auto views = parse_binary_view(l.bin());
  ASSERT_TRUE(views);
  ReplayOptions only;
  only.banks = {TpmAlg::kSha256};
  auto one = replay(*views, initial_state(only), only);
  auto both = replay(*views, initial_state());
  ASSERT_TRUE(one && both);
  EXPECT_FALSE(one->state.pcrs.has_bank(TpmAlg::kSha1));
  EXPECT_EQ(*one->state.pcrs.get(TpmAlg::kSha256, 10), *both->state.pcrs.get(TpmAlg::kSha256, 10));
  // The template hashes are still checked without the sha1 bank.
  std::vector<Entry> owned = *parse_binary(l.bin());
  owned[2].template_data.back() ^= 1;
  auto r = replay(owned, initial_state(only), only);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->problems.size(), 1u);
  EXPECT_EQ(r->problems[0].index, 2u);
  // A carried state without a bank cannot continue in it.
  ReplayState carried = one->state;
  auto more = replay(std::span<const EntryView>(*views).first(1), carried);
  ASSERT_FALSE(more);
  EXPECT_EQ(more.error().code, ErrorCode::kInvalidArgument);
}

Result<ReplayResult> stream_replay(ByteSpan list, std::size_t chunk, const Limits& limits = {}) {
  auto s = StreamReplay::create(initial_state(), {}, limits);
  if (!s) return fail(s.error());
  for (std::size_t pos = 0; pos < list.size(); pos += chunk) {
    WARDEN_TRY_STATUS(s->feed(list.subspan(pos, std::min(chunk, list.size() - pos))));
  }
  return s->finish();
}

TEST(ImaStream, AnySplitReplaysLikeTheWholeList) {
  ListBuilder l = every_template();
  for (ByteSpan list : {l.bin(), l.text()}) {
    auto whole = replay(*parse(list), initial_state());
    ASSERT_TRUE(whole);
    for (std::size_t chunk :
         {std::size_t{1}, std::size_t{3}, std::size_t{7}, std::size_t{64}, list.size()}) {
      SCOPED_TRACE(chunk);
      auto r = stream_replay(list, chunk);
      ASSERT_TRUE(r) << r.error().message;
      EXPECT_EQ(r->state.pcrs, whole->state.pcrs);
      EXPECT_EQ(r->state.entries, 10u);
      EXPECT_TRUE(r->problems.empty());
    }
  }
}

TEST(ImaStream, AsciiLastLineMayLackItsNewline) {
  ListBuilder l = every_template();
  std::string text = l.ascii;
  text.pop_back();
  auto r = stream_replay(to_bytes(text), 5);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->state.entries, 10u);
  EXPECT_EQ(r->state.pcrs, replay(*parse(l.text()), initial_state())->state.pcrs);
}

TEST(ImaStream, TamperedEntryIsFlaggedWithItsIndex) {
  ListBuilder l = every_template();
  std::string text = l.ascii;
  const auto at = text.find("/usr/bin/bash");
  text[at + 1] = 'x';
  auto r = stream_replay(to_bytes(text), 16);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->problems.size(), 1u);
  EXPECT_EQ(r->problems[0].index, 1u);
  EXPECT_EQ(r->problems[0].code, ErrorCode::kReplayMismatch);
}

TEST(ImaStream, TruncatedBinaryListFailsAtTheEnd) {
  ListBuilder l = every_template();
  ByteSpan cut = l.bin().first(l.bin().size() - 3);
  auto r = stream_replay(cut, 4096);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("needs"), std::string::npos) << r.error().message;
}

TEST(ImaStream, MalformedLineFailsLikeTheWholeParse) {
  const std::string text = "10 zz ima-ng sha1:00 x\n";
  auto whole = parse_ascii(text);
  auto r = stream_replay(to_bytes(text), 2);
  ASSERT_FALSE(whole);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, whole.error().message);
}

TEST(ImaStream, AnOversizedEntryIsRefusedBeforeItIsBuffered) {
  Limits limits;
  limits.max_template_data = 64;
  auto s = StreamReplay::create(initial_state(), {}, limits);
  ASSERT_TRUE(s);
  const std::string start = "10 " + std::string(40, '0') + " ima-ng sha256:";
  ASSERT_TRUE(s->feed(to_bytes(start)));
  const std::string more(1024, 'a');
  Status st = ok();
  for (int i = 0; i < 8 && st; ++i) st = s->feed(to_bytes(more));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kLimitExceeded);
}

TEST(ImaStream, BinaryTemplateDataOverTheLimitIsRefused) {
  ListBuilder l = every_template();
  Limits limits;
  limits.max_template_data = 16;
  auto r = stream_replay(l.bin(), 1000, limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
}

}  // namespace
}  // namespace warden::attest::ima
