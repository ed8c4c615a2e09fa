// RACK-TLP (RFC 8985), D-SACK (RFC 2883) and the undo of spurious congestion responses,
// driven through the two-host harness with targeted drops and delays.
#include "tcp_harness.h"

using namespace th;
using namespace ms;

namespace {

/** a data segment from host `from` (payload > 0): its sequence number */
bool data_seg(const uint8_t* p, size_t n, uint32_t* seq, size_t* plen) {
  tcpw::TcpSegment sg;
  if (!sg.parse(p, n) || sg.plen == 0) return false;
  *seq = sg.seq;
  *plen = sg.plen;
  return true;
}

TcpStats stats_of(TcpLayer& L) { TcpStats st; L.stats(&st); return st; }

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = uint8_t(i * 131 + 7);
  return v;
}

/** receive everything available on B into out */
void drain(Net& n, TcpSocket* b, std::vector<uint8_t>* out) {
  uint8_t buf[65536];
  for (;;) {
    long r = n.B().recv(b, buf, sizeof buf);
    if (r <= 0) return;
    out->insert(out->end(), buf, buf + r);
  }
}

}  // namespace

TEST("TLP: a tail loss is repaired by a probe, not an RTO") {
  TcpConfig cfg;
  Net n(cfg, cfg, 3);
  n.link[0].delay = n.link[1].delay = 5000;  // 10 ms RTT, RTO floor 200 ms
  TcpSocket *a, *b;
  CHECK(connect_pair(n, &a, &b));
  // warm up so SRTT is known, then a 10-segment burst whose last 3 segments are lost
  std::vector<uint8_t> warm = pattern(4000), got;
  CHECK_EQ(n.A().send(a, warm.data(), warm.size()), long(warm.size()));
  n.run([&] { drain(n, b, &got); return got.size() == warm.size(); }, 1000000);
  got.clear();
  uint32_t mss = a->mss;
  std::vector<uint8_t> burst = pattern(10 * mss);
  uint32_t base = a->snd_max;
  int dropped = 0;
  n.drop_if = [&](int from, const uint8_t* p, size_t len) {
    uint32_t seq; size_t pl;
    if (from != 0 || !data_seg(p, len, &seq, &pl)) return false;
    uint32_t off = seq - base;
    bool tail = off >= 7 * mss && off < 10 * mss;
    static std::set<uint32_t> seen;
    if (tail && !seen.count(seq)) { seen.insert(seq); dropped++; return true; }  // first transmission only
    return false;
  };
  TcpStats before = stats_of(n.A());
  Micros t0 = n.now;
  CHECK_EQ(n.A().send(a, burst.data(), burst.size()), long(burst.size()));
  bool done = n.run([&] { drain(n, b, &got); return got.size() == burst.size(); }, 5000000);
  Micros took = n.now - t0;
  TcpStats after = stats_of(n.A());
  std::printf("  tail loss of 3/10 segments: repaired in %.1f ms virtual (srtt %u us), probes %llu, rto %llu\n", took / 1e3,
              a->srtt_us, (unsigned long long)(after.tlp_probes - before.tlp_probes),
              (unsigned long long)(after.timeouts - before.timeouts));
  CHECK(done);
  CHECK(got == burst);
  CHECK_EQ(dropped, 3);
  CHECK_EQ(after.timeouts, before.timeouts);          // no RTO
  CHECK(after.tlp_probes >= before.tlp_probes + 1);   // a probe found the loss
  CHECK(after.fast_retrans >= before.fast_retrans + 1);  // and RACK repaired the rest
  CHECK(took < 100000);                                // well under the 200 ms RTO floor
  CHECK(tx_invariants(a).empty());
  n.A().abort(a); n.B().abort(b);
}

TEST("TLP: a lost last segment alone costs no cwnd reduction when the probe shows no loss") {
  // the original of the last segment is only delayed: the probe (a retransmission of it) and
  // the original both arrive, the D-SACK says so, and the episode ends without a response
  TcpConfig cfg;
  Net n(cfg, cfg, 4);
  n.link[0].delay = n.link[1].delay = 5000;
  TcpSocket *a, *b;
  CHECK(connect_pair(n, &a, &b));
  std::vector<uint8_t> warm = pattern(20000), got;
  CHECK_EQ(n.A().send(a, warm.data(), warm.size()), long(warm.size()));
  n.run([&] { drain(n, b, &got); return got.size() == warm.size(); }, 1000000);
  got.clear();
  std::vector<uint8_t> burst = pattern(4 * a->mss);
  uint32_t last = a->snd_max + 3 * a->mss;
  n.extra_delay = [&](int from, const uint8_t* p, size_t len) -> Micros {
    uint32_t seq; size_t pl;
    static bool once = false;
    if (from == 0 && data_seg(p, len, &seq, &pl) && seq == last && !once) { once = true; return 40000; }
    return 0;
  };
  TcpStats before = stats_of(n.A());
  uint32_t cwnd0 = a->cwnd;
  CHECK_EQ(n.A().send(a, burst.data(), burst.size()), long(burst.size()));
  n.run([&] { drain(n, b, &got); return got.size() == burst.size(); }, 2000000);
  n.advance(100000);
  TcpStats after = stats_of(n.A());
  CHECK(got == burst);
  CHECK(after.tlp_probes >= before.tlp_probes + 1);
  CHECK_EQ(after.tlp_loss_repairs, before.tlp_loss_repairs);
  CHECK_EQ(after.timeouts, before.timeouts);
  CHECK(!a->tlp_active);
  CHECK(a->cwnd >= cwnd0);
  n.A().abort(a); n.B().abort(b);
}

TEST("D-SACK: a duplicate below RCV.NXT is reported in the first SACK block") {
  TcpConfig cfg;
  Net n(cfg, cfg, 5);
  TcpSocket *a, *b;
  CHECK(connect_pair(n, &a, &b));
  std::vector<Captured> fromA, fromB;
  n.tap = [&](int from, const IpAddr& s, const IpAddr& d, const uint8_t* p, size_t len) {
    (from == 0 ? fromA : fromB).push_back(Captured{from, s, d, std::vector<uint8_t>(p, p + len)});
  };
  std::vector<uint8_t> data = pattern(3000), got;
  CHECK_EQ(n.A().send(a, data.data(), data.size()), long(data.size()));
  n.run([&] { drain(n, b, &got); return got.size() == data.size(); }, 1000000);
  n.advance(100000);
  const Captured* first = nullptr;
  for (auto& c : fromA) if (c.seg().plen) { first = &c; break; }
  CHECK(first != nullptr);
  if (!first) return;
  tcpw::TcpSegment dup = first->seg();
  fromB.clear();
  TcpStats before = stats_of(n.B());
  n.B().input(first->src, first->dst, first->bytes.data(), first->bytes.size());  // the same segment again
  TcpStats after = stats_of(n.B());
  CHECK_EQ(after.dsacks_out, before.dsacks_out + 1);
  CHECK(!fromB.empty());
  if (!fromB.empty()) {
    tcpw::TcpSegment ack = fromB.back().seg();
    CHECK(ack.opt.nsack >= 1);
    CHECK_EQ(ack.opt.sack[0][0], dup.seq);
    CHECK_EQ(ack.opt.sack[0][1], dup.seq + uint32_t(dup.plen));
    CHECK(tcpw::seq_lt(ack.opt.sack[0][0], ack.ack));  // below the cumulative ACK: a D-SACK (RFC 2883 4)
  }
  // the sender takes it as a D-SACK, not as SACK information
  fromB.clear();
  n.advance(100000);
  CHECK(stats_of(n.A()).dsacks_in >= 1);
  CHECK_EQ(a->sacked_bytes, 0u);
  n.A().abort(a); n.B().abort(b);
}

TEST("D-SACK: an out-of-order duplicate goes first, followed by the block holding it") {
  TcpConfig cfg;
  Net n(cfg, cfg, 6);
  n.link[0].delay = n.link[1].delay = 5000;
  TcpSocket *a, *b;
  CHECK(connect_pair(n, &a, &b));
  std::vector<Captured> fromA, fromB;
  n.tap = [&](int from, const IpAddr& s, const IpAddr& d, const uint8_t* p, size_t len) {
    (from == 0 ? fromA : fromB).push_back(Captured{from, s, d, std::vector<uint8_t>(p, p + len)});
  };
  uint32_t hole = a->snd_max;
  n.drop_if = [&](int from, const uint8_t* p, size_t len) {
    uint32_t seq; size_t pl;
    return from == 0 && data_seg(p, len, &seq, &pl) && seq == hole && n.now < 1000000 + 60000000;
  };
  std::vector<uint8_t> data = pattern(4 * a->mss);
  CHECK_EQ(n.A().send(a, data.data(), data.size()), long(data.size()));
  n.advance(7000);  // the segments after the hole are at B, its SACKs on the way
  CHECK(!b->ofo.empty());
  const Captured* third = nullptr;
  for (auto& c : fromA) if (c.seg().plen && c.seg().seq == hole + 2 * a->mss) { third = &c; break; }
  CHECK(third != nullptr);
  if (!third) return;
  fromB.clear();
  n.B().input(third->src, third->dst, third->bytes.data(), third->bytes.size());
  CHECK(!fromB.empty());
  if (!fromB.empty()) {
    tcpw::TcpSegment ack = fromB.back().seg();
    CHECK_EQ(ack.ack, hole);
    CHECK(ack.opt.nsack >= 2);
    CHECK_EQ(ack.opt.sack[0][0], hole + 2 * a->mss);
    CHECK_EQ(ack.opt.sack[0][1], hole + 3 * a->mss);
    CHECK_EQ(ack.opt.sack[1][0], hole + a->mss);  // the block holding it
    CHECK_EQ(ack.opt.sack[1][1], hole + 4 * a->mss);
  }
  // without D-SACK configured, no such block
  n.A().abort(a); n.B().abort(b);
  TcpConfig nod;
  nod.dsack = false;
  Net m(nod, nod, 6);
  TcpSocket *c, *d;
  CHECK(connect_pair(m, &c, &d));
  std::vector<Captured> out;
  m.tap = [&](int from, const IpAddr& s, const IpAddr& dd, const uint8_t* p, size_t len) {
    out.push_back(Captured{from, s, dd, std::vector<uint8_t>(p, p + len)});
  };
  std::vector<uint8_t> small = pattern(1000), got2;
  CHECK_EQ(m.A().send(c, small.data(), small.size()), 1000);
  m.run([&] { uint8_t buf[2000]; long r = m.B().recv(d, buf, sizeof buf); if (r > 0) got2.insert(got2.end(), buf, buf + r); return got2.size() == 1000; }, 1000000);
  const Captured* seg = nullptr;
  for (auto& x : out) if (x.from == 0 && x.seg().plen) { seg = &x; break; }
  CHECK(seg != nullptr);
  if (!seg) return;
  Captured copy = *seg;
  out.clear();
  m.B().input(copy.src, copy.dst, copy.bytes.data(), copy.bytes.size());
  CHECK(!out.empty());
  if (!out.empty()) CHECK_EQ(int(out.back().seg().opt.nsack), 0);
  m.A().abort(c); m.B().abort(d);
}

TEST("undo: a spurious fast retransmission (held segment) restores cwnd; D-SACK widens reo_wnd") {
  for (Congestion ccx : {Congestion::NewReno, Congestion::Cubic}) {
    TcpConfig cfg;
    cfg.congestion = ccx;
    Net n(cfg, cfg, 8);
    n.link[0].delay = n.link[1].delay = 5000;
    TcpSocket *a, *b;
    CHECK(connect_pair(n, &a, &b));
    std::vector<uint8_t> data = pattern(8u << 20), got;
    size_t sent = 0;
    uint32_t held_seq = 0, peak = 0, ssthresh0 = 0, ssthresh_min = 0, cwnd_undo = 0, ssthresh_undo = 0;
    uint64_t undos0 = stats_of(n.A()).spurious_undos;
    bool held = false, recovered = false;
    n.extra_delay = [&](int from, const uint8_t* p, size_t len) -> Micros {
      uint32_t seq; size_t pl;
      // once the transfer is well under way, hold one new segment back 30 ms (3 RTTs)
      if (!held && from == 0 && sent >= (2u << 20) && data_seg(p, len, &seq, &pl) && seq == a->snd_max) {
        held = true;
        held_seq = seq;
        peak = a->cwnd;
        ssthresh0 = ssthresh_min = a->ssthresh;
        return 30000;
      }
      return 0;
    };
    std::string broken;
    bool done = n.run([&] { drain(n, b, &got); return got.size() == data.size(); }, 60000000, [&] {
      while (sent < data.size()) {
        long r = n.A().send(a, data.data() + sent, std::min<size_t>(data.size() - sent, 1u << 20));
        if (r <= 0) break;
        sent += size_t(r);
      }
      if (held) {
        if (a->in_recovery) recovered = true;
        if (!recovered) peak = std::max(peak, a->cwnd);  // cwnd before the (spurious) response
        ssthresh_min = std::min(ssthresh_min, a->ssthresh);
        if (!cwnd_undo && stats_of(n.A()).spurious_undos > undos0) { cwnd_undo = a->cwnd; ssthresh_undo = a->ssthresh; }
      }
      if (broken.empty()) broken = tx_invariants(a);
    });
    TcpStats st = stats_of(n.A());
    std::printf("  %s: held seq %u; cwnd %u segs before the response, %u after the undo; ssthresh %s -> %u -> %s; "
                "undos %llu, dsacks %llu, reo_wnd_mult %u\n",
                ccx == Congestion::Cubic ? "cubic" : "newreno", held_seq, peak / a->mss, cwnd_undo / a->mss,
                ssthresh0 == 0x7fffffff ? "inf" : "finite", ssthresh_min / a->mss, ssthresh_undo == 0x7fffffff ? "inf" : "finite",
                (unsigned long long)st.spurious_undos, (unsigned long long)st.dsacks_in, a->reo_wnd_mult);
    CHECK(done);
    CHECK(got == data);
    CHECK(held);
    CHECK(broken.empty());
    CHECK(st.fast_retrans >= 1);           // the held segment looked lost and was retransmitted
    CHECK(recovered);
    CHECK(ssthresh_min < ssthresh0);       // ... and the window was cut
    CHECK(st.spurious_undos > undos0);     // the D-SACK showed the retransmission spurious
    CHECK(cwnd_undo >= peak);              // ... and the cut was undone
    CHECK_EQ(ssthresh_undo, ssthresh0);
    CHECK(st.dsacks_in >= 1);
    CHECK(a->reordering_seen);
    CHECK(a->reo_wnd_mult >= 2);
    CHECK_EQ(st.timeouts, 0u);
    n.A().abort(a); n.B().abort(b);
  }
}

TEST("undo: a spurious RTO (timestamps show the original arrived) is undone") {
  TcpConfig cfg;
  cfg.tlp = false;  // else the probe would stand in for the RTO
  Net n(cfg, cfg, 9);
  n.link[0].delay = n.link[1].delay = 5000;
  TcpSocket *a, *b;
  CHECK(connect_pair(n, &a, &b));
  std::vector<uint8_t> warm = pattern(200000), got;
  size_t off = 0;
  n.run([&] {
    if (off < warm.size()) { long r = n.A().send(a, warm.data() + off, warm.size() - off); if (r > 0) off += size_t(r); }
    drain(n, b, &got);
    return got.size() == warm.size();
  }, 5000000);
  got.clear();
  // every ACK of the next segment is held 400 ms: the RTO (200 ms floor) fires first
  std::vector<uint8_t> one = pattern(1000);
  uint32_t cwnd0 = a->cwnd, ssthresh0 = a->ssthresh;
  n.link[1].delay = 400000;
  CHECK_EQ(n.A().send(a, one.data(), one.size()), 1000);
  n.run([&] { return stats_of(n.A()).timeouts >= 1; }, 2000000);
  n.link[1].delay = 5000;
  n.advance(1000000);
  drain(n, b, &got);
  TcpStats st = stats_of(n.A());
  std::printf("  spurious RTO: timeouts %llu, undos %llu, cwnd %u -> %u, ssthresh %u -> %u\n",
              (unsigned long long)st.timeouts, (unsigned long long)st.spurious_undos, cwnd0, a->cwnd, ssthresh0, a->ssthresh);
  CHECK(got == one);
  CHECK(st.timeouts >= 1);
  CHECK(st.spurious_undos >= 1);
  CHECK(a->cwnd >= cwnd0);
  CHECK(a->ssthresh >= ssthresh0);
  CHECK(!a->loss_state);
  n.A().abort(a); n.B().abort(b);
}

TEST("RACK: reordering within reo_wnd causes no retransmission once reordering was seen") {
  // 10 ms RTT, one segment in 50 overtaken by 1 ms: after the first D-SACK round, nothing is
  // retransmitted spuriously
  TcpConfig cfg;
  Net n(cfg, cfg, 10);
  n.link[0].delay = n.link[1].delay = 5000;
  TcpSocket *a, *b;
  CHECK(connect_pair(n, &a, &b));
  std::vector<uint8_t> data = pattern(16u << 20), got;
  size_t sent = 0;
  uint64_t k = 0;
  n.extra_delay = [&](int from, const uint8_t* p, size_t len) -> Micros {
    uint32_t seq; size_t pl;
    return from == 0 && data_seg(p, len, &seq, &pl) && (++k % 50) == 0 ? 1000 : 0;
  };
  uint64_t rtx_mid = 0;
  bool done = n.run([&] { drain(n, b, &got); return got.size() == data.size(); }, 60000000, [&] {
    while (sent < data.size()) {
      long r = n.A().send(a, data.data() + sent, std::min<size_t>(data.size() - sent, 1u << 20));
      if (r <= 0) break;
      sent += size_t(r);
    }
    if (!rtx_mid && got.size() >= data.size() / 2) rtx_mid = stats_of(n.A()).retrans_segs;
  });
  TcpStats st = stats_of(n.A());
  std::printf("  1 ms reordering on a 10 ms path: retransmissions %llu (first half %llu), undos %llu, reo_wnd_mult %u, min_rtt %u us\n",
              (unsigned long long)st.retrans_segs, (unsigned long long)rtx_mid, (unsigned long long)st.spurious_undos,
              a->reo_wnd_mult, a->min_rtt_us);
  CHECK(done);
  CHECK(got == data);
  CHECK(a->reordering_seen);
  CHECK_EQ(st.retrans_segs, rtx_mid);  // nothing in the second half
  CHECK(st.retrans_segs <= 5);
  n.A().abort(a); n.B().abort(b);
}

TEST("an unacceptable pure ACK is answered at most once per 500 ms (no ACK loops)") {
  TcpConfig cfg;
  Net n(cfg, cfg, 11);
  TcpSocket *a, *b;
  CHECK(connect_pair(n, &a, &b));
  n.advance(1000000);
  int outB = 0;
  n.tap = [&](int from, const IpAddr&, const IpAddr&, const uint8_t*, size_t) { if (from == 1) outB++; };
  for (int i = 0; i < 10; i++) {
    // a sequence number far outside the window, as a confused peer might send
    auto seg = build_segment(n.hosts[0].addr, n.hosts[1].addr, a->local.port, b->local.port, b->rcv_nxt - 0x20000000,
                             b->snd_nxt, tcpw::kAck, 1000, {}, {});
    n.B().input(n.hosts[0].addr, n.hosts[1].addr, seg.data(), seg.size());
  }
  CHECK_EQ(outB, 1);
  // a keepalive probe (RCV.NXT - 1) is still answered, once the 500 ms have passed
  n.advance(600000);
  outB = 0;
  auto probe = build_segment(n.hosts[0].addr, n.hosts[1].addr, a->local.port, b->local.port, b->rcv_nxt - 1, b->snd_nxt,
                             tcpw::kAck, 1000, {}, {});
  n.B().input(n.hosts[0].addr, n.hosts[1].addr, probe.data(), probe.size());
  CHECK_EQ(outB, 1);
  // a reordered pure ACK (behind RCV.NXT: the peer sent data after it) is taken silently
  outB = 0;
  auto late = build_segment(n.hosts[0].addr, n.hosts[1].addr, a->local.port, b->local.port, b->rcv_nxt - 3000, b->snd_nxt,
                            tcpw::kAck, 1000, {}, {});
  n.B().input(n.hosts[0].addr, n.hosts[1].addr, late.data(), late.size());
  CHECK_EQ(outB, 0);
  n.A().abort(a); n.B().abort(b);
}

TEST("pure ACKs carry SND.MAX while resending after an RTO") {
  TcpConfig cfg;
  Net n(cfg, cfg, 12);
  TcpSocket *a, *b;
  CHECK(connect_pair(n, &a, &b));
  std::vector<uint8_t> data = pattern(20000);
  n.link[0].blackhole = true;
  CHECK_EQ(n.A().send(a, data.data(), data.size()), 20000);
  n.run([&] { return a->loss_state; }, 5000000);
  CHECK(a->loss_state);
  CHECK(tcpw::seq_lt(a->snd_nxt, a->snd_max));
  std::vector<Captured> out;
  n.tap = [&](int from, const IpAddr& s, const IpAddr& d, const uint8_t* p, size_t len) {
    if (from == 0) out.push_back(Captured{from, s, d, std::vector<uint8_t>(p, p + len)});
  };
  // data from B makes A acknowledge
  uint8_t x = 'x';
  CHECK_EQ(n.B().send(b, &x, 1), 1);
  n.advance(1000);
  bool saw = false;
  for (auto& c : out) {
    tcpw::TcpSegment sg = c.seg();
    if (sg.plen == 0 && !sg.has(tcpw::kSyn) && !sg.has(tcpw::kFin)) { saw = true; CHECK_EQ(sg.seq, a->snd_max); }
  }
  CHECK(saw);
  n.A().abort(a); n.B().abort(b);
}

TEST_MAIN()
