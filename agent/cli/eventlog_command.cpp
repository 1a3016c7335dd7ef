// wardenctl eventlog show FILE [--json] | wardenctl eventlog replay FILE
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "agent/cli/commands.h"
#include "attest/eventlog/eventlog.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"

namespace warden::cli {
namespace {

namespace el = attest::eventlog;

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string alg_name(std::uint16_t alg) {
  if (auto a = hash_from_tpm_id(alg)) return std::string(hash_name(*a));
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04x", alg);
  return buf;
}

Result<el::EventLog> load(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes) return fail(bytes.error());
  return el::parse(*bytes, el::ParseOptions{.best_effort = true});
}

int show(const std::string& path, bool json) {
  auto log = load(path);
  if (!log) {
    std::cerr << "wardenctl: " << log.error().message << "\n";
    return 1;
  }
  const auto mismatches = el::check_digests(*log);
  auto flagged = [&](std::size_t index) -> const el::DigestMismatch* {
    for (const auto& m : mismatches)
      if (m.index == index) return &m;
    return nullptr;
  };
  if (json) {
    std::string out =
        "{\"crypto_agile\":" + std::string(log->crypto_agile ? "true" : "false") + ",\"events\":[";
    bool first = true;
    for (const auto& e : log->events) {
      if (!first) out += ",";
      first = false;
      out += "{\"index\":" + std::to_string(e.index) + ",\"offset\":" + std::to_string(e.offset) +
             ",\"pcr\":" + std::to_string(e.pcr) +
             ",\"type\":" + json_string(el::event_type_name(e.type)) + ",\"digests\":{";
      for (std::size_t i = 0; i < e.digests.size(); ++i) {
        if (i > 0) out += ",";
        out += json_string(alg_name(e.digests[i].alg)) + ":" +
               json_string(hex_encode(e.digests[i].digest));
      }
      out += "},\"data\":{";
      const auto fields = el::decode(e);
      for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i > 0) out += ",";
        out += json_string(fields[i].name) + ":" + json_string(fields[i].value);
      }
      out += "}";
      if (const auto* m = flagged(e.index)) out += ",\"digest_mismatch\":" + json_string(m->reason);
      out += "}";
    }
    out += "],\"warnings\":[";
    for (std::size_t i = 0; i < log->warnings.size(); ++i) {
      if (i > 0) out += ",";
      out += json_string(log->warnings[i]);
    }
    out += "]}\n";
    std::cout << out;
  } else {
    for (const auto& e : log->events) {
      std::cout << "event " << e.index << " (offset " << e.offset << "): pcr " << e.pcr << " "
                << el::event_type_name(e.type) << "\n";
      for (const auto& d : e.digests)
        std::cout << "  " << alg_name(d.alg) << ": " << hex_encode(d.digest) << "\n";
      for (const auto& f : el::decode(e)) std::cout << "  " << f.name << ": " << f.value << "\n";
      if (const auto* m = flagged(e.index)) std::cout << "  WARNING: " << m->reason << "\n";
    }
    for (const auto& w : log->warnings) std::cerr << "wardenctl: warning: " << w << "\n";
  }
  return 0;
}

int replay_cmd(const std::string& path) {
  auto log = load(path);
  if (!log) {
    std::cerr << "wardenctl: " << log.error().message << "\n";
    return 1;
  }
  auto r = el::replay(*log);
  if (!r) {
    std::cerr << "wardenctl: " << r.error().message << "\n";
    return 1;
  }
  for (const auto& w : log->warnings) std::cerr << "wardenctl: warning: " << w << "\n";
  for (const auto& w : r->warnings) std::cerr << "wardenctl: warning: " << w << "\n";
  std::cout << attest::format_pcrs(r->pcrs);
  return 0;
}

}  // namespace

void register_eventlog_commands(CLI::App& app, CommandResult& result) {
  auto* group = app.add_subcommand("eventlog", "TCG PC Client firmware event logs");
  group->footer("Example:\n  wardenctl eventlog replay binary_bios_measurements");
  group->require_subcommand(1);

  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* show_cmd = group->add_subcommand("show", "List the events of a firmware event log");
  show_cmd->add_option("FILE", *path, "binary_bios_measurements file")->required();
  show_cmd->add_flag("--json", *json, "JSON output");
  show_cmd->footer(
      "Example:\n  wardenctl eventlog show --json "
      "/sys/kernel/security/tpm0/binary_bios_measurements");
  show_cmd->callback([path, json, &result] { result.exit_code = show(*path, *json); });

  auto rpath = std::make_shared<std::string>();
  auto* replay_sub = group->add_subcommand("replay", "Replay a firmware event log to PCR values");
  replay_sub->add_option("FILE", *rpath, "binary_bios_measurements file")->required();
  replay_sub->footer(
      "Example:\n  wardenctl eventlog replay /sys/kernel/security/tpm0/binary_bios_measurements");
  replay_sub->callback([rpath, &result] { result.exit_code = replay_cmd(*rpath); });
}

}  // namespace warden::cli
