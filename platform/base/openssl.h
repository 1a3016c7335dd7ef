#pragma once

#include <memory>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "platform/base/bytes.h"

namespace warden::ossl {

/// Owning pointers for OpenSSL objects; the only place that names their free functions.
template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
template <class T, void (*Free)(T*)>
using Owned = std::unique_ptr<T, Deleter<T, Free>>;

using PKey = Owned<EVP_PKEY, EVP_PKEY_free>;
using PKeyCtx = Owned<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using MdCtx = Owned<EVP_MD_CTX, EVP_MD_CTX_free>;
using CipherCtx = Owned<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;
using Mac = Owned<EVP_MAC, EVP_MAC_free>;
using MacCtx = Owned<EVP_MAC_CTX, EVP_MAC_CTX_free>;
using Md = Owned<EVP_MD, EVP_MD_free>;
using Bn = Owned<BIGNUM, BN_free>;
using BnCtx = Owned<BN_CTX, BN_CTX_free>;
using EcdsaSig = Owned<ECDSA_SIG, ECDSA_SIG_free>;
using EcPoint = Owned<EC_POINT, EC_POINT_free>;
using EcGroup = Owned<EC_GROUP, EC_GROUP_free>;
using X509Ptr = Owned<X509, X509_free>;
using X509Store = Owned<X509_STORE, X509_STORE_free>;
using X509StoreCtx = Owned<X509_STORE_CTX, X509_STORE_CTX_free>;
using Bio = Owned<BIO, BIO_free_all>;
using ParamBld = Owned<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using Params = Owned<OSSL_PARAM, OSSL_PARAM_free>;
using X509Stack = std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)>;

/// An Error of kind kCrypto (or `code`) for `operation`, with the OpenSSL error queue drained
/// into its message and openssl_code.
Error error(std::string_view operation, ErrorCode code = ErrorCode::kCrypto);

/// Digest algorithms by their TPM/JOSE names.
enum class Hash { kSha1, kSha256, kSha384, kSha512 };
const EVP_MD* evp_md(Hash hash);
std::size_t digest_size(Hash hash);

Result<Bytes> digest(Hash hash, ByteSpan data);
/// SHA-256 of data; SHA-256 cannot fail for in-memory input short of OOM, which aborts.
Bytes sha256(ByteSpan data);
Result<Bytes> hmac(Hash hash, ByteSpan key, ByteSpan data);

/// Incremental hashing for large or many-part inputs.
class Hasher {
 public:
  static Result<Hasher> create(Hash hash);
  Hasher& update(ByteSpan data);
  /// Finishes and returns the digest; the hasher may be reused after reset().
  Bytes finish();
  void reset();

 private:
  Hasher(MdCtx ctx, Hash hash) : ctx_(std::move(ctx)), hash_(hash) {}
  MdCtx ctx_;
  Hash hash_;
};

/// Constant-time comparison for secrets and MACs.
bool equal_ct(ByteSpan a, ByteSpan b);

/// PEM <-> key and certificate conversions.
Result<PKey> public_key_from_pem(std::string_view pem);
Result<PKey> private_key_from_pem(std::string_view pem);
Result<PKey> public_key_from_der(ByteSpan der);
Result<std::string> public_key_to_pem(EVP_PKEY* key);
Result<Bytes> public_key_to_der(EVP_PKEY* key);
Result<X509Ptr> certificate_from_pem(std::string_view pem);
Result<X509Ptr> certificate_from_der(ByteSpan der);
Result<std::string> certificate_to_pem(X509* cert);

/// ECDSA signature format conversions (TPM/JOSE/COSE use raw r||s, OpenSSL uses DER).
Result<Bytes> ecdsa_raw_to_der(ByteSpan r, ByteSpan s);
Result<Bytes> ecdsa_der_to_raw(ByteSpan der, std::size_t field_size);

}  // namespace warden::ossl
