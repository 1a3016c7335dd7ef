#pragma once
// One entry at a time (module-internal): the parsers of whole lists (ima_parse.cpp) and the
// streaming replay (ima_stream.cpp) share these, so both read a list by the same rules.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "attest/ima/ima.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"

namespace warden::attest::ima::detail {

/// The bytes as characters (ASCII lists, template names and paths).
std::string_view as_text(ByteSpan b);

/// A binary list is big-endian when its first PCR index only makes sense read that way.
bool binary_big_endian(ByteSpan first4);

/// Bytes the binary entry at the start of `rest` takes, or 0 while its header is incomplete.
/// A length over `limits` makes it return rest.size(), so the parser reports that length.
std::size_t binary_entry_size(ByteSpan rest, bool big_endian, const Limits& limits);

/// Parses the binary entry `index`, which starts at byte `offset` of the list, from `r`.
Status parse_binary_entry(ByteReader& r, bool big_endian, const Limits& limits, std::size_t index,
                          std::size_t offset, EntryView& e);

/// Decoded bytes of one ASCII line; reused line after line, so the buffers stop growing.
struct AsciiScratch {
  Bytes template_hash;
  Bytes file_digest;
  Bytes modsig_digest;
  Bytes template_data;
  Bytes signature;
  Bytes buffer;
  Bytes modsig;
};

/// Parses one non-empty ASCII line into `e`, whose views point into `line` and `scratch`. A
/// legacy `ima` entry gets no template data (the replay and Entry::from rebuild it).
Status parse_ascii_entry(std::string_view line, std::size_t line_no, const Limits& limits,
                         AsciiScratch& scratch, EntryView& e);

}  // namespace warden::attest::ima::detail
