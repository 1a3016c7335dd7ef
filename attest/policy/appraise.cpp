#include <algorithm>
#include <fnmatch.h>

#include <fmt/format.h>

#include "attest/policy/policy.h"
#include "platform/base/encoding.h"

namespace warden::attest::policy {
namespace {

constexpr std::uint32_t kEvEfiBootServicesApplication = 0x80000003;

bool glob(const std::string& pattern, const std::string& text) {
  return fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

bool any_glob(const std::vector<std::string>& patterns, const std::string& text) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return glob(p, text); });
}

bool contains(const std::vector<Bytes>& list, const Bytes& b) {
  return std::find(list.begin(), list.end(), b) != list.end();
}

bool same(const Bytes& a, ByteSpan b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

std::string join_hex(const std::vector<Bytes>& list) {
  std::string out;
  for (const Bytes& b : list) out += (out.empty() ? "" : " | ") + hex_encode(b);
  return out;
}

class Appraiser {
 public:
  explicit Appraiser(const Policy& p) : p_(p) {}

  void pcrs(const PcrValues* values) {
    for (const PcrRule& rule : p_.pcrs) {
      if (rule.replay_only) continue;
      const std::string subject = fmt::format("PCR {}:{}", hash_name(rule.bank), rule.index);
      const Bytes* v = values != nullptr ? values->get(rule.bank, rule.index) : nullptr;
      if (v == nullptr) {
        add("pcr.missing", subject, join_hex(rule.expected), "no value");
      } else if (!contains(rule.expected, *v)) {
        add("pcr.mismatch", subject, join_hex(rule.expected), hex_encode(*v));
      }
    }
  }

  void boot(const BootEvidence* boot) {
    const bool needs_boot = p_.secure_boot != SecureBoot::kAny ||
                            !p_.allowed_applications.empty() || !p_.denied_applications.empty() ||
                            !p_.denied_event_digests.empty();
    if (boot == nullptr) {
      if (needs_boot) add("boot.missing", "boot event log", "boot evidence", "none");
      return;
    }
    if (p_.secure_boot != SecureBoot::kAny) {
      const bool want = p_.secure_boot == SecureBoot::kEnabled;
      if (!boot->secure_boot || *boot->secure_boot != want) {
        add("boot.secure_boot", "SecureBoot", want ? "enabled" : "disabled",
            !boot->secure_boot ? "not measured" : (*boot->secure_boot ? "enabled" : "disabled"));
      }
    }
    for (std::size_t i = 0; i < boot->events.size(); ++i) {
      const BootEvent& e = boot->events[i];
      const std::string subject =
          fmt::format("boot event {} (PCR {}, type 0x{:08x})", i, e.pcr, e.type);
      if (e.type == kEvEfiBootServicesApplication && e.authenticode) {
        if (contains(p_.denied_applications, *e.authenticode)) {
          add("boot.denied_application", subject, "not denied", hex_encode(*e.authenticode));
        } else if (!p_.allowed_applications.empty() &&
                   !contains(p_.allowed_applications, *e.authenticode)) {
          add("boot.unknown_application", subject, join_hex(p_.allowed_applications),
              hex_encode(*e.authenticode));
        }
      }
      for (const auto& [alg, d] : e.digests) {
        if (contains(p_.denied_event_digests, d)) {
          add("boot.denied_digest", subject, "not denied",
              fmt::format("{}:{}", hash_name(alg), hex_encode(d)));
        }
      }
    }
  }

  void ima(std::span<const ima::EntryView> entries) {
    const bool path_globs = !p_.ima_exclude.empty() || !p_.ima_deny_paths.empty();
    const bool any_rule = path_globs || !p_.ima_deny_digests.empty() || !p_.ima_allow.empty();
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const ima::EntryView& e = entries[i];
      if (i == 0 && e.path == "boot_aggregate") continue;  // checked by check_boot_aggregate
      // fnmatch needs a NUL-terminated path; the views point into the list.
      if (path_globs) path_.assign(e.path);
      if (!p_.ima_exclude.empty() && any_glob(p_.ima_exclude, path_)) continue;
      // Built only for a finding: formatting them for every entry was 10% of an attestation.
      auto subject = [&] { return fmt::format("IMA entry {} {}", i, e.path); };
      auto found = [&] { return fmt::format("{}:{}", e.digest_algo, hex_encode(e.file_digest)); };
      if (e.violation()) {
        add("ima.violation", subject(), "no ToMToU/open-writers violation", "violation");
        continue;
      }
      if (!any_rule) continue;
      const bool denied_digest = std::any_of(
          p_.ima_deny_digests.begin(), p_.ima_deny_digests.end(),
          [&](const auto& d) { return d.first == e.digest_algo && same(d.second, e.file_digest); });
      if (denied_digest || (!p_.ima_deny_paths.empty() && any_glob(p_.ima_deny_paths, path_))) {
        add("ima.denied", subject(), "not on the denylist", found());
        continue;
      }
      if (p_.ima_allow.empty()) continue;
      auto rule = std::find_if(p_.ima_allow.begin(), p_.ima_allow.end(),
                               [&](const ImaAllow& a) { return a.path == e.path; });
      if (rule == p_.ima_allow.end()) {
        add("ima.not_allowed", subject(), "a path on the allowlist", found());
        continue;
      }
      const bool ok_digest = std::any_of(
          rule->digests.begin(), rule->digests.end(),
          [&](const auto& d) { return d.first == e.digest_algo && same(d.second, e.file_digest); });
      if (!ok_digest) {
        std::string expected;
        for (const auto& [a, d] : rule->digests) {
          expected += (expected.empty() ? "" : " | ") + a + ":" + hex_encode(d);
        }
        add("ima.digest_mismatch", subject(), expected, found());
      }
    }
  }

  void containers(std::span<const cel::Record> records) {
    if (p_.image_digests.empty() && p_.image_refs.empty()) return;
    for (const cel::Record& r : records) {
      if (r.content.event != cel::ContainerEvent::kStart) continue;
      const bool by_digest = std::find(p_.image_digests.begin(), p_.image_digests.end(),
                                       r.content.image_digest) != p_.image_digests.end();
      if (by_digest || any_glob(p_.image_refs, r.content.image_ref)) continue;
      add("container.image_not_allowed",
          fmt::format("container {} (record {})", r.content.container_id, r.recnum),
          "an allowed image digest or reference",
          fmt::format("{}@{}", r.content.image_ref, r.content.image_digest));
    }
  }

  Verdict take() && {
    v_.policy_version = p_.version;
    v_.pass = v_.reasons.empty();
    return std::move(v_);
  }

 private:
  void add(std::string code, std::string subject, std::string expected, std::string found) {
    v_.reasons.push_back(
        {std::move(code), std::move(subject), std::move(expected), std::move(found)});
  }
  const Policy& p_;
  Verdict v_;
  std::string path_;  // reused: no allocation per entry
};

}  // namespace

Verdict appraise(const Policy& policy, const Evidence& evidence) {
  Appraiser a(policy);
  a.pcrs(evidence.pcrs);
  a.boot(evidence.boot);
  a.ima(evidence.ima);
  a.containers(evidence.containers);
  return std::move(a).take();
}

}  // namespace warden::attest::policy
