#include "platform/base/version.h"

namespace warden {
std::string_view version() { return WARDEN_VERSION; }
}  // namespace warden
