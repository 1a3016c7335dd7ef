#pragma once
// The Container Event Log of this boot: every container start and stop the posture monitor sees
// becomes a CEL record (attest/cel) appended to a file in the state dir, and its digest is
// extended into the container PCR first, so every quote covers container state.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attest/cel/cel.h"
#include "attest/pcr_values.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"
#include "platform/base/pcr_selection.h"

namespace warden::tpm {
class Tpm;
}

namespace warden::agent::posture {

/// Reads and extends one PCR. The daemon's implementation is TpmPcrExtender (tpm_backends.h).
class PcrExtender {
 public:
  virtual ~PcrExtender() = default;
  /// TPM2_PCR_Extend of `pcr` in bank `alg` with `digest`.
  virtual Status extend(unsigned pcr, TpmAlg alg, ByteSpan digest) = 0;
  /// The current value of `pcr` in bank `alg`.
  virtual Result<Bytes> read(unsigned pcr, TpmAlg alg) = 0;
};

struct ContainerLogOptions {
  std::filesystem::path path;                        ///< e.g. <state_dir>/containers.cel
  unsigned pcr = attest::cel::kDefaultContainerPcr;  ///< config tpm.container_pcr
  bool allow_resettable_pcr = false;                 ///< config tpm.allow_resettable_pcr
  std::vector<TpmAlg> banks{TpmAlg::kSha256};        ///< banks extended (and quoted)
};

/// The log file is one CBOR array of records (attest/cel/README.md), rewritten atomically on
/// each append. Thread-safe (one mutex, `mutex_`).
class ContainerEventLog {
 public:
  /// Opens `options.path`. An existing log is kept when it replays (from zero) to the PCR's
  /// current value; otherwise (a new boot, no file, a log of another boot) a fresh, empty log is
  /// started whose replay begins at the PCR's current value (start_value()). Refuses PCR 16 and
  /// 23 (resettable from the OS) unless allow_resettable_pcr, and indices >= 24.
  static Result<std::unique_ptr<ContainerEventLog>> open(ContainerLogOptions options,
                                                         PcrExtender& extender);

  /// Extends the record's digests into the PCR, then appends the record to the file. A failed
  /// extend leaves the log unchanged; a failed write after a successful extend leaves the PCR
  /// ahead of the log (the verifier will refuse: fail-closed) and is returned as an error.
  Result<attest::cel::Record> append(const attest::cel::ContainerContent& content);

  [[nodiscard]] const std::filesystem::path& path() const { return options_.path; }
  [[nodiscard]] unsigned pcr() const { return options_.pcr; }
  /// The PCR value per bank (hex) before the first record of this log.
  [[nodiscard]] std::map<TpmAlg, Bytes> start_value() const;
  [[nodiscard]] std::vector<attest::cel::Record> records() const;
  /// What the PCR must hold per bank (hex) if only this log extended it: start_value() replayed
  /// with every record (kept up to date by append(), not replayed per call: the monitor asks on
  /// every poll). Anything else means someone extended the PCR behind the agent's back.
  [[nodiscard]] std::map<TpmAlg, std::string> expected_value() const;
  /// The file's bytes (what is uploaded with a quote).
  [[nodiscard]] Bytes encoded() const;
  /// Containers whose last record is a start, by id.
  [[nodiscard]] std::map<std::string, attest::cel::ContainerContent> running() const;
  /// The start record of container `id` when its last record is a start (one container: no map
  /// of all, for a token request's image lookup).
  [[nodiscard]] std::optional<attest::cel::ContainerContent> running_container(
      std::string_view id) const;

 private:
  ContainerEventLog(ContainerLogOptions options, PcrExtender& extender)
      : options_(std::move(options)), extender_(&extender) {}
  /// Called by open() only, before the log is shared.
  void set_expected(const std::map<TpmAlg, Bytes>& values);

  ContainerLogOptions options_;
  PcrExtender* extender_;
  mutable std::mutex mutex_;  ///< guards everything below
  std::map<TpmAlg, Bytes> start_;
  std::vector<attest::cel::Record> records_;
  attest::PcrValues expected_;  ///< the PCR (index pcr()) = start_ extended with every record
};

}  // namespace warden::agent::posture
