// ringstore: the command-line client (DESIGN.md §4).
#include <iostream>
#include <string>
#include <vector>

#include "client/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h" || a == "help") {
      std::cout << ringstore::client::kUsage;
      return ringstore::client::kExitOk;
    }
  }
  ringstore::client::CliArgs parsed;
  std::string error;
  if (!ringstore::client::ParseArgs(args, &parsed, &error)) {
    std::cerr << "ringstore: " << error << "\n" << ringstore::client::kUsage;
    return ringstore::client::kExitUsage;
  }
  return ringstore::client::RunCommand(parsed);
}
