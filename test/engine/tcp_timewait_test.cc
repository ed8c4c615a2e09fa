// TIME-WAIT kept as a compact record once the application has closed its socket: the record
// ACKs a retransmitted FIN (and restarts the 2 MSL wait), answers an old SYN with an ACK and
// yields to a newer one (RFC 6191), blocks bind() like a TIME-WAIT socket, is bounded by
// max_time_wait, and costs a fraction of a socket.
#include "heap.h"
#include "tcp_harness.h"

using namespace th;
using namespace ms;

namespace {

int count_state(TcpLayer& L, const char* st) {
  std::vector<TcpSocketInfo> v;
  L.list(&v);
  int n = 0;
  for (auto& i : v) if (std::strcmp(i.state, st) == 0) n++;
  return n;
}

uint64_t tw_records(TcpLayer& L) { TcpStats s; L.stats(&s); return s.tw_records; }

/** A connects to B; `closer` (0: A, 1: B) closes first, the other side then closes too, so
 *  that the closer ends in TIME-WAIT with its socket gone. Every segment is captured. */
struct Closed {
  Net n;
  std::vector<Captured> out;
  Endpoint a_ep, b_ep;  // A's and B's ends
  TcpSocket* listener = nullptr;
  Closed(const TcpConfig& cfg, int closer) : n(cfg, cfg) {
    n.tap = [this](int from, const IpAddr& s, const IpAddr& d, const uint8_t* p, size_t len) {
      out.push_back(Captured{from, s, d, std::vector<uint8_t>(p, p + len)});
    };
    TcpSocket *a = nullptr, *b = nullptr;
    CHECK(connect_pair(n, &a, &b, 80, &listener));
    n.A().local_endpoint(a, &a_ep);
    n.B().local_endpoint(b, &b_ep);
    TcpLayer& first = closer == 0 ? n.A() : n.B();
    TcpLayer& second = closer == 0 ? n.B() : n.A();
    TcpSocket* fs = closer == 0 ? a : b;
    TcpSocket* ss = closer == 0 ? b : a;
    first.close(fs);
    CHECK(n.run([&] { return second.recv(ss, nullptr, 0) == 0 && (second.events(ss) & kEvReadable); }, 1000000));
    second.close(ss);
    n.advance(1000000);
  }
  /** a copy of the last segment from host `from` with all of `flags` set (from -1: none) */
  Captured last(int from, uint8_t flags) const {
    for (size_t i = out.size(); i-- > 0;)
      if (out[i].from == from && (out[i].seg().flags & flags) == flags) return out[i];
    return Captured{-1, {}, {}, {}};
  }
};

}  // namespace

TEST("TIME-WAIT record: the socket is freed; a retransmitted FIN is ACKed again and restarts 2 MSL") {
  TcpConfig cfg;  // timestamps on: the record's ACKs carry them
  Closed c(cfg, 0);
  CHECK_EQ(tw_records(c.n.A()), 1u);
  CHECK_EQ(count_state(c.n.A(), "TIME-WAIT"), 1);
  CHECK_EQ(c.n.A().socket_count(), 1u);
  const Captured fc = c.last(1, tcpw::kFin), ac = c.last(0, tcpw::kAck);
  CHECK(fc.from == 1 && ac.from == 0);
  if (fc.from != 1 || ac.from != 0) return;
  const Captured* fin = &fc;
  tcpw::TcpSegment f = fc.seg(), k0 = ac.seg();
  CHECK_EQ(k0.ack, f.seq + 1);  // A's last ACK acknowledged B's FIN
  // B's FIN again (its ACK was "lost"), 30 s into the wait
  c.n.advance(29000000);
  size_t before = c.out.size();
  std::vector<uint8_t> again = fin->bytes;
  c.n.A().input(fin->src, fin->dst, again.data(), again.size());
  CHECK_EQ(c.out.size(), before + 1);
  if (c.out.size() != before + 1) return;
  tcpw::TcpSegment k1 = c.out.back().seg();
  CHECK_EQ(c.out.back().from, 0);
  CHECK_EQ(int(k1.flags), int(tcpw::kAck));
  CHECK_EQ(k1.seq, k0.seq);
  CHECK_EQ(k1.ack, k0.ack);
  CHECK_EQ(k1.wnd, k0.wnd);
  CHECK(k1.opt.has_ts && k0.opt.has_ts);
  CHECK_EQ(k1.opt.tsecr, f.opt.tsval);
  CHECK(tcpw::seq_ge(k1.opt.tsval, k0.opt.tsval));
  // a segment with data is ACKed the same way; an RST is ignored (RFC 1337)
  auto data = build_segment(fin->src, fin->dst, f.sport, f.dport, f.seq, f.ack, tcpw::kAck, 1000, {}, {'x'});
  c.n.A().input(fin->src, fin->dst, data.data(), data.size());
  CHECK_EQ(c.out.size(), before + 2);
  auto rst = build_segment(fin->src, fin->dst, f.sport, f.dport, f.seq + 1, 0, tcpw::kRst, 0, {}, {});
  c.n.A().input(fin->src, fin->dst, rst.data(), rst.size());
  CHECK_EQ(c.out.size(), before + 2);
  CHECK_EQ(count_state(c.n.A(), "TIME-WAIT"), 1);
  // the wait restarted at the FIN: still there 60 s after the first start, gone 60 s after the FIN
  c.n.advance(35000000);
  CHECK_EQ(count_state(c.n.A(), "TIME-WAIT"), 1);
  c.n.advance(26000000);
  CHECK_EQ(count_state(c.n.A(), "TIME-WAIT"), 0);
  CHECK_EQ(c.n.A().socket_count(), 0u);
  c.n.B().close(c.listener);
}

TEST("TIME-WAIT record: an old SYN gets an ACK, a newer one takes the tuple over; bind() rules hold") {
  TcpConfig cfg;
  cfg.timestamps = false;  // newer is then decided by the sequence number (ISNs grow with time)
  Closed c(cfg, 1);        // the server closes first: B:80 <-> A:port in TIME-WAIT at B
  CHECK_EQ(tw_records(c.n.B()), 1u);
  CHECK_EQ(count_state(c.n.B(), "TIME-WAIT"), 1);
  const Captured ac = c.last(1, tcpw::kAck);
  CHECK_EQ(ac.from, 1);
  if (ac.from != 1) return;
  tcpw::TcpSegment k0 = ac.seg();
  IpAddr asrc = c.n.hosts[0].addr, bdst = c.n.hosts[1].addr;
  // an old duplicate SYN: ACKed (seq SND.NXT, ack RCV.NXT), the record stays
  size_t before = c.out.size();
  auto old = build_segment(asrc, bdst, c.a_ep.port, 80, k0.ack - 5000, 0, tcpw::kSyn, 1000, {}, {});
  c.n.B().input(asrc, bdst, old.data(), old.size());
  CHECK_EQ(c.out.size(), before + 1);
  if (c.out.size() == before + 1) {
    tcpw::TcpSegment k = c.out.back().seg();
    CHECK_EQ(int(k.flags), int(tcpw::kAck));
    CHECK_EQ(k.seq, k0.seq);
    CHECK_EQ(k.ack, k0.ack);
  }
  CHECK_EQ(count_state(c.n.B(), "TIME-WAIT"), 1);
  // the port is taken while the record lives: bind() without SO_REUSEADDR fails, with it works
  TcpSocket* x = c.n.B().open(4, 50);
  TcpSocket* y = c.n.B().open(4, 51);
  c.n.B().close(c.listener);
  CHECK_EQ(c.n.B().bind(x, c.n.ep(1, 80)), -EADDRINUSE);
  CHECK_EQ(c.n.B().set_option(y, kSolSocket, kSoReuseaddr, 1), 0);
  CHECK_EQ(c.n.B().bind(y, c.n.ep(1, 80)), 0);
  CHECK_EQ(c.n.B().listen(y, 16), 0);
  c.n.B().close(x);
  // the client comes back from the same port 2 s later: its SYN is newer, the record yields,
  // the new listener accepts
  c.n.advance(2000000);
  TcpSocket* a2 = c.n.A().open(4, 60);
  CHECK_EQ(c.n.A().set_option(a2, kSolSocket, kSoReuseaddr, 1), 0);
  CHECK_EQ(c.n.A().bind(a2, c.a_ep), 0);
  CHECK_EQ(c.n.A().connect(a2, c.n.ep(1, 80)), -EINPROGRESS);
  TcpSocket* b2 = nullptr;
  CHECK(c.n.run([&] { if (!b2) { int e; b2 = c.n.B().accept(y, &e, 61); } return b2 && (c.n.A().events(a2) & kEvWritable); }, 5000000));
  CHECK_EQ(count_state(c.n.B(), "TIME-WAIT"), 0);
  CHECK(b2 && std::strcmp(c.n.B().state_name(b2), "ESTAB") == 0);
  if (b2) c.n.B().abort(b2);
  c.n.A().abort(a2);
  c.n.B().close(y);
  c.n.advance(1000000);
  CHECK_EQ(c.n.A().socket_count() + c.n.B().socket_count(), 0u);
}

TEST("TIME-WAIT records: bounded by max_time_wait, and a fraction of a socket each") {
  TcpConfig cfg;
  cfg.max_time_wait = 200;
  Net n(cfg, cfg);
  TcpSocket* l = n.B().open(4, 100000);
  CHECK_EQ(n.B().bind(l, n.ep(1, 80)), 0);
  CHECK_EQ(n.B().listen(l, 512), 0);
  auto one = [&](int i) {
    TcpSocket* c = n.A().open(4, i);
    CHECK_EQ(n.A().connect(c, n.ep(1, 80)), -EINPROGRESS);
    TcpSocket* s = nullptr;
    CHECK(n.run([&] { if (!s) { int e; s = n.B().accept(l, &e, 5); } return s && (n.A().events(c) & kEvWritable); }, 1000000));
    n.A().close(c);
    if (s) n.B().close(s);
    n.advance(10000);
  };
  // the harness's own record of notifications grows with every event: not the layer's memory
  auto quiet = [&] { for (auto& h : n.hosts) std::vector<std::pair<int, uint32_t>>().swap(h.notes); };
  for (int i = 0; i < 10; i++) one(i);  // warm up the tables
  n.advance(61000000);
  CHECK_EQ(n.A().socket_count(), 0u);
  quiet();
  size_t base = heap_in_use();
  for (int i = 0; i < 150; i++) one(i);
  // a freed socket is deleted once its pending timer entries have run (RTO, delayed ACK): a few
  // seconds, far less than the 60 s of TIME-WAIT
  n.advance(5000000);
  quiet();
  // both ends closed at once (simultaneous close): each keeps the connection in TIME-WAIT
  size_t records = size_t(count_state(n.A(), "TIME-WAIT") + count_state(n.B(), "TIME-WAIT"));
  CHECK_EQ(count_state(n.A(), "TIME-WAIT"), 150);
  size_t per = records ? (heap_in_use() - base) / records : 0;
  std::printf("  heap per TIME-WAIT entry: %zu B over %zu (sizeof TcpSocket %zu, TwRecord %zu)\n", per, records,
              sizeof(TcpSocket), sizeof(TwRecord));
  CHECK(per <= 256);  // a socket alone would be sizeof(TcpSocket)
  for (int i = 0; i < 300; i++) one(i);
  CHECK_EQ(count_state(n.A(), "TIME-WAIT"), 200);
  CHECK_EQ(n.A().socket_count(), 200u);
  CHECK_EQ(tw_records(n.A()), 210u);
  n.advance(61000000);
  CHECK_EQ(count_state(n.A(), "TIME-WAIT"), 0);
  CHECK_EQ(n.A().socket_count(), 0u);
  n.B().close(l);
}

TEST_MAIN()
