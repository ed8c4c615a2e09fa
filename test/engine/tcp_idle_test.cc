// Memory of idle connections: an established connection that has exchanged a little data and
// gone quiet keeps no empty buffers (receive ring, the send buffer's spare chunk, retransmission
// queue and scoreboard storage): about its connection block and table entries, no more.
#include "heap.h"
#include "tcp_harness.h"

using namespace th;
using namespace ms;

TEST("idle connections after an exchange keep no empty buffers") {
  TcpConfig cfg;  // SACK and timestamps on: the retransmission queue is used
  Net n(cfg, cfg);
  TcpSocket* l = n.B().open(4, 100000);
  CHECK_EQ(n.B().bind(l, n.ep(1, 80)), 0);
  CHECK_EQ(n.B().listen(l, 512), 0);
  auto quiet = [&] { for (auto& h : n.hosts) std::vector<std::pair<int, uint32_t>>().swap(h.notes); };
  std::vector<TcpSocket*> cs, ss;
  auto open_some = [&](int count) {
    for (int i = 0; i < count; i++) {
      TcpSocket* c = n.A().open(4, int(cs.size()));
      CHECK_EQ(n.A().connect(c, n.ep(1, 80)), -EINPROGRESS);
      TcpSocket* s = nullptr;
      CHECK(n.run([&] { if (!s) { int e; s = n.B().accept(l, &e, 5); } return s && (n.A().events(c) & kEvWritable); }, 1000000));
      if (!s) return;
      // a request and a response of 300 bytes each
      std::vector<uint8_t> msg(300, 'q'), got(1000);
      CHECK_EQ(n.A().send(c, msg.data(), msg.size()), 300);
      CHECK(n.run([&] { return n.B().recv_available(s) == 300; }, 1000000));
      CHECK_EQ(n.B().recv(s, got.data(), got.size()), 300);
      CHECK_EQ(n.B().send(s, msg.data(), msg.size()), 300);
      CHECK(n.run([&] { return n.A().recv_available(c) == 300; }, 1000000));
      CHECK_EQ(n.A().recv(c, got.data(), got.size()), 300);
      cs.push_back(c);
      ss.push_back(s);
    }
    n.advance(3000000);  // delayed ACKs out, every timer entry of the exchange run
  };
  open_some(20);  // warm up the tables
  quiet();
  const int N = 200;
  size_t base = heap_in_use();
  open_some(N);
  quiet();
  size_t per = (heap_in_use() - base) / (2 * N);
  std::printf("  heap per idle socket after a 300-byte exchange each way: %zu B (sizeof TcpSocket %zu)\n", per,
              sizeof(TcpSocket));
  CHECK(per <= sizeof(TcpSocket) + 256);
  // and they still work: another exchange on the last one
  std::vector<uint8_t> msg(5000, 'r'), got(8000);
  CHECK_EQ(n.A().send(cs.back(), msg.data(), msg.size()), 5000);
  CHECK(n.run([&] { return n.B().recv_available(ss.back()) == 5000; }, 1000000));
  CHECK_EQ(n.B().recv(ss.back(), got.data(), got.size()), 5000);
  CHECK(std::equal(msg.begin(), msg.end(), got.begin()));
  for (TcpSocket* c : cs) n.A().abort(c);
  for (TcpSocket* s : ss) n.B().abort(s);
  n.B().close(l);
  n.advance(3000000);
  CHECK_EQ(n.A().socket_count() + n.B().socket_count(), 0u);
}

TEST_MAIN()
