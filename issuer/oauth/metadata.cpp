#include "issuer/oauth/metadata.h"

#include <boost/json.hpp>

namespace warden::issuer::oauth {

Result<std::string> authorization_server_metadata(std::string_view issuer_url) {
  if (issuer_url.empty()) {
    return fail(ErrorCode::kUnavailable,
                "authorization-server metadata needs issuer_url (the iss of the tokens) to be set");
  }
  if (!issuer_url.starts_with("https://") ||
      issuer_url.find_first_of("?#") != std::string_view::npos) {
    return fail(ErrorCode::kUnavailable,
                "authorization-server metadata needs issuer_url to be an https URL without query "
                "or fragment (RFC 8414 2)");
  }
  std::string_view base = issuer_url;
  while (base.ends_with('/')) base.remove_suffix(1);
  const std::string prefix(base);
  boost::json::object m;
  m["issuer"] = issuer_url;
  m["jwks_uri"] = prefix + "/.well-known/jwks.json";
  m["introspection_endpoint"] = prefix + std::string(kIntrospectionPath);
  // RFC 8414 2: values of the token endpoint authentication methods registry or of the access
  // token types registry: a Shared Signals receiver's bearer credential, an admin's client
  // certificate (tls.admin_client_ca).
  m["introspection_endpoint_auth_methods_supported"] =
      boost::json::array{"Bearer", "tls_client_auth"};
  return boost::json::serialize(m);
}

}  // namespace warden::issuer::oauth
