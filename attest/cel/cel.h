#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "attest/pcr_values.h"
#include "platform/base/bytes.h"
#include "platform/base/cbor.h"
#include "platform/base/error.h"
#include "platform/base/pcr_selection.h"

/// Container Event Log: TCG Canonical Event Log records in CBOR for container start and stop
/// events, and their replay to the container PCR. Format: attest/cel/README.md. Pure.
namespace warden::attest::cel {

/// CEL-CBOR record keys (TCG Canonical Event Log 1.0, CBOR encoding) and Warden's content key.
inline constexpr std::int64_t kKeyRecnum = 0;
inline constexpr std::int64_t kKeyPcr = 1;
inline constexpr std::int64_t kKeyDigests = 3;
/// Content type "warden-container" (no TCG-registered type exists for container events).
inline constexpr std::int64_t kKeyContainerContent = 0x5741;
inline constexpr unsigned kDefaultContainerPcr = 15;

enum class ContainerEvent { kStart, kStop };

struct ContainerContent {
  ContainerEvent event = ContainerEvent::kStart;
  std::string container_id;
  std::string image_ref;     ///< e.g. "docker.io/library/nginx:1.25"
  std::string image_digest;  ///< e.g. "sha256:<64 hex>"
  std::string runtime;       ///< e.g. "runc", "crun"
  std::string cgroup_path;
  bool operator==(const ContainerContent&) const = default;
};

struct Record {
  std::uint64_t recnum = 0;
  std::uint32_t pcr = kDefaultContainerPcr;
  std::vector<std::pair<TpmAlg, Bytes>> digests;  ///< one per bank, in the order written
  ContainerContent content;
  bool operator==(const Record&) const = default;
};

/// The content's canonical CBOR: a map with text keys in the fixed order event, container_id,
/// image_ref, image_digest, runtime, cgroup_path (deterministic shortest-form encoding).
Bytes encode_content(const ContainerContent& content);
/// The digest rule: H_bank(encode_content(content)).
Result<Bytes> content_digest(TpmAlg bank, const ContainerContent& content);
/// A record with a digest for each bank.
Result<Record> make_record(std::uint64_t recnum, const ContainerContent& content,
                           std::span<const TpmAlg> banks, unsigned pcr = kDefaultContainerPcr);

/// The log: a CBOR array of records.
Bytes encode(std::span<const Record> records);
/// Decodes an untrusted log under `limits`; errors name the record and field.
Result<std::vector<Record>> decode(ByteSpan log,
                                   const cbor::Limits& limits = {.max_input = 4u << 20,
                                                                 .max_items = 1u << 20,
                                                                 .max_depth = 8});

struct ReplayOptions {
  unsigned pcr = kDefaultContainerPcr;
  std::uint64_t first_recnum = 0;  ///< recnum of the first record (incremental logs)
};

struct ReplayResult {
  PcrValues pcrs;
  std::vector<std::string> problems;  ///< digest/recnum/pcr mismatches, one line each
};

/// Extends `start` (the banks it has) with each record's digest for that bank, after checking
/// the digest against the content, the recnum sequence and the PCR index. A record lacking a
/// bank's digest is a problem and that bank is extended with the recomputed digest.
Result<ReplayResult> replay(std::span<const Record> records, PcrValues start,
                            const ReplayOptions& options = {});

}  // namespace warden::attest::cel
