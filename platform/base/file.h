#pragma once

#include <sys/types.h>

#include <filesystem>

#include "platform/base/bytes.h"

namespace warden {

/// Replaces `path` with `data` atomically: a temporary file in the same directory, written,
/// fsync'd, given `mode`, renamed over `path`, then the directory fsync'd. A crash at any point
/// leaves either the old or the new content, never a mix.
Status write_file_atomic(const std::filesystem::path& path, ByteSpan data, mode_t mode = 0600);

/// Reads a whole file, refusing files larger than `max_size`.
Result<Bytes> read_file(const std::filesystem::path& path, std::size_t max_size = 64 << 20);

}  // namespace warden
