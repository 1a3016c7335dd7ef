// Untrusted agent <-> issuer message bodies: the first byte picks the message type, the rest is
// the body. Anything that decodes must re-encode to bytes that decode to the same struct.
#include <cstdint>
#include <cstdlib>

#include "attest/protocol/messages.h"

namespace {

template <class Decode>
void check(warden::ByteSpan body, Decode decode) {
  auto m = decode(body);
  if (!m) return;
  warden::Bytes again = warden::protocol::encode(*m);
  auto second = decode(again);
  if (!second || !(*second == *m)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  warden::ByteSpan body(data + 1, size - 1);
  using namespace warden::protocol;
  switch (data[0] % 13) {
    case 0:
      check(body, decode_enroll_request);
      break;
    case 1:
      check(body, decode_enroll_response);
      break;
    case 2:
      check(body, decode_activate_request);
      break;
    case 3:
      check(body, decode_activate_response);
      break;
    case 4:
      check(body, decode_challenge_request);
      break;
    case 5:
      check(body, decode_challenge_response);
      break;
    case 6:
      check(body, decode_attest_request);
      break;
    case 7:
      check(body, decode_attest_response);
      break;
    case 8:
      check(body, decode_token_request);
      break;
    case 9:
      check(body, decode_token_response);
      break;
    case 10:
      check(body, decode_revoke_request);
      break;
    case 11:
      check(body, decode_revoke_response);
      break;
    default:
      check(body, decode_error_response);
      break;
  }
  return 0;
}
