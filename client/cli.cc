#include "client/cli.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli_output.h"
#include "client/client.h"
#include "client/get_many.h"
#include "client/upload_tracker.h"

namespace ringstore::client {

const char kUsage[] =
    "usage: ringstore [--server=HOST:PORT] [--token_file=F] [--tls_ca=F]\n"
    "                 [--tls_cert=F --tls_key=F] [--json] COMMAND\n"
    "commands:\n"
    "  put LOCAL|- REMOTE [--if_absent] [--resume] [--retries=N]\n"
    "      a file of 8 MiB or more (or any file with --resume) is a resumable\n"
    "      upload: a broken stream resumes from what the server persisted, up to\n"
    "      N times in a row (default 5); --resume continues the upload an earlier\n"
    "      run left unfinished (tracked under $XDG_CACHE_HOME/ringstore/)\n"
    "  get REMOTE LOCAL|- [--offset=N] [--length=N] [--retries=N]\n"
    "      a broken download resumes where it stopped, on the same generation of\n"
    "      the file, up to N times (default 5)\n"
    "  get REMOTE... DIR/    get --prefix=P DIR/\n"
    "      many files (or every file under P, from ls) into DIR/<remote path>,\n"
    "      creating subdirectories, each written atomically and checked by CRC32C,\n"
    "      up to 1000 per BatchDownload call; exit 1 if any file failed\n"
    "  ls [PREFIX] [--long]\n"
    "  stat REMOTE\n"
    "  rm REMOTE\n"
    "  info\n"
    "  token new [--scopes=read,write,delete,admin] [--prefix=P]\n"
    "      prints a fresh token and its line for the server's --auth_tokens file\n"
    "      (scopes default to read; P limits it to paths that start with P)\n"
    "--server defaults to $RINGSTORE_SERVER, then 127.0.0.1:50051.\n"
    "The token sent is --token_file's contents, else $RINGSTORE_TOKEN; it is sent\n"
    "only over TLS (--tls_ca or --tls_cert) or to a loopback address.\n"
    "TLS: --tls_ca=F trusts the PEM CA F (else the system's CAs when another TLS flag\n"
    "is given); --tls_cert/--tls_key present a client certificate (mTLS).\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

namespace {

std::string ReadFileOrDie(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  *ok = static_cast<bool>(in);
  return ss.str();
}

// Reads a PEM file for a --tls_* flag; "" on success, else why not.
std::string ReadPemFile(const std::string& path, std::string* pem) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::strerror(errno);
  pem->clear();
  char buf[16384];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) pem->append(buf, static_cast<size_t>(n));
  }
  const int err = errno;
  ::close(fd);
  if (n < 0) return std::strerror(err);
  if (pem->find("-----BEGIN ") == std::string::npos) return "not a PEM file";
  return "";
}

void PrintInfoHuman(const v1::FileInfo& f, const std::string& backend) {
  std::cout << "path: " << f.path() << "\nsize: " << f.size()
            << "\ngeneration: " << f.generation() << "\nmodified: " << FormatModified(f)
            << "\ncrc32c: " << f.crc32c() << "\nserved by " << backend << "\n";
}

void PrintPut(const CliArgs& a, const v1::FileInfo& info, const std::string& backend) {
  if (a.json) {
    std::cout << FileInfoJson(info, backend) << "\n";
  } else {
    std::cout << "uploaded " << info.path() << " (" << info.size() << " bytes, generation "
              << info.generation() << ") served by " << backend << "\n";
  }
}

// A resumable put of the regular file `fd` (client.h PutResumable), with
// its tracker (upload_tracker.h): --resume continues the tracked session.
int PutResumably(Client& client, const CliArgs& a, const std::string& server, int fd,
                 const struct stat& st, PutOptions options) {
  const std::string& remote = a.args[1];
  const UploadTracker tracker("", server, remote, st.st_size,
                              st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
  std::string upload_id = a.resume ? tracker.Read() : "";
  options.retries = static_cast<int>(a.retries);
  options.on_session = [&tracker](const std::string& id) {
    if (std::string error = tracker.Write(id); !error.empty()) {
      std::cerr << "ringstore: " << error << " (put --resume will not find this upload)\n";
    }
  };
  ProgressBar bar;
  options.progress = bar.callback();
  v1::FileInfo info;
  std::string backend;
  grpc::Status s = client.PutResumable(fd, remote, options, &upload_id, &info, &backend);
  bar.Clear();
  if (!s.ok()) {
    if (IsRetryable(s.error_code()) && !upload_id.empty()) {
      std::cerr << "ringstore: the upload is unfinished; run the same put with --resume to "
                   "continue it\n";
    } else {
      // Failed for good: the session, if any, is of no further use.
      if (!upload_id.empty()) client.CancelUpload(upload_id);
      tracker.Remove();
    }
    return Fail(s);
  }
  tracker.Remove();
  PrintPut(a, info, backend);
  return kExitOk;
}

int CmdPut(Client& client, const CliArgs& a, const std::string& server) {
  const std::string& local = a.args[0];
  const std::string& remote = a.args[1];
  int fd = STDIN_FILENO;
  PutOptions options;
  options.if_absent = a.if_absent;
  if (local != "-") {
    fd = open(local.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return LocalFail(absl::StrCat("cannot open ", local, ": ", std::strerror(errno)));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      options.size = st.st_size;
      if (a.resume || st.st_size >= kResumableMinBytes) {
        const int code = PutResumably(client, a, server, fd, st, options);
        close(fd);
        return code;
      }
    }
  }
  ProgressBar bar;
  options.progress = bar.callback();
  v1::FileInfo info;
  std::string backend;
  grpc::Status s = client.Put(fd, remote, options, &info, &backend);
  bar.Clear();
  if (fd != STDIN_FILENO) close(fd);
  if (!s.ok()) return Fail(s);
  PrintPut(a, info, backend);
  return kExitOk;
}

int CmdGet(Client& client, const CliArgs& a) {
  const std::string& remote = a.args[0];
  const std::string& local = a.args[1];
  GetOptions options;
  options.offset = a.offset;
  options.length = a.length;
  options.retries = static_cast<int>(a.retries);
  ProgressBar bar;
  options.progress = bar.callback();
  v1::FileInfo info;
  std::string backend;
  if (local == "-") {
    grpc::Status s = client.Get(remote, options, STDOUT_FILENO, &info, &backend);
    bar.Clear();
    if (!s.ok()) return Fail(s);
    // stdout carries the data: the summary goes to stderr.
    if (a.json) std::cerr << FileInfoJson(info, backend) << "\n";
    return kExitOk;
  }
  // Download next to LOCAL, then rename: LOCAL is complete or untouched.
  // Like curl, wget and gsutil, no fsync: the service's copy is the durable
  // one, and flushing a 1 GiB local copy to disk doubled the time of a get.
  std::string tmp = absl::StrCat(local, ".ringstore-XXXXXX");
  const int fd = mkstemp(tmp.data());
  if (fd < 0) return LocalFail(absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  fchmod(fd, 0644);
  grpc::Status s = client.Get(remote, options, fd, &info, &backend);
  bar.Clear();
  if (s.ok() && close(fd) != 0) {
    s = grpc::Status(grpc::StatusCode::INTERNAL, absl::StrCat("close: ", std::strerror(errno)));
  } else if (!s.ok()) {
    close(fd);
  }
  if (s.ok() && rename(tmp.c_str(), local.c_str()) != 0) {
    s = grpc::Status(grpc::StatusCode::INTERNAL,
                     absl::StrCat("rename to ", local, ": ", std::strerror(errno)));
  }
  if (!s.ok()) {
    unlink(tmp.c_str());
    return Fail(s);
  }
  if (a.json) {
    std::cout << FileInfoJson(info, backend) << "\n";
  } else {
    std::cout << "downloaded " << info.path() << " to " << local << " served by " << backend
              << "\n";
  }
  return kExitOk;
}

int CmdLs(Client& client, const CliArgs& a) {
  const std::string prefix = a.args.empty() ? "" : a.args[0];
  std::string backend;
  std::vector<v1::FileInfo> files;
  grpc::Status s =
      client.List(prefix, [&files](const v1::FileInfo& f) { files.push_back(f); }, &backend);
  if (!s.ok()) return Fail(s);
  for (const v1::FileInfo& f : files) {
    if (a.json) {
      std::cout << FileInfoJson(f, backend) << "\n";
    } else if (a.long_format) {
      std::cout << absl::StrFormat("%12d  %16d  %s  %s\n", f.size(), f.generation(),
                                   FormatModified(f), f.path());
    } else {
      std::cout << f.path() << "\n";
    }
  }
  // stdout stays a clean list; the engine is named on stderr.
  if (!a.json) std::cerr << files.size() << " files, served by " << backend << "\n";
  return kExitOk;
}

int CmdStat(Client& client, const CliArgs& a) {
  v1::FileInfo info;
  std::string backend;
  grpc::Status s = client.Stat(a.args[0], &info, &backend);
  if (!s.ok()) return Fail(s);
  if (a.json) {
    std::cout << FileInfoJson(info, backend) << "\n";
  } else {
    PrintInfoHuman(info, backend);
  }
  return kExitOk;
}

int CmdRm(Client& client, const CliArgs& a) {
  std::string backend;
  grpc::Status s = client.Delete(a.args[0], &backend);
  if (!s.ok()) return Fail(s);
  if (a.json) {
    std::cout << "{\"path\":" << JsonString(a.args[0]) << ",\"deleted\":true,\"backend\":"
              << JsonString(backend) << "}\n";
  } else {
    std::cout << "deleted " << a.args[0] << " served by " << backend << "\n";
  }
  return kExitOk;
}

int CmdInfo(Client& client, const CliArgs& a) {
  v1::ServerInfo info;
  grpc::Status s = client.GetServerInfo(&info);
  if (!s.ok()) return Fail(s);
  std::vector<std::string> available(info.engines_available().begin(),
                                     info.engines_available().end());
  std::vector<std::string> features(info.io_uring_features().begin(),
                                    info.io_uring_features().end());
  if (a.json) {
    auto list = [](const std::vector<std::string>& v) {
      std::vector<std::string> quoted;
      for (const std::string& s : v) quoted.push_back(JsonString(s));
      return absl::StrCat("[", absl::StrJoin(quoted, ","), "]");
    };
    std::cout << "{\"engine\":" << JsonString(info.engine())
              << ",\"backend\":" << JsonString(BackendName(info.backend()))
              << ",\"engines_available\":" << list(available)
              << ",\"io_uring_features\":" << list(features)
              << ",\"registered_buffer_count\":" << info.registered_buffer_count()
              << ",\"registered_buffer_size\":" << info.registered_buffer_size()
              << ",\"buffers_registered\":" << (info.buffers_registered() ? "true" : "false")
              << ",\"max_chunk_bytes\":" << info.max_chunk_bytes()
              << ",\"version\":" << JsonString(info.version()) << "}\n";
  } else {
    std::cout << "engine: " << info.engine() << "\n";
    if (available.empty()) {
      // A server with auth shows its details to admin tokens only.
      std::cout << "details: not shown to this token (they need the admin scope)\n";
    } else {
      std::cout << "engines available: " << absl::StrJoin(available, ", ") << "\nbuffers: "
                << info.registered_buffer_count() << " x " << info.registered_buffer_size()
                << " bytes (registered with the kernel: "
                << (info.buffers_registered() ? "yes" : "no") << ")\n";
    }
    if (!features.empty()) std::cout << "io_uring features: " << absl::StrJoin(features, ", ") << "\n";
    std::cout << "max chunk: " << info.max_chunk_bytes() << " bytes\nversion: " << info.version()
              << "\nserved by " << info.engine() << "\n";
  }
  return kExitOk;
}

int CmdTokenNew(const CliArgs& a) {
  const std::string scopes = a.scopes.empty() ? kDefaultTokenScopes : a.scopes;
  const std::string token = NewToken();
  if (token.empty()) return LocalFail("getrandom failed: no token made");
  const std::string line = TokenFileLine(token, scopes, a.prefix);
  if (a.json) {
    std::cout << "{\"token\":" << JsonString(token) << ",\"line\":" << JsonString(line)
              << ",\"scopes\":" << JsonString(scopes) << ",\"prefix\":" << JsonString(a.prefix)
              << "}\n";
  } else {
    std::cout << token << "\n"
              << "# the token above goes to the client (--token_file or $RINGSTORE_TOKEN);\n"
              << "# this line goes into the server's --auth_tokens file (then SIGHUP it):\n"
              << line << "\n";
  }
  return kExitOk;
}

}  // namespace

bool IsLoopbackTarget(const std::string& target) {
  absl::string_view t = target;
  if (absl::StartsWith(t, "unix:") || absl::StartsWith(t, "unix-abstract:")) return true;
  if (absl::ConsumePrefix(&t, "dns:")) {
    // dns://AUTHORITY/HOST:PORT or dns:///HOST:PORT
    if (absl::ConsumePrefix(&t, "//")) {
      const size_t slash = t.find('/');
      if (slash == absl::string_view::npos) return false;
      t.remove_prefix(slash + 1);
    }
  } else if (!absl::ConsumePrefix(&t, "ipv4:")) {
    absl::ConsumePrefix(&t, "ipv6:");
  }
  absl::string_view host = t;
  if (absl::ConsumePrefix(&host, "[")) {
    const size_t close = host.find(']');
    if (close == absl::string_view::npos) return false;
    host = host.substr(0, close);
  } else if (const size_t colon = host.rfind(':');
             colon != absl::string_view::npos && host.find(':') == colon) {
    host = host.substr(0, colon);  // HOST:PORT; more colons: a bare IPv6
  }
  const std::string h(host);
  if (absl::AsciiStrToLower(h) == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

std::string NewToken() {
  unsigned char bytes[32];
  size_t have = 0;
  while (have < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + have, sizeof(bytes) - have, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    have += static_cast<size_t>(n);
  }
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

std::string TokenFileLine(const std::string& token, const std::string& scopes,
                          const std::string& prefix) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  std::string line = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
  absl::StrAppend(&line, " ", scopes);
  if (!prefix.empty()) absl::StrAppend(&line, " ", prefix);
  return line;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

std::string FormatModified(const v1::FileInfo& info) {
  const absl::Time t = absl::FromUnixSeconds(info.modified().seconds()) +
                       absl::Nanoseconds(info.modified().nanos());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

std::string FileInfoJson(const v1::FileInfo& info, const std::string& backend) {
  return absl::StrCat("{\"path\":", JsonString(info.path()), ",\"size\":", info.size(),
                      ",\"generation\":", info.generation(), ",\"modified\":",
                      JsonString(FormatModified(info)), ",\"crc32c\":", info.crc32c(),
                      ",\"backend\":", JsonString(backend), "}");
}

int RunCommand(const CliArgs& a) {
  if (a.command == "token") return CmdTokenNew(a);  // no server involved
  ClientOptions options;
  options.server = a.server;
  if (options.server.empty()) {
    const char* env = std::getenv("RINGSTORE_SERVER");
    options.server = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
  }
  bool ok = true;
  const struct {
    const char* flag;
    const std::string& path;
    std::string* pem;
  } tls_files[] = {{"tls_ca", a.tls_ca, &options.tls_ca_pem},
                   {"tls_cert", a.tls_cert, &options.tls_cert_pem},
                   {"tls_key", a.tls_key, &options.tls_key_pem}};
  for (const auto& f : tls_files) {
    if (f.path.empty()) continue;
    if (std::string error = ReadPemFile(f.path, f.pem); !error.empty()) {
      return LocalFail(absl::StrCat("cannot use --", f.flag, " file ", f.path, ": ", error));
    }
  }
  if (!a.token_file.empty()) {
    options.token = std::string(absl::StripAsciiWhitespace(ReadFileOrDie(a.token_file, &ok)));
    if (!ok) return LocalFail(absl::StrCat("cannot read --token_file ", a.token_file));
  } else if (const char* env = std::getenv("RINGSTORE_TOKEN"); env != nullptr) {
    options.token = std::string(absl::StripAsciiWhitespace(env));
  }
  // The token is never printed, not even in these refusals.
  const char* const source = a.token_file.empty() ? "$RINGSTORE_TOKEN" : "--token_file";
  for (char c : options.token) {
    if (c < 0x21 || c > 0x7e) {
      return LocalFail(absl::StrCat("the token from ", source,
                                    " must be one word of printable ASCII characters"));
    }
  }
  const bool tls = !a.tls_ca.empty() || !a.tls_cert.empty();  // client.h: any TLS option
  if (!options.token.empty() && !tls && !IsLoopbackTarget(options.server)) {
    return LocalFail(absl::StrCat(
        "refusing to send the token from ", source, " in plaintext to ", options.server,
        ", which is not a loopback address: use TLS (--tls_ca) or drop the token"));
  }
  Client client(options);
  if (a.command == "put") return CmdPut(client, a, options.server);
  if (IsGetMany(a)) return CmdGetMany(client, a);
  if (a.command == "get") return CmdGet(client, a);
  if (a.command == "ls") return CmdLs(client, a);
  if (a.command == "stat") return CmdStat(client, a);
  if (a.command == "rm") return CmdRm(client, a);
  return CmdInfo(client, a);
}

}  // namespace ringstore::client
