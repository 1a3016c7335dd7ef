#include "agent/api/local_http.h"

#include <cctype>
#include <vector>

#include <openssl/crypto.h>

namespace warden::agent::api::detail {
namespace http = boost::beast::http;

std::optional<HttpReply> framing_refusal(const Request& req) {
  std::vector<std::string> codings;
  for (const auto& field : req) {
    if (field.name() != http::field::transfer_encoding) continue;
    const std::string_view value(field.value().data(), field.value().size());
    std::size_t start = 0;
    while (start <= value.size()) {
      std::size_t end = value.find(',', start);
      if (end == std::string_view::npos) end = value.size();
      std::string_view coding = value.substr(start, end - start);
      coding = coding.substr(0, coding.find(';'));
      while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) {
        coding.remove_prefix(1);
      }
      while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) {
        coding.remove_suffix(1);
      }
      std::string lower(coding);
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!lower.empty()) codings.push_back(std::move(lower));
      start = end + 1;
    }
  }
  if (codings.empty()) {
    if (req.count(http::field::transfer_encoding) == 0) return std::nullopt;
    return error_reply(400, "bad_request", "Transfer-Encoding: empty");
  }
  for (const auto& c : codings) {
    if (c != "chunked" && c != "identity") {
      return error_reply(501, "not_implemented",
                         "Transfer-Encoding: coding \"" + c.substr(0, 40) +
                             "\" is not supported (only \"chunked\")");
    }
  }
  if (codings.size() == 1 && codings.front() == "chunked" &&
      req.count(http::field::content_length) == 0) {
    return std::nullopt;
  }
  return error_reply(400, "bad_request",
                     "Transfer-Encoding: expected exactly \"chunked\" and no Content-Length");
}

bool gives_credential(std::string_view method, std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  return (method == "POST" && (path == "/v1/token" || path == "/v1/proof")) ||
         path.substr(0, 12) == "/v1/secrets/";
}

void wipe_request(Request& req, boost::beast::flat_buffer& buffer) {
  auto& body = req.body();
  OPENSSL_cleanse(body.data(), body.size());
  if (buffer.size() != 0) return;
  const auto space = buffer.prepare(buffer.capacity());
  OPENSSL_cleanse(space.data(), space.size());
}

}  // namespace warden::agent::api::detail
