#include "attest/cel/cel.h"

#include <fmt/format.h>

#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::attest::cel {
namespace {

constexpr std::size_t kMaxText = 4096;

std::string_view event_name(ContainerEvent e) {
  return e == ContainerEvent::kStart ? "start" : "stop";
}

cbor::Value content_value(const ContainerContent& c) {
  cbor::Value m = cbor::Value::map();
  m.put(cbor::Value::text("event"), cbor::Value::text(event_name(c.event)));
  m.put(cbor::Value::text("container_id"), cbor::Value::text(c.container_id));
  m.put(cbor::Value::text("image_ref"), cbor::Value::text(c.image_ref));
  m.put(cbor::Value::text("image_digest"), cbor::Value::text(c.image_digest));
  m.put(cbor::Value::text("runtime"), cbor::Value::text(c.runtime));
  m.put(cbor::Value::text("cgroup_path"), cbor::Value::text(c.cgroup_path));
  return m;
}

Result<std::string> text_field(const cbor::Value& m, std::string_view key, std::string_view at) {
  const cbor::Value* v = m.find(key);
  if (v == nullptr || v->as_text() == nullptr) {
    return fail(ErrorCode::kMalformed,
                fmt::format("CEL {}: content field '{}' missing or not text", at, key));
  }
  if (v->as_text()->size() > kMaxText) {
    return fail(ErrorCode::kLimitExceeded,
                fmt::format("CEL {}: content field '{}' longer than {}", at, key, kMaxText));
  }
  return *v->as_text();
}

Result<ContainerContent> content_from(const cbor::Value& m, std::string_view at) {
  if (m.type() != cbor::Value::Type::kMap || m.map_size() != 6) {
    return fail(ErrorCode::kMalformed,
                fmt::format("CEL {}: content is not a map of the 6 container fields", at));
  }
  ContainerContent c;
  auto event = text_field(m, "event", at);
  if (!event) return fail(event.error());
  if (*event == "start") {
    c.event = ContainerEvent::kStart;
  } else if (*event == "stop") {
    c.event = ContainerEvent::kStop;
  } else {
    return fail(ErrorCode::kMalformed,
                fmt::format("CEL {}: event '{}' (expected start or stop)", at, *event));
  }
  std::string* out[] = {&c.container_id, &c.image_ref, &c.image_digest, &c.runtime, &c.cgroup_path};
  std::string_view keys[] = {"container_id", "image_ref", "image_digest", "runtime", "cgroup_path"};
  for (std::size_t i = 0; i < 5; ++i) {
    auto t = text_field(m, keys[i], at);
    if (!t) return fail(t.error());
    *out[i] = std::move(*t);
  }
  return c;
}

Result<Record> record_from(const cbor::Value& v, std::size_t index) {
  const std::string at = fmt::format("record {}", index);
  if (v.type() != cbor::Value::Type::kMap) {
    return fail(ErrorCode::kMalformed, fmt::format("CEL {}: not a map", at));
  }
  Record r;
  const cbor::Value* recnum = v.find(kKeyRecnum);
  const cbor::Value* pcr = v.find(kKeyPcr);
  const cbor::Value* digests = v.find(kKeyDigests);
  const cbor::Value* content = v.find(kKeyContainerContent);
  if (recnum == nullptr || !recnum->as_uint()) {
    return fail(ErrorCode::kMalformed, fmt::format("CEL {}: recnum (key 0) missing", at));
  }
  r.recnum = *recnum->as_uint();
  if (pcr == nullptr || !pcr->as_uint() || *pcr->as_uint() >= kPcrCount) {
    return fail(ErrorCode::kMalformed, fmt::format("CEL {}: pcr (key 1) missing or >= 24", at));
  }
  r.pcr = static_cast<std::uint32_t>(*pcr->as_uint());
  if (digests == nullptr || digests->type() != cbor::Value::Type::kArray) {
    return fail(ErrorCode::kMalformed, fmt::format("CEL {}: digests (key 3) missing", at));
  }
  for (const cbor::Value& d : digests->items()) {
    const auto alg_id = d.items().size() == 2 ? d.items()[0].as_uint() : std::nullopt;
    const Bytes* bytes = d.items().size() == 2 ? d.items()[1].as_bytes() : nullptr;
    if (d.type() != cbor::Value::Type::kArray || !alg_id || bytes == nullptr) {
      return fail(ErrorCode::kMalformed, fmt::format("CEL {}: a digest is not [alg, bytes]", at));
    }
    auto alg =
        *alg_id <= 0xffff ? hash_from_tpm_id(static_cast<std::uint16_t>(*alg_id)) : std::nullopt;
    if (!alg || bytes->size() != hash_size(*alg)) {
      return fail(ErrorCode::kMalformed,
                  fmt::format("CEL {}: digest alg 0x{:x} unknown or size {} wrong", at, *alg_id,
                              bytes->size()));
    }
    r.digests.emplace_back(*alg, *bytes);
  }
  if (content == nullptr) {
    return fail(ErrorCode::kMalformed,
                fmt::format("CEL {}: no container content (key {})", at, kKeyContainerContent));
  }
  auto c = content_from(*content, at);
  if (!c) return fail(c.error());
  r.content = std::move(*c);
  return r;
}

}  // namespace

Bytes encode_content(const ContainerContent& content) {
  return cbor::encode(content_value(content));
}

Result<Bytes> content_digest(TpmAlg bank, const ContainerContent& content) {
  return ossl::digest(to_ossl(bank), encode_content(content));
}

Result<Record> make_record(std::uint64_t recnum, const ContainerContent& content,
                           std::span<const TpmAlg> banks, unsigned pcr) {
  Record r;
  r.recnum = recnum;
  r.pcr = pcr;
  r.content = content;
  const Bytes encoded = encode_content(content);
  for (TpmAlg alg : banks) {
    auto d = ossl::digest(to_ossl(alg), encoded);
    if (!d) return fail(d.error());
    r.digests.emplace_back(alg, std::move(*d));
  }
  return r;
}

Bytes encode(std::span<const Record> records) {
  cbor::Value log = cbor::Value::array();
  for (const Record& r : records) {
    cbor::Value digests = cbor::Value::array();
    for (const auto& [alg, d] : r.digests) {
      digests.push(cbor::Value::array(
          {cbor::Value::uint(static_cast<std::uint16_t>(alg)), cbor::Value::bytes(d)}));
    }
    cbor::Value m = cbor::Value::map();
    m.put(cbor::Value::uint(kKeyRecnum), cbor::Value::uint(r.recnum));
    m.put(cbor::Value::uint(kKeyPcr), cbor::Value::uint(r.pcr));
    m.put(cbor::Value::uint(kKeyDigests), std::move(digests));
    m.put(cbor::Value::uint(kKeyContainerContent), content_value(r.content));
    log.push(std::move(m));
  }
  return cbor::encode(log);
}

Result<std::vector<Record>> decode(ByteSpan log, const cbor::Limits& limits) {
  auto v = cbor::decode(log, limits);
  if (!v) return fail(v.error().context("CEL decode"));
  if (v->type() != cbor::Value::Type::kArray) {
    return fail(ErrorCode::kMalformed, "CEL decode: the log is not a CBOR array of records");
  }
  std::vector<Record> out;
  out.reserve(v->items().size());
  for (std::size_t i = 0; i < v->items().size(); ++i) {
    auto r = record_from(v->items()[i], i);
    if (!r) return fail(r.error());
    out.push_back(std::move(*r));
  }
  return out;
}

Result<ReplayResult> replay(std::span<const Record> records, PcrValues start,
                            const ReplayOptions& options) {
  ReplayResult result;
  result.pcrs = std::move(start);
  std::uint64_t expect_recnum = options.first_recnum;
  for (const Record& r : records) {
    if (r.recnum != expect_recnum) {
      result.problems.push_back(fmt::format("CEL record {}: recnum {} (expected {})",
                                            expect_recnum - options.first_recnum, r.recnum,
                                            expect_recnum));
    }
    ++expect_recnum;
    if (r.pcr != options.pcr) {
      result.problems.push_back(fmt::format("CEL record {}: PCR {} (expected container PCR {})",
                                            r.recnum, r.pcr, options.pcr));
    }
    const Bytes encoded = encode_content(r.content);
    for (TpmAlg alg : result.pcrs.banks()) {
      auto computed = ossl::digest(to_ossl(alg), encoded);
      if (!computed) return fail(computed.error());
      const Bytes* listed = nullptr;
      for (const auto& [a, d] : r.digests) {
        if (a == alg) listed = &d;
      }
      if (listed == nullptr) {
        result.problems.push_back(
            fmt::format("CEL record {}: no {} digest", r.recnum, hash_name(alg)));
      } else if (*listed != *computed) {
        result.problems.push_back(
            fmt::format("CEL record {} ({} {}): {} digest {} does not match content digest {}",
                        r.recnum, event_name(r.content.event), r.content.container_id,
                        hash_name(alg), hex_encode(*listed), hex_encode(*computed)));
      }
      // What the TPM got is the listed digest; extending it makes a lying record show up as a
      // PCR mismatch as well as a problem line.
      WARDEN_TRY_STATUS(result.pcrs.extend(alg, r.pcr, listed != nullptr ? *listed : *computed));
    }
  }
  return result;
}

}  // namespace warden::attest::cel
