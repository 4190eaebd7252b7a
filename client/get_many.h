// `ringstore get REMOTE... DIR/` and `ringstore get --prefix=P DIR/`: many
// files into a local directory with BatchDownload (client.h BatchGet), up to
// kMaxBatchPaths per call.
//
// Each remote path is written to DIR/<remote path>, creating the
// directories it needs. The paths come from the command line or, with
// --prefix, from the server's List; either way a path that is absolute or
// has an empty, "." or ".." component is refused (INVALID_ARGUMENT for that
// file) and nothing is ever written outside DIR: the directories are walked
// one component at a time without following symbolic links. Each file is
// written to a temp file beside its final name and renamed into place once
// all of it arrived and its CRC32C matched (no fsync, as for one file:
// the server's copy is the durable one), so a local file is complete or
// untouched. Files are printed as they complete ("downloaded P to L served
// by ENGINE", or with --json one FileInfo object with "backend" per file and,
// for a failed one, {"path", "error", "message"}); each failure is also
// printed to stderr with its status. Exit 1 if any file failed.
#ifndef RINGSTORE_CLIENT_GET_MANY_H_
#define RINGSTORE_CLIENT_GET_MANY_H_

#include <string>

#include "absl/strings/string_view.h"
#include "client/cli.h"
#include "client/client.h"

namespace ringstore::client {

// Whether a parsed `get` is the many-file form: --prefix, more than two
// arguments, or a last argument that ends with "/".
bool IsGetMany(const CliArgs& args);

// Whether remote path `path` names a place under a local directory:
// not empty, relative, no empty, "." or ".." component, no NUL.
bool SafeRelativePath(absl::string_view path);

// Runs the many-file get; returns the exit code.
int CmdGetMany(Client& client, const CliArgs& args);

}  // namespace ringstore::client

#endif  // RINGSTORE_CLIENT_GET_MANY_H_
