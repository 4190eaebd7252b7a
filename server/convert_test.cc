#include "server/convert.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/engine/engine_selector.h"

namespace ringstore::server {
namespace {

TEST(ToProto, EveryEngineHasItsProtoBackend) {
  for (const storage::EngineKind& kind : storage::AllEngines()) {
    const std::string expected = absl::StrCat("BACKEND_", absl::AsciiStrToUpper(kind.name));
    EXPECT_EQ(v1::Backend_Name(ToProto(kind.backend)), expected) << kind.name;
  }
  EXPECT_EQ(ToProto(storage::Backend::kUnspecified), v1::BACKEND_UNSPECIFIED);
  EXPECT_EQ(ToProto(static_cast<storage::Backend>(99)), v1::BACKEND_UNSPECIFIED);
}

TEST(ToGrpcStatus, KeepsCodeAndMessage) {
  const grpc::Status s = ToGrpcStatus(absl::NotFoundError("no such file a/b"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "no such file a/b");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace ringstore::server
