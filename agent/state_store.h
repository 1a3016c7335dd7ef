#pragma once
// The agent's state directory (config agent.state_dir, 0700): the enrollment record (device id
// and AK blob), the binding key of the last passing attestation, and sealed secrets. Every file
// is written atomically (platform/base/file.h), mode 0600; nothing in it is plaintext secret
// (TPM private areas are encrypted to the TPM's SRK/EK).

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "agent/api/workload_service.h"
#include "platform/base/error.h"
#include "platform/tpm/tpm.h"

namespace warden::agent {

struct EnrollmentRecord {
  std::string device_id;
  tpm::AkBlob ak;
};

/// A secret sealed by the TPM and who may read it.
struct SealedSecret {
  std::vector<SelectorMatch> allow;
  tpm::SealedBlob blob;
};

class StateStore {
 public:
  explicit StateStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  /// Creates the directory (0700) and its secrets/ subdirectory when absent.
  Status prepare() const;
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

  /// nullopt when the device never enrolled; kMalformed when the file is corrupt.
  Result<std::optional<EnrollmentRecord>> load_enrollment() const;
  Status save_enrollment(const EnrollmentRecord& record) const;
  Status remove_enrollment() const;

  Result<std::optional<tpm::BindingKey>> load_binding_key() const;
  Status save_binding_key(const tpm::BindingKey& key) const;

  /// Longest secret name (docs/local-api.md); the file is the name + ".sealed".
  static constexpr std::size_t kMaxSecretName = 128;
  /// Secret names: 1..128 of [A-Za-z0-9._-], not starting with '.'. The local API uses the same
  /// rule (api::valid_secret_name).
  static Status check_secret_name(const std::string& name);
  Result<std::optional<SealedSecret>> load_secret(const std::string& name) const;
  Status save_secret(const std::string& name, const SealedSecret& secret) const;

  /// TPM2B_PUBLIC of the issuer's sealing authority (from enrollment); nullopt when the issuer
  /// sent none.
  Result<std::optional<Bytes>> load_seal_authority() const;
  Status save_seal_authority(ByteSpan authority_public) const;
  /// The latest serialized ApprovedPolicy the issuer signed (checked before it was saved).
  Result<std::optional<Bytes>> load_approval() const;
  Status save_approval(ByteSpan approval) const;

  [[nodiscard]] std::filesystem::path seal_authority_path() const {
    return dir_ / "seal.authority";
  }
  [[nodiscard]] std::filesystem::path approval_path() const { return dir_ / "seal.approval"; }
  [[nodiscard]] std::filesystem::path enrollment_path() const { return dir_ / "enrollment"; }
  [[nodiscard]] std::filesystem::path binding_key_path() const { return dir_ / "binding.key"; }
  [[nodiscard]] std::filesystem::path secret_path(const std::string& name) const {
    return dir_ / "secrets" / (name + ".sealed");
  }

 private:
  std::filesystem::path dir_;
};

/// The binary forms of the state files (versioned; parse() rejects anything else). The bytes are
/// untrusted (anyone who got write access to the state dir): fuzz/fuzz_agent_*.cpp.
Bytes serialize(const EnrollmentRecord& record);
Result<EnrollmentRecord> parse_enrollment(ByteSpan data);
Bytes serialize(const tpm::BindingKey& key);
Result<tpm::BindingKey> parse_binding_key(ByteSpan data);
Bytes serialize(const SealedSecret& secret);
Result<SealedSecret> parse_sealed_secret(ByteSpan data);

}  // namespace warden::agent
