#include "agent/state_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "attest/tpm_policy/authorized_policy.h"
#include "platform/base/bytes.h"
#include "platform/base/file.h"

namespace warden::agent {
namespace {

constexpr std::string_view kEnrollMagic = "WENR";
constexpr std::string_view kBindingMagic = "WBND";
constexpr std::string_view kSecretMagic = "WSEC";
constexpr std::uint8_t kVersion = 1;

void put(ByteWriter& w, ByteSpan b) {
  w.u32be(static_cast<std::uint32_t>(b.size()));
  w.bytes(b);
}
void put(ByteWriter& w, std::string_view s) {
  w.u32be(static_cast<std::uint32_t>(s.size()));
  w.bytes(s);
}

Result<Bytes> get(ByteReader& r, std::string_view field, std::size_t max = 1 << 20) {
  auto n = r.u32be(field);
  if (!n) return fail(std::move(n).error());
  if (*n > max) return fail(r.error(field, "longer than " + std::to_string(max) + " bytes"));
  auto b = r.bytes(*n, field);
  if (!b) return fail(std::move(b).error());
  return Bytes(b->begin(), b->end());
}

Status header(ByteReader& r, std::string_view magic) {
  auto m = r.bytes(magic.size(), "magic");
  if (!m) return fail(std::move(m).error());
  if (warden::to_string(*m) != magic)
    return fail(r.error("magic", "expected " + std::string(magic)));
  auto v = r.u8("version");
  if (!v) return fail(std::move(v).error());
  if (*v != kVersion) return fail(r.error("version", "expected 1, found " + std::to_string(*v)));
  return ok();
}

Result<std::optional<Bytes>> read_optional(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<Bytes>{};
  auto data = read_file(path, 1 << 20);
  if (!data) return fail(std::move(data).error());
  return std::optional<Bytes>(std::move(*data));
}

Status make_dir(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(ErrorCode::kIo, "state dir: mkdir " + dir.string() + ": " + std::strerror(errno));
  }
  return ok();
}

enum : std::uint8_t {
  kUid = 1 << 0,
  kGid = 1 << 1,
  kUnit = 1 << 2,
  kContainer = 1 << 3,
  kRuntime = 1 << 4,
  kExePath = 1 << 5,
  kExeSha = 1 << 6,
};

}  // namespace

Status StateStore::prepare() const {
  WARDEN_TRY_STATUS(make_dir(dir_));
  return make_dir(dir_ / "secrets");
}

Bytes serialize(const EnrollmentRecord& record) {
  ByteWriter w;
  w.bytes(kEnrollMagic).u8(kVersion);
  put(w, record.device_id);
  put(w, record.ak.serialize());
  return std::move(w).take();
}

Result<EnrollmentRecord> parse_enrollment(ByteSpan data) {
  ByteReader r(data, "enrollment record");
  WARDEN_TRY_STATUS(header(r, kEnrollMagic));
  auto id = get(r, "device_id", 128);
  if (!id) return fail(std::move(id).error());
  auto ak = get(r, "ak");
  if (!ak) return fail(std::move(ak).error());
  WARDEN_TRY_STATUS(r.expect_end());
  auto blob = tpm::AkBlob::parse(*ak);
  if (!blob) return fail(std::move(blob).error().context("enrollment record"));
  if (id->empty()) return fail(ErrorCode::kMalformed, "enrollment record: empty device id");
  return EnrollmentRecord{warden::to_string(*id), std::move(*blob)};
}

Result<std::optional<EnrollmentRecord>> StateStore::load_enrollment() const {
  auto data = read_optional(enrollment_path());
  if (!data) return fail(std::move(data).error());
  if (!*data) return std::optional<EnrollmentRecord>{};
  auto rec = parse_enrollment(**data);
  if (!rec) return fail(std::move(rec).error().context(enrollment_path().string()));
  return std::optional<EnrollmentRecord>(std::move(*rec));
}

Status StateStore::save_enrollment(const EnrollmentRecord& record) const {
  return write_file_atomic(enrollment_path(), serialize(record), 0600);
}

Status StateStore::remove_enrollment() const {
  std::error_code ec;
  std::filesystem::remove(enrollment_path(), ec);
  std::filesystem::remove(binding_key_path(), ec);
  if (ec) return fail(ErrorCode::kIo, "state dir: remove enrollment: " + ec.message());
  return ok();
}

Bytes serialize(const tpm::BindingKey& key) {
  ByteWriter w;
  w.bytes(kBindingMagic).u8(kVersion);
  put(w, key.public_area);
  put(w, key.private_area);
  put(w, key.certify_attest);
  put(w, key.certify_signature);
  return std::move(w).take();
}

Result<tpm::BindingKey> parse_binding_key(ByteSpan data) {
  ByteReader r(data, "binding key record");
  WARDEN_TRY_STATUS(header(r, kBindingMagic));
  tpm::BindingKey key;
  for (Bytes* field :
       {&key.public_area, &key.private_area, &key.certify_attest, &key.certify_signature}) {
    auto b = get(r, "binding key field", 4096);
    if (!b) return fail(std::move(b).error());
    *field = std::move(*b);
  }
  WARDEN_TRY_STATUS(r.expect_end());
  return key;
}

Result<std::optional<tpm::BindingKey>> StateStore::load_binding_key() const {
  auto data = read_optional(binding_key_path());
  if (!data) return fail(std::move(data).error());
  if (!*data) return std::optional<tpm::BindingKey>{};
  auto key = parse_binding_key(**data);
  if (!key) return fail(std::move(key).error().context(binding_key_path().string()));
  return std::optional<tpm::BindingKey>(std::move(*key));
}

Status StateStore::save_binding_key(const tpm::BindingKey& key) const {
  return write_file_atomic(binding_key_path(), serialize(key), 0600);
}

Result<std::optional<Bytes>> StateStore::load_seal_authority() const {
  auto data = read_optional(seal_authority_path());
  if (!data) return fail(std::move(data).error());
  if (*data) {
    if (auto name = attest::tpm_policy::authority_name(**data); !name)
      return fail(std::move(name).error().context(seal_authority_path().string()));
  }
  return data;
}

Status StateStore::save_seal_authority(ByteSpan authority_public) const {
  return write_file_atomic(seal_authority_path(), authority_public, 0600);
}

Result<std::optional<Bytes>> StateStore::load_approval() const {
  auto data = read_optional(approval_path());
  if (!data) return fail(std::move(data).error());
  return data;
}

Status StateStore::save_approval(ByteSpan approval) const {
  return write_file_atomic(approval_path(), approval, 0600);
}

Status StateStore::check_secret_name(const std::string& name) {
  const bool ok_chars = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
  if (name.empty() || name.size() > kMaxSecretName || name.front() == '.' || !ok_chars) {
    return fail(ErrorCode::kInvalidArgument,
                "secret name: expected 1..128 of [A-Za-z0-9._-] not starting with '.', found \"" +
                    name.substr(0, 140) + "\"");
  }
  return ok();
}

Bytes serialize(const SealedSecret& secret) {
  ByteWriter w;
  w.bytes(kSecretMagic).u8(kVersion);
  w.u16be(static_cast<std::uint16_t>(secret.allow.size()));
  for (const SelectorMatch& m : secret.allow) {
    std::uint8_t mask = 0;
    if (m.uid) mask |= kUid;
    if (m.gid) mask |= kGid;
    if (m.systemd_unit) mask |= kUnit;
    if (m.container_id) mask |= kContainer;
    if (m.container_runtime) mask |= kRuntime;
    if (m.exe_path) mask |= kExePath;
    if (m.exe_sha256) mask |= kExeSha;
    w.u8(mask);
    if (m.uid) w.u32be(*m.uid);
    if (m.gid) w.u32be(*m.gid);
    for (const auto* s :
         {&m.systemd_unit, &m.container_id, &m.container_runtime, &m.exe_path, &m.exe_sha256}) {
      if (*s) put(w, **s);
    }
  }
  put(w, secret.blob.serialize());
  return std::move(w).take();
}

Result<SealedSecret> parse_sealed_secret(ByteSpan data) {
  ByteReader r(data, "sealed secret");
  WARDEN_TRY_STATUS(header(r, kSecretMagic));
  auto count = r.u16be("allow count");
  if (!count) return fail(std::move(count).error());
  if (*count == 0 || *count > 64)
    return fail(r.error("allow count", "expected 1..64, found " + std::to_string(*count)));
  SealedSecret out;
  for (unsigned i = 0; i < *count; ++i) {
    auto mask = r.u8("selector mask");
    if (!mask) return fail(std::move(mask).error());
    SelectorMatch m;
    if ((*mask & kUid) != 0) {
      auto v = r.u32be("uid");
      if (!v) return fail(std::move(v).error());
      m.uid = *v;
    }
    if ((*mask & kGid) != 0) {
      auto v = r.u32be("gid");
      if (!v) return fail(std::move(v).error());
      m.gid = *v;
    }
    const std::pair<std::uint8_t, std::optional<std::string>*> strings[] = {
        {kUnit, &m.systemd_unit},
        {kContainer, &m.container_id},
        {kRuntime, &m.container_runtime},
        {kExePath, &m.exe_path},
        {kExeSha, &m.exe_sha256}};
    for (auto [bit, field] : strings) {
      if ((*mask & bit) == 0) continue;
      auto v = get(r, "selector", 4096);
      if (!v) return fail(std::move(v).error());
      *field = warden::to_string(*v);
    }
    out.allow.push_back(std::move(m));
  }
  auto blob = get(r, "blob", 8192);
  if (!blob) return fail(std::move(blob).error());
  WARDEN_TRY_STATUS(r.expect_end());
  auto sealed = tpm::SealedBlob::parse(*blob);
  if (!sealed) return fail(std::move(sealed).error().context("sealed secret"));
  out.blob = std::move(*sealed);
  return out;
}

Result<std::optional<SealedSecret>> StateStore::load_secret(const std::string& name) const {
  WARDEN_TRY_STATUS(check_secret_name(name));
  auto data = read_optional(secret_path(name));
  if (!data) return fail(std::move(data).error());
  if (!*data) return std::optional<SealedSecret>{};
  auto s = parse_sealed_secret(**data);
  if (!s) return fail(std::move(s).error().context(secret_path(name).string()));
  return std::optional<SealedSecret>(std::move(*s));
}

Status StateStore::save_secret(const std::string& name, const SealedSecret& secret) const {
  WARDEN_TRY_STATUS(check_secret_name(name));
  return write_file_atomic(secret_path(name), serialize(secret), 0600);
}

}  // namespace warden::agent
