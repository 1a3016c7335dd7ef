#include "attest/token/claims.h"

#include "platform/base/encoding.h"

namespace warden::token {
namespace {

using cbor::Value;
namespace bj = boost::json;

constexpr std::int64_t kCnf = 8, kScope = 9, kEatNonce = 10, kUeid = 256, kEatProfileKey = 265,
                       kMeasres = 274, kStatus = 65535;

Status bad(const std::string& what) { return fail(ErrorCode::kMalformed, "claims: " + what); }

Result<std::string> text_of(const bj::value& v, const char* name) {
  if (!v.is_string())
    return fail(ErrorCode::kMalformed, std::string("claims: \"") + name + "\" is not a string");
  return std::string(v.as_string());
}

Result<std::int64_t> int_of(const bj::value& v, const char* name) {
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64() && v.as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(v.as_uint64());
  }
  return fail(ErrorCode::kMalformed, std::string("claims: \"") + name + "\" is not an integer");
}

Result<Bytes> b64_of(const bj::value& v, const char* name) {
  auto t = text_of(v, name);
  if (!t) return fail(t.error());
  auto b = base64url_decode(*t);
  if (!b)
    return fail(ErrorCode::kMalformed, std::string("claims: \"") + name + "\" is not base64url");
  return b;
}

}  // namespace

bj::object claims_to_json(const Claims& c) {
  bj::object o;
  if (c.iss) o["iss"] = *c.iss;
  if (c.sub) o["sub"] = *c.sub;
  if (c.aud.size() == 1) {
    o["aud"] = c.aud[0];
  } else if (!c.aud.empty()) {
    bj::array a;
    for (const auto& s : c.aud) a.emplace_back(s);
    o["aud"] = std::move(a);
  }
  if (c.exp) o["exp"] = *c.exp;
  if (c.nbf) o["nbf"] = *c.nbf;
  if (c.iat) o["iat"] = *c.iat;
  if (c.jti) o["jti"] = *c.jti;
  if (c.scope) o["scope"] = *c.scope;
  if (c.cnf) {
    bj::object cnf;
    if (c.cnf->jkt) {
      cnf["jkt"] = *c.cnf->jkt;
    } else if (c.cnf->key) {
      cnf["jwk"] = c.cnf->key->to_json();
    }
    o["cnf"] = std::move(cnf);
  }
  if (c.status) {
    o["status"] =
        bj::object{{"status_list", bj::object{{"idx", c.status->idx}, {"uri", c.status->uri}}}};
  }
  if (c.device_id) o["warden_device_id"] = *c.device_id;
  if (c.attestation) {
    o["warden_attestation"] =
        bj::object{{"result", c.attestation->pass ? "pass" : "fail"},
                   {"policy_version", c.attestation->policy_version},
                   {"evidence_hash", base64url_encode(c.attestation->evidence_hash)}};
  }
  if (c.workload) {
    bj::object w;
    const auto& s = *c.workload;
    if (s.uid) w["uid"] = *s.uid;
    if (s.systemd_unit) w["systemd_unit"] = *s.systemd_unit;
    if (s.container_id) w["container_id"] = *s.container_id;
    if (s.image_ref) w["image_ref"] = *s.image_ref;
    if (s.image_digest) w["image_digest"] = *s.image_digest;
    if (s.executable_digest) w["executable_digest"] = *s.executable_digest;
    o["warden_workload"] = std::move(w);
  }
  if (c.eat_nonce) o["eat_nonce"] = base64url_encode(*c.eat_nonce);
  if (c.ueid) o["ueid"] = base64url_encode(*c.ueid);
  if (c.eat_profile) o["eat_profile"] = *c.eat_profile;
  if (!c.measres.empty()) {
    bj::array systems;
    for (const auto& m : c.measres) {
      bj::array results;
      for (const auto& [id, r] : m.results)
        results.push_back(bj::array{bj::value(id), bj::value(r)});
      systems.push_back(bj::array{bj::value(m.system), bj::value(std::move(results))});
    }
    o["measres"] = std::move(systems);
  }
  return o;
}

Result<Claims> claims_from_json(const bj::object& o) {
  Claims c;
  for (const auto& [key, v] : o) {
    if (key == "iss" || key == "sub" || key == "jti" || key == "scope" ||
        key == "warden_device_id" || key == "eat_profile") {
      auto t = text_of(v, key.data());
      if (!t) return fail(t.error());
      if (key == "iss")
        c.iss = std::move(*t);
      else if (key == "sub")
        c.sub = std::move(*t);
      else if (key == "jti")
        c.jti = std::move(*t);
      else if (key == "scope")
        c.scope = std::move(*t);
      else if (key == "warden_device_id")
        c.device_id = std::move(*t);
      else
        c.eat_profile = std::move(*t);
    } else if (key == "exp" || key == "nbf" || key == "iat") {
      auto n = int_of(v, key.data());
      if (!n) return fail(n.error());
      (key == "exp" ? c.exp : key == "nbf" ? c.nbf : c.iat) = *n;
    } else if (key == "aud") {
      if (v.is_string()) {
        c.aud.emplace_back(v.as_string());
      } else if (v.is_array()) {
        for (const auto& a : v.as_array()) {
          auto t = text_of(a, "aud");
          if (!t) return fail(t.error());
          c.aud.push_back(std::move(*t));
        }
      } else {
        WARDEN_TRY_STATUS(bad("\"aud\" is neither a string nor an array"));
      }
    } else if (key == "cnf") {
      if (!v.is_object()) WARDEN_TRY_STATUS(bad("\"cnf\" is not an object"));
      Confirmation cnf;
      if (auto jkt = json::get_string(v.as_object(), "jkt")) cnf.jkt = std::string(*jkt);
      if (const auto* jwk = json::get_object(v.as_object(), "jwk")) {
        auto k = Jwk::from_json(*jwk);
        if (!k) return fail(k.error().context("claims: cnf"));
        if (!cnf.jkt) cnf.jkt = k->thumbprint();
        cnf.key = std::move(*k);
      }
      c.cnf = std::move(cnf);
    } else if (key == "status") {
      const auto* sl = v.is_object() ? json::get_object(v.as_object(), "status_list") : nullptr;
      if (sl == nullptr) WARDEN_TRY_STATUS(bad("\"status\" has no status_list object"));
      const auto* idx = sl->if_contains("idx");
      auto uri = json::get_string(*sl, "uri");
      if (idx == nullptr || !idx->is_number() || !uri)
        WARDEN_TRY_STATUS(bad("status_list needs idx and uri"));
      auto n = int_of(*idx, "idx");
      if (!n || *n < 0) WARDEN_TRY_STATUS(bad("status_list idx is not a non-negative integer"));
      c.status = StatusRef{static_cast<std::uint64_t>(*n), std::string(*uri)};
    } else if (key == "warden_attestation") {
      if (!v.is_object()) WARDEN_TRY_STATUS(bad("\"warden_attestation\" is not an object"));
      const auto& a = v.as_object();
      auto result = json::get_string(a, "result");
      if (!result || (*result != "pass" && *result != "fail")) {
        WARDEN_TRY_STATUS(bad("warden_attestation.result must be \"pass\" or \"fail\""));
      }
      AttestationResult r;
      r.pass = *result == "pass";
      if (auto pv = json::get_string(a, "policy_version")) r.policy_version = std::string(*pv);
      if (const auto* h = a.if_contains("evidence_hash")) {
        auto b = b64_of(*h, "evidence_hash");
        if (!b) return fail(b.error());
        r.evidence_hash = std::move(*b);
      }
      c.attestation = std::move(r);
    } else if (key == "warden_workload") {
      if (!v.is_object()) WARDEN_TRY_STATUS(bad("\"warden_workload\" is not an object"));
      const auto& w = v.as_object();
      WorkloadSelectors s;
      if (const auto* uid = w.if_contains("uid")) {
        auto n = int_of(*uid, "uid");
        if (!n || *n < 0) WARDEN_TRY_STATUS(bad("warden_workload.uid is not a uid"));
        s.uid = static_cast<std::uint64_t>(*n);
      }
      auto str = [&](const char* name) -> std::optional<std::string> {
        if (auto t = json::get_string(w, name)) return std::string(*t);
        return std::nullopt;
      };
      s.systemd_unit = str("systemd_unit");
      s.container_id = str("container_id");
      s.image_ref = str("image_ref");
      s.image_digest = str("image_digest");
      s.executable_digest = str("executable_digest");
      c.workload = std::move(s);
    } else if (key == "eat_nonce" || key == "ueid") {
      auto b = b64_of(v, key.data());
      if (!b) return fail(b.error());
      (key == "ueid" ? c.ueid : c.eat_nonce) = std::move(*b);
    } else if (key == "measres") {
      if (!v.is_array()) WARDEN_TRY_STATUS(bad("\"measres\" is not an array"));
      for (const auto& sys : v.as_array()) {
        if (!sys.is_array() || sys.as_array().size() != 2 || !sys.as_array()[0].is_string() ||
            !sys.as_array()[1].is_array()) {
          WARDEN_TRY_STATUS(bad("measres entry is not [system, [results]]"));
        }
        MeasurementResults m;
        m.system = std::string(sys.as_array()[0].as_string());
        for (const auto& r : sys.as_array()[1].as_array()) {
          if (!r.is_array() || r.as_array().size() != 2 || !r.as_array()[0].is_string() ||
              !r.as_array()[1].is_int64()) {
            WARDEN_TRY_STATUS(bad("measres result is not [id, int]"));
          }
          m.results.emplace_back(std::string(r.as_array()[0].as_string()),
                                 r.as_array()[1].as_int64());
        }
        c.measres.push_back(std::move(m));
      }
    }
  }
  return c;
}

Result<Value> claims_to_cbor(const Claims& c) {
  Value m = Value::map();
  auto put = [&](std::int64_t k, Value v) { m.put(Value::integer(k), std::move(v)); };
  if (c.iss) put(1, Value::text(*c.iss));
  if (c.sub) put(2, Value::text(*c.sub));
  if (c.aud.size() == 1) {
    put(3, Value::text(c.aud[0]));
  } else if (!c.aud.empty()) {
    Value a = Value::array();
    for (const auto& s : c.aud) a.push(Value::text(s));
    put(3, std::move(a));
  }
  if (c.exp) put(4, Value::integer(*c.exp));
  if (c.nbf) put(5, Value::integer(*c.nbf));
  if (c.iat) put(6, Value::integer(*c.iat));
  if (c.jti) put(7, Value::bytes(to_bytes(*c.jti)));
  if (c.cnf) {
    if (!c.cnf->key) {
      return fail(ErrorCode::kInvalidArgument,
                  "claims: a CWT cnf needs the key (COSE_Key), not only jkt");
    }
    auto key = c.cnf->key->to_cose_key();
    if (!key) return fail(key.error());
    put(kCnf, Value::map({{Value::integer(1), std::move(*key)}}));
  }
  if (c.scope) put(kScope, Value::text(*c.scope));
  if (c.eat_nonce) put(kEatNonce, Value::bytes(*c.eat_nonce));
  if (c.ueid) put(kUeid, Value::bytes(*c.ueid));
  if (c.eat_profile) put(kEatProfileKey, Value::text(*c.eat_profile));
  if (!c.measres.empty()) {
    Value systems = Value::array();
    for (const auto& ms : c.measres) {
      Value results = Value::array();
      for (const auto& [id, r] : ms.results) {
        results.push(Value::array({Value::text(id), Value::integer(r)}));
      }
      systems.push(Value::array({Value::text(ms.system), std::move(results)}));
    }
    put(kMeasres, std::move(systems));
  }
  if (c.status) {
    put(kStatus, Value::map({{Value::text("status_list"),
                              Value::map({{Value::text("idx"), Value::uint(c.status->idx)},
                                          {Value::text("uri"), Value::text(c.status->uri)}})}}));
  }
  auto text_key = [&](std::string_view k, Value v) { m.put(Value::text(k), std::move(v)); };
  if (c.device_id) text_key("warden_device_id", Value::text(*c.device_id));
  if (c.attestation) {
    text_key(
        "warden_attestation",
        Value::map({{Value::text("result"), Value::text(c.attestation->pass ? "pass" : "fail")},
                    {Value::text("policy_version"), Value::text(c.attestation->policy_version)},
                    {Value::text("evidence_hash"), Value::bytes(c.attestation->evidence_hash)}}));
  }
  if (c.workload) {
    Value w = Value::map();
    const auto& s = *c.workload;
    if (s.uid) w.put(Value::text("uid"), Value::uint(*s.uid));
    if (s.systemd_unit) w.put(Value::text("systemd_unit"), Value::text(*s.systemd_unit));
    if (s.container_id) w.put(Value::text("container_id"), Value::text(*s.container_id));
    if (s.image_ref) w.put(Value::text("image_ref"), Value::text(*s.image_ref));
    if (s.image_digest) w.put(Value::text("image_digest"), Value::text(*s.image_digest));
    if (s.executable_digest)
      w.put(Value::text("executable_digest"), Value::text(*s.executable_digest));
    text_key("warden_workload", std::move(w));
  }
  return m;
}

Result<Claims> claims_from_cbor(const Value& m) {
  if (m.type() != Value::Type::kMap)
    return fail(ErrorCode::kMalformed, "claims: CWT payload is not a map");
  Claims c;
  auto text = [&](const Value* v, const char* name) -> Result<std::string> {
    if (v->as_text() == nullptr)
      return fail(ErrorCode::kMalformed, std::string("claims: ") + name + " is not text");
    return *v->as_text();
  };
  auto integer = [&](const Value* v, const char* name) -> Result<std::int64_t> {
    if (!v->as_int())
      return fail(ErrorCode::kMalformed, std::string("claims: ") + name + " is not an integer");
    return *v->as_int();
  };
#define WARDEN_CLAIM(expr, field)     \
  do {                                \
    auto r_ = (expr);                 \
    if (!r_) return fail(r_.error()); \
    field = std::move(*r_);           \
  } while (false)
  if (const auto* v = m.find(1)) WARDEN_CLAIM(text(v, "iss"), c.iss);
  if (const auto* v = m.find(2)) WARDEN_CLAIM(text(v, "sub"), c.sub);
  if (const auto* v = m.find(3)) {
    if (v->as_text() != nullptr) {
      c.aud.push_back(*v->as_text());
    } else if (v->type() == Value::Type::kArray) {
      for (const auto& a : v->items()) {
        if (a.as_text() == nullptr)
          return fail(ErrorCode::kMalformed, "claims: aud entry is not text");
        c.aud.push_back(*a.as_text());
      }
    } else {
      return fail(ErrorCode::kMalformed, "claims: aud is neither text nor an array");
    }
  }
  if (const auto* v = m.find(4)) WARDEN_CLAIM(integer(v, "exp"), c.exp);
  if (const auto* v = m.find(5)) WARDEN_CLAIM(integer(v, "nbf"), c.nbf);
  if (const auto* v = m.find(6)) WARDEN_CLAIM(integer(v, "iat"), c.iat);
  if (const auto* v = m.find(7)) {
    if (v->as_bytes() == nullptr)
      return fail(ErrorCode::kMalformed, "claims: cti is not a byte string");
    c.jti = to_string(*v->as_bytes());
  }
  if (const auto* v = m.find(kCnf)) {
    const auto* key = v->find(1);
    if (key == nullptr) return fail(ErrorCode::kUnsupported, "claims: cnf without a COSE_Key (1)");
    auto jwk = Jwk::from_cose_key(*key);
    if (!jwk) return fail(jwk.error().context("claims: cnf"));
    Confirmation cnf;
    cnf.jkt = jwk->thumbprint();
    cnf.key = std::move(*jwk);
    c.cnf = std::move(cnf);
  }
  if (const auto* v = m.find(kScope)) WARDEN_CLAIM(text(v, "scope"), c.scope);
  if (const auto* v = m.find(kEatNonce)) {
    if (v->as_bytes() == nullptr)
      return fail(ErrorCode::kMalformed, "claims: eat_nonce is not a byte string");
    c.eat_nonce = *v->as_bytes();
  }
  if (const auto* v = m.find(kUeid)) {
    if (v->as_bytes() == nullptr)
      return fail(ErrorCode::kMalformed, "claims: ueid is not a byte string");
    c.ueid = *v->as_bytes();
  }
  if (const auto* v = m.find(kEatProfileKey)) WARDEN_CLAIM(text(v, "eat_profile"), c.eat_profile);
  if (const auto* v = m.find(kMeasres)) {
    for (const auto& sys : v->items()) {
      if (sys.items().size() != 2 || sys.items()[0].as_text() == nullptr) {
        return fail(ErrorCode::kMalformed, "claims: measres entry is not [system, [results]]");
      }
      MeasurementResults ms;
      ms.system = *sys.items()[0].as_text();
      for (const auto& r : sys.items()[1].items()) {
        if (r.items().size() != 2 || r.items()[0].as_text() == nullptr || !r.items()[1].as_int()) {
          return fail(ErrorCode::kMalformed, "claims: measres result is not [id, int]");
        }
        ms.results.emplace_back(*r.items()[0].as_text(), *r.items()[1].as_int());
      }
      c.measres.push_back(std::move(ms));
    }
  }
  if (const auto* v = m.find(kStatus)) {
    const auto* sl = v->find("status_list");
    const auto* idx = sl != nullptr ? sl->find("idx") : nullptr;
    const auto* uri = sl != nullptr ? sl->find("uri") : nullptr;
    if (idx == nullptr || !idx->as_uint() || uri == nullptr || uri->as_text() == nullptr) {
      return fail(ErrorCode::kMalformed, "claims: status needs status_list {idx, uri}");
    }
    c.status = StatusRef{*idx->as_uint(), *uri->as_text()};
  }
  if (const auto* v = m.find("warden_device_id"))
    WARDEN_CLAIM(text(v, "warden_device_id"), c.device_id);
  if (const auto* v = m.find("warden_attestation")) {
    const auto* result = v->find("result");
    if (result == nullptr || result->as_text() == nullptr ||
        (*result->as_text() != "pass" && *result->as_text() != "fail")) {
      return fail(ErrorCode::kMalformed, "claims: warden_attestation.result must be pass or fail");
    }
    AttestationResult r;
    r.pass = *result->as_text() == "pass";
    if (const auto* pv = v->find("policy_version"); pv != nullptr && pv->as_text() != nullptr) {
      r.policy_version = *pv->as_text();
    }
    if (const auto* h = v->find("evidence_hash"); h != nullptr && h->as_bytes() != nullptr) {
      r.evidence_hash = *h->as_bytes();
    }
    c.attestation = std::move(r);
  }
  if (const auto* v = m.find("warden_workload")) {
    WorkloadSelectors s;
    if (const auto* uid = v->find("uid"); uid != nullptr && uid->as_uint()) s.uid = *uid->as_uint();
    auto str = [&](const char* name) -> std::optional<std::string> {
      const auto* t = v->find(name);
      if (t != nullptr && t->as_text() != nullptr) return *t->as_text();
      return std::nullopt;
    };
    s.systemd_unit = str("systemd_unit");
    s.container_id = str("container_id");
    s.image_ref = str("image_ref");
    s.image_digest = str("image_digest");
    s.executable_digest = str("executable_digest");
    c.workload = std::move(s);
  }
#undef WARDEN_CLAIM
  return c;
}

Status check_claims(const Claims& c, const ClaimChecks& checks) {
  if (c.exp) {
    if (checks.now >= *c.exp + checks.leeway) {
      return fail(ErrorCode::kExpired, "token expired at " + std::to_string(*c.exp) + ", now " +
                                           std::to_string(checks.now));
    }
  } else if (checks.require_exp) {
    return fail(ErrorCode::kMalformed, "token has no exp claim");
  }
  if (c.nbf && checks.now + checks.leeway < *c.nbf) {
    return fail(ErrorCode::kNotYetValid, "token not valid before " + std::to_string(*c.nbf) +
                                             ", now " + std::to_string(checks.now));
  }
  if (c.iat && checks.now + checks.leeway < *c.iat) {
    return fail(ErrorCode::kNotYetValid, "token issued in the future (iat " +
                                             std::to_string(*c.iat) + ", now " +
                                             std::to_string(checks.now) + ")");
  }
  if (checks.audience) {
    bool found = false;
    for (const auto& a : c.aud) found = found || a == *checks.audience;
    if (!found) {
      std::string have;
      for (const auto& a : c.aud) have += (have.empty() ? "" : ", ") + a;
      return fail(ErrorCode::kAudienceMismatch, "wrong audience: expected \"" + *checks.audience +
                                                    "\", token is for [" + have + "]");
    }
  }
  return ok();
}

}  // namespace warden::token
