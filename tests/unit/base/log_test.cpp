#include "platform/base/log.h"

#include <sstream>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

namespace warden::log {
namespace {

TEST(StructuredLog, FieldsBecomeKeyValuePairsOnStderr) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = std::make_shared<spdlog::logger>("test", sink);
  logger->set_pattern("%v");
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  structured(spdlog::level::warn, "posture change",
             {{"WARDEN_POSTURE_SOURCE", "pcr"},
              {"WARDEN_POSTURE_SUBJECT", "pcr sha256:7"},
              {"WARDEN_POSTURE_OLD", ""},
              {"WARDEN_POSTURE_NEW", "say \"hi\""}});
  spdlog::set_default_logger(previous);
  EXPECT_EQ(out.str(),
            "posture change warden_posture_source=pcr warden_posture_subject=\"pcr sha256:7\" "
            "warden_posture_old=\"\" warden_posture_new=\"say \\\"hi\\\"\"\n");
}

}  // namespace
}  // namespace warden::log
