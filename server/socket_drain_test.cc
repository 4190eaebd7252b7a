#include "server/socket_drain.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ringstore::server {
namespace {

// A directory standing in for /proc/self/net.
class FakeProcNet : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
                        "/procnetXXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void Write(const std::string& name, const std::vector<std::string>& rows) {
    std::ofstream out(dir_ + "/" + name);
    out << "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
           "  timeout inode\n";
    for (const std::string& row : rows) out << row << "\n";
  }
  std::string dir_;
};

// Port 50051 is C383.
TEST_F(FakeProcNet, SumsTheSendQueuesOfThePortsConnections) {
  Write("tcp", {
      "   0: 00000000:C383 00000000:0000 0A 00000000:00000010 00:00000000 00000000  0 0 1",
      "   1: 0100007F:C383 0100007F:9C40 01 00001000:00000000 00:00000000 00000000  0 0 2",
      "   2: 0100007F:C383 0100007F:9C41 04 00000100:00000000 00:00000000 00000000  0 0 3",
      "   3: 0100007F:1F90 0100007F:9C42 01 00FFFFFF:00000000 00:00000000 00000000  0 0 4",
  });
  Write("tcp6", {
      "   0: 0000000000000000FFFF00000100007F:C383 0000000000000000FFFF00000100007F:D000 01 "
      "00000001:00000000 00:00000000 00000000  0 0 5",
  });
  // The listening row (0A) and port 8080's connection do not count.
  EXPECT_EQ(*QueuedBytes(50051, dir_), 0x1000 + 0x100 + 1);
  EXPECT_EQ(*QueuedBytes(8080, dir_), 0xFFFFFF);
  EXPECT_EQ(*QueuedBytes(9, dir_), 0);
}

TEST_F(FakeProcNet, AMissingTableIsEmpty) {
  Write("tcp", {"   1: 0100007F:C383 0100007F:9C40 01 00000002:00000000 00:00000000 0 0 0 2"});
  EXPECT_EQ(*QueuedBytes(50051, dir_), 2);
  EXPECT_EQ(*QueuedBytes(50051, dir_ + "/nowhere"), 0);
}

TEST_F(FakeProcNet, AnUnreadableRowIsAnError) {
  Write("tcp", {"   1: 0100007F:C383 0100007F:9C40 01 zz:00000000 00:00000000 0 0 0 2"});
  EXPECT_EQ(QueuedBytes(50051, dir_).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(FakeProcNet, WaitGivesUpAtTheDeadlineWithWhatIsLeft) {
  Write("tcp", {"   1: 0100007F:C383 0100007F:9C40 01 00000007:00000000 00:00000000 0 0 0 2"});
  const absl::Time start = absl::Now();
  EXPECT_EQ(*WaitForQueuedBytes(50051, start + absl::Milliseconds(50), dir_), 7);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
}

// The real table: bytes a peer has not read stay queued on the sender until
// it reads them.
TEST(QueuedBytesTest, SeesARealConnectionsUnreadBytes) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  const int port = ntohs(addr.sin_port);

  int client = socket(AF_INET, SOCK_STREAM, 0);
  // A small receive buffer so that the sender's queue fills.
  int small = 4096;
  setsockopt(client, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  EXPECT_EQ(*QueuedBytes(port), 0);

  const std::string data(256 << 10, 'x');
  ssize_t sent = send(server, data.data(), data.size(), MSG_DONTWAIT);
  ASSERT_GT(sent, 0);
  absl::StatusOr<int64_t> queued = WaitForQueuedBytes(port, absl::Now() + absl::Milliseconds(100));
  ASSERT_TRUE(queued.ok());
  EXPECT_GT(*queued, 0);

  // The peer reads everything: nothing is left.
  std::vector<char> buf(64 << 10);
  ssize_t total = 0;
  while (total < sent) {
    ssize_t n = recv(client, buf.data(), buf.size(), 0);
    ASSERT_GT(n, 0);
    total += n;
  }
  EXPECT_EQ(*WaitForQueuedBytes(port, absl::Now() + absl::Seconds(10)), 0);
  close(server);
  close(client);
  close(listener);
}

}  // namespace
}  // namespace ringstore::server
