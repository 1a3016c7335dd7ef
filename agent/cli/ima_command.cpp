#include <iostream>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "agent/cli/commands.h"
#include "attest/ima/ima.h"
#include "attest/pcr_values.h"
#include "platform/base/file.h"

namespace warden::cli {
namespace {

int ima_replay(const std::string& path, bool old_kernel) {
  auto data = read_file(path, std::size_t{1} << 30);
  if (!data) {
    std::cerr << "wardenctl: " << data.error().message << "\n";
    return 1;
  }
  auto entries = attest::ima::parse(*data);
  if (!entries) {
    std::cerr << "wardenctl: " << entries.error().message << "\n";
    return 1;
  }
  attest::ima::ReplayOptions options;
  if (old_kernel) options.rule = attest::ima::BankRule::kPaddedSha1;
  auto result = attest::ima::replay(*entries, attest::ima::initial_state(options), options);
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
  ima->require_subcommand(1);
  auto* replay = ima->add_subcommand(
      "replay", "Replay PCR 10 (sha1 and sha256 banks) from a binary or ASCII IMA list");
  auto path = std::make_shared<std::string>();
  auto old_kernel = std::make_shared<bool>(false);
  replay->add_option("FILE", *path, "binary_runtime_measurements or ascii_runtime_measurements")
      ->required();
  replay->add_flag("--padded-sha1", *old_kernel,
                   "kernels before 5.8: non-SHA-1 banks got the zero-padded SHA-1 template hash");
  replay->callback(
      [&result, path, old_kernel] { result.exit_code = ima_replay(*path, *old_kernel); });
}

}  // namespace warden::cli
