// Hostile input: a few hundred thousand random and mutated frames into a stack (with and
// without checksum verification). No crash, counters rise, memory stays bounded, and the
// stack still works afterwards.
#include "check.h"
#include "engine/wire/checksum.h"
#include "world.h"

using namespace tw;

/** records every frame the hub carries, as a corpus to mutate */
struct Tap {
  std::vector<std::vector<uint8_t>> frames;
};

static void exchange(World& w, Node& a, Node& b, int* udp_ok, int* ping_ok) {
  int sa = a.st->socket(AF_INET, SOCK_DGRAM, 0), sb = b.st->socket(AF_INET, SOCK_DGRAM, 0);
  b.st->bind(sb, ep("0.0.0.0", 7777));
  Endpoint to = ep("10.0.0.2", 7777);
  std::vector<char> big(3000, 'b');
  a.st->sendto(sa, "hello", 5, 0, &to);
  a.st->sendto(sa, big.data(), big.size(), 0, &to);
  size_t before = a.pings.size();
  a.st->ping(ip("10.0.0.2"), 100, nullptr);
  w.advance(100000);
  char buf[4000];
  *udp_ok = 0;
  while (b.st->recv(sb, buf, sizeof buf) > 0) (*udp_ok)++;
  *ping_ok = a.pings.size() > before && a.pings.back().status == 0;
  a.st->close(sa);
  b.st->close(sb);
}

static void fuzz(bool verify) {
  Hub::Config hc;
  hc.csum_offload = !verify;
  hc.mac_table_max = 0;  // no learning: every frame is flooded, so the tap port sees all
  World w(hc);
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  // sockets for the fuzz to hit
  int l = b.st->socket(AF_INET, SOCK_STREAM, 0);
  b.st->bind(l, ep("0.0.0.0", 80));
  b.st->listen(l, 8);
  int u = b.st->socket(AF_INET, SOCK_DGRAM, 0);
  b.st->bind(u, ep("0.0.0.0", 53));
  // a corpus: the frames of a normal exchange, captured by a second port on the hub
  Tap tap;
  Hub::Port* tp = w.hub.attach([](void* c, const uint8_t* f, size_t n) { static_cast<Tap*>(c)->frames.emplace_back(f, f + n); }, &tap);
  int udp_ok, ping_ok;
  exchange(w, a, b, &udp_ok, &ping_ok);
  CHECK(udp_ok == 2 && ping_ok);
  int c = a.st->socket(AF_INET, SOCK_STREAM, 0);
  a.st->connect(c, ep("10.0.0.2", 80));
  w.advance(10000);
  a.st->send(c, "GET / HTTP/1.0\r\n\r\n", 18);
  w.advance(10000);
  w.hub.detach(tp);
  CHECK(tap.frames.size() > 10);

  Rng r(verify ? 11 : 12);
  const auto before = b.st->stats();
  const int N = 150000;
  std::vector<uint8_t> f;
  for (int i = 0; i < N; i++) {
    int mode = int(r.below(10));
    if (mode < 2) {
      // pure random bytes, sometimes with a valid ethernet header and IPv4/ARP type
      f.resize(r.below(1600));
      for (auto& x : f) x = uint8_t(r.next());
      if (f.size() >= 14 && (i & 1)) {
        std::memcpy(f.data(), b.st->interface(b.ifindex)->mac.b, 6);
        f[12] = 0x08; f[13] = (i & 2) ? 0x06 : 0x00;
      }
    } else {
      // a captured frame with a few bytes changed, truncated or extended
      f = tap.frames[r.below(uint32_t(tap.frames.size()))];
      int flips = 1 + int(r.below(4));
      for (int k = 0; k < flips && !f.empty(); k++) {
        size_t pos = 14 + r.below(uint32_t(std::max<size_t>(1, f.size() > 14 ? std::min<size_t>(f.size() - 14, 60) : 1)));
        if (pos < f.size()) f[pos] = uint8_t(r.next());
      }
      if (mode == 8 && !f.empty()) f.resize(r.below(uint32_t(f.size())));
      if (mode == 9) f.resize(f.size() + r.below(64), uint8_t(r.next()));
      // half the time fix the IPv4 header checksum so the damage reaches the layers above
      if ((i & 1) && f.size() >= 34 && f[12] == 0x08 && f[13] == 0x00) {
        size_t ihl = size_t(f[14] & 15) * 4;
        if (ihl >= 20 && 14 + ihl <= f.size()) {
          f[24] = f[25] = 0;
          uint16_t ck = wire::internet_checksum(f.data() + 14, ihl);
          std::memcpy(&f[24], &ck, 2);
        }
      }
    }
    // exact-size copy so ASan sees any overread
    std::unique_ptr<uint8_t[]> p(new uint8_t[f.size() + 1]);
    if (!f.empty()) std::memcpy(p.get(), f.data(), f.size());
    b.st->input(b.ifindex, p.get(), f.size());
    if (i % 1000 == 0) { w.set_time(w.now + 50000); w.settle(); }
    while (int sd = b.st->accept(l, nullptr)) { if (sd < 0) break; b.st->close(sd); }
    char buf[2048];
    while (b.st->recv(u, buf, sizeof buf) > 0) {}
  }
  const auto& after = b.st->stats();
  uint64_t dropped_before = before.eth.malformed + before.eth.not_for_us + before.eth.unknown_type + before.arp.in_malformed +
                            before.ip.in_hdr_errors + before.ip.in_csum_errors + before.ip.in_truncated + before.ip.in_addr_errors +
                            before.ip.in_martians + before.udp.in_errors + before.icmp.in_errors;
  uint64_t dropped_after = after.eth.malformed + after.eth.not_for_us + after.eth.unknown_type + after.arp.in_malformed +
                           after.ip.in_hdr_errors + after.ip.in_csum_errors + after.ip.in_truncated + after.ip.in_addr_errors +
                           after.ip.in_martians + after.udp.in_errors + after.icmp.in_errors;
  std::printf("  verify=%d: %d frames, %llu counted as dropped; eth malformed %llu, ip hdr %llu csum %llu trunc %llu, "
              "tcp segs %llu, neighbours %zu\n",
              verify, N, (unsigned long long)(dropped_after - dropped_before), (unsigned long long)after.eth.malformed,
              (unsigned long long)after.ip.in_hdr_errors, (unsigned long long)after.ip.in_csum_errors,
              (unsigned long long)after.ip.in_truncated, (unsigned long long)after.tcp.in_segs, b.st->neighbour_count());
  CHECK(dropped_after - dropped_before > uint64_t(N) / 4);
  CHECK(b.st->neighbour_count() <= 512);
  // still works
  w.advance(60000000);  // let reassembly and ARP timers run out
  exchange(w, a, b, &udp_ok, &ping_ok);
  CHECK_EQ(udp_ok, 2);
  CHECK(ping_ok);
}

TEST("fuzz: 150k frames, checksums not verified (in-process link)") { fuzz(false); }
TEST("fuzz: 150k frames, checksums verified") { fuzz(true); }
TEST_MAIN()
