#pragma once

// Token Status List, following draft-ietf-oauth-status-list with the encodings and CBOR claim
// keys of TPM-NOTES 7.6 (status 65535, status_list 65533, ttl 65534; typ statuslist+jwt /
// application/statuslist+cwt). Bits 1, 2, 4 or 8 per token, LSB first, zlib level 9.

#include <cstdint>
#include <optional>
#include <string>

#include "attest/token/cwt.h"
#include "attest/token/jwt.h"

namespace warden::token {

inline constexpr std::uint8_t kStatusValid = 0, kStatusInvalid = 1, kStatusSuspended = 2;

class StatusList {
 public:
  /// A list of `size` entries of `bits` (1, 2, 4, 8) bits, all VALID.
  static Result<StatusList> create(unsigned bits, std::size_t size);
  /// Decompresses an untrusted zlib list; more than `max_bytes` of output is kLimitExceeded.
  static Result<StatusList> from_compressed(unsigned bits, ByteSpan zlib,
                                            std::size_t max_bytes = 16 * 1024 * 1024);

  Status set(std::uint64_t index, std::uint8_t value);
  Status clear(std::uint64_t index) { return set(index, kStatusValid); }
  [[nodiscard]] Result<std::uint8_t> get(std::uint64_t index) const;

  [[nodiscard]] unsigned bits() const { return bits_; }
  [[nodiscard]] std::size_t size() const { return bytes_.size() * 8 / bits_; }
  [[nodiscard]] const Bytes& bytes() const { return bytes_; }
  /// zlib (RFC 1950) at level 9.
  [[nodiscard]] Result<Bytes> compress() const;

 private:
  StatusList(unsigned bits, Bytes bytes) : bits_(bits), bytes_(std::move(bytes)) {}
  unsigned bits_;
  Bytes bytes_;
};

struct StatusListToken {
  std::string sub;  ///< the list's uri
  std::int64_t iat = 0;
  std::optional<std::int64_t> exp;
  std::optional<std::int64_t> ttl;
};

Result<std::string> mint_status_list_jwt(Signer& signer, const StatusList& list,
                                         const StatusListToken& meta);
Result<Bytes> mint_status_list_cwt(Signer& signer, const StatusList& list,
                                   const StatusListToken& meta);

/// Verifies a status list token (JWT compact or CWT bytes, typ checked), its sub against
/// `uri` when given, and exp against `now`.
Result<StatusList> verify_status_list_jwt(std::string_view compact, const KeySet& keys,
                                          std::int64_t now, std::optional<std::string> uri = {});
Result<StatusList> verify_status_list_cwt(ByteSpan cwt, const KeySet& keys, std::int64_t now,
                                          std::optional<std::string> uri = {});

/// kRevoked when the token's status entry is not VALID; kMalformed if it has no status claim.
Status check_status(const Claims& claims, const StatusList& list);

}  // namespace warden::token
