#include "attest/ima/ima_walk.h"

#include <string>

namespace warden::attest::ima {

Result<std::size_t> entry_offset(ByteSpan list, std::uint64_t index, const Limits& limits) {
  auto entries = parse_binary_view(list, limits);
  if (!entries) return fail(std::move(entries).error());
  if (index > entries->size()) {
    return fail(ErrorCode::kInvalidArgument, "IMA list: offset " + std::to_string(index) +
                                                 " past the " + std::to_string(entries->size()) +
                                                 " entries present (IMA list reset?)");
  }
  if (index == entries->size()) return list.size();
  // Every entry starts with its u32 PCR index, then the template hash the view points at.
  const auto& entry = (*entries)[static_cast<std::size_t>(index)];
  return static_cast<std::size_t>(entry.template_hash.data() - list.data()) - 4;
}

}  // namespace warden::attest::ima
