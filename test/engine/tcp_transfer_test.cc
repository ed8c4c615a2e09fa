// Bulk transfers through the impaired channel: 64 MiB each way, byte-exact, NewReno and CUBIC.
#include "tcp_harness.h"

using namespace th;
using namespace ms;

namespace {

const std::vector<uint8_t>& source() {
  static std::vector<uint8_t> v = [] {
    std::vector<uint8_t> d(64u << 20);
    SplitMix r(42);
    for (size_t i = 0; i < d.size(); i += 8) { uint64_t x = r.next(); std::memcpy(&d[i], &x, 8); }
    return d;
  }();
  return v;
}

uint64_t fnv_words(uint64_t h, const uint8_t* p, size_t n) {
  // FNV-1a over bytes (kept simple; n is small per call)
  for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
  return h;
}

struct XferOpts {
  const char* name = "";
  Congestion cc = Congestion::Cubic;
  LinkParams ab, ba;
  size_t bytes = 64u << 20;
  bool both = true;
  uint32_t mtu = 1500;
  bool offload = false;
  bool sack = true;
  Micros vlimit = 3600ull * 1000000;
  Micros vmax = 0;  // if set: must finish within this virtual time (a performance floor)
  uint64_t seed = 7;
};

struct Side {
  TcpLayer* L = nullptr;
  TcpSocket* s = nullptr;
  size_t sent = 0, rcvd = 0;
  bool eof = false, shut = false, bad = false;
  int err = 0;
  uint64_t hash = 0xcbf29ce484222325ull;
};

void run_transfer(const XferOpts& o) {
  TcpConfig cfg;
  cfg.congestion = o.cc;
  cfg.sack = o.sack;
  Net n(cfg, cfg, o.seed, o.mtu, o.offload);
  n.link[0] = o.ab;
  n.link[1] = o.ba;
  TcpSocket *a = nullptr, *b = nullptr;
  bool connected = connect_pair(n, &a, &b);
  CHECK(connected);
  if (!connected) return;
  const std::vector<uint8_t>& src = source();
  size_t total = std::min(o.bytes, src.size());
  Side sides[2];
  sides[0].L = &n.A(); sides[0].s = a;
  sides[1].L = &n.B(); sides[1].s = b;
  static std::vector<uint8_t> buf(1u << 20);
  uint64_t calls = 0;
  std::string broken;
  auto app = [&] {
    if ((++calls & 63) == 0 && broken.empty()) {  // the sender's scoreboard stays consistent
      broken = tx_invariants(a);
      if (broken.empty()) broken = tx_invariants(b);
    }
    for (int i = 0; i < 2; i++) {
      Side& sd = sides[i];
      bool sender = i == 0 || o.both;
      if (sender) {
        while (sd.sent < total) {
          long r = sd.L->send(sd.s, src.data() + sd.sent, std::min<size_t>(total - sd.sent, 1u << 20));
          if (r <= 0) { if (r != -EAGAIN) sd.err = int(r); break; }
          sd.sent += size_t(r);
        }
        if (sd.sent == total && !sd.shut) { sd.L->shutdown(sd.s, kShutWr); sd.shut = true; }
      } else if (!sd.shut && sides[0].eof) {
        sd.L->shutdown(sd.s, kShutWr); sd.shut = true;
      }
      while (!sd.eof) {
        long r = sd.L->recv(sd.s, buf.data(), buf.size());
        if (r > 0) {
          if (sd.rcvd + size_t(r) > total || std::memcmp(src.data() + sd.rcvd, buf.data(), size_t(r)) != 0) sd.bad = true;
          sd.hash = fnv_words(sd.hash, buf.data(), size_t(r));
          sd.rcvd += size_t(r);
          continue;
        }
        if (r == 0) sd.eof = true;
        else if (r != -EAGAIN) sd.err = int(r);
        break;
      }
    }
  };
  double t0 = real_seconds();
  Micros v0 = n.now;
  bool done = n.run([&] {
    if (sides[0].err || sides[1].err) return true;
    return sides[1].eof && (!o.both || sides[0].eof);
  }, o.vlimit, app);
  double real = real_seconds() - t0;
  Micros vt = n.now - v0;
  CHECK(done);
  if (o.vmax && vt > o.vmax) std::printf("  too slow: %.3f s virtual, bound %.3f s\n", vt / 1e6, o.vmax / 1e6);
  if (o.vmax) CHECK(vt <= o.vmax);
  if (!broken.empty()) std::printf("  scoreboard: %s\n", broken.c_str());
  CHECK(broken.empty());
  CHECK_EQ(sides[0].err, 0);
  CHECK_EQ(sides[1].err, 0);
  CHECK(!sides[0].bad && !sides[1].bad);
  CHECK_EQ(sides[1].rcvd, total);
  if (o.both) CHECK_EQ(sides[0].rcvd, total);
  uint64_t want = fnv_words(0xcbf29ce484222325ull, src.data(), total);
  CHECK(sides[1].hash == want);
  if (o.both) CHECK(sides[0].hash == want);
  CHECK_EQ(n.oversize, 0u);
  TcpStats sa, sb;
  n.A().stats(&sa); n.B().stats(&sb);
  auto u = [](uint64_t v) { return (unsigned long long)v; };
  std::printf("  %-34s %s %3zu MiB%s: virtual %8.3f s, real %6.2f s, rtx %llu/%llu, rto %llu/%llu, fr %llu/%llu, "
              "tlp %llu/%llu, undo %llu/%llu, dsack-in %llu/%llu, csum-drops %llu, hash %016llx\n",
              o.name, o.cc == Congestion::Cubic ? "cubic  " : "newreno", total >> 20, o.both ? " each way" : "",
              vt / 1e6, real, u(sa.retrans_segs), u(sb.retrans_segs), u(sa.timeouts), u(sb.timeouts),
              u(sa.fast_retrans), u(sb.fast_retrans), u(sa.tlp_probes), u(sb.tlp_probes), u(sa.spurious_undos),
              u(sb.spurious_undos), u(sa.dsacks_in), u(sb.dsacks_in), u(n.bad_csum_drops), u(sides[1].hash));
  // close both; everything must drain away
  n.A().close(a);
  n.B().close(b);
  n.advance(200ull * 1000000);
  CHECK_EQ(n.A().socket_count(), 0u);
  CHECK_EQ(n.B().socket_count(), 0u);
}

void both_cc(XferOpts o) {
  o.cc = Congestion::NewReno;
  run_transfer(o);
  o.cc = Congestion::Cubic;
  run_transfer(o);
}

}  // namespace

TEST("transfer 64MiB clean") {
  XferOpts o; o.name = "clean";
  both_cc(o);
}

TEST("transfer 64MiB 5% loss") {
  XferOpts o; o.name = "5% loss";
  o.ab.loss = o.ba.loss = 0.05;
  o.vmax = 9000000;  // before RACK-TLP: 10.6 s (NewReno), 9.4 s (CUBIC)
  both_cc(o);
}

TEST("transfer 64MiB 2% reorder + 1% dup") {
  XferOpts o; o.name = "2% reorder, 1% dup";
  o.ab.reorder = o.ba.reorder = 0.02;
  o.ab.dup = o.ba.dup = 0.01;
  o.vmax = 600000;  // before D-SACK undo: 0.77 s / 0.93 s
  both_cc(o);
}

TEST("transfer 64MiB 0.5% corruption") {
  XferOpts o; o.name = "0.5% corruption";
  o.ab.corrupt = o.ba.corrupt = 0.005;
  both_cc(o);
}

TEST("transfer 64MiB 20ms +- 10ms") {
  XferOpts o; o.name = "20ms delay +-10ms jitter";
  o.ab.delay = o.ba.delay = 20000;
  o.ab.jitter = o.ba.jitter = 10000;
  both_cc(o);
}

TEST("transfer 64MiB 20ms +- 10ms reordering jitter") {
  // every packet delayed independently (as netem): reordering by up to 20 ms, on both paths
  XferOpts o; o.name = "20ms +-10ms jitter, reordering";
  o.ab.delay = o.ba.delay = 20000;
  o.ab.jitter = o.ba.jitter = 10000;
  o.ab.jitter_reorders = o.ba.jitter_reorders = true;
  o.vmax = 12000000;  // within 3x the in-order jitter case (4 s); before RACK: 300+ s one way
  both_cc(o);
}

TEST("transfer 16MiB 20ms +- 10ms reordering jitter, 1% loss") {
  // loss-bound (Mathis: ~0.45 MB/s at 1% and 40 ms): checks integrity and the scoreboard
  XferOpts o; o.name = "20ms +-10ms reordering, 1% loss";
  o.bytes = 16u << 20;
  o.ab.delay = o.ba.delay = 20000;
  o.ab.jitter = o.ba.jitter = 10000;
  o.ab.jitter_reorders = o.ba.jitter_reorders = true;
  o.ab.loss = o.ba.loss = 0.01;
  both_cc(o);
}

TEST("transfer 16MiB 100 Mbit/s bottleneck, 5 ms, 128 KiB queue") {
  XferOpts o; o.name = "100Mbit/s 5ms, tail drop";
  o.bytes = 16u << 20;
  o.ab.bandwidth = o.ba.bandwidth = 12500000;
  o.ab.queue_limit = o.ba.queue_limit = 128u << 10;
  o.ab.delay = o.ba.delay = 5000;
  both_cc(o);
}

TEST("transfer 64MiB MTU 65535 (64 KiB segments)") {
  XferOpts o; o.name = "mtu 65535, offload";
  o.mtu = 65535;
  o.offload = true;
  both_cc(o);
}

TEST("transfer 64MiB MTU 65535 with 1% loss") {
  XferOpts o; o.name = "mtu 65535, 1% loss";
  o.mtu = 65535;
  o.ab.loss = o.ba.loss = 0.01;
  both_cc(o);
}

TEST("transfer 16MiB without SACK, 2% loss") {
  XferOpts o; o.name = "no SACK, 2% loss";
  o.sack = false;
  o.bytes = 16u << 20;
  o.ab.loss = o.ba.loss = 0.02;
  both_cc(o);
}

TEST_MAIN()
