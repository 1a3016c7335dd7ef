#include "platform/base/openssl.h"

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

namespace warden::ossl {

Error error(std::string_view operation, ErrorCode code) {
  std::string detail;
  unsigned long first = 0;
  while (unsigned long e = ERR_get_error()) {
    if (first == 0) first = e;
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!detail.empty()) detail += "; ";
    detail += buf;
  }
  if (detail.empty()) detail = "failed";
  return Error{code, fmt::format("{}: {}", operation, detail), 0, first};
}

namespace {

// OpenSSL 3 looks up the provider's implementation again on every *Init given a legacy EVP_sha*()
// pointer; one fetch per process saves that in every signature and digest. Falls back to the
// legacy pointer (same algorithm, slower path) if a fetch fails.
const EVP_MD* fetched(const char* name, const EVP_MD* legacy) {
  EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
  return md != nullptr ? md : legacy;
}

}  // namespace

const EVP_MD* evp_md(Hash hash) {
  static const EVP_MD* const sha1 = fetched("SHA1", EVP_sha1());
  static const EVP_MD* const sha256 = fetched("SHA256", EVP_sha256());
  static const EVP_MD* const sha384 = fetched("SHA384", EVP_sha384());
  static const EVP_MD* const sha512 = fetched("SHA512", EVP_sha512());
  switch (hash) {
    case Hash::kSha1:
      return sha1;
    case Hash::kSha256:
      return sha256;
    case Hash::kSha384:
      return sha384;
    case Hash::kSha512:
      return sha512;
  }
  return sha256;
}

std::size_t digest_size(Hash hash) {
  switch (hash) {
    case Hash::kSha1:
      return 20;
    case Hash::kSha256:
      return 32;
    case Hash::kSha384:
      return 48;
    case Hash::kSha512:
      return 64;
  }
  return 0;
}

Result<Bytes> digest(Hash hash, ByteSpan data) {
  Bytes out(digest_size(hash));
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, evp_md(hash), nullptr) != 1) {
    return fail(error("digest"));
  }
  return out;
}

Bytes sha256(ByteSpan data) {
  Bytes out(32);
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, evp_md(Hash::kSha256), nullptr) != 1) {
    std::abort();
  }
  return out;
}

Result<Bytes> hmac(Hash hash, ByteSpan key, ByteSpan data) {
  Bytes out(digest_size(hash));
  unsigned int len = 0;
  if (HMAC(evp_md(hash), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
           out.data(), &len) == nullptr) {
    return fail(error("hmac"));
  }
  return out;
}

Result<Hasher> Hasher::create(Hash hash) {
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), evp_md(hash), nullptr) != 1) {
    return fail(error("hash init"));
  }
  return Hasher(std::move(ctx), hash);
}

Hasher& Hasher::update(ByteSpan data) {
  if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) std::abort();
  return *this;
}

Bytes Hasher::finish() {
  Bytes out(digest_size(hash_));
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), out.data(), &len) != 1) std::abort();
  reset();
  return out;
}

void Hasher::reset() {
  if (EVP_DigestInit_ex(ctx_.get(), evp_md(hash_), nullptr) != 1) std::abort();
}

bool equal_ct(ByteSpan a, ByteSpan b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {
Bio memory_bio(std::string_view text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}
Result<std::string> bio_string(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len < 0 || data == nullptr) return fail(error("read memory BIO"));
  return std::string(data, static_cast<std::size_t>(len));
}
}  // namespace

Result<PKey> public_key_from_pem(std::string_view pem) {
  auto bio = memory_bio(pem);
  PKey key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return fail(error("parse PEM public key", ErrorCode::kMalformed));
  return key;
}

Result<PKey> private_key_from_pem(std::string_view pem) {
  auto bio = memory_bio(pem);
  PKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return fail(error("parse PEM private key", ErrorCode::kMalformed));
  return key;
}

Result<PKey> public_key_from_der(ByteSpan der) {
  const unsigned char* p = der.data();
  PKey key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (!key) return fail(error("parse DER public key", ErrorCode::kMalformed));
  return key;
}

Result<std::string> public_key_to_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return fail(error("write PEM public key"));
  return bio_string(bio.get());
}

Result<Bytes> public_key_to_der(EVP_PKEY* key) {
  int len = i2d_PUBKEY(key, nullptr);
  if (len <= 0) return fail(error("encode DER public key"));
  Bytes out(static_cast<std::size_t>(len));
  unsigned char* p = out.data();
  if (i2d_PUBKEY(key, &p) != len) return fail(error("encode DER public key"));
  return out;
}

Result<X509Ptr> certificate_from_pem(std::string_view pem) {
  auto bio = memory_bio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return fail(error("parse PEM certificate", ErrorCode::kMalformed));
  return cert;
}

Result<X509Ptr> certificate_from_der(ByteSpan der) {
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) return fail(error("parse DER certificate", ErrorCode::kMalformed));
  return cert;
}

Result<std::string> certificate_to_pem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return fail(error("write PEM certificate"));
  return bio_string(bio.get());
}

namespace {

// A minimal DER INTEGER's content: no leading zero octets, one 0x00 added before a set high bit.
ByteSpan der_integer_digits(ByteSpan v) {
  while (!v.empty() && v.front() == 0) v = v.subspan(1);
  return v;
}

std::size_t der_integer_size(ByteSpan digits) {
  return digits.empty() || (digits.front() & 0x80) != 0 ? digits.size() + 1 : digits.size();
}

void put_der_integer(Bytes& out, ByteSpan digits) {
  out.push_back(0x02);
  out.push_back(static_cast<std::uint8_t>(der_integer_size(digits)));
  if (digits.empty() || (digits.front() & 0x80) != 0) out.push_back(0x00);
  out.insert(out.end(), digits.begin(), digits.end());
}

}  // namespace

Result<Bytes> ecdsa_raw_to_der(ByteSpan r, ByteSpan s) {
  // Encoded by hand when every length fits DER's short form (P-256 and P-384 always do): the
  // BIGNUM and ECDSA_SIG round trip through OpenSSL costs more than the encoding itself.
  ByteSpan rd = der_integer_digits(r);
  ByteSpan sd = der_integer_digits(s);
  std::size_t body = 2 + der_integer_size(rd) + 2 + der_integer_size(sd);
  if (body < 0x80) {
    Bytes out;
    out.reserve(2 + body);
    out.push_back(0x30);
    out.push_back(static_cast<std::uint8_t>(body));
    put_der_integer(out, rd);
    put_der_integer(out, sd);
    return out;
  }
  EcdsaSig sig(ECDSA_SIG_new());
  Bn br(BN_bin2bn(r.data(), static_cast<int>(r.size()), nullptr));
  Bn bs(BN_bin2bn(s.data(), static_cast<int>(s.size()), nullptr));
  if (!sig || !br || !bs || ECDSA_SIG_set0(sig.get(), br.get(), bs.get()) != 1) {
    return fail(error("build ECDSA signature"));
  }
  (void)br.release();  // owned by sig now
  (void)bs.release();
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return fail(error("encode ECDSA signature"));
  Bytes out(static_cast<std::size_t>(len));
  unsigned char* p = out.data();
  i2d_ECDSA_SIG(sig.get(), &p);
  return out;
}

Result<Bytes> ecdsa_der_to_raw(ByteSpan der, std::size_t field_size) {
  const unsigned char* p = der.data();
  EcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return fail(error("parse DER ECDSA signature", ErrorCode::kMalformed));
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  Bytes out(2 * field_size);
  if (BN_bn2binpad(r, out.data(), static_cast<int>(field_size)) < 0 ||
      BN_bn2binpad(s, out.data() + field_size, static_cast<int>(field_size)) < 0) {
    return fail(error("ECDSA signature component too large"));
  }
  return out;
}

}  // namespace warden::ossl
