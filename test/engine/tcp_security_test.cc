// RFC 5961 (challenge ACKs), RFC 7323 PAWS, and fuzzing input() with hostile bytes.
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

struct Quiet {
  Net n;
  TcpSocket *a = nullptr, *b = nullptr;
  std::vector<Captured> outB;
  explicit Quiet(const TcpConfig& cfg) : n(cfg, cfg) {
    CHECK(connect_pair(n, &a, &b));
    n.advance(1000000);
    n.tap = [this](int from, const IpAddr& s, const IpAddr& d, const uint8_t* p, size_t len) {
      if (from == 1) outB.push_back(Captured{from, s, d, std::vector<uint8_t>(p, p + len)});
    };
  }
  // a segment "from A" to B's socket
  void inject(uint32_t seq, uint32_t ack, uint8_t flags, const std::vector<uint8_t>& opts = {}, const std::vector<uint8_t>& data = {}) {
    auto seg = build_segment(n.hosts[0].addr, n.hosts[1].addr, a->local.port, b->local.port, seq, ack, flags, 1000, opts, data);
    n.B().input(n.hosts[0].addr, n.hosts[1].addr, seg.data(), seg.size());
  }
};

}  // namespace

TEST("RFC 5961: in-window RST with the wrong sequence draws a challenge ACK") {
  TcpConfig cfg;
  Quiet q(cfg);
  uint32_t rcv_nxt = q.b->rcv_nxt;
  TcpStats before; q.n.B().stats(&before);
  q.inject(rcv_nxt + 1000, 0, tcpw::kRst);
  CHECK(std::strcmp(q.n.B().state_name(q.b), "ESTAB") == 0);
  CHECK_EQ(q.outB.size(), 1u);
  if (!q.outB.empty()) {
    auto s = q.outB[0].seg();
    CHECK(s.has(tcpw::kAck) && !s.has(tcpw::kRst));
    CHECK_EQ(s.ack, rcv_nxt);
  }
  TcpStats after; q.n.B().stats(&after);
  CHECK_EQ(after.challenge_acks, before.challenge_acks + 1);
  // out of window: silently dropped
  q.outB.clear();
  q.inject(rcv_nxt + 50000000, 0, tcpw::kRst);
  CHECK_EQ(q.outB.size(), 0u);
  CHECK(std::strcmp(q.n.B().state_name(q.b), "ESTAB") == 0);
  // a SYN on the established connection: challenge ACK too
  q.inject(rcv_nxt + 5, 0, tcpw::kSyn);
  CHECK_EQ(q.outB.size(), 1u);
  CHECK(std::strcmp(q.n.B().state_name(q.b), "ESTAB") == 0);
  // an ACK for data never sent is not believed
  q.outB.clear();
  q.inject(rcv_nxt, q.b->snd_max + 100000, tcpw::kAck, {}, {'x'});
  CHECK_EQ(q.n.B().recv_available(q.b), 0u);
  // the exact sequence resets
  q.inject(rcv_nxt, 0, tcpw::kRst);
  CHECK(std::strcmp(q.n.B().state_name(q.b), "CLOSED") == 0);
  uint8_t t[1];
  CHECK_EQ(q.n.B().recv(q.b, t, 1), -ECONNRESET);
  q.n.A().abort(q.a);
  q.n.B().close(q.b);
}

TEST("RFC 5961: challenge ACKs are rate limited") {
  TcpConfig cfg;
  Quiet q(cfg);
  for (int i = 0; i < 5000; i++) q.inject(q.b->rcv_nxt + 1 + uint32_t(i), 0, tcpw::kRst);
  TcpStats st; q.n.B().stats(&st);
  CHECK(st.challenge_acks >= 500 && st.challenge_acks < 1000);
  CHECK(std::strcmp(q.n.B().state_name(q.b), "ESTAB") == 0);
  q.n.A().abort(q.a); q.n.B().abort(q.b);
}

TEST("PAWS drops a segment with an old timestamp") {
  TcpConfig cfg;
  Quiet q(cfg);
  CHECK(q.b->ts_ok);
  uint32_t rcv_nxt = q.b->rcv_nxt, recent = q.b->ts_recent;
  TcpStats before; q.n.B().stats(&before);
  q.inject(rcv_nxt, q.b->snd_nxt, tcpw::kAck | tcpw::kPsh, ts_opt(recent - 100000, 0), {'o', 'l', 'd'});
  TcpStats after; q.n.B().stats(&after);
  CHECK_EQ(after.paws_drops, before.paws_drops + 1);
  CHECK_EQ(q.n.B().recv_available(q.b), 0u);
  CHECK_EQ(q.b->rcv_nxt, rcv_nxt);
  // the same bytes with a current timestamp are taken
  q.inject(rcv_nxt, q.b->snd_nxt, tcpw::kAck | tcpw::kPsh, ts_opt(recent + 5, 0), {'n', 'e', 'w'});
  CHECK_EQ(q.n.B().recv_available(q.b), 3u);
  q.n.A().abort(q.a); q.n.B().abort(q.b);
}

TEST("options parser on random bytes") {
  SplitMix r(5);
  uint8_t buf[40];
  uint64_t seen = 0;
  for (int i = 0; i < 1000000; i++) {
    size_t n = r.below(41);
    for (size_t k = 0; k < n; k++) buf[k] = r.below(4) == 0 ? uint8_t(r.below(9)) : uint8_t(r.next());
    tcpw::TcpOptions o;
    tcpw::parse_options(buf, n, r.below(2), &o);
    seen += o.nsack + o.has_ts + o.has_mss;
    CHECK(o.nsack <= 4);
    CHECK(o.ws <= 14);
  }
  CHECK(seen > 0);
}

TEST("fuzz: random, truncated and mutated segments never crash") {
  TcpConfig cfg;
  cfg.syn_backlog = 64;
  Net n(cfg, cfg, 3);
  TcpSocket *a, *b, *l;
  CHECK(connect_pair(n, &a, &b, 80, &l));
  // collect real segments to mutate
  std::vector<Captured> corpus;
  n.tap = [&](int from, const IpAddr& s, const IpAddr& d, const uint8_t* p, size_t len) {
    if (corpus.size() < 400) corpus.push_back(Captured{from, s, d, std::vector<uint8_t>(p, p + len)});
  };
  std::string data(200000, 'f');
  size_t off = 0;
  size_t got = 0;
  n.run([&] {
    while (off < data.size()) { long k = n.A().send(a, reinterpret_cast<const uint8_t*>(data.data()) + off, data.size() - off); if (k <= 0) break; off += size_t(k); }
    uint8_t t[65536];
    for (long k; (k = n.B().recv(b, t, sizeof t)) > 0;) got += size_t(k);
    return got == data.size();
  }, 1000000);
  n.B().send(b, reinterpret_cast<const uint8_t*>(data.data()), 5000);
  n.advance(100000);
  n.tap = nullptr;
  CHECK(corpus.size() > 10);
  SplitMix r(77);
  const IpAddr A = n.hosts[0].addr, B = n.hosts[1].addr;
  IpAddr v6 = IpAddr::v6_bytes(reinterpret_cast<const uint8_t*>("\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"));
  std::vector<uint8_t> seg;
  double t0 = real_seconds();
  const int N = 300000;
  for (int i = 0; i < N; i++) {
    int kind = int(r.below(4));
    seg.clear();
    if (kind == 0) {
      size_t len = r.below(120);
      for (size_t k = 0; k < len; k++) seg.push_back(uint8_t(r.next()));
    } else if (kind == 1) {
      // a plausible header aimed at the listener or the connection, random flags and options
      bool conn = r.below(2);
      uint16_t sport = conn ? a->local.port : uint16_t(r.below(65536));
      uint16_t dport = r.below(8) ? 80 : uint16_t(r.below(65536));
      uint32_t seq = conn ? b->rcv_nxt + uint32_t(int32_t(r.below(200000)) - 100000) : uint32_t(r.next());
      uint32_t ack = conn ? b->snd_una + uint32_t(int32_t(r.below(200000)) - 100000) : uint32_t(r.next());
      std::vector<uint8_t> opts(r.below(41));
      for (auto& x : opts) x = r.below(3) == 0 ? uint8_t(r.below(9)) : uint8_t(r.next());
      std::vector<uint8_t> pay(r.below(3) == 0 ? r.below(2000) : 0);
      for (auto& x : pay) x = uint8_t(r.next());
      seg = build_segment(A, B, sport, dport, seq, ack, uint8_t(r.next()), uint16_t(r.next()), opts, pay);
      if (r.below(4) == 0) seg.resize(r.below(uint32_t(seg.size()) + 1));
      if (r.below(8) == 0 && seg.size() > 12) seg[12] = uint8_t(r.next());  // bad data offset
    } else {
      const Captured& c = corpus[r.below(uint32_t(corpus.size()))];
      seg = c.bytes;
      int flips = 1 + int(r.below(4));
      for (int f = 0; f < flips && !seg.empty(); f++) seg[r.below(uint32_t(seg.size()))] ^= uint8_t(1u << r.below(8));
      if (r.below(3) == 0) seg.resize(r.below(uint32_t(seg.size()) + 1));
    }
    IpAddr src = r.below(16) == 0 ? v6 : A;
    IpAddr dst = r.below(16) == 0 ? v6 : B;
    n.B().input(src, dst, seg.empty() ? nullptr : seg.data(), seg.size());
    if (r.below(4) == 0) n.A().input(dst, src, seg.empty() ? nullptr : seg.data(), seg.size());
    if ((i & 1023) == 0) {
      n.now += 50000;
      n.deliver_due();
      n.q = decltype(n.q)();  // drop what the layers answered
    }
  }
  double real = real_seconds() - t0;
  std::printf("  fuzz: %d segments in %.2f s real\n", N, real);
  TcpStats st; n.B().stats(&st);
  std::printf("  in_errs %llu, rsts out %llu, challenge acks %llu, cookies %llu\n", (unsigned long long)st.in_errs,
              (unsigned long long)st.out_rsts, (unsigned long long)st.challenge_acks, (unsigned long long)st.syn_cookies_sent);
  CHECK(l->reqs.size() <= 64);
  // everything can still be torn down and drains away
  n.A().abort(a);
  n.B().abort(b);
  for (;;) { int e; TcpSocket* s = n.B().accept(l, &e, 9); if (!s) break; n.B().abort(s); }
  n.B().close(l);
  n.advance(300ull * 1000000);
  CHECK_EQ(n.A().socket_count(), 0u);
  CHECK_EQ(n.B().socket_count(), 0u);
}

TEST_MAIN()
