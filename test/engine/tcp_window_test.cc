// The sender respects the receiver's advertised right edge when an ACK that advances SND.UNA
// arrives on a segment with an old sequence number (the peer retransmitting its own data while
// its receive window closes). Found against Linux over VXLAN: the engine sent 260 KB beyond
// the kernel's window, Linux dropped it and ignored the ACKs riding on it, and both ends
// stalled for good.
#include "tcp_harness.h"

using namespace th;
using namespace ms;

namespace {

std::vector<uint8_t> ts_opt(uint32_t val, uint32_t ecr) {
  std::vector<uint8_t> o = {1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0};
  tcpw::put32(&o[4], val);
  tcpw::put32(&o[8], ecr);
  return o;
}

}  // namespace

TEST("send window: an old-sequence segment acking new data does not widen the peer's window") {
  TcpConfig cfg;
  Net n(cfg, cfg);
  TcpSocket *a = nullptr, *b = nullptr;
  CHECK(connect_pair(n, &a, &b));
  if (!a || !b) return;
  n.advance(100000);
  // from now on nothing B sends reaches A: the test plays A by hand
  n.link[1].blackhole = true;
  TcpSocket* bs = b;
  uint8_t sc = bs->snd_wscale;
  uint32_t mss = bs->mss;
  uint32_t seqA = bs->rcv_nxt, una0 = bs->snd_una;
  uint32_t ts = bs->ts_recent + 1;
  auto inject = [&](uint32_t seq, uint32_t ack, uint16_t wnd, size_t len) {
    std::vector<uint8_t> data(len, 'a');
    auto seg = build_segment(n.hosts[0].addr, n.hosts[1].addr, a->local.port, b->local.port, seq, ack, tcpw::kAck, wnd,
                             bs->ts_ok ? ts_opt(ts++, 0) : std::vector<uint8_t>{}, data);
    n.B().input(n.hosts[0].addr, n.hosts[1].addr, seg.data(), seg.size());
  };
  // A offers 8 segments of window on the second of two segments of its own data (the first
  // is lost: B holds the second out of order)
  uint32_t w1 = (8 * mss) >> sc;
  uint32_t edge1 = una0 + (w1 << sc);
  inject(seqA + 100, una0, uint16_t(w1), 100);
  // B has much to send: it fills the window, not more
  std::vector<uint8_t> big(64 * mss, 'b');
  CHECK(n.B().send(b, big.data(), big.size()) > 0);
  CHECK(!tcpw::seq_gt(bs->snd_max, edge1));
  CHECK(bs->snd_max != una0);
  // A's application reads nothing: A acks 4 segments and its window shrinks by as much (the
  // right edge stays), on the retransmission of its lost first segment: a sequence number
  // older than that of the segment that last set the window (SND.WL1)
  uint32_t acked = 4 * mss;
  uint32_t w2 = ((w1 << sc) - acked) >> sc;
  uint32_t edge2 = una0 + acked + (w2 << sc);
  CHECK(!tcpw::seq_gt(edge2, edge1));
  // (w2 rounds down: the new edge may sit a little before what B already sent, legally)
  uint32_t limit = tcpw::seq_max(bs->snd_max, edge2);
  inject(seqA, una0 + acked, uint16_t(w2), 100);
  CHECK_EQ(bs->snd_una, una0 + acked);
  if (tcpw::seq_gt(bs->snd_max, limit))
    std::printf("  sent up to %u, %u bytes beyond the advertised edge %u\n", bs->snd_max, bs->snd_max - limit, limit);
  CHECK(!tcpw::seq_gt(bs->snd_max, limit));
  // a window update with a newer sequence opens it again, and B sends on
  uint32_t before = bs->snd_max;
  inject(seqA + 200, una0 + acked, uint16_t(w1), 0);
  CHECK_EQ(bs->rcv_nxt, seqA + 200);
  CHECK(tcpw::seq_gt(bs->snd_max, before));
  CHECK(!tcpw::seq_gt(bs->snd_max, una0 + acked + (w1 << sc)));
  n.A().abort(a);
  n.B().abort(b);
}

TEST_MAIN()
