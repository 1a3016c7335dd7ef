#include "issuer/signing_keys.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "platform/base/encoding.h"
#include "platform/base/file.h"

namespace warden::issuer {
namespace {

Result<std::string> private_key_to_pem(EVP_PKEY* key) {
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return fail(ossl::error("signing key: PEM encode"));
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

Result<std::unique_ptr<SigningKeys>> SigningKeys::open(std::filesystem::path dir, Store& store,
                                                       const Clock& clock) {
  std::unique_ptr<SigningKeys> keys(new SigningKeys(std::move(dir), store, clock));
  std::error_code ec;
  std::filesystem::create_directories(keys->dir_, ec);
  if (ec) {
    return fail(ErrorCode::kIo,
                "signing keys: create " + keys->dir_.string() + ": " + ec.message());
  }
  std::filesystem::permissions(keys->dir_, std::filesystem::perms::owner_all, ec);
  auto known = store.list_signing_keys();
  if (!known) return fail(std::move(known).error());
  for (auto it = known->rbegin(); it != known->rend(); ++it) {
    if (it->retired_at == 0 && std::filesystem::exists(keys->dir_ / (it->kid + ".pem"))) {
      WARDEN_TRY_STATUS(keys->load(*it));
      return keys;
    }
  }
  auto info = keys->generate();
  if (!info) return fail(std::move(info).error());
  return keys;
}

Status SigningKeys::load(const SigningKeyInfo& info) {
  auto pem = read_file(dir_ / (info.kid + ".pem"), 64 * 1024);
  if (!pem) return fail(std::move(pem).error().context("signing key " + info.kid));
  auto key = ossl::private_key_from_pem(warden::to_string(*pem));
  if (!key) return fail(std::move(key).error().context("signing key " + info.kid));
  std::lock_guard lock(mu_);
  current_info_ = info;
  current_ = std::shared_ptr<EVP_PKEY>(key->release(), EVP_PKEY_free);
  return ok();
}

Result<SigningKeyInfo> SigningKeys::generate() {
  ossl::PKey key(EVP_EC_gen("P-256"));
  if (!key) return fail(ossl::error("signing key: generate P-256"));
  auto der = ossl::public_key_to_der(key.get());
  if (!der) return fail(std::move(der).error());
  auto pub_pem = ossl::public_key_to_pem(key.get());
  if (!pub_pem) return fail(std::move(pub_pem).error());
  auto priv_pem = private_key_to_pem(key.get());
  if (!priv_pem) return fail(std::move(priv_pem).error());
  SigningKeyInfo info;
  info.kid = base64url_encode(ossl::sha256(*der)).substr(0, 16);
  info.alg = "ES256";
  info.public_pem = *pub_pem;
  info.created_at = clock_.unix_now();
  // File first: a key in the store without its private half would be published but unusable.
  WARDEN_TRY_STATUS(write_file_atomic(dir_ / (info.kid + ".pem"), to_bytes(*priv_pem), 0600));
  WARDEN_TRY_STATUS(store_.put_signing_key(info));
  std::lock_guard lock(mu_);
  current_info_ = info;
  current_ = std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
  return info;
}

Status SigningKeys::rotate(std::int64_t max_token_ttl_s) {
  std::string previous = current_kid();
  auto info = generate();
  if (!info) return fail(std::move(info).error());
  auto now = clock_.unix_now();
  return store_.retire_signing_key(previous, now, now + max_token_ttl_s);
}

Status SigningKeys::rotate_if_due(std::int64_t rotation_s, std::int64_t max_token_ttl_s) {
  std::int64_t created = 0;
  {
    std::lock_guard lock(mu_);
    created = current_info_.created_at;
  }
  if (rotation_s <= 0 || clock_.unix_now() - created < rotation_s) return ok();
  return rotate(max_token_ttl_s);
}

std::string SigningKeys::current_kid() const {
  std::lock_guard lock(mu_);
  return current_info_.kid;
}

std::shared_ptr<EVP_PKEY> SigningKeys::current_key() const {
  std::lock_guard lock(mu_);
  return current_;
}

Result<std::vector<SigningKeyInfo>> SigningKeys::published() const {
  auto all = store_.list_signing_keys();
  if (!all) return fail(std::move(all).error());
  auto now = clock_.unix_now();
  std::vector<SigningKeyInfo> out;
  for (auto& k : *all) {
    if (k.retired_at == 0 || k.not_after > now) out.push_back(std::move(k));
  }
  return out;
}

}  // namespace warden::issuer
