// Untrusted TPM structures: TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC / TPM2B_PUBLIC. Parsing must
// never crash; a parsed public area must yield a Name and (maybe) a key without crashing.
#include <cstdint>

#include "attest/quote/quote.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace q = warden::attest::quote;
  const warden::ByteSpan in(data, size);
  (void)q::parse_attest(in);
  auto sig = q::parse_signature(in);
  auto pub = q::parse_public(in);
  if (!pub) pub = q::parse_public2b(in);
  if (pub) {
    (void)q::object_name(*pub);
    (void)q::public_key(*pub);
    (void)q::check_ak_attributes(*pub);
    if (sig) (void)q::verify_signature(*pub, in, *sig);
  }
  return 0;
}
