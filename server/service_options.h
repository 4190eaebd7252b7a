// What the FileStore service and its reactors are configured with: limits
// and the optional parts (auth, telemetry) that main() wires in. One struct
// shared by the service and every reactor, so that a new knob is one field.
#ifndef RINGSTORE_SERVER_SERVICE_OPTIONS_H_
#define RINGSTORE_SERVER_SERVICE_OPTIONS_H_

#include <cstdint>
#include <string>

#include "server/idle_timer.h"

namespace ringstore::server {

class Authorizer;  // auth.h
class Drain;       // drain.h

struct ServiceOptions {
  // Most data one message may carry (DESIGN.md §3: 2 MiB).
  int64_t max_chunk_bytes = 2 << 20;
  std::string version;
  // Checks each call's token (auth.h, authorize.h); nullptr = auth off.
  // Outlives the service.
  const Authorizer* authorizer = nullptr;
  // --idle_timeout: an upload whose client sends nothing, or a download
  // whose client reads nothing (a write pending), for the timer's timeout
  // ends DEADLINE_EXCEEDED and gives its buffers back. Null: never. Owned
  // by main(); outlives every call.
  IdleTimer* idle_timer = nullptr;
  // Once it drains, new calls are refused with UNAVAILABLE (authorize.h).
  // Null: never. Owned by main(); outlives every call.
  const Drain* drain = nullptr;
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_SERVICE_OPTIONS_H_
