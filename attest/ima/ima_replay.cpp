// See BankHasher: the direct SHA functions, deprecated in OpenSSL 3.
#define OPENSSL_SUPPRESS_DEPRECATED

#include <algorithm>
#include <array>
#include <bitset>
#include <cstring>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "attest/ima/ima.h"
#include "attest/ima/ima_entry.h"
#include "attest/ima/ima_stream.h"
#include "attest/ima/legacy_template.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::attest::ima {
namespace {

constexpr std::size_t kMaxDigest = EVP_MAX_MD_SIZE;
using DigestBuf = std::array<std::uint8_t, kMaxDigest>;

// A replay takes four digests of 40-100 bytes per entry. Through EVP, OpenSSL 3 spends more time
// in provider dispatch and context cleansing than in the (SHA-NI) compression itself, so the
// replay uses the direct SHA functions, deprecated but kept by OpenSSL 3 for exactly this use.
class BankHasher {
 public:
  explicit BankHasher(TpmAlg alg) : alg_(alg), size_(hash_size(alg)) {}

  void hash(ByteSpan a, ByteSpan b, std::uint8_t* out) const {
    switch (alg_) {
      case TpmAlg::kSha1: {
        SHA_CTX c;
        SHA1_Init(&c);
        SHA1_Update(&c, a.data(), a.size());
        SHA1_Update(&c, b.data(), b.size());
        SHA1_Final(out, &c);
        return;
      }
      case TpmAlg::kSha256: {
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, a.data(), a.size());
        SHA256_Update(&c, b.data(), b.size());
        SHA256_Final(out, &c);
        return;
      }
      case TpmAlg::kSha384: {
        SHA512_CTX c;
        SHA384_Init(&c);
        SHA384_Update(&c, a.data(), a.size());
        SHA384_Update(&c, b.data(), b.size());
        SHA384_Final(out, &c);
        return;
      }
      case TpmAlg::kSha512: {
        SHA512_CTX c;
        SHA512_Init(&c);
        SHA512_Update(&c, a.data(), a.size());
        SHA512_Update(&c, b.data(), b.size());
        SHA512_Final(out, &c);
        return;
      }
    }
    std::abort();  // TpmAlg has no other values
  }
  [[nodiscard]] TpmAlg alg() const { return alg_; }
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  TpmAlg alg_;
  std::size_t size_;
};

struct Bank {
  BankHasher hasher;
  std::array<DigestBuf, kPcrCount> pcrs{};
  std::bitset<kPcrCount> touched;
};

class Replayer {
 public:
  static Result<Replayer> create(const ReplayState& state, const ReplayOptions& options) {
    Replayer r;
    r.options_ = &options;
    for (TpmAlg alg : options.banks) {
      Bank bank{BankHasher(alg), {}, {}};
      if (state.pcrs.has_bank(alg)) {
        for (unsigned i = 0; i < kPcrCount; ++i) {
          const Bytes* v = state.pcrs.get(alg, i);
          std::copy(v->begin(), v->end(), bank.pcrs[i].begin());
        }
      } else if (state.entries != 0) {
        return fail(ErrorCode::kInvalidArgument,
                    fmt::format("IMA replay: carried state after {} entries lacks bank {}",
                                state.entries, hash_name(alg)));
      }
      r.banks_.push_back(bank);
    }
    return r;
  }

  void step(const EntryView& e, std::uint64_t index, std::vector<EntryProblem>& problems) {
    const bool violation = e.violation();
    // A legacy `ima` entry of a binary list carries no template data: rebuild it (on the stack).
    LegacyTemplateData legacy;
    ByteSpan data = e.template_data;
    if (data.empty() && e.template_name == "ima") {
      legacy_template_data(e.file_digest, e.path, legacy);
      data = legacy;
    }
    DigestBuf sha1_of_data{};
    if (!violation && options_->check_template_hash && e.template_hash.size() == 20) {
      sha1_.hash(data, {}, sha1_of_data.data());
      if (!std::equal(e.template_hash.begin(), e.template_hash.end(), sha1_of_data.begin())) {
        problems.push_back({index, ErrorCode::kReplayMismatch,
                            fmt::format("IMA entry {} ({}): template hash {} does not match "
                                        "SHA-1 of its template data {}",
                                        index, e.path, hex_encode(e.template_hash),
                                        hex_encode(ByteSpan(sha1_of_data.data(), 20)))});
      }
    }
    for (Bank& bank : banks_) {
      const std::size_t n = bank.hasher.size();
      DigestBuf digest{};
      if (violation) {
        std::fill_n(digest.begin(), n, std::uint8_t{0xff});
      } else if (bank.hasher.alg() == TpmAlg::kSha1) {
        // The list's SHA-1 template hash is what the kernel extended (it was checked above).
        std::copy_n(e.template_hash.begin(), std::min<std::size_t>(20, e.template_hash.size()),
                    digest.begin());
      } else if (e.template_hash.size() == n) {
        // Per-bank list (`…_runtime_measurements_<alg>`): the column is this bank's digest.
        std::copy(e.template_hash.begin(), e.template_hash.end(), digest.begin());
      } else if (options_->rule == BankRule::kTemplateDataHash) {
        bank.hasher.hash(data, {}, digest.data());
      } else {
        std::copy_n(e.template_hash.begin(), std::min(n, e.template_hash.size()), digest.begin());
      }
      DigestBuf& pcr = bank.pcrs[e.pcr];
      bank.hasher.hash(ByteSpan(pcr.data(), n), ByteSpan(digest.data(), n), pcr.data());
      bank.touched.set(e.pcr);
    }
  }

  Status store(ReplayState& state) const {
    for (const Bank& bank : banks_) {
      const TpmAlg alg = bank.hasher.alg();
      if (!state.pcrs.has_bank(alg)) state.pcrs.init_bank(alg);
      for (unsigned i = 0; i < kPcrCount; ++i) {
        if (!bank.touched.test(i)) continue;
        WARDEN_TRY_STATUS(
            state.pcrs.set(alg, i, ByteSpan(bank.pcrs[i].data(), bank.hasher.size())));
      }
    }
    return ok();
  }

  [[nodiscard]] ByteSpan value(TpmAlg alg, unsigned pcr) const {
    for (const Bank& bank : banks_) {
      if (bank.hasher.alg() == alg) return ByteSpan(bank.pcrs[pcr].data(), bank.hasher.size());
    }
    return {};
  }

 private:
  Replayer() = default;
  const ReplayOptions* options_ = nullptr;
  BankHasher sha1_{TpmAlg::kSha1};
  std::vector<Bank> banks_;
};

}  // namespace

ReplayState initial_state(const ReplayOptions& options) {
  ReplayState state;
  for (TpmAlg alg : options.banks) state.pcrs.init_bank(alg);
  return state;
}

namespace {

EntryView as_view(const EntryView& e) { return e; }
EntryView as_view(const Entry& e) { return e.view(); }

template <typename E>
Result<ReplayResult> replay_entries(std::span<const E> entries, ReplayState state,
                                    const ReplayOptions& options) {
  auto r = Replayer::create(state, options);
  if (!r) return fail(r.error());
  ReplayResult result;
  std::uint64_t index = state.entries;
  for (const E& entry : entries) {
    const EntryView e = as_view(entry);
    if (e.pcr >= kPcrCount) {
      return fail(ErrorCode::kMalformed,
                  fmt::format("IMA replay: entry {}: PCR index {} out of range", index, e.pcr));
    }
    r->step(e, index, result.problems);
    ++index;
  }
  WARDEN_TRY_STATUS(r->store(state));
  state.entries = index;
  result.state = std::move(state);
  return result;
}

template <typename E>
Result<ReplayResult> replay_entries_to_quote(std::span<const E> entries, ReplayState state,
                                             TpmAlg bank, ByteSpan quoted, unsigned pcr,
                                             const ReplayOptions& options) {
  if (std::find(options.banks.begin(), options.banks.end(), bank) == options.banks.end() ||
      pcr >= kPcrCount) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("IMA replay: bank {} PCR {} is not replayed", hash_name(bank), pcr));
  }
  auto r = Replayer::create(state, options);
  if (!r) return fail(r.error());
  ReplayResult result;
  std::uint64_t index = state.entries;
  auto matches = [&] {
    ByteSpan v = r->value(bank, pcr);
    return v.size() == quoted.size() && std::equal(v.begin(), v.end(), quoted.begin());
  };
  bool found = matches();
  for (std::size_t i = 0; i < entries.size() && !found; ++i) {
    const EntryView e = as_view(entries[i]);
    if (e.pcr >= kPcrCount) {
      return fail(ErrorCode::kMalformed,
                  fmt::format("IMA replay: entry {}: PCR index {} out of range", index, e.pcr));
    }
    r->step(e, index, result.problems);
    ++index;
    // Only an entry of this PCR can change its value.
    if (e.pcr == pcr) found = matches();
  }
  if (!found) {
    return fail(ErrorCode::kReplayMismatch,
                fmt::format("IMA replay: no prefix of entries {}..{} replays to the quoted {} "
                            "PCR {} {}; full replay gives {}",
                            state.entries, index, hash_name(bank), pcr, hex_encode(quoted),
                            hex_encode(r->value(bank, pcr))));
  }
  WARDEN_TRY_STATUS(r->store(state));
  state.entries = index;
  result.state = std::move(state);
  return result;
}

}  // namespace

Result<ReplayResult> replay(std::span<const EntryView> entries, ReplayState state,
                            const ReplayOptions& options) {
  return replay_entries(entries, std::move(state), options);
}

Result<ReplayResult> replay(std::span<const Entry> entries, ReplayState state,
                            const ReplayOptions& options) {
  return replay_entries(entries, std::move(state), options);
}

Result<ReplayResult> replay_to_quote(std::span<const EntryView> entries, ReplayState state,
                                     TpmAlg bank, ByteSpan quoted, unsigned pcr,
                                     const ReplayOptions& options) {
  return replay_entries_to_quote(entries, std::move(state), bank, quoted, pcr, options);
}

Result<ReplayResult> replay_to_quote(std::span<const Entry> entries, ReplayState state, TpmAlg bank,
                                     ByteSpan quoted, unsigned pcr, const ReplayOptions& options) {
  return replay_entries_to_quote(entries, std::move(state), bank, quoted, pcr, options);
}

struct StreamReplay::Impl {
  Impl(ReplayState s, ReplayOptions o, const Limits& l)
      : options(std::move(o)), limits(l), state(std::move(s)), index(state.entries) {}

  ReplayOptions options;  // the Replayer points at this copy
  Limits limits;
  ReplayState state;
  std::optional<Replayer> replayer;
  std::vector<EntryProblem> problems;
  std::uint64_t index;
  std::uint64_t count = 0;
  std::optional<Format> format;
  bool big_endian = false;
  std::size_t offset = 0;   // of buf's first byte in the list
  std::size_t line_no = 0;  // ASCII lines consumed
  Bytes pending;            // an incomplete entry carried to the next chunk
  detail::AsciiScratch scratch;
  EntryView entry;

  [[nodiscard]] std::size_t max_entry_bytes() const {
    // An ASCII line spells template data in hex, plus the name and hash columns.
    return *format == Format::kAscii ? 2 * limits.max_template_data + 4096
                                     : limits.max_template_data + 4096;
  }

  Status count_entry() {
    if (count >= limits.max_entries) {
      return fail(ErrorCode::kLimitExceeded,
                  fmt::format("IMA list: more than {} entries", limits.max_entries));
    }
    ++count;
    return ok();
  }

  // Replays the complete entries at the start of `buf`; returns how many bytes they took.
  Result<std::size_t> consume(ByteSpan buf, bool last) {
    if (!format) {
      if (buf.size() < 4 && !last) return std::size_t{0};
      format = detect_format(buf);
      big_endian = detail::binary_big_endian(buf);
    }
    std::size_t pos = 0;
    while (pos < buf.size()) {
      ByteSpan rest = buf.subspan(pos);
      std::size_t size = 0;
      if (*format == Format::kAscii) {
        const void* nl = std::memchr(rest.data(), '\n', rest.size());
        if (nl == nullptr && !last) break;
        const std::size_t line_end =
            nl == nullptr
                ? rest.size()
                : static_cast<std::size_t>(static_cast<const std::uint8_t*>(nl) - rest.data());
        size = nl == nullptr ? line_end : line_end + 1;
        std::string_view line = detail::as_text(rest.first(line_end));
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!line.empty()) {
          WARDEN_TRY_STATUS(count_entry());
          WARDEN_TRY_STATUS(detail::parse_ascii_entry(line, line_no, limits, scratch, entry));
          replayer->step(entry, index++, problems);
        }
      } else {
        size = detail::binary_entry_size(rest, big_endian, limits);
        if (size == 0 || size > rest.size()) {
          if (!last) break;
          size = rest.size();  // truncated: the parser says where
        }
        WARDEN_TRY_STATUS(count_entry());
        ByteReader r(rest.first(size), "IMA binary list");
        WARDEN_TRY_STATUS(
            detail::parse_binary_entry(r, big_endian, limits, count - 1, offset + pos, entry));
        WARDEN_TRY_STATUS(r.expect_end());
        replayer->step(entry, index++, problems);
      }
      pos += size;
    }
    return pos;
  }

  Status take(ByteSpan chunk, bool last) {
    if (pending.empty()) {
      auto used = consume(chunk, last);
      if (!used) return fail(used.error());
      offset += *used;
      pending.assign(chunk.begin() + static_cast<std::ptrdiff_t>(*used), chunk.end());
    } else {
      pending.insert(pending.end(), chunk.begin(), chunk.end());
      auto used = consume(pending, last);
      if (!used) return fail(used.error());
      offset += *used;
      pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(*used));
    }
    if (format && pending.size() > max_entry_bytes()) {
      return fail(
          ErrorCode::kLimitExceeded,
          fmt::format("IMA list: entry at offset {} exceeds {} bytes", offset, max_entry_bytes()));
    }
    return ok();
  }
};

StreamReplay::StreamReplay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StreamReplay::StreamReplay(StreamReplay&&) noexcept = default;
StreamReplay& StreamReplay::operator=(StreamReplay&&) noexcept = default;
StreamReplay::~StreamReplay() = default;

Result<StreamReplay> StreamReplay::create(ReplayState state, const ReplayOptions& options,
                                          const Limits& limits) {
  auto impl = std::make_unique<Impl>(std::move(state), options, limits);
  auto r = Replayer::create(impl->state, impl->options);
  if (!r) return fail(r.error());
  impl->replayer.emplace(std::move(*r));
  return StreamReplay(std::move(impl));
}

Status StreamReplay::feed(ByteSpan chunk) { return impl_->take(chunk, false); }

Result<ReplayResult> StreamReplay::finish() {
  WARDEN_TRY_STATUS(impl_->take({}, true));
  ReplayResult result;
  WARDEN_TRY_STATUS(impl_->replayer->store(impl_->state));
  impl_->state.entries = impl_->index;
  result.state = std::move(impl_->state);
  result.problems = std::move(impl_->problems);
  return result;
}

Result<BootAggregate> check_boot_aggregate(const Entry& entry, const PcrValues& pcrs) {
  return check_boot_aggregate(entry.view(), pcrs);
}

Result<BootAggregate> check_boot_aggregate(const EntryView& entry, const PcrValues& pcrs) {
  if (entry.path != "boot_aggregate") {
    return fail(
        ErrorCode::kMalformed,
        fmt::format("IMA boot_aggregate: first entry is '{}', not boot_aggregate", entry.path));
  }
  if (std::all_of(entry.file_digest.begin(), entry.file_digest.end(),
                  [](std::uint8_t b) { return b == 0; })) {
    return BootAggregate::kNoTpm;
  }
  auto alg = ima_hash_alg(entry.digest_algo);
  if (!alg) {
    return fail(
        ErrorCode::kUnsupported,
        fmt::format("IMA boot_aggregate: digest algorithm '{}' not supported", entry.digest_algo));
  }
  if (!pcrs.has_bank(*alg)) {
    return fail(
        ErrorCode::kPcrSelectionMismatch,
        fmt::format("IMA boot_aggregate: no {} PCR values to check against", hash_name(*alg)));
  }
  const unsigned last = *alg == TpmAlg::kSha1 ? 7 : 9;
  auto hasher = ossl::Hasher::create(to_ossl(*alg));
  if (!hasher) return fail(hasher.error());
  for (unsigned i = 0; i <= last; ++i) hasher->update(*pcrs.get(*alg, i));
  Bytes expected = hasher->finish();
  if (!std::equal(expected.begin(), expected.end(), entry.file_digest.begin(),
                  entry.file_digest.end())) {
    return fail(
        ErrorCode::kPcrDigestMismatch,
        fmt::format("IMA boot_aggregate ({} over PCR 0..{}): expected {}, found {}",
                    hash_name(*alg), last, hex_encode(expected), hex_encode(entry.file_digest)));
  }
  return BootAggregate::kMatch;
}

}  // namespace warden::attest::ima
