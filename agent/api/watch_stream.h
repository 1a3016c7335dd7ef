#pragma once
// Internal to LocalServer: GET /v1/watch. A watch stream waits for events, not requests: it moves
// from its connection thread to the accepting io_context, where every stream is one coroutine
// and none holds a thread.

#include <cstddef>

#include "agent/api/event_bus.h"
#include "agent/api/local_server_impl.h"
#include "platform/os/workload_identity.h"

namespace warden::agent::api::detail {

/// Who a watch stream's subscriber is, for the events it may see (EventBus).
Watcher watcher_of(Socket kind, const os::Selectors& s);

/// Answers a watch request over the uid's watch limit (the request has been read whole).
void refuse_watch(int fd, unsigned version, std::size_t limit);

/// Streams events to `fd` (a connection whose GET /v1/watch was read) on the server's
/// io_context; `slot` is held until the stream ends.
void hand_to_watch(ConnectionSlot slot, int fd, unsigned version, Watcher watcher);

}  // namespace warden::agent::api::detail
