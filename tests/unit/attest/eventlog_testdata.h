#pragma once
// The real firmware logs under tests/data/eventlog and what tpm2-tools says about them.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "platform/base/bytes.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::attest::eventlog::testdata {

namespace fs = std::filesystem;

inline const fs::path kDir = fs::path(WARDEN_TESTDATA_DIR) / "eventlog";

inline Bytes read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Expected {
  TpmAlg alg;
  unsigned pcr;
  Bytes value;
};

// The `pcrs:` section of tpm2_eventlog's YAML: "  sha256:" then "    0  : 0x<hex>".
// (No std::regex: g++ 12 gives a false -Wmaybe-uninitialized on it under ASan.)
inline std::vector<Expected> expected_pcrs(const fs::path& yaml) {
  std::vector<Expected> out;
  std::istringstream in(read_text(yaml));
  std::string line;
  bool in_pcrs = false;
  std::optional<TpmAlg> bank;
  while (std::getline(in, line)) {
    if (line == "pcrs:") {
      in_pcrs = true;
      continue;
    }
    if (!in_pcrs) continue;
    if (!line.empty() && line[0] != ' ') break;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (line.rfind("    ", 0) == 0) {
      const auto hex = line.find("0x", colon);
      if (bank && hex != std::string::npos)
        out.push_back({*bank, static_cast<unsigned>(std::stoul(line.substr(4, colon - 4))),
                       *hex_decode(line.substr(hex + 2))});
    } else if (line.rfind("  ", 0) == 0) {
      bank = hash_from_name(line.substr(2, colon - 2));
    }
  }
  return out;
}

inline std::vector<std::size_t> expected_flagged(const fs::path& err) {
  std::vector<std::size_t> out;
  std::istringstream in(read_text(err));
  std::string line;
  while (std::getline(in, line)) {
    const auto at = line.find("Event ");
    if (at != std::string::npos && line.find("'s digest does not match") != std::string::npos)
      out.push_back(std::stoul(line.substr(at + 6)));
  }
  return out;
}

inline std::vector<fs::path> logs() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(kDir))
    if (e.path().extension() == ".bin") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace warden::attest::eventlog::testdata
