#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>

#include "platform/base/error.h"
#include "platform/base/pcr_selection.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm {

/// Reads the same PCR selection and the clock again and again (a posture poll) with as few TPM
/// commands and connections as stay correct:
///
/// - Each read is TPM2_ReadClock, then one TPM2_PCR_Read of the PCRs that must always be read,
///   whose answer carries the TPM-wide pcrUpdateCounter. While resetCount, restartCount and the
///   counter equal the last full read's, no PCR that counts towards the counter can have changed,
///   so the other values are the last full read's. "Must always be read": the selected PCRs the
///   TPM lists in TPM_PT_PCR_NO_INCREMENT (PC Client: 16, 21-23; their extends leave the counter
///   alone), else the first selected PCR (any PCR_Read returns the counter).
/// - The clock is read first: a TPM Reset or Restart between the two commands then shows as a
///   changed count at the next read, never as stale PCR values under a current count.
/// - The reads run on a Tpm's connection (its lock and ESYS context), open across reads where
///   that blocks nobody: "swtpm" (its TCTI connects per command and closes after the response),
///   "tabrmd" and "device:/dev/tpmrm*" (resource-managed). Any other TCTI (mssim holds its
///   sockets, /dev/tpm0 admits one opener) is opened and closed per read.
///
/// Any error closes the connection and forgets the last read. One poller is not thread-safe;
/// pollers and Tpm operations on one connection may run on different threads.
class StatePoller {
 public:
  /// A poller on its own connection.
  StatePoller(std::string tcti, PcrSelection selection);
  /// A poller on `tpm`'s connection and lock (shared with every copy of `tpm`).
  StatePoller(const Tpm& tpm, PcrSelection selection);
  ~StatePoller();
  StatePoller(StatePoller&& other) noexcept;
  StatePoller& operator=(StatePoller&& other) noexcept;
  StatePoller(const StatePoller&) = delete;
  StatePoller& operator=(const StatePoller&) = delete;

  /// Values of the selection (in selection order) and the clock, as Tpm::snapshot() returns them.
  Result<PcrSnapshot> read();

  struct Stats {
    std::uint64_t reads = 0;       ///< read() calls that succeeded
    std::uint64_t full_reads = 0;  ///< ... that read every selected PCR
    std::uint64_t commands = 0;    ///< TPM commands sent (including failed ones)
    std::uint64_t opens = 0;       ///< TCTI + ESYS contexts opened
  };
  [[nodiscard]] Stats stats() const;
  /// Whether the connection is kept across reads for this TCTI (see above).
  [[nodiscard]] bool keeps_connection() const;
  /// The selected PCRs read on every call, per bank (as computed at the last full read).
  [[nodiscard]] PcrSelection always_read() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Whether tctildr's configuration string `tcti` names a TCTI that may stay open between
/// operations without blocking another TPM user: swtpm, tabrmd, device:/dev/tpmrm*.
bool tcti_allows_held_connection(const std::string& tcti);

}  // namespace warden::tpm
