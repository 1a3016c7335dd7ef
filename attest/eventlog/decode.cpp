// Presentation of event data: type names, UEFI variables, device paths and decoded fields.
#include <algorithm>
#include <cstdio>

#include "attest/eventlog/event_data.h"
#include "attest/eventlog/eventlog.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::attest::eventlog {
namespace {

using detail::guid_text;
using detail::kSpecIdSignature;
using detail::kStartupLocality;
using detail::looks_utf16;
using detail::parse_spec_id;
using detail::starts_with;
using detail::utf16le_to_text;

std::string hex(ByteSpan b) { return hex_encode(b); }

std::string printable(ByteSpan data) {
  std::string out;
  for (auto b : data) {
    if (b == 0) break;
    out.push_back(b >= 0x20 && b < 0x7f ? static_cast<char>(b) : '.');
  }
  return out;
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

}  // namespace warden::attest::eventlog
