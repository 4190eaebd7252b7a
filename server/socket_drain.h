#ifndef RINGSTORE_SERVER_SOCKET_DRAIN_H_
#define RINGSTORE_SERVER_SOCKET_DRAIN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ringstore::server {

// When a drain ends, gRPC has finished every call and closed its
// connections, but the kernel may still hold bytes of the last responses
// that a slow client has not acknowledged. On a host that is harmless: the
// kernel goes on delivering them after the process exits. In a container it
// is not: the runtime tears the network namespace down as soon as the
// process exits, those bytes are lost and the client sees its stream reset
// just before the end. So the server waits for them before it exits.

// Bytes sent but not yet acknowledged on the TCP connections of this network
// namespace whose local port is `port` (listening sockets excluded), read
// from `proc_net` (a directory holding `tcp` and `tcp6`, normally
// /proc/self/net). A missing table counts as empty (IPv6 off).
absl::StatusOr<int64_t> QueuedBytes(int port, const std::string& proc_net = "/proc/self/net");

// Waits until QueuedBytes(port) is 0 or `deadline` passes, polling every
// 10 ms. Returns the bytes still queued (0: everything was delivered), or
// the error reading the tables.
absl::StatusOr<int64_t> WaitForQueuedBytes(int port, absl::Time deadline,
                                           const std::string& proc_net = "/proc/self/net");

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_SOCKET_DRAIN_H_
