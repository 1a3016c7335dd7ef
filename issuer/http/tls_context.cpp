#include "issuer/http/tls_context.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "platform/base/openssl.h"

namespace warden::issuer::http {
namespace {
namespace asio = boost::asio;

// Admin client certificates are checked per route, not at the handshake: agents have none.
int accept_any_client_cert(int /*preverified*/, X509_STORE_CTX* /*ctx*/) { return 1; }

}  // namespace

Result<asio::ssl::context> make_tls_context(const IssuerConfig::Tls& tls) {
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                "tls.cert_file and tls.key_file are required (see docs/issuer-config.md)");
  }
  if (tls.min_version != "1.3" && tls.min_version != "1.2") {
    return fail(ErrorCode::kInvalidArgument,
                "tls.min_version: expected \"1.3\" or \"1.2\", found \"" + tls.min_version + "\"");
  }
  asio::ssl::context ssl(asio::ssl::context::tls_server);
  SSL_CTX* ctx = ssl.native_handle();
  SSL_CTX_set_min_proto_version(ctx, tls.min_version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    return fail(ossl::error("tls: cipher list"));
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1) {
    return fail(
        ossl::error("tls.cert_file: cannot load a PEM certificate chain from " + tls.cert_file,
                    ErrorCode::kInvalidArgument));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail(ossl::error("tls.key_file: cannot load a PEM private key from " + tls.key_file,
                            ErrorCode::kInvalidArgument));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return fail(ossl::error("tls: " + tls.key_file + " is not the key of " + tls.cert_file,
                            ErrorCode::kInvalidArgument));
  }
  if (!tls.admin_client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, tls.admin_client_ca.c_str(), nullptr) != 1) {
      return fail(ossl::error("tls.admin_client_ca: cannot load " + tls.admin_client_ca,
                              ErrorCode::kInvalidArgument));
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.admin_client_ca.c_str());
    if (names == nullptr) {
      return fail(ossl::error("tls.admin_client_ca: no certificate in " + tls.admin_client_ca,
                              ErrorCode::kInvalidArgument));
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_client_cert);
  }
  return ssl;
}

}  // namespace warden::issuer::http
