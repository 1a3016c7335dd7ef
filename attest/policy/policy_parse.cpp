#include <charconv>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "attest/policy/policy.h"
#include "platform/base/encoding.h"

namespace warden::attest::policy {
namespace {

constexpr std::size_t kMaxPolicy = 1u << 20;

Error bad(std::string_view key, std::string_view detail) {
  return Error{ErrorCode::kMalformed, fmt::format("policy: {}: {}", key, detail)};
}

Result<std::vector<std::string>> strings(const toml::node_view<const toml::node>& n,
                                         std::string_view key) {
  std::vector<std::string> out;
  if (!n) return out;
  const toml::array* a = n.as_array();
  if (a == nullptr) return fail(bad(key, "expected an array of strings"));
  for (const toml::node& item : *a) {
    auto s = item.value<std::string>();
    if (!s) return fail(bad(key, "expected an array of strings"));
    out.push_back(std::move(*s));
  }
  return out;
}

Result<std::vector<Bytes>> hexes(const toml::node_view<const toml::node>& n, std::string_view key) {
  auto s = strings(n, key);
  if (!s) return fail(s.error());
  std::vector<Bytes> out;
  for (const std::string& h : *s) {
    auto b = hex_decode(h);
    if (!b || b->empty()) return fail(bad(key, fmt::format("'{}' is not a hex digest", h)));
    out.push_back(std::move(*b));
  }
  return out;
}

// "sha256:<hex>" -> (algo, bytes)
Result<std::pair<std::string, Bytes>> algo_digest(std::string_view s, std::string_view key) {
  auto colon = s.find(':');
  auto b = colon == std::string_view::npos ? Result<Bytes>(fail(ErrorCode::kMalformed, ""))
                                           : hex_decode(s.substr(colon + 1));
  if (!b || b->empty()) {
    return fail(bad(key, fmt::format("'{}' is not '<algo>:<hex digest>'", s)));
  }
  return std::pair{std::string(s.substr(0, colon)), std::move(*b)};
}

Status parse_pcrs(const toml::table& root, Policy& p) {
  const toml::table* pcrs = root["pcrs"].as_table();
  if (pcrs == nullptr) return ok();
  for (const auto& [bank_key, bank_node] : *pcrs) {
    auto alg = hash_from_name(bank_key.str());
    const toml::table* bank = bank_node.as_table();
    if (!alg || bank == nullptr) {
      return fail(bad(fmt::format("pcrs.{}", bank_key.str()), "unknown bank or not a table"));
    }
    for (const auto& [idx_key, value] : *bank) {
      const std::string key = fmt::format("pcrs.{}.{}", bank_key.str(), idx_key.str());
      PcrRule rule{*alg, 0, false, {}};
      std::string_view idx = idx_key.str();
      auto [ptr, ec] = std::from_chars(idx.data(), idx.data() + idx.size(), rule.index);
      if (ec != std::errc{} || ptr != idx.data() + idx.size() || rule.index >= kPcrCount) {
        return fail(bad(key, "PCR index must be 0..23"));
      }
      if (auto s = value.value<std::string>()) {
        if (*s == "replay-only") {
          rule.replay_only = true;
        } else {
          auto b = hex_decode(*s);
          if (!b || b->size() != hash_size(*alg)) {
            return fail(bad(key, fmt::format("expected a {}-byte hex value or \"replay-only\"",
                                             hash_size(*alg))));
          }
          rule.expected.push_back(std::move(*b));
        }
      } else if (value.is_array()) {
        auto list = hexes(toml::node_view<const toml::node>(value), key);
        if (!list) return fail(list.error());
        for (const Bytes& b : *list) {
          if (b.size() != hash_size(*alg)) return fail(bad(key, "value of the wrong size"));
        }
        rule.expected = std::move(*list);
      } else {
        return fail(bad(key, "expected a hex string, an array of them, or \"replay-only\""));
      }
      p.pcrs.push_back(std::move(rule));
    }
  }
  return ok();
}

Status parse_tables(const toml::table& root, Policy& p) {
  auto version = root["version"].value<std::string>();
  if (!version || version->empty()) return fail(bad("version", "required string"));
  p.version = std::move(*version);
  WARDEN_TRY_STATUS(parse_pcrs(root, p));

  if (auto sb = root["boot"]["secure_boot"]) {
    auto s = sb.value<std::string>();
    if (s && *s == "enabled") {
      p.secure_boot = SecureBoot::kEnabled;
    } else if (s && *s == "disabled") {
      p.secure_boot = SecureBoot::kDisabled;
    } else if (s && *s == "any") {
      p.secure_boot = SecureBoot::kAny;
    } else {
      return fail(bad("boot.secure_boot", "expected \"enabled\", \"disabled\" or \"any\""));
    }
  }
  auto take_hex = [&](std::string_view key, std::vector<Bytes>& out) -> Status {
    auto v = hexes(root.at_path(key), key);
    if (!v) return fail(v.error());
    out = std::move(*v);
    return ok();
  };
  WARDEN_TRY_STATUS(take_hex("boot.allowed_applications", p.allowed_applications));
  WARDEN_TRY_STATUS(take_hex("boot.denied_applications", p.denied_applications));
  WARDEN_TRY_STATUS(take_hex("boot.denied_digests", p.denied_event_digests));

  auto take_strings = [&](std::string_view key, std::vector<std::string>& out) -> Status {
    auto v = strings(root.at_path(key), key);
    if (!v) return fail(v.error());
    out = std::move(*v);
    return ok();
  };
  WARDEN_TRY_STATUS(take_strings("ima.exclude", p.ima_exclude));
  WARDEN_TRY_STATUS(take_strings("ima.deny_paths", p.ima_deny_paths));
  std::vector<std::string> deny_digests;
  WARDEN_TRY_STATUS(take_strings("ima.deny_digests", deny_digests));
  for (const std::string& d : deny_digests) {
    auto ad = algo_digest(d, "ima.deny_digests");
    if (!ad) return fail(ad.error());
    p.ima_deny_digests.push_back(std::move(*ad));
  }
  if (auto allow = root["ima"]["allow"]) {
    const toml::array* a = allow.as_array();
    if (a == nullptr) return fail(bad("ima.allow", "expected an array of tables"));
    for (const toml::node& item : *a) {
      const toml::table* t = item.as_table();
      auto path = t != nullptr ? (*t)["path"].value<std::string>() : std::nullopt;
      if (!path) return fail(bad("ima.allow", "each entry needs a path"));
      ImaAllow rule{std::move(*path), {}};
      auto ds = strings((*t)["digests"], "ima.allow.digests");
      if (!ds) return fail(ds.error());
      for (const std::string& d : *ds) {
        auto ad = algo_digest(d, "ima.allow.digests");
        if (!ad) return fail(ad.error());
        rule.digests.push_back(std::move(*ad));
      }
      p.ima_allow.push_back(std::move(rule));
    }
  }
  WARDEN_TRY_STATUS(take_strings("containers.allowed_digests", p.image_digests));
  WARDEN_TRY_STATUS(take_strings("containers.allowed_refs", p.image_refs));
  return ok();
}

}  // namespace

Result<Policy> parse_policy(std::string_view text) {
  if (text.size() > kMaxPolicy) {
    return fail(ErrorCode::kLimitExceeded, "policy: larger than 1 MiB");
  }
  Policy p;
  try {
    toml::table root = toml::parse(text);
    WARDEN_TRY_STATUS(parse_tables(root, p));
  } catch (const toml::parse_error& e) {
    return fail(ErrorCode::kMalformed,
                fmt::format("policy: TOML syntax at line {}, column {}: {}", e.source().begin.line,
                            e.source().begin.column, e.description()));
  }
  return p;
}

}  // namespace warden::attest::policy
