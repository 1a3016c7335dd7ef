#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "platform/base/bytes.h"
#include "platform/base/error.h"
#include "platform/base/pcr_selection.h"
#include "platform/base/secret.h"

namespace warden::tpm {

namespace detail {
class Connection;
}
class StatePoller;

/// Default TCTI: the kernel resource manager.
inline constexpr const char* kDefaultTcti = "device:/dev/tpmrm0";

/// What the TPM says about itself (TPM2_GetCapability).
struct TpmInfo {
  std::string manufacturer;  ///< TPM_PT_MANUFACTURER as 4 ASCII characters ("IBM ")
  std::string vendor;        ///< TPM_PT_VENDOR_STRING_1..4 concatenated, trailing NULs removed
  std::uint64_t firmware_version = 0;     ///< FIRMWARE_VERSION_1 << 32 | FIRMWARE_VERSION_2
  std::vector<TpmAlg> pcr_banks;          ///< banks with at least one PCR allocated
  std::vector<std::uint16_t> algorithms;  ///< TPM_ALG_IDs the TPM implements
  std::vector<std::uint16_t> curves;      ///< TPM_ECC_CURVE ids the TPM implements
};

/// TCG EK templates (EK Credential Profile 2.5, B.3/B.4).
enum class EkTemplate { kRsa2048L1, kEccP256L2, kRsa2048H1, kEccP256H2, kEccP384H3 };

/// The endorsement key that has a certificate in NV, recreated from its template.
struct EkInfo {
  EkTemplate ek_template = EkTemplate::kRsa2048L1;
  std::uint32_t cert_index = 0;  ///< NV index the certificate was read from
  Bytes public_area;             ///< marshalled TPM2B_PUBLIC of the created EK
  Bytes public_key_der;          ///< SubjectPublicKeyInfo of the created EK
  Bytes certificate;             ///< DER EK certificate (NV wrapper and trailing bytes removed)
  std::vector<Bytes> chain;      ///< DER certificates from 0x01C00100.. (often empty)
};

enum class AkAlgorithm { kEccP256, kRsa2048 };

/// An attestation key: a restricted signing key created under the EK. The private part is
/// encrypted to the EK and only loadable in this TPM.
struct AkBlob {
  EkTemplate parent = EkTemplate::kRsa2048L1;
  Bytes public_area;                 ///< marshalled TPM2B_PUBLIC
  Bytes private_area;                ///< marshalled TPM2B_PRIVATE
  [[nodiscard]] Bytes name() const;  ///< nameAlg || SHA-256(TPMT_PUBLIC)
  [[nodiscard]] Result<std::string> public_key_pem() const;
  /// Versioned binary form for the state directory.
  [[nodiscard]] Bytes serialize() const;
  static Result<AkBlob> parse(ByteSpan data);
};

/// A quote: TPMS_ATTEST bytes and the marshalled TPMT_SIGNATURE over them.
struct Quote {
  Bytes attest;
  Bytes signature;
};

/// One PCR value.
struct PcrValue {
  TpmAlg alg = TpmAlg::kSha256;
  unsigned index = 0;
  Bytes digest;
};

/// TPMS_TIME_INFO as TPM2_ReadClock returns it (TPM 2.0 Part 2, 10.11.6). resetCount grows on
/// every TPM Reset (reboot), restartCount on every TPM Restart/Resume.
struct ClockInfo {
  std::uint64_t time = 0;   ///< ms since the last TPM Reset/Restart
  std::uint64_t clock = 0;  ///< ms the TPM has been powered, ever
  std::uint32_t reset_count = 0;
  std::uint32_t restart_count = 0;
  bool safe = false;
};

/// PCR values and the clock read over one connection.
struct PcrSnapshot {
  std::vector<PcrValue> pcrs;
  ClockInfo clock;
  /// pcrUpdateCounter of the first TPM2_PCR_Read (TPM-wide; moves with every counted extend).
  std::uint32_t update_counter = 0;
};

/// A non-restricted ECC P-256 signing key under the SRK, certified by the AK.
struct BindingKey {
  Bytes public_area;        ///< marshalled TPM2B_PUBLIC
  Bytes private_area;       ///< marshalled TPM2B_PRIVATE (encrypted to the SRK)
  Bytes certify_attest;     ///< TPMS_ATTEST of TPM2_Certify (type 0x8017)
  Bytes certify_signature;  ///< marshalled TPMT_SIGNATURE by the AK
  [[nodiscard]] Result<std::string> public_key_pem() const;
};

/// An ECDSA signature by a binding key.
struct Signature {
  Bytes der;  ///< X9.62 DER (OpenSSL)
  Bytes raw;  ///< r || s, 32 bytes each (JOSE/COSE)
};

/// A sealed secret. Version 1: authPolicy = PolicyPCR(selection), serialized as "WSEAL"
/// u8 version(1), u16 selection length, marshalled TPML_PCR_SELECTION, u16+TPM2B_PUBLIC,
/// u16+TPM2B_PRIVATE. Version 2: authPolicy = PolicyAuthorize(Name(authority), policy_ref),
/// serialized as "WSEAL" u8 version(2), u16+authority TPM2B_PUBLIC, u16+policyRef,
/// u16+TPM2B_PUBLIC, u16+TPM2B_PRIVATE (docs/sealing.md).
struct SealedBlob {
  std::uint8_t version = 1;
  PcrSelection selection;  ///< version 1
  Bytes authority_public;  ///< version 2: TPM2B_PUBLIC of the sealing authority's P-256 key
  Bytes policy_ref;        ///< version 2
  Bytes public_area;
  Bytes private_area;
  [[nodiscard]] bool authorized() const { return version == 2; }
  [[nodiscard]] Bytes serialize() const;
  static Result<SealedBlob> parse(ByteSpan data);
};

/// A PCR policy the sealing authority approved for a version-2 blob (the TPM's view of
/// attest::tpm_policy::ApprovedPolicy): PolicyPCR over `selection` must yield `approved_policy`
/// with the current PCR values, and `signature` is the authority's over
/// SHA-256(approved_policy || policy_ref). Untrusted: the TPM checks all of it.
struct PolicyApproval {
  PcrSelection selection;
  Bytes approved_policy;  ///< 32 bytes
  Bytes policy_ref;
  Bytes signature;  ///< marshalled TPMT_SIGNATURE (ECDSA, SHA-256)
  /// When set, the approved policy is PolicyPCR then PolicyNV(NV counter `index` == `value`).
  struct Counter {
    std::uint32_t index = 0;
    std::uint64_t value = 0;
  };
  std::optional<Counter> counter;
};

/// NV index of the counter that withdraws sealing approvals (owner range; docs/sealing.md).
inline constexpr std::uint32_t kSealCounterIndex = 0x01577001;

/// A TPM NV counter (TPM_NT_COUNTER: only ever increases) as approvals name it.
struct SealCounter {
  std::uint32_t index = 0;
  Bytes name;  ///< 000b || SHA-256(TPMS_NV_PUBLIC), as TPM2_NV_ReadPublic returns it
  std::uint64_t value = 0;
};

/// The TPM behind a TCTI. A Tpm and its copies share one connection (ESYS context) and one lock:
/// each operation runs whole under the lock and flushes everything it loaded, so a TPM without
/// resource manager (swtpm: 3 object slots) is never left with objects and threads never
/// interleave commands. The context stays open between operations where that blocks no other
/// TPM user (swtpm, whose TCTI connects per command; tabrmd; /dev/tpmrm*), else it is closed after
/// each, so tpm2-tools or a second agent can run in between. A transport failure closes it; the
/// next operation reopens. Errors: kTpm with "<command>: <decoded rc>" and the rc; kUnavailable
/// when the TCTI cannot be opened. Thread-safe.
class Tpm {
 public:
  /// `tcti` as tpm2-tss tctildr takes it: "device:/dev/tpmrm0", "tabrmd", "swtpm:host=H,port=P",
  /// "mssim:host=H,port=P". Does not connect.
  explicit Tpm(std::string tcti = kDefaultTcti);
  [[nodiscard]] const std::string& tcti() const;
  /// TCTI + ESYS contexts opened so far by this Tpm and its copies.
  [[nodiscard]] std::uint64_t connections_opened() const;

  /// Connects once and checks the TPM answers (TPM2_GetCapability).
  Status probe() const;
  /// Flushes the transient objects a killed process left in a TPM without resource manager (not
  /// tabrmd, not /dev/tpmrm*): swtpm has 3 object slots, so after a SIGKILL mid-operation every
  /// load would fail with TPM_RC_OBJECT_MEMORY. Call once at start, before this process loads
  /// anything. Returns how many were flushed (0 behind a resource manager).
  Result<std::size_t> flush_leftover_objects() const;
  Result<TpmInfo> info() const;
  /// `count` random bytes (any size; read in chunks).
  Result<Bytes> random(std::size_t count) const;

  /// Finds the EK certificate (low then high range NV indices), creates the matching EK from its
  /// TCG template and checks that its public key equals the certificate's. kNotFound without any
  /// certificate; kProofMismatch when the keys differ. `which` forces one template (its
  /// certificate index must exist), e.g. kEccP384H3 for swtpm's P-384 certificate.
  Result<EkInfo> endorsement_key(std::optional<EkTemplate> which = std::nullopt) const;

  /// Creates an AK under the certified EK (endorsement hierarchy); `parent` as in
  /// endorsement_key().
  Result<AkBlob> create_ak(AkAlgorithm algorithm = AkAlgorithm::kEccP256,
                           std::optional<EkTemplate> parent = std::nullopt) const;
  /// Loads `state_dir`/ak.blob when present, else creates an AK and stores it there (0600).
  Result<AkBlob> load_or_create_ak(const std::filesystem::path& state_dir,
                                   AkAlgorithm algorithm = AkAlgorithm::kEccP256) const;

  /// TPM2_ActivateCredential of (credential_blob = TPM2B_ID_OBJECT, secret =
  /// TPM2B_ENCRYPTED_SECRET, both marshalled with their size) for `ak`, using the EK policy
  /// session and a session salted to the EK with response encryption.
  Result<SecretBytes> activate_credential(const AkBlob& ak, ByteSpan credential_blob,
                                          ByteSpan secret) const;

  /// TPM2_Quote with the AK over `selection`, qualifyingData = `nonce` (≤ 64 bytes).
  Result<Quote> quote(const AkBlob& ak, const PcrSelection& selection, ByteSpan nonce) const;

  /// Current PCR values of `selection`, in selection order (bank, then ascending index).
  Result<std::vector<PcrValue>> read_pcrs(const PcrSelection& selection) const;
  /// The selection of every PCR of every active bank.
  Result<PcrSelection> active_pcrs() const;
  /// TPM2_PCR_Extend of PCR `index` in bank `alg` with `digest` (hash_size(alg) bytes).
  Status extend_pcr(unsigned index, TpmAlg alg, ByteSpan digest) const;

  /// TPM2_ReadClock (TPM 2.0 Part 3, 29.2).
  Result<ClockInfo> read_clock() const;
  /// read_pcrs() and read_clock() on one connection (what a posture poll needs).
  Result<PcrSnapshot> snapshot(const PcrSelection& selection) const;

  /// Creates a binding key under the SRK and certifies it with `ak` (qualifyingData =
  /// `qualifying_data`).
  Result<BindingKey> create_binding_key(const AkBlob& ak, ByteSpan qualifying_data) const;
  /// Signs a SHA-256 `digest` (32 bytes) with the binding key.
  Result<Signature> sign(const BindingKey& key, ByteSpan digest) const;

  /// Seals `secret` (1..128 bytes) to PolicyPCR over the current values of `selection` (sha256
  /// bank PCRs), under the SRK, with a salted session encrypting the secret on the way in.
  Result<SealedBlob> seal(const PcrSelection& selection, ByteSpan secret) const;
  /// Unseals a version-1 blob; kPolicyViolation when a selected PCR changed since sealing,
  /// kInvalidArgument for a version-2 blob (it needs unseal_authorized()).
  Result<SecretBytes> unseal(const SealedBlob& blob) const;

  /// Seals `secret` (1..128 bytes) to TPM2_PolicyAuthorize(Name(authority), policy_ref): any PCR
  /// policy the authority signs for `policy_ref` unseals it (TPM 2.0 Part 3, 23.16).
  /// `authority_public` is the TPM2B_PUBLIC of an ECC P-256 signing key with nameAlg SHA-256
  /// (kInvalidArgument otherwise); `policy_ref` at most 64 bytes.
  Result<SealedBlob> seal_authorized(ByteSpan authority_public, ByteSpan policy_ref,
                                     ByteSpan secret) const;
  /// Unseals a version-2 blob with `approval`: LoadExternal of the authority key (owner
  /// hierarchy), TPM2_VerifySignature of the approval -> ticket, PolicyPCR(approval.selection),
  /// PolicyAuthorize(approved policy, policyRef, Name, ticket), Unseal (response encrypted).
  /// With approval.counter, PolicyNV(counter == value) runs after PolicyPCR.
  /// kBadSignature when the signature is not the blob's authority's over this approval;
  /// kPolicyViolation when the current PCRs are not the approved ones, the counter moved past the
  /// approval's value, or the approval is for another policyRef (epoch).
  Result<SecretBytes> unseal_authorized(const SealedBlob& blob,
                                        const PolicyApproval& approval) const;
  /// Migrates a version-1 blob: unseals it under its PolicyPCR now (so the PCRs must still be
  /// the sealed ones: kPolicyViolation otherwise) and seals the secret with seal_authorized().
  Result<SealedBlob> reseal(const SealedBlob& v1, ByteSpan authority_public,
                            ByteSpan policy_ref) const;
  /// Defines the approval counter at `index` (owner hierarchy, empty auth; authRead, authWrite,
  /// noDA) and increments it once, so that its Name (which includes TPMA_NV_WRITTEN) is final.
  /// kAlreadyExists when the index is defined.
  Result<SealCounter> define_seal_counter(std::uint32_t index = kSealCounterIndex) const;
  /// The counter's Name and value; kNotFound when the index is not defined.
  Result<SealCounter> read_seal_counter(std::uint32_t index = kSealCounterIndex) const;
  /// TPM2_NV_Increment: every approval naming an older value stops unsealing.
  Result<SealCounter> increment_seal_counter(std::uint32_t index = kSealCounterIndex) const;

  /// Moves a version-2 blob to another policyRef (a new epoch: approvals of the old one no
  /// longer unseal the result) or another authority: unseal_authorized(v2, approval), then
  /// seal_authorized().
  Result<SealedBlob> reseal(const SealedBlob& v2, const PolicyApproval& approval,
                            ByteSpan authority_public, ByteSpan policy_ref) const;

 private:
  friend class StatePoller;
  std::shared_ptr<detail::Connection> connection_;
};

}  // namespace warden::tpm
