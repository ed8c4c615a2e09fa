// Egress impairment: loss rate, duplication, delay and jitter honoured, reordering,
// corruption caught by checksums, the delay queue bound.
#include "check.h"
#include "world.h"

using namespace tw;

static int udp_bound(Stack& s, uint16_t port) {
  int sd = s.socket(AF_INET, SOCK_DGRAM, 0);
  s.bind(sd, ep("0.0.0.0", port));
  int big = 8 << 20;
  s.setsockopt(sd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  return sd;
}

static void resolve(World& w, Node& a, const char* addr) {
  a.st->ping(ip(addr), 8, nullptr);
  w.advance(10000);
}

TEST("impair: loss rate within tolerance, duplication rate, counters") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  resolve(w, a, "10.0.0.2");
  Impair im;
  im.loss = 0.2;
  im.duplicate = 0.1;
  a.st->set_impair(a.ifindex, im);
  int sa = udp_bound(*a.st, 0), sb = udp_bound(*b.st, 9000);
  Endpoint to = ep("10.0.0.2", 9000);
  const int N = 20000;
  for (int i = 0; i < N; i++) {
    a.st->sendto(sa, &i, sizeof i, 0, &to);
    if (i % 500 == 0) w.settle();
  }
  w.settle();
  int got = 0, v;
  while (b.st->recv(sb, &v, sizeof v) > 0) got++;
  auto& st = a.st->interface(a.ifindex)->stats;
  double loss = double(st.impair_lost) / N;
  std::printf("  loss %.4f (want 0.2), duplicated %llu, received %d of %d\n", loss, (unsigned long long)st.impair_duplicated, got, N);
  CHECK(loss > 0.18 && loss < 0.22);
  CHECK_EQ(uint64_t(got), N - st.impair_lost + st.impair_duplicated);
  double dup = double(st.impair_duplicated) / double(N - st.impair_lost);
  CHECK(dup > 0.08 && dup < 0.12);
}

TEST("impair: delay and jitter honoured (no frame early, none later than delay + jitter)") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  resolve(w, a, "10.0.0.2");
  Impair im;
  im.delay_ms = 20;
  im.jitter_ms = 10;
  a.st->set_impair(a.ifindex, im);
  int sa = udp_bound(*a.st, 0), sb = udp_bound(*b.st, 9000);
  Endpoint to = ep("10.0.0.2", 9000);
  Micros sent_at[200];
  int got = 0, reordered = 0, last = -1;
  Micros min_d = kNever, max_d = 0;
  for (int i = 0; i < 200; i++) {
    sent_at[i] = w.now;
    a.st->sendto(sa, &i, sizeof i, 0, &to);
    w.advance(500);  // one every 0.5 ms: jitter reorders some
    int v;
    while (b.st->recv(sb, &v, sizeof v) > 0) {
      Micros d = w.now - sent_at[v];
      min_d = std::min(min_d, d);
      max_d = std::max(max_d, d);
      if (v < last) reordered++;
      last = std::max(last, v);
      got++;
    }
  }
  w.advance(100000);
  int v;
  while (b.st->recv(sb, &v, sizeof v) > 0) got++;
  std::printf("  delay min %.1f ms max %.1f ms, reordered %d\n", min_d / 1000.0, max_d / 1000.0, reordered);
  CHECK_EQ(got, 200);
  CHECK(min_d >= 20000);
  CHECK(max_d <= 30000 + 500);  // observed at 0.5 ms granularity
  CHECK(reordered > 0);
}

TEST("impair: reordering without delay holds frames back; corruption is caught by checksums") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  resolve(w, a, "10.0.0.2");
  Impair im;
  im.reorder = 0.3;
  a.st->set_impair(a.ifindex, im);
  int sa = udp_bound(*a.st, 0), sb = udp_bound(*b.st, 9000);
  Endpoint to = ep("10.0.0.2", 9000);
  for (int i = 0; i < 1000; i++) a.st->sendto(sa, &i, sizeof i, 0, &to);
  w.advance(5000);
  int got = 0, out_of_order = 0, last = -1, v;
  while (b.st->recv(sb, &v, sizeof v) > 0) { got++; if (v < last) out_of_order++; last = std::max(last, v); }
  CHECK_EQ(got, 1000);
  CHECK(out_of_order > 200);
  // corruption: the sender fills checksums; the receiver verifies (force_checksums on b's side
  // is not needed: a corrupting interface turns its offload off, and b must verify, so the
  // hub is built with csum_offload false)
  Hub::Config hc;
  hc.csum_offload = false;
  World w2(hc);
  Node& c = w2.add("10.0.0.1/24");
  Node& d = w2.add("10.0.0.2/24");
  resolve(w2, c, "10.0.0.2");
  Impair cor;
  cor.corrupt = 0.5;
  c.st->set_impair(c.ifindex, cor);
  int sc = udp_bound(*c.st, 0), sd = udp_bound(*d.st, 9000);
  char payload[200];
  for (int i = 0; i < 200; i++) payload[i] = char(i);
  for (int i = 0; i < 2000; i++) c.st->sendto(sc, payload, sizeof payload, 0, &to);
  w2.settle();
  int good = 0, bad = 0;
  char buf[256];
  while (d.st->recv(sd, buf, sizeof buf) > 0) { if (std::memcmp(buf, payload, 200) == 0) good++; else bad++; }
  auto& cs = c.st->interface(c.ifindex)->stats;
  auto& ds = d.st->stats();
  uint64_t caught = ds.ip.in_csum_errors + ds.udp.in_csum_errors + ds.eth.not_for_us + ds.eth.malformed + ds.eth.unknown_type +
                    ds.ip.in_hdr_errors + ds.ip.in_truncated + ds.ip.in_addr_errors + ds.udp.in_errors + ds.ip.in_martians;
  std::printf("  corrupted %llu, delivered intact %d, delivered damaged %d, caught %llu\n", (unsigned long long)cs.impair_corrupted, good, bad,
              (unsigned long long)caught);
  CHECK_EQ(bad, 0);
  CHECK(cs.impair_corrupted > 800);
  CHECK_EQ(uint64_t(good) + cs.impair_corrupted, 2000u);
}

TEST("impair: the delay queue is bounded") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  w.add("10.0.0.2/24");
  resolve(w, a, "10.0.0.2");
  Impair im;
  im.delay_ms = 1000;
  im.queue_limit = 100;
  a.st->set_impair(a.ifindex, im);
  int sa = udp_bound(*a.st, 0);
  Endpoint to = ep("10.0.0.2", 9000);
  for (int i = 0; i < 500; i++) a.st->sendto(sa, "x", 1, 0, &to);
  CHECK_EQ(a.st->interface(a.ifindex)->stats.impair_queue_drops, 400u);
  CHECK(a.st->poll_at() <= w.now + 1000000);
  w.advance(1000000);
  CHECK_EQ(a.st->interface(a.ifindex)->stats.tx_frames, a.st->interface(a.ifindex)->stats.impair_queue_drops + 100 + 3);
}
TEST_MAIN()
