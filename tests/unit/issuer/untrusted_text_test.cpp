#include "issuer/untrusted_text.h"

#include <gtest/gtest.h>

namespace warden::issuer {
namespace {

TEST(QuoteUntrusted, CutsEscapesAndSaysHowLongItWas) {
  EXPECT_EQ(quote_untrusted("api"), "\"api\"");
  EXPECT_EQ(quote_untrusted("a\"b\n"), "\"a\\x22b\\x0a\"");
  const std::string cut = quote_untrusted(std::string(1024, 'x'));
  EXPECT_EQ(cut, "\"" + std::string(128, 'x') + "\"…(1024 bytes)");
}

}  // namespace
}  // namespace warden::issuer
