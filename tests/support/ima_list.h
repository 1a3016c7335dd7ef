#pragma once
// A binary ima-ng list for tests, with the digests the kernel (>= 5.8) extends into PCR 10's
// sha256 bank for it, so that a test can extend a swtpm's PCR 10 to match.
#include <string>
#include <string_view>
#include <vector>

#include "platform/base/bytes.h"
#include "platform/base/openssl.h"

namespace warden::test {

struct ImaChunk {
  Bytes list;
  std::vector<Bytes> extends;
};

/// One entry per path, each file's digest the sha256 of "<path>-content".
inline ImaChunk ima_chunk(const std::vector<std::string>& paths) {
  ImaChunk out;
  ByteWriter list;
  for (const std::string& path : paths) {
    ByteWriter d, n, data;
    d.bytes(std::string_view("sha256:")).u8(0).bytes(ossl::sha256(to_bytes(path + "-content")));
    n.bytes(path).u8(0);
    for (const Bytes& f : {d.data(), n.data()}) {
      data.u32le(static_cast<std::uint32_t>(f.size())).bytes(f);
    }
    const Bytes template_hash = *ossl::digest(ossl::Hash::kSha1, data.data());
    list.u32le(10).bytes(template_hash).u32le(6).bytes(std::string_view("ima-ng"));
    list.u32le(static_cast<std::uint32_t>(data.data().size())).bytes(data.data());
    out.extends.push_back(ossl::sha256(data.data()));
  }
  out.list = std::move(list).take();
  return out;
}

}  // namespace warden::test
