#include <gtest/gtest.h>

#include "attest/token/json.h"

namespace warden::json {
namespace {

TEST(JsonReader, RefusesUnknownMembersAndNonObjects) {
  auto ok = parse_object(R"({"a":"x","b":1})", {"a", "b"});
  ASSERT_TRUE(ok) << ok.error().message;
  auto unknown = parse_object(R"({"a":"x","c":1})", {"a", "b"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(unknown.error().message, R"(request body: unknown field "c")");
  auto array = parse_object("[]", {"a"}, "reply");
  ASSERT_FALSE(array);
  EXPECT_EQ(array.error().message, "reply: expected a JSON object");
  auto junk = parse_object("{", {"a"});
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().message.rfind("request body: invalid JSON: ", 0), 0u);
}

TEST(JsonReader, TypedFieldsNameTheFieldToFix) {
  auto o = parse_object(R"({"s":"x","n":7,"big":18446744073709551615,"neg":-1,"list":["a","b"],
                           "mixed":["a",1],"notlist":"a"})",
                        {"s", "n", "big", "neg", "list", "mixed", "notlist"});
  ASSERT_TRUE(o);
  EXPECT_EQ(*read_string(*o, "s", Presence::kRequired), "x");
  EXPECT_EQ(*read_string(*o, "absent", Presence::kOptional), "");
  EXPECT_EQ(read_string(*o, "absent", Presence::kRequired).error().message,
            R"(request body: "absent" is required)");
  EXPECT_EQ(read_string(*o, "n", Presence::kOptional).error().message,
            R"(request body: "n" must be a string)");
  EXPECT_EQ(*read_integer(o->at("n"), "n", 1, 10), 7);
  EXPECT_EQ(read_integer(o->at("n"), "n", 8, 10).error().message,
            R"(request body: "n" must be an integer in 8..10)");
  EXPECT_FALSE(read_integer(o->at("big"), "big", 0, INT64_MAX));
  EXPECT_FALSE(read_integer(o->at("neg"), "neg", 0, 10));
  EXPECT_FALSE(read_integer(o->at("s"), "s", 0, 10));
  EXPECT_EQ(*read_string_array(*o, "list"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(read_string_array(*o, "absent")->empty());
  EXPECT_EQ(read_string_array(*o, "mixed").error().message,
            R"(request body: "mixed" must be an array of strings)");
  EXPECT_FALSE(read_string_array(*o, "notlist"));
}

TEST(JsonWriter, EscapesOnlyWhatJsonRequires) {
  const std::string text = ObjectWriter()
                               .str("s", "a\"b\\c\n\x01 é")
                               .str_or_null("none", "")
                               .num("n", -5)
                               .boolean("t", true)
                               .done();
  EXPECT_EQ(text, "{\"s\":\"a\\\"b\\\\c\\u000a\\u0001 é\",\"none\":null,\"n\":-5,\"t\":true}");
  auto back = parse(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->as_object().at("s").as_string(), "a\"b\\c\n\x01 é");
}

}  // namespace
}  // namespace warden::json
