#pragma once
// A real IssuerService for tests of what sits in front of it (routes, the HTTPS server): SQLite
// and signing keys in a test's directory. Header-only: the test links the issuer libraries.

#include <filesystem>
#include <memory>

#include "issuer/service.h"
#include "issuer/signing_keys.h"
#include "platform/base/clock.h"

namespace warden::test {

struct TestIssuer {
  std::unique_ptr<issuer::Store> store;
  std::unique_ptr<issuer::SigningKeys> keys;
  std::unique_ptr<issuer::IssuerService> service;
};

/// `config` (its issuer_url too) must outlive the service.
inline Result<TestIssuer> open_test_issuer(const std::filesystem::path& dir,
                                           const issuer::IssuerConfig& config, const Clock& clock,
                                           Random& random, std::uint64_t status_list_bits = 64) {
  TestIssuer out;
  auto store = issuer::open_sqlite_store((dir / "issuer.db").string());
  if (!store) return fail(std::move(store).error());
  out.store = std::move(*store);
  if (auto migrated = out.store->migrate(); !migrated) return fail(std::move(migrated).error());
  auto keys = issuer::SigningKeys::open(dir / "keys", *out.store, clock);
  if (!keys) return fail(std::move(keys).error());
  out.keys = std::move(*keys);
  issuer::IssuerService::Options o;
  o.config = &config;
  o.store = out.store.get();
  o.keys = out.keys.get();
  o.clock = &clock;
  o.random = &random;
  o.nonce_key = SecretBytes(Bytes(32, 0x42));
  o.issuer_url = config.issuer_url;
  o.status_list_bits = status_list_bits;
  auto service = issuer::IssuerService::create(std::move(o));
  if (!service) return fail(std::move(service).error());
  out.service = std::move(*service);
  return out;
}

}  // namespace warden::test
