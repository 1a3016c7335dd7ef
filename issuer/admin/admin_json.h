#pragma once
// The admin API's JSON (docs/issuer-admin-api.md), in one place: the service answers with
// structs, the admin routes turn them into these documents.

#include <string>
#include <vector>

#include "issuer/service.h"
#include "issuer/store/store.h"

namespace warden::issuer::admin {

/// {"devices": [...], "next_after": id | null}
std::string to_json(const DevicePage& page);
/// The device with its "live_tokens".
std::string to_json(const DeviceDetail& detail);
/// {"id","version","created_at","active"} of a stored version (without its text).
std::string to_json(const PolicyVersion& policy);
/// {"policies": [... with "toml"]}
std::string to_json(const std::vector<PolicyVersion>& policies);
/// {"records": [...]}, each record's reasons as JSON.
std::string to_json(const std::vector<AuditRecord>& records);

}  // namespace warden::issuer::admin
