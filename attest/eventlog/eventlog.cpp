#include "attest/eventlog/eventlog.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::attest::eventlog {
namespace {

constexpr std::string_view kSpecIdSignature{"Spec ID Event03\0", 16};
constexpr std::string_view kStartupLocality{"StartupLocality\0", 16};
constexpr std::size_t kSha1Size = 20;

bool starts_with(ByteSpan data, std::string_view prefix) {
  return data.size() >= prefix.size() &&
         std::memcmp(data.data(), prefix.data(), prefix.size()) == 0;
}

bool all_zero(ByteSpan data) {
  return std::all_of(data.begin(), data.end(), [](std::uint8_t b) { return b == 0; });
}

std::string hex(ByteSpan b) { return hex_encode(b); }

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

std::string printable(ByteSpan data) {
  std::string out;
  for (auto b : data) {
    if (b == 0) break;
    out.push_back(b >= 0x20 && b < 0x7f ? static_cast<char>(b) : '.');
  }
  return out;
}

// Looks like UTF-16LE ASCII text: at least two units, every odd byte zero.
// An odd trailing byte is allowed (systemd-boot's command-line event carries one).
bool looks_utf16(ByteSpan data) {
  if (data.size() < 4) return false;
  for (std::size_t i = 1; i < data.size(); i += 2)
    if (data[i] != 0) return false;
  return data[0] != 0;
}

std::string guid_text(ByteSpan g) {
  char buf[40];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", g[3], g[2],
                g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14],
                g[15]);
  return buf;
}

// `following` is the log after the record: some logs (tpm2-tools' specid-vendordata fixture) carry
// a vendorInfo that runs past EventSize; `overrun` receives how many following bytes were taken.
Result<SpecIdEvent> parse_spec_id(ByteSpan data, ByteSpan following = {},
                                  std::size_t* overrun = nullptr) {
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
  if (*vsize > r.remaining() && overrun != nullptr && *vsize - r.remaining() <= following.size()) {
    *overrun = *vsize - r.remaining();
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

// Legacy TCG_PCR_EVENT.
Result<Event> read_legacy(ByteReader& r) {
  Event e;
  e.offset = r.offset();
  auto pcr = r.u32le("PCRIndex");
  if (!pcr) return fail(pcr.error());
  auto type = r.u32le("EventType");
  if (!type) return fail(type.error());
  auto digest = r.bytes(kSha1Size, "Digest");
  if (!digest) return fail(digest.error());
  auto size = r.u32le("EventSize");
  if (!size) return fail(size.error());
  auto data = r.bytes(*size, "Event");
  if (!data) return fail(data.error());
  e.pcr = *pcr;
  e.type = *type;
  e.digests.push_back(
      {static_cast<std::uint16_t>(TpmAlg::kSha1), Bytes(digest->begin(), digest->end())});
  e.data.assign(data->begin(), data->end());
  return e;
}

// Crypto-agile TCG_PCR_EVENT2.
Result<Event> read_event2(ByteReader& r, const SpecIdEvent& spec) {
  Event e;
  e.offset = r.offset();
  auto pcr = r.u32le("PCRIndex");
  if (!pcr) return fail(pcr.error());
  auto type = r.u32le("EventType");
  if (!type) return fail(type.error());
  auto count = r.u32le("DigestCount");
  if (!count) return fail(count.error());
  if (*count > spec.algorithms.size())
    return fail(
        r.error("DigestCount", "expected at most " + std::to_string(spec.algorithms.size()) +
                                   " (Spec ID algorithms), found " + std::to_string(*count)));
  for (std::uint32_t i = 0; i < *count; ++i) {
    auto alg = r.u16le("AlgorithmId");
    if (!alg) return fail(alg.error());
    auto it = std::find_if(spec.algorithms.begin(), spec.algorithms.end(),
                           [&](const AlgorithmSize& a) { return a.alg == *alg; });
    if (it == spec.algorithms.end()) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%04x", *alg);
      return fail(r.error("AlgorithmId", std::string("algorithm 0x") + buf +
                                             " is not in the Spec ID Event03 table"));
    }
    auto d = r.bytes(it->digest_size, "Digest");
    if (!d) return fail(d.error());
    e.digests.push_back({*alg, Bytes(d->begin(), d->end())});
  }
  auto size = r.u32le("EventSize");
  if (!size) return fail(size.error());
  auto data = r.bytes(*size, "Event");
  if (!data) return fail(data.error());
  e.pcr = *pcr;
  e.type = *type;
  e.data.assign(data->begin(), data->end());
  return e;
}

}  // namespace

std::string event_type_name(std::uint32_t type) {
  switch (type) {
    case kEvPrebootCert:
      return "EV_PREBOOT_CERT";
    case kEvPostCode:
      return "EV_POST_CODE";
    case 0x2:
      return "EV_UNUSED";
    case kEvNoAction:
      return "EV_NO_ACTION";
    case kEvSeparator:
      return "EV_SEPARATOR";
    case kEvAction:
      return "EV_ACTION";
    case kEvEventTag:
      return "EV_EVENT_TAG";
    case kEvSCrtmContents:
      return "EV_S_CRTM_CONTENTS";
    case kEvSCrtmVersion:
      return "EV_S_CRTM_VERSION";
    case kEvCpuMicrocode:
      return "EV_CPU_MICROCODE";
    case kEvPlatformConfigFlags:
      return "EV_PLATFORM_CONFIG_FLAGS";
    case kEvTableOfDevices:
      return "EV_TABLE_OF_DEVICES";
    case kEvCompactHash:
      return "EV_COMPACT_HASH";
    case kEvIpl:
      return "EV_IPL";
    case kEvIplPartitionData:
      return "EV_IPL_PARTITION_DATA";
    case kEvNonhostCode:
      return "EV_NONHOST_CODE";
    case kEvNonhostConfig:
      return "EV_NONHOST_CONFIG";
    case kEvNonhostInfo:
      return "EV_NONHOST_INFO";
    case kEvOmitBootDeviceEvents:
      return "EV_OMIT_BOOT_DEVICE_EVENTS";
    case kEvEfiVariableDriverConfig:
      return "EV_EFI_VARIABLE_DRIVER_CONFIG";
    case kEvEfiVariableBoot:
      return "EV_EFI_VARIABLE_BOOT";
    case kEvEfiBootServicesApplication:
      return "EV_EFI_BOOT_SERVICES_APPLICATION";
    case kEvEfiBootServicesDriver:
      return "EV_EFI_BOOT_SERVICES_DRIVER";
    case kEvEfiRuntimeServicesDriver:
      return "EV_EFI_RUNTIME_SERVICES_DRIVER";
    case kEvEfiGptEvent:
      return "EV_EFI_GPT_EVENT";
    case kEvEfiAction:
      return "EV_EFI_ACTION";
    case kEvEfiPlatformFirmwareBlob:
      return "EV_EFI_PLATFORM_FIRMWARE_BLOB";
    case kEvEfiHandoffTables:
      return "EV_EFI_HANDOFF_TABLES";
    case kEvEfiPlatformFirmwareBlob2:
      return "EV_EFI_PLATFORM_FIRMWARE_BLOB2";
    case kEvEfiHandoffTables2:
      return "EV_EFI_HANDOFF_TABLES2";
    case kEvEfiVariableBoot2:
      return "EV_EFI_VARIABLE_BOOT2";
    case kEvEfiHcrtmEvent:
      return "EV_EFI_HCRTM_EVENT";
    case kEvEfiVariableAuthority:
      return "EV_EFI_VARIABLE_AUTHORITY";
    default:
      break;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "EV_UNKNOWN_0x%08x", type);
  return buf;
}

Result<EventLog> parse(ByteSpan log, const ParseOptions& options) {
  EventLog out;
  ByteReader r(log, "event log");
  // First record: always the legacy format.
  auto first = read_legacy(r);
  if (!first) return fail(first.error());
  first->index = 0;
  if (first->type == kEvNoAction && first->pcr == 0 && starts_with(first->data, kSpecIdSignature)) {
    std::size_t overrun = 0;
    auto spec = parse_spec_id(first->data, r.rest(), &overrun);
    if (!spec) {
      auto e = spec.error();
      e.message += " (in the first record at offset 0)";
      return fail(std::move(e));
    }
    out.crypto_agile = true;
    out.spec_id = std::move(*spec);
    if (overrun > 0) {
      WARDEN_TRY_STATUS(r.skip(overrun, "vendorInfo"));
      out.warnings.push_back("Spec ID Event03: vendorInfoSize runs " + std::to_string(overrun) +
                             " bytes past EventSize; took them from offset " +
                             std::to_string(r.offset() - overrun));
    }
  }
  out.events.push_back(std::move(*first));

  while (!r.empty()) {
    // Firmware may pad the buffer with zeros: stop at an all-zero record header.
    if (r.remaining() < 8 || all_zero(r.rest().first(std::min<std::size_t>(r.remaining(), 32)))) {
      if (all_zero(r.rest())) break;
    }
    if (out.events.size() >= options.max_events)
      return fail(ErrorCode::kLimitExceeded,
                  "event log: more than " + std::to_string(options.max_events) + " events");
    const std::size_t at = r.offset();
    auto ev = out.crypto_agile ? read_event2(r, *out.spec_id) : read_legacy(r);
    if (!ev) {
      if (!options.best_effort) return fail(ev.error());
      out.warnings.push_back("stopped at event " + std::to_string(out.events.size()) + " (offset " +
                             std::to_string(at) + "): " + ev.error().message);
      break;
    }
    ev->index = out.events.size();
    out.events.push_back(std::move(*ev));
  }
  return out;
}

Result<Replay> replay(const EventLog& log) {
  Replay out;
  std::vector<TpmAlg> banks;
  if (log.crypto_agile) {
    for (const auto& a : log.spec_id->algorithms) {
      if (auto alg = hash_from_tpm_id(a.alg)) {
        banks.push_back(*alg);
      } else {
        char buf[64];
        std::snprintf(buf, sizeof buf, "algorithm 0x%04x not replayed (unsupported)", a.alg);
        out.warnings.emplace_back(buf);
      }
    }
  } else {
    banks.push_back(TpmAlg::kSha1);
  }
  for (auto b : banks) out.pcrs.init_bank(b);

  bool pcr0_extended = false;
  // The Spec ID record is EV_NO_ACTION; in legacy logs the first record is a real event.
  for (const Event& e : log.events) {
    if (e.pcr >= kPcrCount) {
      out.warnings.push_back("event " + std::to_string(e.index) + ": PCR " + std::to_string(e.pcr) +
                             " out of range, not replayed");
      continue;
    }
    if (e.type == kEvNoAction) {
      if (e.pcr == 0 && starts_with(e.data, kStartupLocality) && e.data.size() >= 17) {
        if (pcr0_extended) {
          out.warnings.push_back("event " + std::to_string(e.index) +
                                 ": StartupLocality after PCR0 was extended; ignored");
          continue;
        }
        for (auto b : banks) {
          Bytes init(hash_size(b), 0);
          init.back() = e.data[16];
          WARDEN_TRY_STATUS(out.pcrs.set(b, 0, init));
        }
      }
      continue;
    }
    if (e.type == kEvEfiHcrtmEvent && e.pcr == 0 && !pcr0_extended) {
      for (auto b : banks) {
        Bytes init(hash_size(b), 0);
        init.back() = 4;
        WARDEN_TRY_STATUS(out.pcrs.set(b, 0, init));
      }
    }
    for (auto b : banks) {
      auto it = std::find_if(e.digests.begin(), e.digests.end(), [&](const EventDigest& d) {
        return d.alg == static_cast<std::uint16_t>(b);
      });
      if (it == e.digests.end()) {
        out.warnings.push_back("event " + std::to_string(e.index) + ": no " +
                               std::string(hash_name(b)) + " digest");
        continue;
      }
      WARDEN_TRY_STATUS(out.pcrs.extend(b, e.pcr, it->digest));
    }
    if (e.pcr == 0) pcr0_extended = true;
  }
  return out;
}

Result<UefiVariable> parse_uefi_variable(ByteSpan data) {
  ByteReader r(data, "UEFI_VARIABLE_DATA");
  auto guid = r.bytes(16, "VariableName");
  if (!guid) return fail(guid.error());
  auto name_len = r.u64le("UnicodeNameLength");
  if (!name_len) return fail(name_len.error());
  auto data_len = r.u64le("VariableDataLength");
  if (!data_len) return fail(data_len.error());
  if (*name_len > r.remaining() / 2)
    return fail(r.error("UnicodeNameLength", std::to_string(*name_len) + " characters, only " +
                                                 std::to_string(r.remaining()) + " bytes left"));
  auto name = r.bytes(static_cast<std::size_t>(*name_len) * 2, "UnicodeName");
  if (!name) return fail(name.error());
  if (*data_len > r.remaining())
    return fail(r.error("VariableDataLength", std::to_string(*data_len) + " bytes, only " +
                                                  std::to_string(r.remaining()) + " left"));
  auto value = r.bytes(static_cast<std::size_t>(*data_len), "VariableData");
  if (!value) return fail(value.error());
  UefiVariable v;
  v.guid = guid_text(*guid);
  v.name = utf16le_to_text(*name);
  v.data.assign(value->begin(), value->end());
  return v;
}

std::vector<DigestMismatch> check_digests(const EventLog& log) {
  std::vector<DigestMismatch> out;
  for (const auto& e : log.events) {
    if (e.type == kEvNoAction) continue;
    std::vector<ByteSpan> candidates;
    Bytes var_data;
    switch (e.type) {
      case kEvSeparator:
      case kEvEfiAction:
      case kEvAction:
      case kEvEfiVariableDriverConfig:
        candidates.emplace_back(e.data);
        break;
      case kEvEfiVariableBoot:
      case kEvEfiVariableBoot2: {
        candidates.emplace_back(e.data);
        auto v = parse_uefi_variable(e.data);
        if (v) {
          var_data = std::move(v->data);
          candidates.emplace_back(var_data);
        }
        break;
      }
      case kEvIpl:
        // systemd-boot measures the UTF-16 command line as logged; grub's text differs from what
        // it hashes, so only UTF-16 payloads are checkable.
        if (looks_utf16(e.data)) candidates.emplace_back(e.data);
        break;
      default:
        break;
    }
    if (candidates.empty()) continue;
    for (const auto& d : e.digests) {
      auto alg = hash_from_tpm_id(d.alg);
      if (!alg) continue;
      bool matched = false;
      for (auto c : candidates) {
        auto h = ossl::digest(to_ossl(*alg), c);
        if (h && *h == d.digest) matched = true;
      }
      if (!matched) {
        out.push_back({e.index, "event " + std::to_string(e.index) + " (" +
                                    event_type_name(e.type) + ", PCR " + std::to_string(e.pcr) +
                                    "): " + std::string(hash_name(*alg)) + " digest " +
                                    hex(d.digest) + " does not match the hash of its data"});
        break;
      }
    }
  }
  return out;
}

std::string device_path_to_text(ByteSpan path) {
  std::string out;
  ByteReader r(path, "device path");
  for (int guard = 0; !r.empty() && guard < 256; ++guard) {
    auto type = r.u8("Type");
    auto sub = type ? r.u8("SubType") : type;
    auto len = sub ? r.u16le("Length") : Result<std::uint16_t>(fail(sub.error()));
    if (!len || *len < 4) break;
    auto body = r.bytes(*len - 4u, "node");
    if (!body) break;
    if (*type == 0x7f) {
      if (*sub == 0xff) break;
      out += ",";
      continue;
    }
    if (!out.empty() && out.back() != ',') out += "/";
    char buf[96];
    if (*type == 4 && *sub == 4) {
      out += "File(" + utf16le_to_text(*body) + ")";
    } else if (*type == 4 && *sub == 1 && body->size() >= 38) {
      ByteReader b(*body, "HD");
      auto part = b.u32le("PartitionNumber");
      out +=
          "HD(" + std::to_string(part ? *part : 0) + "," + guid_text(body->subspan(20, 16)) + ")";
    } else if (*type == 4 && *sub == 6 && body->size() >= 16) {
      out += "FvFile(" + guid_text(body->first(16)) + ")";
    } else if (*type == 4 && *sub == 7 && body->size() >= 16) {
      out += "Fv(" + guid_text(body->first(16)) + ")";
    } else if (*type == 2 && *sub == 1 && body->size() >= 8) {
      std::snprintf(buf, sizeof buf, "Acpi(0x%02x%02x%02x%02x,0x%x)", (*body)[3], (*body)[2],
                    (*body)[1], (*body)[0], (*body)[4]);
      out += buf;
    } else if (*type == 1 && *sub == 1 && body->size() >= 2) {
      std::snprintf(buf, sizeof buf, "Pci(0x%x,0x%x)", (*body)[1], (*body)[0]);
      out += buf;
    } else {
      std::snprintf(buf, sizeof buf, "Path(%u,%u,%s)", *type, *sub,
                    hex(body->first(std::min<std::size_t>(body->size(), 16))).c_str());
      out += buf;
    }
  }
  return out;
}

std::vector<DecodedField> decode(const Event& e) {
  std::vector<DecodedField> f;
  const ByteSpan data(e.data);
  switch (e.type) {
    case kEvNoAction:
      if (starts_with(data, kSpecIdSignature)) {
        f.push_back({"Signature", "Spec ID Event03"});
        if (auto s = parse_spec_id(data)) {
          std::string algs;
          for (const auto& a : s->algorithms) {
            auto known = hash_from_tpm_id(a.alg);
            if (!algs.empty()) algs += ",";
            algs += known ? std::string(hash_name(*known)) : std::to_string(a.alg);
          }
          f.push_back({"Algorithms", algs});
          f.push_back({"uintnSize", std::to_string(s->uintn_size)});
        }
      } else if (starts_with(data, kStartupLocality) && data.size() >= 17) {
        f.push_back({"StartupLocality", std::to_string(data[16])});
      } else {
        f.push_back({"Signature", printable(data.first(std::min<std::size_t>(data.size(), 16)))});
      }
      break;
    case kEvSeparator:
      f.push_back({"Separator", hex(data)});
      break;
    case kEvEfiAction:
    case kEvAction:
    case kEvPostCode:
    case kEvSCrtmVersion:
    case kEvIpl:
    case kEvCompactHash:
    case kEvPlatformConfigFlags:
    case kEvEfiPlatformFirmwareBlob:
    case kEvEventTag:
      if ((e.type == kEvPostCode || e.type == kEvEfiPlatformFirmwareBlob) && data.size() == 16) {
        ByteReader r(data, "UEFI_PLATFORM_FIRMWARE_BLOB");
        auto base = r.u64le("BlobBase");
        auto len = r.u64le("BlobLength");
        char buf[64];
        std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(base ? *base : 0));
        f.push_back({"BlobBase", buf});
        std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(len ? *len : 0));
        f.push_back({"BlobLength", buf});
      } else if (e.type == kEvPlatformConfigFlags || e.type == kEvEventTag) {
        f.push_back({"Data", hex(data.first(std::min<std::size_t>(data.size(), 256)))});
      } else if (looks_utf16(data)) {
        f.push_back({"String", utf16le_to_text(data)});
      } else {
        f.push_back({"String", printable(data)});
      }
      break;
    case kEvEfiVariableDriverConfig:
    case kEvEfiVariableBoot:
    case kEvEfiVariableBoot2:
    case kEvEfiVariableAuthority: {
      auto v = parse_uefi_variable(data);
      if (!v) {
        f.push_back({"Error", v.error().message});
        break;
      }
      f.push_back({"VariableName", v->guid});
      f.push_back({"UnicodeName", v->name});
      f.push_back({"VariableDataLength", std::to_string(v->data.size())});
      if (v->name == "SecureBoot" || v->name == "SetupMode" || v->name == "AuditMode" ||
          v->name == "DeployedMode") {
        f.push_back({"Enabled", !v->data.empty() && v->data[0] != 0 ? "yes" : "no"});
      } else if (v->name.rfind("Boot", 0) == 0 && v->name.size() == 8 && v->data.size() >= 6) {
        // EFI_LOAD_OPTION: u32 attributes, u16 path length, UTF-16 description, device path.
        ByteReader r(v->data, "EFI_LOAD_OPTION");
        (void)r.skip(4, "Attributes");
        auto plen = r.u16le("FilePathListLength");
        std::size_t desc_end = 6;
        while (desc_end + 1 < v->data.size() && (v->data[desc_end] | v->data[desc_end + 1]) != 0)
          desc_end += 2;
        f.push_back({"Description", utf16le_to_text(ByteSpan(v->data).subspan(6, desc_end - 6))});
        if (plen && desc_end + 2 <= v->data.size()) {
          auto rest = ByteSpan(v->data).subspan(desc_end + 2);
          f.push_back({"DevicePath",
                       device_path_to_text(rest.first(std::min<std::size_t>(*plen, rest.size())))});
        }
      } else {
        f.push_back({"VariableData",
                     hex(ByteSpan(v->data).first(std::min<std::size_t>(v->data.size(), 64)))});
      }
      break;
    }
    case kEvEfiBootServicesApplication:
    case kEvEfiBootServicesDriver:
    case kEvEfiRuntimeServicesDriver: {
      ByteReader r(data, "UEFI_IMAGE_LOAD_EVENT");
      auto loc = r.u64le("ImageLocationInMemory");
      auto len = loc ? r.u64le("ImageLengthInMemory") : loc;
      auto link = len ? r.u64le("ImageLinkTimeAddress") : len;
      auto plen = link ? r.u64le("LengthOfDevicePath") : link;
      if (!plen) {
        f.push_back({"Error", plen.error().message});
        break;
      }
      char buf[64];
      std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(*loc));
      f.push_back({"ImageLocationInMemory", buf});
      f.push_back({"ImageLengthInMemory", std::to_string(*len)});
      f.push_back({"DevicePath", device_path_to_text(r.rest().first(static_cast<std::size_t>(
                                     std::min<std::uint64_t>(*plen, r.remaining()))))});
      break;
    }
    case kEvEfiGptEvent: {
      ByteReader r(data, "UEFI_GPT_DATA");
      auto hdr = r.bytes(92, "EFI_PARTITION_TABLE_HEADER");
      auto count = hdr ? r.u64le("NumberOfPartitions") : Result<std::uint64_t>(fail(hdr.error()));
      if (!count) {
        f.push_back({"Error", count.error().message});
        break;
      }
      f.push_back({"DiskGUID", guid_text(hdr->subspan(56, 16))});
      f.push_back({"NumberOfPartitions", std::to_string(*count)});
      const std::uint32_t entry_size =
          static_cast<std::uint32_t>((*hdr)[84] | ((*hdr)[85] << 8) | ((*hdr)[86] << 16)) |
          (static_cast<std::uint32_t>((*hdr)[87]) << 24);
      if (entry_size >= 128 && entry_size <= 4096) {
        for (std::uint64_t i = 0; i < *count && i < 128; ++i) {
          auto p = r.bytes(entry_size, "partition");
          if (!p) break;
          f.push_back({"Partition" + std::to_string(i), guid_text(p->first(16)) + " " +
                                                            guid_text(p->subspan(16, 16)) + " " +
                                                            utf16le_to_text(p->subspan(56, 72))});
        }
      }
      break;
    }
    default:
      if (!data.empty())
        f.push_back({"Data", hex(data.first(std::min<std::size_t>(data.size(), 64)))});
      break;
  }
  return f;
}

std::optional<bool> secure_boot_enabled(const EventLog& log) {
  for (const auto& e : log.events) {
    if (e.type != kEvEfiVariableDriverConfig) continue;
    auto v = parse_uefi_variable(e.data);
    if (v && v->name == "SecureBoot") return !v->data.empty() && v->data[0] != 0;
  }
  return std::nullopt;
}

Status check_replay_against_quote(const PcrValues& replayed, const PcrSelection& selection,
                                  ByteSpan pcr_digest, ossl::Hash hash, const PcrValues* reported) {
  auto digest = pcr_composite_digest(selection, replayed, hash);
  if (!digest) {
    return fail(ErrorCode::kReplayMismatch,
                "replay vs quote: the replay lacks a quoted bank (" + digest.error().message + ")");
  }
  if (ossl::equal_ct(*digest, pcr_digest)) return ok();
  std::string msg = "replay vs quote: quoted pcrDigest " + hex(pcr_digest) +
                    ", replayed event log gives " + hex(*digest) + " for " + selection.to_string();
  if (reported != nullptr) {
    std::string diff;
    for (const auto& bank : selection.banks) {
      for (unsigned i = 0; i < kPcrCount; ++i) {
        if (!bank.pcrs.test(i)) continue;
        const Bytes* a = replayed.get(bank.alg, i);
        const Bytes* b = reported->get(bank.alg, i);
        if (a == nullptr || b == nullptr || *a != *b) {
          if (!diff.empty()) diff += ", ";
          diff += std::string(hash_name(bank.alg)) + ":" + std::to_string(i);
          if (a != nullptr && b != nullptr)
            diff += " (replayed " + hex(*a) + ", reported " + hex(*b) + ")";
        }
      }
    }
    msg += diff.empty() ? "; no individual PCR differs from the reported values"
                        : "; PCRs that differ: " + diff;
  }
  return fail(ErrorCode::kReplayMismatch, std::move(msg));
}

}  // namespace warden::attest::eventlog
