#include "issuer/seal_authority.h"

#include <algorithm>

#include "issuer/assign.h"
#include "platform/base/file.h"
#include "platform/base/secret.h"

namespace warden::issuer {
namespace tp = attest::tpm_policy;

Result<std::unique_ptr<SealAuthority>> SealAuthority::open(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "seal-authority.pem";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    std::filesystem::create_directories(dir, ec);
    std::shared_ptr<EVP_PKEY> fresh(EVP_EC_gen("P-256"), EVP_PKEY_free);
    if (!fresh) return fail(ossl::error("seal authority: generate P-256"));
    WARDEN_ASSIGN(signer, token::EcSigner::from_key(fresh));
    WARDEN_ASSIGN(pem, signer.private_key_pem());
    SecretBytes bytes(pem.size());
    std::copy(pem.begin(), pem.end(), bytes.data());
    OPENSSL_cleanse(pem.data(), pem.size());
    auto written = write_file_atomic(path, bytes.view(), 0600);
    if (!written) return fail(std::move(written).error().context("seal authority"));
  }
  auto pem = read_file(path, std::size_t{64} * 1024);
  if (!pem) return fail(std::move(pem).error().context("seal authority"));
  auto key = ossl::private_key_from_pem(warden::to_string(*pem));
  OPENSSL_cleanse(pem->data(), pem->size());
  if (!key) return fail(std::move(key).error().context("seal authority " + path.string()));
  return from_key(std::shared_ptr<EVP_PKEY>(key->release(), EVP_PKEY_free));
}

Result<std::unique_ptr<SealAuthority>> SealAuthority::from_key(std::shared_ptr<EVP_PKEY> key) {
  WARDEN_ASSIGN(area, tp::authority_public_area(key.get()));
  WARDEN_ASSIGN(signer, token::EcSigner::from_key(std::move(key)));
  return std::unique_ptr<SealAuthority>(new SealAuthority(std::move(signer), std::move(area)));
}

Result<tp::ApprovedPolicy> SealAuthority::approve(const PcrSelection& selection,
                                                  const attest::PcrValues& values) {
  std::lock_guard lock(mu_);
  return tp::approve(selection, values, tp::epoch_policy_ref(0), signer_);
}

}  // namespace warden::issuer
