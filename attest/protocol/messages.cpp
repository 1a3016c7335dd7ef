// The error envelope as a message, and the shared decoding pieces of messages_codec.h.
#include "attest/protocol/messages.h"

#include "attest/protocol/errors.h"
#include "attest/protocol/messages_codec.h"

namespace warden::protocol {

namespace detail {

Result<std::string> id_text(const MapReader& r, std::int64_t key) {
  PROTO_TRY(id, r.text(key, limits::kId));
  if (id.empty()) return fail(r.error(ErrorCode::kMalformed, r.field_name(key), "empty"));
  return id;
}

}  // namespace detail

namespace {

constexpr std::array kErrorFields{Field{1, "code"}, Field{2, "reason"}};

}  // namespace

ErrorResponse error_response(const Error& error) {
  return ErrorResponse{std::string(to_string(error.code)), error.message};
}

Error to_error(const ErrorResponse& response) {
  if (auto code = error_code_from_string(response.code)) return Error{*code, response.reason, 0, 0};
  return Error{ErrorCode::kInternal, "issuer error " + response.code + ": " + response.reason, 0,
               0};
}

Bytes encode(const ErrorResponse& m) {
  return cbor::encode(MapWriter().text(1, m.code).text(2, m.reason).take());
}

Result<ErrorResponse> decode_error_response(ByteSpan data) {
  constexpr std::string_view kWhat = "error response";
  PROTO_TRY(body, detail::decode_body(data, body_limits(lim::kErrorBody), kWhat));
  PROTO_TRY(r, MapReader::open(body, kWhat, "", kErrorFields));
  PROTO_TRY(code, r.text(1, lim::kShortText));
  PROTO_TRY(reason, r.text(2, lim::kErrorReason));
  return ErrorResponse{std::move(code), std::move(reason)};
}

}  // namespace warden::protocol
