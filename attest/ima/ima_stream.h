#pragma once
// Replaying a measurement list as it is read, in chunks of any size: memory stays bounded by
// one entry (Limits::max_template_data), whatever the list's length, and an entry costs no
// allocation once the first few have sized the buffers.

#include <memory>

#include "attest/ima/ima.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"

namespace warden::attest::ima {

class StreamReplay {
 public:
  /// Replays on top of `state` (as replay() does); the format is detected from the first bytes.
  static Result<StreamReplay> create(ReplayState state, const ReplayOptions& options = {},
                                     const Limits& limits = {});
  StreamReplay(StreamReplay&&) noexcept;
  StreamReplay& operator=(StreamReplay&&) noexcept;
  ~StreamReplay();

  /// The next bytes of the list. After an error the replay is unusable.
  Status feed(ByteSpan chunk);
  /// The end of the list: an incomplete last entry is an error (an ASCII last line may lack its
  /// newline).
  Result<ReplayResult> finish();

 private:
  struct Impl;
  explicit StreamReplay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warden::attest::ima
