#include "attest/eventlog/event_data.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "platform/base/openssl.h"

namespace warden::attest::eventlog::detail {

bool starts_with(ByteSpan data, std::string_view prefix) {
  return data.size() >= prefix.size() &&
         std::memcmp(data.data(), prefix.data(), prefix.size()) == 0;
}

bool all_zero(ByteSpan data) {
  return std::all_of(data.begin(), data.end(), [](std::uint8_t b) { return b == 0; });
}

// An odd trailing byte is allowed: systemd-boot's command-line event carries one.
bool looks_utf16(ByteSpan data) {
  if (data.size() < 4) return false;
  for (std::size_t i = 1; i < data.size(); i += 2)
    if (data[i] != 0) return false;
  return data[0] != 0;
}

std::string utf16le_to_text(ByteSpan data) {
  std::string out;
  out.reserve(data.size() / 2);
  for (std::size_t i = 0; i + 1 < data.size(); i += 2) {
    const auto unit = static_cast<std::uint16_t>(data[i] | (data[i + 1] << 8));
    if (unit == 0) break;
    out.push_back(unit < 0x80 ? static_cast<char>(unit) : '?');
  }
  return out;
}

std::string guid_text(ByteSpan g) {
  char buf[40];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", g[3], g[2],
                g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14],
                g[15]);
  return buf;
}

Result<SpecIdEvent> parse_spec_id(ByteSpan data, ByteSpan following, const QuirkSet* quirks,
                                  std::size_t* overrun) {
  ByteReader r(data, "Spec ID Event03");
  SpecIdEvent s;
  WARDEN_TRY_STATUS(r.skip(16, "signature"));
  auto pc = r.u32le("platformClass");
  if (!pc) return fail(pc.error());
  s.platform_class = *pc;
  auto minor = r.u8("specVersionMinor");
  auto major = minor ? r.u8("specVersionMajor") : minor;
  auto errata = major ? r.u8("specErrata") : major;
  auto uintn = errata ? r.u8("uintnSize") : errata;
  auto count = uintn ? r.u32le("numberOfAlgorithms") : Result<std::uint32_t>(fail(uintn.error()));
  if (!count) return fail(count.error());
  s.spec_version_minor = *minor;
  s.spec_version_major = *major;
  s.spec_errata = *errata;
  s.uintn_size = *uintn;
  if (*count == 0 || *count > 64)
    return fail(r.error("numberOfAlgorithms", "expected 1..64, found " + std::to_string(*count)));
  for (std::uint32_t i = 0; i < *count; ++i) {
    auto alg = r.u16le("algorithmId");
    if (!alg) return fail(alg.error());
    auto size = r.u16le("digestSize");
    if (!size) return fail(size.error());
    if (*size == 0 || *size > 64)
      return fail(r.error("digestSize", "expected 1..64, found " + std::to_string(*size)));
    for (const auto& a : s.algorithms)
      if (a.alg == *alg) return fail(r.error("algorithmId", "duplicate algorithm"));
    if (auto known = hash_from_tpm_id(*alg); known && hash_size(*known) != *size)
      return fail(r.error("digestSize", std::string(hash_name(*known)) + " expects " +
                                            std::to_string(hash_size(*known)) + ", found " +
                                            std::to_string(*size)));
    s.algorithms.push_back({*alg, *size});
  }
  auto vsize = r.u8("vendorInfoSize");
  if (!vsize) return fail(vsize.error());
  const std::size_t taken = *vsize > r.remaining() && quirks != nullptr && overrun != nullptr &&
                                    quirks->has(QuirkId::kSpecIdVendorInfoOverrun)
                                ? quirk(QuirkId::kSpecIdVendorInfoOverrun)
                                      .vendor_info_overrun(*vsize - r.remaining(), following)
                                : 0;
  if (taken > 0) {
    *overrun = taken;
    s.vendor_info.assign(r.rest().begin(), r.rest().end());
    s.vendor_info.insert(s.vendor_info.end(), following.begin(),
                         following.begin() + static_cast<std::ptrdiff_t>(*overrun));
    return s;
  }
  auto vendor = r.bytes(*vsize, "vendorInfo");
  if (!vendor) return fail(vendor.error());
  s.vendor_info.assign(vendor->begin(), vendor->end());
  return s;
}
}  // namespace warden::attest::eventlog::detail
