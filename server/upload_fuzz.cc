// Fuzz target for the Upload RPC (tests/fuzz.bzl): a few Upload calls,
// built from the input, against a real Store on a temp root through the real
// FileStoreService, in process (one server and one in-process channel for
// the whole run).
//
// Each input starts from an empty root (the last input's files are deleted
// through the service, its empty directories removed) and decodes to up to
// four calls. A call is (every field one input byte unless said otherwise):
//   path      < 0xE0: one of kPaths (valid, nested, below a file, traversal,
//             private, malformed); else a length byte and that many bytes
//   first     low 4 bits: 0..11 spec; 12 upload_id (resume); 13 no spec;
//             14 spec again in the second message; 15 spec, then upload_id
//             in the same oneof (so a resume)
//   spec      bits 0-1 size: unknown, exact, wrong by the next byte, -1;
//             bits 2-3 if_generation_match: absent, 0, the model's current
//             generation, the next byte + 1 (mostly wrong);
//             bits 4-5 whole-file crc32c: absent, right, wrong, absent;
//             bit 6 end without finish (half-close); bit 7 cancel instead
//   data      2 bytes: length % 6000 (the service takes at most kMaxChunk
//             bytes a message, the store kMaxFileBytes a file), then a
//             byte the data's pattern starts from
//   messages  1 + byte % 4 messages, each sending the next piece of data;
//             per message a byte: bits 0-1 offset exact, resend from
//             (next byte) bytes earlier, skip ahead by 1 + next byte,
//             negative; bit 2 carries crc32c, bit 3 a wrong one; bit 4
//             finish here; bit 5 pad the data past kMaxChunk
// The last message carries finish unless the spec byte says otherwise.
//
// After every call: the status is one DESIGN.md §3 allows for what was sent
// (never INTERNAL, UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED; a resume names
// an id no session has, so NOT_FOUND; CANCELLED only when the client
// cancelled); an OK answer means
// everything sent was valid (a valid path, spec first and once, offsets that
// continue the data, right checksums, sizes within the limits, the
// precondition held) and its FileInfo describes exactly the data sent, with
// a higher generation. Then, once background work has drained: every pool
// buffer is back; <root>/.ringstore/tmp is empty and .ringstore holds no
// data; nothing but the root exists in its parent directory; and the root
// holds exactly the files of the model — each path's content is the data of
// the last upload that returned OK for it (a failed upload leaves the path
// as it was), byte for byte, and no other file.
//
// The engine is thread_pool (deterministic everywhere); RINGSTORE_FUZZ_ENGINE
// names another. RINGSTORE_FUZZ_VERBOSE=1 prints every call's status.
// RINGSTORE_FUZZ_TCP=1 talks to the service over loopback TCP instead of the
// in-process channel: slower, but without the in-process transport's growth
// (about 24 KB kept per upload the server ends early, measured with gRPC
// 1.51; the real server over TCP keeps nothing), for runs of many hours.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ringstore/v1/ringstore.grpc.pb.h"
#include "server/file_store_service.h"
#include "server/service_options.h"
#include "storage/path.h"
#include "storage/store.h"
#include "tests/fuzz_check.h"
#include "tests/fuzz_input.h"
#include "third_party/system/crc32c.h"

namespace {

using ringstore::fuzz::FuzzInput;
namespace v1 = ringstore::v1;
namespace storage = ringstore::storage;

constexpr int64_t kMaxChunk = 2048;
constexpr int64_t kMaxFileBytes = 4096 + 1024;
constexpr size_t kBufferSize = 4096;
constexpr size_t kBuffers = 8;
constexpr int kMaxCalls = 4;

const std::vector<std::string>& Paths() {
  static const auto* paths = new std::vector<std::string>{
      "a", "b", "dir/f", "dir/sub/g", "a/x", "dir", "../x", ".ringstore/x",
      ".ringstore/tmp/y", "a//b", "./a", "dir/../a", "/abs", "", ".ringstore", "dir/",
      "x\xC0\xAF", std::string(256, 'c'), "\xC3\xA9/\xC3\xBC", "d\\e", ".a", "..",
  };
  return *paths;
}

// What the model knows of a committed path.
struct Committed {
  std::string content;
  int64_t generation = 0;
};

struct World {
  std::string base;  // the temp dir; holds only `root`
  std::string root;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<ringstore::server::FileStoreService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::FileStore::Stub> stub;
  std::map<std::string, Committed> model;
};

World* world_for_teardown = nullptr;

// At a normal exit (the replay driver's, libFuzzer's after -runs or
// -max_total_time): stops the server, closes the store and removes the temp
// dir. A crash leaves it for a look.
void TearDown() {
  World* w = world_for_teardown;
  w->server->Shutdown();
  w->server->Wait();
  w->stub.reset();
  w->server.reset();
  w->service.reset();
  w->store.reset();
  std::error_code ignored;
  std::filesystem::remove_all(w->base, ignored);
}

World& TheWorld() {
  static World* world = [] {
    auto* w = new World;
    world_for_teardown = w;
    const char* tmp = std::getenv("TEST_TMPDIR");
    if (tmp == nullptr) tmp = std::getenv("TMPDIR");
    std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/upload_fuzz-XXXXXX");
    FUZZ_CHECK(mkdtemp(dir.data()) != nullptr, "mkdtemp ", dir);
    w->base = dir;
    w->root = dir + "/root";
    storage::StoreOptions options;
    options.root = w->root;
    const char* engine = std::getenv("RINGSTORE_FUZZ_ENGINE");
    options.engine = engine ? engine : "thread_pool";
    options.buffer_count = kBuffers;
    options.buffer_size = kBufferSize;
    options.engine_threads = 2;
    options.max_file_bytes = kMaxFileBytes;
    auto store = storage::Store::Open(options);
    FUZZ_CHECK(store.ok(), store.status().ToString());
    w->store = *std::move(store);
    ringstore::server::ServiceOptions service_options;
    service_options.max_chunk_bytes = kMaxChunk;
    w->service = std::make_unique<ringstore::server::FileStoreService>(w->store.get(),
                                                                       service_options);
    grpc::ServerBuilder builder;
    builder.RegisterService(w->service.get());
    const char* tcp_env = std::getenv("RINGSTORE_FUZZ_TCP");
    const bool tcp = tcp_env != nullptr && std::string(tcp_env) == "1";
    int port = 0;
    if (tcp) builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    w->server = builder.BuildAndStart();
    FUZZ_CHECK(w->server != nullptr, "the server did not start");
    w->stub = v1::FileStore::NewStub(
        tcp ? grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials())
            : w->server->InProcessChannel(grpc::ChannelArguments()));
    std::atexit(TearDown);
    return w;
  }();
  return *world;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") out.push_back(name);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Regular files below `dir` (relative to the root as `rel`); directories
// into `dirs`, deepest last. Anything else is a violation.
void Walk(const std::string& dir, const std::string& rel, std::map<std::string, std::string>* files,
          std::vector<std::string>* dirs) {
  for (const std::string& name : Entries(dir)) {
    const std::string full = dir + "/" + name;
    const std::string r = rel.empty() ? name : rel + "/" + name;
    if (rel.empty() && name == storage::kPrivateDir) continue;
    struct stat st;
    FUZZ_CHECK(lstat(full.c_str(), &st) == 0, "lstat ", full);
    if (S_ISDIR(st.st_mode)) {
      dirs->push_back(full);
      Walk(full, r, files, dirs);
    } else {
      FUZZ_CHECK(S_ISREG(st.st_mode), "not a regular file: ", r);
      (*files)[r] = ReadFile(full);
    }
  }
}

// Every regular file below `dir` but below `skip`, with its size.
void PrivateFiles(const std::string& dir, const std::string& skip,
                  std::map<std::string, int64_t>* out) {
  for (const std::string& name : Entries(dir)) {
    const std::string full = dir + "/" + name;
    if (full == skip) continue;
    struct stat st;
    if (lstat(full.c_str(), &st) != 0) continue;  // a temp file being removed
    if (S_ISDIR(st.st_mode)) {
      PrivateFiles(full, skip, out);
    } else {
      (*out)[full] = st.st_size;
    }
  }
}

// Background work (temp data removal, closes) ends a little after the RPC;
// waits up to 10 s for every pool buffer to be back and .ringstore/tmp to
// be empty. One observation decides: a cancelled call answers the client
// before its reactor has finished, so a temp file may still appear after a
// look that found none (the server's CreateWriter was still under way); it
// is then removed, and the next wait sees that. Only temp data that never
// goes is a failure.
// Temp data: the files in .ringstore/tmp and in the servers' directories
// there (store.h's layout), not the servers' lock files.
std::vector<std::string> TempData(const std::string& tmp) {
  std::vector<std::string> out;
  for (const std::string& name : Entries(tmp)) {
    struct stat st;
    if (lstat((tmp + "/" + name).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      for (const std::string& f : Entries(tmp + "/" + name)) out.push_back(name + "/" + f);
    } else if (!absl::EndsWith(name, ".lock")) {
      out.push_back(name);
    }
  }
  return out;
}

void WaitForQuiet(World& w) {
  const std::string tmp = w.root + "/" + std::string(storage::kPrivateDir) + "/tmp";
  size_t free = 0;
  std::vector<std::string> left;
  for (int i = 0; i < 10000; ++i) {
    free = w.store->pool().free_count();
    left = TempData(tmp);
    if (free == kBuffers && left.empty()) return;
    absl::SleepFor(absl::Milliseconds(1));
  }
  FUZZ_CHECK(free == kBuffers, "pool buffers not given back after 10 s: ", kBuffers - free,
             " held");
  FUZZ_CHECK(left.empty(), left.size(), " entries left in .ringstore/tmp after 10 s, e.g. ",
             left[0]);
}

void CheckDisk(World& w) {
  WaitForQuiet(w);
  const std::vector<std::string> in_base = Entries(w.base);
  FUZZ_CHECK(in_base == std::vector<std::string>{"root"}, "something appeared beside the root: ",
             in_base.size(), " entries");
  std::map<std::string, int64_t> private_files;
  // .ringstore/tmp is WaitForQuiet's.
  const std::string private_dir = w.root + "/" + std::string(storage::kPrivateDir);
  PrivateFiles(private_dir, private_dir + "/tmp", &private_files);
  for (const auto& [name, size] : private_files) {
    FUZZ_CHECK(size == 0, name, " holds ", size, " bytes with no upload in progress");
  }
  std::map<std::string, std::string> files;
  std::vector<std::string> dirs;
  Walk(w.root, "", &files, &dirs);
  for (const auto& [path, content] : files) {
    auto it = w.model.find(path);
    FUZZ_CHECK(it != w.model.end(), "file \"", absl::CEscape(path),
               "\" is visible but no upload of it returned OK");
    FUZZ_CHECK(content == it->second.content, "\"", absl::CEscape(path), "\" holds ",
               content.size(), " bytes that are not the ", it->second.content.size(),
               " of its last OK upload");
  }
  for (const auto& [path, committed] : w.model) {
    FUZZ_CHECK(files.count(path) == 1, "\"", absl::CEscape(path), "\" was committed but is gone");
  }
}

// Deletes every file (through the service) and every empty directory.
void Reset(World& w) {
  for (const auto& [path, committed] : w.model) {
    grpc::ClientContext context;
    v1::DeleteRequest request;
    request.set_path(path);
    v1::DeleteResponse response;
    const grpc::Status s = w.stub->Delete(&context, request, &response);
    FUZZ_CHECK(s.ok(), "Delete \"", absl::CEscape(path), "\": ", s.error_code(), " ",
               s.error_message());
  }
  w.model.clear();
  std::map<std::string, std::string> files;
  std::vector<std::string> dirs;
  Walk(w.root, "", &files, &dirs);
  FUZZ_CHECK(files.empty(), "files left after deleting everything");
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) rmdir(it->c_str());
}

// One Upload call as the input describes it, and what a correct server
// must have made of it.
struct Call {
  std::vector<v1::UploadRequest> messages;
  bool cancel = false;
  bool finish_sent = false;
  // Would be OK: everything about the messages themselves is valid.
  bool valid = true;
  std::string why_invalid;
  std::string path;
  std::string content;  // what the file holds if the upload commits
  bool resume = false;
};

void Invalid(Call* call, absl::string_view why) {
  if (call->valid) call->why_invalid = std::string(why);
  call->valid = false;
}

Call Decode(FuzzInput& in, const std::map<std::string, Committed>& model) {
  Call call;
  const uint8_t which = in.Byte();
  call.path = which < 0xE0 ? Paths()[which % Paths().size()] : in.ShortString();
  const uint8_t first = in.Byte() & 0x0F;
  const uint8_t specbits = in.Byte();
  const size_t length = in.U16() % 6000;
  const uint8_t pattern = in.Byte();
  std::string data(length, '\0');
  for (size_t i = 0; i < length; ++i) data[i] = static_cast<char>(pattern + i * 7 + (i >> 8));

  v1::UploadSpec spec;
  spec.set_path(call.path);
  switch (specbits & 3) {
    case 1: spec.set_size(static_cast<int64_t>(length)); break;
    case 2: spec.set_size(static_cast<int64_t>(length) + static_cast<int8_t>(in.Byte())); break;
    case 3: spec.set_size(-1); break;
  }
  auto current = model.find(call.path);
  switch ((specbits >> 2) & 3) {
    case 1: spec.set_if_generation_match(0); break;
    case 2: spec.set_if_generation_match(current != model.end() ? current->second.generation : 12345); break;
    case 3: spec.set_if_generation_match(in.Byte() + 1); break;
  }
  const uint32_t whole = ringstore::Crc32c(data);
  switch ((specbits >> 4) & 3) {
    case 1: spec.set_crc32c(whole); break;
    case 2: spec.set_crc32c(whole ^ 1); break;
  }
  call.cancel = specbits & 0x80;
  const bool finish = !(specbits & 0xC0);

  const int count = 1 + in.Byte() % 4;
  int64_t sent = 0;  // bytes of `data` the messages so far covered
  int64_t have = 0;  // bytes the server holds if it follows the contract
  for (int i = 0; i < count; ++i) {
    v1::UploadRequest m;
    if (i == 0) {
      // `first` is a oneof: for 15 the upload_id set last replaces the spec.
      if (first < 12 || first == 14 || first == 15) *m.mutable_spec() = spec;
      if (first == 12 || first == 15) m.set_upload_id("00112233445566778899aabbccddeeff");
      call.resume = first == 12 || first == 15;
      if (first >= 12 && first != 14) Invalid(&call, "the first message carries no spec");
    } else if (i == 1 && first == 14) {
      *m.mutable_spec() = spec;
    }
    const int64_t end = static_cast<int64_t>(length) * (i + 1) / count;
    const uint8_t bits = in.Byte();
    int64_t offset = sent;
    switch (bits & 3) {
      case 1: offset = std::max<int64_t>(0, sent - in.Byte()); break;
      case 2: offset = sent + 1 + in.Byte(); break;
      case 3: offset = -1 - in.Byte(); break;
    }
    std::string piece = offset >= 0 && offset <= static_cast<int64_t>(length)
                            ? data.substr(offset, std::max<int64_t>(0, end - offset))
                            : data.substr(sent, end - sent);
    if (bits & 0x20) piece.resize(kMaxChunk + 1 + in.Byte(), 'p');
    m.set_offset(offset);
    m.set_data(piece);
    if (bits & 4) m.set_crc32c(ringstore::Crc32c(piece) ^ ((bits & 8) ? 1 : 0));
    const bool last = i + 1 == count || (bits & 0x10);
    m.set_finish(last && finish);

    // The contract's view of this message.
    if (i > 0 && m.first_case() != v1::UploadRequest::FIRST_NOT_SET) {
      Invalid(&call, "spec after the first message");
    }
    if (static_cast<int64_t>(piece.size()) > kMaxChunk) Invalid(&call, "message too large");
    if (m.has_crc32c() && m.crc32c() != ringstore::Crc32c(piece)) {
      Invalid(&call, "message crc32c wrong");
    }
    if (offset < 0 || offset > have) {
      Invalid(&call, "offset does not continue the data");
    } else if (offset + static_cast<int64_t>(piece.size()) > have) {
      call.content.append(piece.substr(have - offset));
      have = static_cast<int64_t>(call.content.size());
    }
    sent = std::max<int64_t>(sent, end);
    call.messages.push_back(std::move(m));
    if (last) {
      call.finish_sent = finish;
      break;
    }
  }
  if (!call.finish_sent) Invalid(&call, "no finish");
  if (!ringstore::storage::ValidatePath(call.path).ok()) Invalid(&call, "bad path");
  if (spec.size() < 0) Invalid(&call, "negative size");
  if (spec.size() > 0 && spec.size() != static_cast<int64_t>(call.content.size())) {
    Invalid(&call, "size differs from spec.size");
  }
  if (static_cast<int64_t>(call.content.size()) > kMaxFileBytes) Invalid(&call, "file too large");
  if (spec.has_crc32c() && spec.crc32c() != ringstore::Crc32c(call.content)) {
    Invalid(&call, "whole crc32c wrong");
  }
  if (spec.has_if_generation_match()) {
    const int64_t want = spec.if_generation_match();
    if (want == 0 ? current != model.end()
                  : current == model.end() || current->second.generation != want) {
      Invalid(&call, "precondition fails");
    }
  }
  return call;
}

void Run(World& w, const Call& call) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::UploadResponse response;
  auto stream = w.stub->Upload(&context, &response);
  for (const v1::UploadRequest& m : call.messages) {
    if (!stream->Write(m)) break;  // the server has already answered
  }
  if (call.cancel) {
    context.TryCancel();
  } else {
    stream->WritesDone();
  }
  const grpc::Status status = stream->Finish();
  const grpc::StatusCode code = status.error_code();
  const std::string what = absl::StrCat("upload of \"", absl::CEscape(call.path), "\" -> ", code,
                                        " ", status.error_message());
  static const bool verbose = std::getenv("RINGSTORE_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "  %s\n", what.c_str());

  static const std::set<grpc::StatusCode> kAllowed = {
      grpc::OK, grpc::INVALID_ARGUMENT, grpc::NOT_FOUND, grpc::FAILED_PRECONDITION,
      grpc::ALREADY_EXISTS, grpc::ABORTED, grpc::DATA_LOSS, grpc::RESOURCE_EXHAUSTED};
  FUZZ_CHECK(kAllowed.count(code) == 1 || (code == grpc::CANCELLED && call.cancel),
             "status not allowed here: ", what);
  FUZZ_CHECK(!call.resume || code == grpc::NOT_FOUND || code == grpc::RESOURCE_EXHAUSTED ||
                 (code == grpc::CANCELLED && call.cancel),
             "a resume of an id no session has: ", what);
  if (code != grpc::OK) return;

  FUZZ_CHECK(call.valid, "OK although ", call.why_invalid, ": ", what);
  const v1::FileInfo& info = response.file();
  FUZZ_CHECK(info.path() == call.path, "FileInfo.path \"", absl::CEscape(info.path()), "\"");
  FUZZ_CHECK(info.size() == static_cast<int64_t>(call.content.size()), "FileInfo.size ",
             info.size(), ", sent ", call.content.size());
  FUZZ_CHECK(info.crc32c() == ringstore::Crc32c(call.content), "FileInfo.crc32c wrong");
  FUZZ_CHECK(response.backend() != v1::BACKEND_UNSPECIFIED, "no backend");
  auto it = w.model.find(call.path);
  if (it != w.model.end()) {
    FUZZ_CHECK(info.generation() > it->second.generation, "generation ", info.generation(),
               " does not increase from ", it->second.generation);
  }
  w.model[call.path] = Committed{call.content, info.generation()};
}

// libFuzzer flags this target runs with unless given on the command line
// (LLVMFuzzerInitialize may rewrite argv; the replay driver ignores flags).
// The service allocates, frees and runs instrumented code on its own threads
// across inputs, which costs libFuzzer dearly (measured on 1500 inputs: 21 s
// of CPU with the defaults, 4.5 s with these):
//   -detect_leaks=0  else nearly every input looks like a leak and is
//                    followed by a full LeakSanitizer scan; it still checks
//                    the whole run at exit;
//   -entropic=0      else the rare-feature bookkeeping of the entropic
//                    schedule takes most of the time.
void DefaultFlags(int* argc, char*** argv) {
  static auto* args = new std::vector<char*>(*argv, *argv + *argc);
  static char detect_leaks[] = "-detect_leaks=0";
  static char entropic[] = "-entropic=0";
  for (char* flag : {detect_leaks, entropic}) {
    const std::string name(flag, std::string(flag).find('=') + 1);
    bool given = false;
    for (char* a : *args) given = given || std::string(a).rfind(name, 0) == 0;
    if (!given) args->insert(args->begin() + 1, flag);
  }
  *argc = static_cast<int>(args->size());
  args->push_back(nullptr);
  *argv = args->data();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  DefaultFlags(argc, argv);
  // Paths of any bytes are the point: not a log line for each one that is
  // not UTF-8 (protobuf logs it when it refuses the message).
  google::protobuf::SetLogHandler(nullptr);
  TheWorld();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = TheWorld();
  Reset(w);
  FuzzInput in(data, size);
  for (int i = 0; i < kMaxCalls && !in.empty(); ++i) {
    const Call call = Decode(in, w.model);
    Run(w, call);
    CheckDisk(w);
  }
  return 0;
}
