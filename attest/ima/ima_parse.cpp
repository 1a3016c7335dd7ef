#include <algorithm>
#include <array>
#include <charconv>

#include <fmt/format.h>

#include "attest/ima/ima.h"
#include "attest/ima/ima_entry.h"
#include "attest/ima/legacy_template.h"
#include "platform/base/encoding.h"

namespace warden::attest::ima {
namespace {

constexpr std::size_t kSha1Size = 20;
constexpr std::size_t kMaxTemplateName = 255;

enum class Field { kDigestNg, kDigestNgV2, kName, kSig, kBuf, kDigestModsig, kModsig };

struct TemplateLayout {
  std::string_view name;
  std::array<Field, 5> fields;
  std::size_t count;
};

constexpr std::array<TemplateLayout, 6> kLayouts{{
    {"ima-ng", {Field::kDigestNg, Field::kName}, 2},
    {"ima-sig", {Field::kDigestNg, Field::kName, Field::kSig}, 3},
    {"ima-buf", {Field::kDigestNg, Field::kName, Field::kBuf}, 3},
    {"ima-modsig",
     {Field::kDigestNg, Field::kName, Field::kSig, Field::kDigestModsig, Field::kModsig},
     5},
    {"ima-ngv2", {Field::kDigestNgV2, Field::kName}, 2},
    {"ima-sigv2", {Field::kDigestNgV2, Field::kName, Field::kSig}, 3},
}};

const TemplateLayout* find_layout(std::string_view name) {
  for (const TemplateLayout& l : kLayouts) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

std::uint32_t load_u32(ByteSpan b, bool big_endian) {
  if (big_endian) {
    return std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 |
           std::uint32_t{b[3]};
  }
  return std::uint32_t{b[3]} << 24 | std::uint32_t{b[2]} << 16 | std::uint32_t{b[1]} << 8 |
         std::uint32_t{b[0]};
}

// Inlined: called several times per entry, and out of line it cost as much as the rest of the
// parse.
[[gnu::always_inline]] inline Result<std::uint32_t> read_u32(ByteReader& r, bool big_endian,
                                                             std::string_view field) {
  return big_endian ? r.u32be(field) : r.u32le(field);
}

}  // namespace

std::string_view detail::as_text(ByteSpan b) {
  return {reinterpret_cast<const char*>(b.data()),  // NOLINT(*-reinterpret-cast): bytes as text
          b.size()};
}

namespace {
using detail::as_text;

// "algo:" NUL digest (d-ng) or "type:algo:" NUL digest (d-ngv2).
Status decode_digest(ByteSpan field, bool v2, EntryView& e, std::string_view what) {
  auto nul = std::find(field.begin(), field.end(), std::uint8_t{0});
  if (nul == field.end()) {
    // No algorithm prefix (very old kernels wrote a bare SHA-1 for sha1): take it as is.
    e.digest_algo = field.size() == kSha1Size ? "sha1" : "";
    e.file_digest = field;
    return ok();
  }
  const auto prefix_size = static_cast<std::size_t>(nul - field.begin());
  std::string_view prefix = as_text(field.first(prefix_size));
  if (prefix.empty() || prefix.back() != ':') {
    return fail(ErrorCode::kMalformed,
                fmt::format("{}: digest prefix '{}' does not end in ':'", what, prefix));
  }
  prefix.remove_suffix(1);
  if (v2) {
    auto colon = prefix.find(':');
    if (colon == std::string_view::npos) {
      return fail(ErrorCode::kMalformed,
                  fmt::format("{}: d-ngv2 prefix '{}' lacks a digest type", what, prefix));
    }
    e.digest_type = prefix.substr(0, colon);
    e.digest_algo = prefix.substr(colon + 1);
  } else {
    e.digest_algo = prefix;
  }
  e.file_digest = field.subspan(prefix_size + 1);
  return ok();
}

// Splits the template data of a non-legacy template into its fields.
Status decode_fields(EntryView& e, bool big_endian, std::string_view what) {
  const TemplateLayout* layout = find_layout(e.template_name);
  if (layout == nullptr) return ok();  // unknown template: replayable, fields not decoded
  ByteReader r(e.template_data, what);
  for (std::size_t i = 0; i < layout->count; ++i) {
    auto len = read_u32(r, big_endian, "field length");
    if (!len) return fail(len.error());
    auto data = r.bytes(*len, "field data");
    if (!data) return fail(data.error());
    switch (layout->fields[i]) {
      case Field::kDigestNg:
      case Field::kDigestNgV2:
        WARDEN_TRY_STATUS(decode_digest(*data, layout->fields[i] == Field::kDigestNgV2, e, what));
        break;
      case Field::kName: {
        ByteSpan name = *data;
        if (!name.empty() && name.back() == 0) name = name.first(name.size() - 1);
        e.path = as_text(name);
        break;
      }
      case Field::kSig:
        e.signature = *data;
        break;
      case Field::kBuf:
        e.buffer = *data;
        break;
      case Field::kDigestModsig:
        break;  // digest of the file without its appended signature
      case Field::kModsig:
        e.modsig = *data;
        break;
    }
  }
  return r.expect_end();
}

Bytes legacy_template_bytes(ByteSpan digest, std::string_view path) {
  LegacyTemplateData data;
  legacy_template_data(digest, path, data);
  return Bytes(data.begin(), data.end());
}

bool plausible_pcr(std::uint32_t v) { return v < kPcrCount; }

}  // namespace

void legacy_template_data(ByteSpan digest, std::string_view path, LegacyTemplateData& out) {
  const std::size_t d = std::min(digest.size(), kLegacyDigestSize);
  const std::size_t n = std::min(path.size(), kLegacyNameSize);
  std::copy_n(digest.begin(), d, out.begin());
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(d), out.begin() + kLegacyDigestSize, 0);
  auto name = out.begin() + kLegacyDigestSize;
  std::copy_n(path.begin(), n, name);
  std::fill(name + static_cast<std::ptrdiff_t>(n), out.end(), 0);
}

bool EntryView::violation() const {
  return std::all_of(template_hash.begin(), template_hash.end(),
                     [](std::uint8_t b) { return b == 0; });
}

bool Entry::violation() const { return view().violation(); }

EntryView Entry::view() const {
  return {pcr,         template_hash, template_name, template_data, digest_type, digest_algo,
          file_digest, path,          signature,     buffer,        modsig};
}

Entry Entry::from(const EntryView& v) {
  Entry e;
  e.pcr = v.pcr;
  e.template_hash.assign(v.template_hash.begin(), v.template_hash.end());
  e.template_name = v.template_name;
  e.template_data.assign(v.template_data.begin(), v.template_data.end());
  e.digest_type = v.digest_type;
  e.digest_algo = v.digest_algo;
  e.file_digest.assign(v.file_digest.begin(), v.file_digest.end());
  e.path = v.path;
  e.signature.assign(v.signature.begin(), v.signature.end());
  e.buffer.assign(v.buffer.begin(), v.buffer.end());
  e.modsig.assign(v.modsig.begin(), v.modsig.end());
  if (e.template_data.empty() && e.template_name == "ima") {
    e.template_data = legacy_template_bytes(e.file_digest, e.path);
  }
  return e;
}

std::vector<EntryView> views(std::span<const Entry> entries) {
  std::vector<EntryView> out;
  out.reserve(entries.size());
  for (const Entry& e : entries) out.push_back(e.view());
  return out;
}

std::optional<TpmAlg> ima_hash_alg(std::string_view name) { return hash_from_name(name); }

Format detect_format(ByteSpan list) {
  std::size_t i = 0;
  while (i < list.size() && i < 3 && list[i] >= '0' && list[i] <= '9') ++i;
  if (i > 0 && i < list.size() && list[i] == ' ') return Format::kAscii;
  return Format::kBinary;
}

namespace detail {

bool binary_big_endian(ByteSpan first4) {
  return first4.size() >= 4 && !plausible_pcr(load_u32(first4, false)) &&
         plausible_pcr(load_u32(first4, true));
}

std::size_t binary_entry_size(ByteSpan rest, bool big_endian, const Limits& limits) {
  std::size_t need = 4 + kSha1Size + 4;
  if (rest.size() < need) return 0;
  const std::uint32_t name_len = load_u32(rest.subspan(4 + kSha1Size), big_endian);
  if (name_len == 0 || name_len > kMaxTemplateName) return rest.size();
  const std::string_view name =
      as_text(rest.subspan(need).first(std::min<std::size_t>(name_len, rest.size() - need)));
  need += name_len;
  const bool legacy = name == "ima";
  if (legacy) need += kSha1Size;
  if (rest.size() < need + 4) return 0;
  const std::uint32_t len = load_u32(rest.subspan(need), big_endian);
  if (len > (legacy ? kLegacyNameSize : limits.max_template_data)) return rest.size();
  return need + 4 + len;
}

Status parse_binary_entry(ByteReader& r, bool big_endian, const Limits& limits, std::size_t index,
                          std::size_t start, EntryView& e) {
  e = EntryView{};
  auto pcr = read_u32(r, big_endian, "pcr");
  if (!pcr) return fail(pcr.error());
  if (!plausible_pcr(*pcr)) {
    return fail(ErrorCode::kMalformed,
                fmt::format("IMA binary list: entry {} at offset {}: PCR index {} out of range",
                            index, start, *pcr));
  }
  e.pcr = *pcr;
  auto hash = r.bytes(kSha1Size, "template hash");
  if (!hash) return fail(hash.error());
  e.template_hash = *hash;
  auto name_len = read_u32(r, big_endian, "template name length");
  if (!name_len) return fail(name_len.error());
  if (*name_len == 0 || *name_len > kMaxTemplateName) {
    return fail(ErrorCode::kMalformed,
                fmt::format("IMA binary list: entry {} at offset {}: template name length {} "
                            "(expected 1..{})",
                            index, start, *name_len, kMaxTemplateName));
  }
  auto name = r.bytes(*name_len, "template name");
  if (!name) return fail(name.error());
  e.template_name = as_text(*name);
  if (e.template_name == "ima") {
    auto digest = r.bytes(kSha1Size, "legacy digest");
    if (!digest) return fail(digest.error());
    auto path_len = read_u32(r, big_endian, "legacy name length");
    if (!path_len) return fail(path_len.error());
    if (*path_len >= kLegacyNameSize) {
      return fail(ErrorCode::kMalformed,
                  fmt::format("IMA binary list: entry {} at offset {}: legacy name length {} "
                              "exceeds {}",
                              index, start, *path_len, kLegacyNameSize - 1));
    }
    auto path = r.bytes(*path_len, "legacy name");
    if (!path) return fail(path.error());
    e.digest_algo = "sha1";
    e.file_digest = *digest;
    e.path = as_text(*path);
    // template_data stays empty: digest || path padded to 256 bytes is not in the list.
    return ok();
  }
  auto data_len = read_u32(r, big_endian, "template data length");
  if (!data_len) return fail(data_len.error());
  if (*data_len > limits.max_template_data) {
    return fail(ErrorCode::kLimitExceeded,
                fmt::format("IMA binary list: entry {} at offset {}: template data length {} "
                            "exceeds {}",
                            index, start, *data_len, limits.max_template_data));
  }
  auto data = r.bytes(*data_len, "template data");
  if (!data) return fail(data.error());
  e.template_data = *data;
  if (auto st = decode_fields(e, big_endian, "IMA template data"); !st) {
    return fail(ErrorCode::kMalformed,
                fmt::format("IMA binary list: entry {} ({}) at offset {}: {}", index,
                            e.template_name, start, st.error().message));
  }
  return ok();
}

}  // namespace detail

Result<std::vector<EntryView>> parse_binary_view(ByteSpan list, const Limits& limits) {
  std::vector<EntryView> entries;
  const bool big_endian = detail::binary_big_endian(list);
  // An entry takes at least 4+20+4+1+4 bytes: reserve for a typical ~100-byte ima-ng entry.
  entries.reserve(std::min(limits.max_entries, list.size() / 96 + 1));
  ByteReader r(list, "IMA binary list");
  while (!r.empty()) {
    if (entries.size() >= limits.max_entries) {
      return fail(ErrorCode::kLimitExceeded,
                  fmt::format("IMA binary list: more than {} entries", limits.max_entries));
    }
    const std::size_t index = entries.size();
    EntryView& e = entries.emplace_back();  // built in place; on error the vector is discarded
    WARDEN_TRY_STATUS(detail::parse_binary_entry(r, big_endian, limits, index, r.offset(), e));
  }
  return entries;
}

Result<std::vector<Entry>> parse_binary(ByteSpan list, const Limits& limits) {
  auto parsed = parse_binary_view(list, limits);
  if (!parsed) return fail(std::move(parsed).error());
  std::vector<Entry> entries;
  entries.reserve(parsed->size());
  for (const EntryView& v : *parsed) entries.push_back(Entry::from(v));
  return entries;
}

namespace {

class LineParser {
 public:
  LineParser(std::string_view line, std::size_t line_no) : rest_(line), line_no_(line_no) {}

  Result<std::string_view> token(std::string_view what) {
    auto sp = rest_.find(' ');
    std::string_view tok = rest_.substr(0, sp);
    rest_ = sp == std::string_view::npos ? std::string_view{} : rest_.substr(sp + 1);
    if (tok.empty()) return fail(error(fmt::format("missing {}", what)));
    return tok;
  }
  /// Removes and returns the last space-separated token (empty when the line ends in a space
  /// or has no space left).
  std::string_view take_last() {
    auto sp = rest_.rfind(' ');
    if (sp == std::string_view::npos) return {};
    std::string_view tok = rest_.substr(sp + 1);
    rest_ = rest_.substr(0, sp);
    return tok;
  }
  [[nodiscard]] std::string_view rest() const { return rest_; }
  [[nodiscard]] Error error(std::string_view detail) const {
    return Error{ErrorCode::kMalformed,
                 fmt::format("IMA ASCII list: line {}: {}", line_no_, detail)};
  }

 private:
  std::string_view rest_;
  std::size_t line_no_;
};

// 0x10 marks a non-digit: a table, because hex decoding is most of an ASCII list's parse.
constexpr std::array<std::uint8_t, 256> kHexValue = [] {
  std::array<std::uint8_t, 256> t{};
  t.fill(0x10);
  for (std::size_t c = '0'; c <= '9'; ++c) t[c] = static_cast<std::uint8_t>(c - '0');
  for (std::size_t c = 'a'; c <= 'f'; ++c) t[c] = static_cast<std::uint8_t>(c - 'a' + 10);
  for (std::size_t c = 'A'; c <= 'F'; ++c) t[c] = static_cast<std::uint8_t>(c - 'A' + 10);
  return t;
}();

// Decodes into `out`, whose capacity is kept from line to line (no allocation once warm).
Status hex_field(const LineParser& p, std::string_view text, std::string_view what, Bytes& out) {
  std::string_view digits = text;
  if (digits.starts_with("0x") || digits.starts_with("0X")) digits.remove_prefix(2);
  std::uint8_t bad = digits.size() % 2 == 0 ? 0 : 0x10;
  out.resize(digits.size() / 2);
  std::uint8_t* o = out.data();
  for (std::size_t i = 0, n = out.size(); i < n; ++i) {
    const std::uint8_t hi = kHexValue[static_cast<unsigned char>(digits[2 * i])];
    const std::uint8_t lo = kHexValue[static_cast<unsigned char>(digits[2 * i + 1])];
    bad |= static_cast<std::uint8_t>(hi | lo);
    o[i] = static_cast<std::uint8_t>((hi << 4) | (lo & 0xf));
  }
  if ((bad & 0x10) != 0) {
    return fail(p.error(fmt::format("{} '{}' is not hex", what, text.substr(0, 80))));
  }
  return ok();
}

void put_u32le(Bytes& out, std::size_t size) {
  const auto n = static_cast<std::uint32_t>(size);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
}

void put_field(Bytes& out, ByteSpan field) {
  put_u32le(out, field.size());
  out.insert(out.end(), field.begin(), field.end());
}

// "algo:hex" or "type:algo:hex" into the field bytes "algo:" NUL digest (appended to `data`).
Status digest_field(const LineParser& p, std::string_view text, bool v2, Bytes& digest,
                    EntryView* e, Bytes& data) {
  if (text.empty()) {
    put_u32le(data, 0);
    return ok();
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return fail(p.error("digest lacks 'algo:' prefix"));
  WARDEN_TRY_STATUS(hex_field(p, text.substr(colon + 1), "file digest", digest));
  std::string_view prefix = text.substr(0, colon);
  if (e != nullptr) {
    if (v2) {
      auto c = prefix.find(':');
      if (c == std::string_view::npos) return fail(p.error("d-ngv2 digest lacks a type"));
      e->digest_type = prefix.substr(0, c);
      e->digest_algo = prefix.substr(c + 1);
    } else {
      e->digest_algo = prefix;
    }
    e->file_digest = digest;
  }
  put_u32le(data, prefix.size() + 2 + digest.size());
  data.insert(data.end(), prefix.begin(), prefix.end());
  data.push_back(':');
  data.push_back(0);
  data.insert(data.end(), digest.begin(), digest.end());
  return ok();
}

}  // namespace

Status detail::parse_ascii_entry(std::string_view line, std::size_t line_no, const Limits& limits,
                                 AsciiScratch& s, EntryView& e) {
  LineParser p(line, line_no);
  e = EntryView{};
  auto pcr_text = p.token("PCR index");
  if (!pcr_text) return fail(pcr_text.error());
  auto [ptr, ec] = std::from_chars(pcr_text->data(), pcr_text->data() + pcr_text->size(), e.pcr);
  if (ec != std::errc{} || ptr != pcr_text->data() + pcr_text->size() || !plausible_pcr(e.pcr)) {
    return fail(p.error(fmt::format("PCR index '{}' is not 0..23", *pcr_text)));
  }
  auto hash_text = p.token("template hash");
  if (!hash_text) return fail(hash_text.error());
  WARDEN_TRY_STATUS(hex_field(p, *hash_text, "template hash", s.template_hash));
  if (s.template_hash.size() < kSha1Size || s.template_hash.size() > 64) {
    return fail(p.error(fmt::format("template hash of {} bytes", s.template_hash.size())));
  }
  e.template_hash = s.template_hash;
  auto name = p.token("template name");
  if (!name) return fail(name.error());
  e.template_name = *name;

  if (e.template_name == "ima") {
    auto digest_text = p.token("file digest");
    if (!digest_text) return fail(digest_text.error());
    WARDEN_TRY_STATUS(hex_field(p, *digest_text, "file digest", s.file_digest));
    if (s.file_digest.size() != kSha1Size) {
      return fail(p.error("legacy ima digest is not 20 bytes"));
    }
    if (p.rest().size() >= kLegacyNameSize) return fail(p.error("legacy ima name too long"));
    e.digest_algo = "sha1";
    e.file_digest = s.file_digest;
    e.path = p.rest();
    return ok();
  }
  const TemplateLayout* layout = find_layout(e.template_name);
  if (layout == nullptr) {
    return fail(
        p.error(fmt::format("template '{}' cannot be rebuilt from ASCII; use the "
                            "binary list",
                            e.template_name)));
  }
  // Fields after the name are single hex tokens: split them off from the right, so the name
  // (rest of the line) may contain spaces.
  std::array<std::string_view, 5> text{};
  auto digest_text = p.token("file digest");
  if (!digest_text) return fail(digest_text.error());
  text[0] = *digest_text;
  for (std::size_t i = layout->count; i-- > 2;) text[i] = p.take_last();
  text[1] = p.rest();

  Bytes& data = s.template_data;
  data.clear();
  for (std::size_t i = 0; i < layout->count; ++i) {
    switch (layout->fields[i]) {
      case Field::kDigestNg:
      case Field::kDigestNgV2:
        WARDEN_TRY_STATUS(digest_field(p, text[i], layout->fields[i] == Field::kDigestNgV2,
                                       s.file_digest, &e, data));
        break;
      case Field::kDigestModsig:
        WARDEN_TRY_STATUS(digest_field(p, text[i], false, s.modsig_digest, nullptr, data));
        break;
      case Field::kName:
        e.path = text[i];
        put_u32le(data, e.path.size() + 1);
        data.insert(data.end(), e.path.begin(), e.path.end());
        data.push_back(0);
        break;
      case Field::kSig:
      case Field::kBuf:
      case Field::kModsig: {
        Bytes& target = layout->fields[i] == Field::kSig   ? s.signature
                        : layout->fields[i] == Field::kBuf ? s.buffer
                                                           : s.modsig;
        WARDEN_TRY_STATUS(hex_field(p, text[i], "field", target));
        put_field(data, target);
        ByteSpan& view = layout->fields[i] == Field::kSig   ? e.signature
                         : layout->fields[i] == Field::kBuf ? e.buffer
                                                            : e.modsig;
        view = target;
        break;
      }
    }
  }
  if (data.size() > limits.max_template_data) {
    return fail(ErrorCode::kLimitExceeded,
                fmt::format("IMA ASCII list: line {}: template data exceeds {} bytes", line_no,
                            limits.max_template_data));
  }
  e.template_data = data;
  return ok();
}

Result<std::vector<Entry>> parse_ascii(std::string_view list, const Limits& limits) {
  std::vector<Entry> entries;
  detail::AsciiScratch scratch;
  EntryView view;
  std::size_t line_no = 0;
  while (!list.empty()) {
    auto nl = list.find('\n');
    std::string_view line = list.substr(0, nl);
    list = nl == std::string_view::npos ? std::string_view{} : list.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (entries.size() >= limits.max_entries) {
      return fail(ErrorCode::kLimitExceeded,
                  fmt::format("IMA ASCII list: more than {} entries", limits.max_entries));
    }
    WARDEN_TRY_STATUS(detail::parse_ascii_entry(line, line_no, limits, scratch, view));
    entries.push_back(Entry::from(view));
  }
  return entries;
}

Result<std::vector<Entry>> parse(ByteSpan list, const Limits& limits) {
  if (detect_format(list) == Format::kAscii) {
    return parse_ascii(detail::as_text(list), limits);
  }
  return parse_binary(list, limits);
}

}  // namespace warden::attest::ima
