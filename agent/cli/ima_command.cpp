#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "agent/cli/commands.h"
#include "attest/ima/ima.h"
#include "attest/ima/ima_stream.h"
#include "attest/pcr_values.h"

namespace warden::cli {
namespace {

// Streams the file through the replay: memory is one read buffer and one entry, not the list.
int ima_replay(const std::string& path, bool old_kernel) {
  attest::ima::ReplayOptions options;
  if (old_kernel) options.rule = attest::ima::BankRule::kPaddedSha1;
  auto stream = attest::ima::StreamReplay::create(attest::ima::initial_state(options), options);
  if (!stream) {
    std::cerr << "wardenctl: " << stream.error().message << "\n";
    return 1;
  }
  const int fd = path == "-" ? 0 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::cerr << "wardenctl: " << path << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  std::vector<std::uint8_t> buf(std::size_t{256} << 10);
  Status fed = ok();
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::cerr << "wardenctl: " << path << ": " << std::strerror(errno) << "\n";
      return 1;
    }
    if (n == 0) break;
    fed = stream->feed(ByteSpan(buf.data(), static_cast<std::size_t>(n)));
    if (!fed) break;
  }
  if (fd != 0) ::close(fd);
  auto result = fed ? stream->finish() : Result<attest::ima::ReplayResult>(fail(fed.error()));
  if (!result) {
    std::cerr << "wardenctl: " << result.error().message << "\n";
    return 1;
  }
  auto selection = PcrSelection::parse("sha1:10+sha256:10");
  std::cout << attest::format_pcrs(result->state.pcrs, selection ? &*selection : nullptr);
  for (const auto& p : result->problems) std::cerr << "wardenctl: warning: " << p.message << "\n";
  return result->problems.empty() ? 0 : 2;
}

}  // namespace

void register_ima_commands(CLI::App& app, CommandResult& result) {
  auto* ima = app.add_subcommand("ima", "Linux IMA measurement lists");
  ima->footer("Example:\n  wardenctl ima replay ascii_runtime_measurements");
  ima->require_subcommand(1);
  auto* replay = ima->add_subcommand(
      "replay", "Replay PCR 10 (sha1 and sha256 banks) from a binary or ASCII IMA list");
  auto path = std::make_shared<std::string>();
  auto old_kernel = std::make_shared<bool>(false);
  replay
      ->add_option("FILE", *path,
                   "binary_runtime_measurements or ascii_runtime_measurements (- for stdin)")
      ->required();
  replay->add_flag("--padded-sha1", *old_kernel,
                   "kernels before 5.8: non-SHA-1 banks got the zero-padded SHA-1 template hash");
  replay->footer(
      "Example:\n  wardenctl ima replay /sys/kernel/security/ima/ascii_runtime_measurements");
  replay->callback(
      [&result, path, old_kernel] { result.exit_code = ima_replay(*path, *old_kernel); });
}

}  // namespace warden::cli
