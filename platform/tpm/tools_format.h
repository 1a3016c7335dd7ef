#pragma once

#include <vector>

#include "platform/base/bytes.h"
#include "platform/base/pcr_selection.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm {

/// The file `tpm2_quote -o` writes and `tpm2_checkquote -f` reads: the host-order (little-endian)
/// C structs TPML_PCR_SELECTION (132 bytes), a u32 chunk count, then that many TPML_DIGEST
/// (532 bytes, ≤ 8 digests each). `values` in selection order (as Tpm::read_pcrs returns them).
Bytes tpm2_tools_pcrs_file(const PcrSelection& selection, const std::vector<PcrValue>& values);

}  // namespace warden::tpm
