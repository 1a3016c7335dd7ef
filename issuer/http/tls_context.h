#pragma once
// The server's TLS context from tls.* (docs/issuer-config.md).

#include <boost/asio/ssl/context.hpp>

#include "issuer/config.h"
#include "platform/base/error.h"

namespace warden::issuer::http {

Result<boost::asio::ssl::context> make_tls_context(const IssuerConfig::Tls& tls);

}  // namespace warden::issuer::http
