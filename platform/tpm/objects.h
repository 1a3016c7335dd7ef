#pragma once

// Internal to platform/tpm: templates, primaries, sessions and loading shared by the operations.

#include <vector>

#include "platform/tpm/esys.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm::detail {

Result<TPML_PCR_SELECTION> to_tpml(const PcrSelection& selection);
PcrSelection from_tpml(const TPML_PCR_SELECTION& tpml);
/// TPM2_PCR_Read in as many calls as needed (the TPM returns at most 8 digests per call).
Result<std::vector<PcrValue>> read_pcrs(ESYS_CONTEXT* ctx, const PcrSelection& selection);
/// read_pcrs() with the pcrUpdateCounter of its first TPM2_PCR_Read and the number of commands.
struct PcrRead {
  std::vector<PcrValue> values;
  std::uint32_t update_counter = 0;
  unsigned commands = 0;
};
Result<PcrRead> read_pcrs_counted(ESYS_CONTEXT* ctx, const PcrSelection& selection);
/// TPM2_ReadClock.
Result<ClockInfo> read_clock(ESYS_CONTEXT* ctx);

TPM2B_PUBLIC ek_template(EkTemplate which);
/// TCG ECC P-256 SRK template (storage, AES-128-CFB, noDA, unique zeros).
TPM2B_PUBLIC srk_template();

/// TPM2_CreatePrimary; `public_out` receives the created public area when non-null.
Result<Handle> create_primary(ESYS_CONTEXT* ctx, ESYS_TR hierarchy, const TPM2B_PUBLIC& in_public,
                              TPM2B_PUBLIC* public_out);
Result<Handle> create_ek(ESYS_CONTEXT* ctx, EkTemplate which, TPM2B_PUBLIC* public_out = nullptr);
Result<Handle> create_srk(ESYS_CONTEXT* ctx);

/// A policy session satisfying the EK's authPolicy (PolicySecret(E), + PolicyOR for PolicyB).
/// Policy digests reset after each use: call again before every EK use.
Result<Handle> ek_policy_session(ESYS_CONTEXT* ctx, EkTemplate which);
/// An HMAC or policy session salted to `salt_key` (AES-128-CFB parameter encryption).
Result<Handle> salted_session(ESYS_CONTEXT* ctx, ESYS_TR salt_key, TPM2_SE type,
                              TPMA_SESSION attributes);

/// TPM2_Load of marshalled TPM2B_PUBLIC/TPM2B_PRIVATE under `parent` authorised by `session`.
Result<Handle> load(ESYS_CONTEXT* ctx, ESYS_TR parent, ESYS_TR session, ByteSpan public_area,
                    ByteSpan private_area);
/// Recreates the AK's EK, loads the AK under it and flushes the EK.
Result<Handle> load_ak(ESYS_CONTEXT* ctx, const AkBlob& ak);

/// SubjectPublicKeyInfo of an RSA or ECC (P-256/P-384) TPMT_PUBLIC.
Result<Bytes> public_key_der(const TPMT_PUBLIC& pub);
Result<Bytes> public_key_der(ByteSpan marshalled_tpm2b_public);

Result<Bytes> marshal_signature(const TPMT_SIGNATURE& signature);

}  // namespace warden::tpm::detail
