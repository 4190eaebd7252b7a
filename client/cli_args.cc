// The CLI's command line: ParseArgs (cli.h), which checks every flag and
// argument before anything touches the network.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cli.h"

namespace ringstore::client {
namespace {

struct CommandShape {
  const char* name;
  size_t min_args;
  size_t max_args;
};

constexpr CommandShape kCommands[] = {
    {"put", 2, 2}, {"get", 1, SIZE_MAX}, {"ls", 0, 1},
    {"stat", 1, 1}, {"rm", 1, 1}, {"info", 0, 0}, {"token", 1, 1},
};

// The scope names of server/auth.h's tokens file.
constexpr const char* kScopeNames[] = {"read", "write", "delete", "admin"};

bool ValidScopes(const std::string& scopes, std::string* error) {
  for (absl::string_view name : absl::StrSplit(scopes, ',')) {
    bool known = false;
    for (const char* s : kScopeNames) known |= name == s;
    if (!known) {
      *error = absl::StrCat("--scopes is a comma list of read, write, delete, admin; got \"",
                            scopes, "\"");
      return false;
    }
  }
  return true;
}

// A prefix the tokens file can hold: one field, not a comment, relative.
bool ValidPrefix(const std::string& prefix, std::string* error) {
  bool ok = prefix.empty() || (prefix[0] != '#' && prefix[0] != '/');
  for (char c : prefix) {
    const unsigned char u = static_cast<unsigned char>(c);
    ok &= u > 0x20 && u != 0x7f;
  }
  if (!ok) {
    *error = "--prefix must not start with # or /, nor contain spaces or control characters";
  }
  return ok;
}

bool ParseInt(const std::string& flag, const std::string& value, int64_t* out,
              std::string* error) {
  if (!absl::SimpleAtoi(value, out) || *out < 0) {
    *error = absl::StrCat("--", flag, " needs a non-negative integer, got \"", value, "\"");
    return false;
  }
  return true;
}

}  // namespace

bool ParseArgs(const std::vector<std::string>& argv, CliArgs* out, std::string* error) {
  std::vector<std::string> positional;
  bool has_retries = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    bool* boolean = name == "json"        ? &out->json
                    : name == "if_absent" ? &out->if_absent
                    : name == "resume"    ? &out->resume
                    : name == "long"      ? &out->long_format
                                          : nullptr;
    if (boolean != nullptr) {
      if (has_value && value != "true" && value != "false") {
        *error = absl::StrCat("--", name, " takes no value");
        return false;
      }
      *boolean = !has_value || value == "true";
      continue;
    }
    const bool valued = name == "server" || name == "token_file" || name == "tls_ca" ||
                        name == "tls_cert" || name == "tls_key" || name == "offset" ||
                        name == "length" || name == "retries" || name == "scopes" ||
                        name == "prefix";
    if (!valued) {
      *error = absl::StrCat("unknown flag --", name);
      return false;
    }
    if (!has_value) {
      if (i + 1 >= argv.size()) {
        *error = absl::StrCat("--", name, " needs a value");
        return false;
      }
      value = argv[++i];
    }
    if (name == "server") out->server = value;
    if (name == "token_file") out->token_file = value;
    if (name == "tls_ca") out->tls_ca = value;
    if (name == "tls_cert") out->tls_cert = value;
    if (name == "tls_key") out->tls_key = value;
    if (name == "offset" && !ParseInt(name, value, &out->offset, error)) return false;
    if (name == "length" && !ParseInt(name, value, &out->length, error)) return false;
    if (name == "retries" && !ParseInt(name, value, &out->retries, error)) return false;
    if (name == "retries") has_retries = true;
    if (name == "scopes" && !ValidScopes(value, error)) return false;
    if (name == "scopes") out->scopes = value;
    if (name == "prefix" && !ValidPrefix(value, error)) return false;
    if (name == "prefix") out->prefix = value;
  }
  if (out->tls_cert.empty() != out->tls_key.empty()) {
    *error = "--tls_cert and --tls_key come together (a client certificate and its key)";
    return false;
  }
  if (positional.empty()) {
    *error = "no command";
    return false;
  }
  out->command = positional[0];
  out->args.assign(positional.begin() + 1, positional.end());
  const CommandShape* shape = nullptr;
  for (const CommandShape& c : kCommands) {
    if (out->command == c.name) shape = &c;
  }
  if (shape == nullptr) {
    *error = absl::StrCat("unknown command \"", out->command, "\"");
    return false;
  }
  if (out->args.size() < shape->min_args || out->args.size() > shape->max_args) {
    *error = absl::StrCat("wrong number of arguments for ", out->command);
    return false;
  }
  const bool put = out->command == "put", get = out->command == "get";
  if ((out->if_absent || out->resume) && !put) {
    *error = "--if_absent and --resume apply to put only";
    return false;
  }
  if ((out->offset != 0 || out->length != 0) && !get) {
    *error = "--offset and --length apply to get only";
    return false;
  }
  if (has_retries && !get && !put) {
    *error = "--retries applies to get and put only";
    return false;
  }
  if (put && out->resume && out->args[0] == "-") {
    *error = "--resume needs a local file: an upload from stdin cannot be resumed";
    return false;
  }
  if (out->retries < 0 || out->retries > 100) {
    *error = "--retries must be in [0, 100]";
    return false;
  }
  if (out->long_format && out->command != "ls") {
    *error = "--long applies to ls only";
    return false;
  }
  if (out->command == "token" && out->args[0] != "new") {
    *error = absl::StrCat("unknown token command \"", out->args[0], "\" (only: token new)");
    return false;
  }
  if (!out->scopes.empty() && out->command != "token") {
    *error = "--scopes applies to token new only";
    return false;
  }
  if (!out->prefix.empty() && !get && out->command != "token") {
    *error = "--prefix applies to token new and get only";
    return false;
  }
  if (get) {
    // get REMOTE LOCAL, get REMOTE... DIR/, get --prefix=P DIR/
    const bool many = !out->prefix.empty() || out->args.size() > 2 ||
                      (out->args.size() == 2 && out->args[1].size() > 1 &&
                       out->args[1].back() == '/');
    if (!out->prefix.empty() && out->args.size() != 1) {
      *error = "get --prefix=P takes one argument: the local directory";
      return false;
    }
    if (out->prefix.empty() && out->args.size() < 2) {
      *error = "wrong number of arguments for get";
      return false;
    }
    if (many && (out->offset != 0 || out->length != 0)) {
      *error = "--offset and --length apply to a get of one file";
      return false;
    }
    if (many && out->args.back() == "-") {
      *error = "a get of several files needs a local directory, not -";
      return false;
    }
  }
  return true;
}

}  // namespace ringstore::client
