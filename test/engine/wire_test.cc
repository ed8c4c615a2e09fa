// Parsers and builders of native/engine/wire against hand-built frames, truncation and
// random bytes; the checksum against a plain RFC 1071 sum; IpAddr text; RecordRing.
#include <deque>
#include <memory>
#include <vector>

#include "check.h"
#include "engine/common.h"
#include "engine/ring.h"
#include "engine/wire/arp.h"
#include "engine/wire/checksum.h"
#include "engine/wire/ethernet.h"
#include "engine/wire/icmp.h"
#include "engine/wire/ipv4.h"
#include "engine/wire/ipv6.h"
#include "engine/wire/udp.h"

using namespace ms;
using namespace ms::wire;

static uint16_t naive_csum(const uint8_t* p, size_t n) {
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < n; i += 2) s += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) s += uint32_t(p[n - 1] << 8);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(~s);
}

TEST("checksum: RFC 1071 example and random buffers against a plain sum") {
  const uint8_t ex[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  uint16_t c = internet_checksum(ex, sizeof ex);
  uint8_t b[2];
  std::memcpy(b, &c, 2);
  CHECK_EQ(int(b[0] << 8 | b[1]), 0x220d);
  Rng r(1);
  std::vector<uint8_t> buf(70016);
  for (int iter = 0; iter < 3000; iter++) {
    size_t n = iter < 200 ? size_t(iter) : r.below(iter % 10 == 0 ? 70000 : 3000);
    size_t off = r.below(8) & ~size_t(1);  // even offsets: any alignment of the data
    for (size_t i = 0; i < n; i++) buf[off + i] = uint8_t(iter % 7 == 0 ? 0xff : r.next());
    if (off + n > buf.size()) continue;
    uint16_t got = internet_checksum(buf.data() + off, n);
    uint8_t g[2];
    std::memcpy(g, &got, 2);
    uint16_t want = naive_csum(buf.data() + off, n);
    if (uint16_t(g[0] << 8 | g[1]) != want) { CHECK_EQ(int(g[0] << 8 | g[1]), int(want)); break; }
  }
  // a buffer that includes its own checksum sums to zero
  uint8_t pkt[40];
  for (auto& x : pkt) x = uint8_t(r.next());
  pkt[10] = pkt[11] = 0;
  uint16_t ck = internet_checksum(pkt, sizeof pkt);
  std::memcpy(pkt + 10, &ck, 2);
  CHECK(csum_ok(csum_add(0, pkt, sizeof pkt)));
}

TEST("IpAddr: parse and print v4 and v6 (RFC 5952)") {
  struct { const char* in; const char* out; } ok[] = {
      {"10.0.0.1", "10.0.0.1"}, {"255.255.255.255", "255.255.255.255"}, {"0.0.0.0", "0.0.0.0"},
      {"::", "::"}, {"::1", "::1"}, {"fd00::2", "fd00::2"}, {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
      {"2001:DB8::", "2001:db8::"}, {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"}, {"1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"},
      {"::ffff:1.2.3.4", "::ffff:1.2.3.4"}, {"fe80::1%3", "fe80::1%3"}, {"64:ff9b::192.0.2.33", "64:ff9b::c000:221"},
  };
  for (auto& t : ok) {
    IpAddr a;
    bool parsed = a.parse(t.in);
    CHECK(parsed);
    if (parsed && a.str() != t.out) { std::printf("  %s -> %s (want %s)\n", t.in, a.str().c_str(), t.out); CHECK(false); }
  }
  const char* bad[] = {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", "a.b.c.d", "1:::2", ":1", "1:",
                       "1:2:3:4:5:6:7:8:9", "12345::", "1::2::3", "fe80::1%", "fe80::1%x", "::1.2.3", "1.2.3.-4", "::g"};
  for (auto* s : bad) {
    IpAddr a;
    if (a.parse(s)) { std::printf("  accepted bad '%s'\n", s); CHECK(false); }
  }
  CHECK(IpAddr::v4(0x0a000001).str() == "10.0.0.1");
}

static std::vector<uint8_t> eth(uint16_t type, int vlan_tags, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> f(12);
  for (int i = 0; i < 6; i++) { f[i] = 0xff; f[6 + i] = uint8_t(0x10 + i); }
  for (int t = 0; t < vlan_tags; t++) { f.push_back(t ? 0x81 : 0x88); f.push_back(t ? 0x00 : 0xa8); f.push_back(0); f.push_back(5); }
  f.push_back(uint8_t(type >> 8));
  f.push_back(uint8_t(type));
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

TEST("ethernet: plain, 802.1Q and QinQ tags, 802.3 length frames, truncation") {
  EthHeader h;
  auto f = eth(0x0800, 0, {1, 2, 3});
  CHECK(parse_ethernet(f.data(), f.size(), &h));
  CHECK_EQ(h.ethertype, 0x0800);
  CHECK_EQ(h.header_len, 14);
  CHECK(h.dst.is_broadcast());
  f = eth(0x0806, 1, {});
  f[12] = 0x81; f[13] = 0x00;
  CHECK(parse_ethernet(f.data(), f.size(), &h));
  CHECK_EQ(h.ethertype, 0x0806);
  CHECK_EQ(h.header_len, 18);
  f = eth(0x0800, 2, {});
  CHECK(parse_ethernet(f.data(), f.size(), &h));
  CHECK_EQ(h.header_len, 22);
  f = eth(0x05dc, 0, {});  // 802.3 length
  CHECK(!parse_ethernet(f.data(), f.size(), &h));
  f = eth(0x0800, 1, {});
  for (size_t n = 0; n < 18; n++) CHECK(!parse_ethernet(f.data(), n, &h));
}

TEST("arp: builder and parser agree; wrong hardware/protocol and truncation rejected") {
  ArpPacket a;
  a.op = kArpRequest;
  a.sha.b[5] = 9;
  uint8_t spa[4] = {10, 0, 0, 1}, tpa[4] = {10, 0, 0, 2};
  std::memcpy(a.spa, spa, 4);
  std::memcpy(a.tpa, tpa, 4);
  uint8_t b[kArpLen];
  emit_arp(b, a);
  ArpPacket p;
  CHECK(parse_arp(b, sizeof b, &p));
  CHECK_EQ(p.op, kArpRequest);
  CHECK(p.sha == a.sha);
  CHECK(std::memcmp(p.tpa, tpa, 4) == 0);
  for (size_t n = 0; n < kArpLen; n++) CHECK(!parse_arp(b, n, &p));
  b[5] = 16;  // IPv6-sized protocol address
  CHECK(!parse_arp(b, sizeof b, &p));
  emit_arp(b, a);
  b[7] = 3;  // RARP op
  CHECK(!parse_arp(b, sizeof b, &p));
}

TEST("ipv4: header fields, options, every kind of malformation") {
  uint8_t pkt[64] = {};
  Ipv4Header h;
  uint8_t s[4] = {10, 0, 0, 1}, d[4] = {10, 0, 0, 2};
  std::memcpy(h.src, s, 4);
  std::memcpy(h.dst, d, 4);
  h.proto = kProtoUdp;
  h.ttl = 7;
  h.id = 0x1234;
  h.df = true;
  h.total_len = 28;
  emit_ipv4(pkt, h);
  Ipv4Header o;
  CHECK(parse_ipv4(pkt, 28, true, &o) == Ipv4Error::None);
  CHECK_EQ(o.id, 0x1234);
  CHECK(o.df && !o.mf && o.frag_offset == 0 && o.ttl == 7 && o.proto == kProtoUdp && o.header_len == 20);
  CHECK(parse_ipv4(pkt, 40, true, &o) == Ipv4Error::None);  // trailing padding is fine
  CHECK(parse_ipv4(pkt, 27, true, &o) == Ipv4Error::TotalLength);
  for (size_t n = 0; n < 20; n++) CHECK(parse_ipv4(pkt, n, true, &o) == Ipv4Error::Truncated);
  pkt[8] ^= 1;
  CHECK(parse_ipv4(pkt, 28, true, &o) == Ipv4Error::Checksum);
  CHECK(parse_ipv4(pkt, 28, false, &o) == Ipv4Error::None);  // offloaded: not checked
  pkt[8] ^= 1;
  uint8_t v6[28];
  std::memcpy(v6, pkt, 28);
  v6[0] = 0x65;
  CHECK(parse_ipv4(v6, 28, true, &o) == Ipv4Error::Version);
  v6[0] = 0x44;
  CHECK(parse_ipv4(v6, 28, false, &o) == Ipv4Error::HeaderLength);
  v6[0] = 0x4f;  // 60-byte header in a 28-byte packet
  CHECK(parse_ipv4(v6, 28, false, &o) == Ipv4Error::HeaderLength);
  // a header with 4 bytes of options
  uint8_t opt[32] = {0x46, 0, 0, 32, 0, 0, 0x20, 0x03, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 1, 0};
  uint16_t c = internet_checksum(opt, 24);
  std::memcpy(opt + 10, &c, 2);
  CHECK(parse_ipv4(opt, 32, true, &o) == Ipv4Error::None);
  CHECK_EQ(o.header_len, 24);
  CHECK(o.mf);
  CHECK_EQ(o.frag_offset, 24);
  CHECK(o.is_fragment());
}

TEST("icmp and udp: parse, checksum, truncation") {
  uint8_t m[16] = {8, 0, 0, 0, 0x12, 0x34, 0, 5, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'};
  IcmpHeader ih;
  ih.type = 8;
  st16(ih.rest, 0x1234);
  st16(ih.rest + 2, 5);
  emit_icmp(m, sizeof m, ih);
  IcmpHeader o;
  CHECK(parse_icmp(m, sizeof m, true, &o));
  CHECK_EQ(o.id(), 0x1234);
  CHECK_EQ(o.seq(), 5);
  m[9] ^= 0x40;
  CHECK(!parse_icmp(m, sizeof m, true, &o));
  CHECK(!parse_icmp(m, 7, false, &o));
  bool fatal;
  CHECK_EQ(icmp_unreach_errno(kUnreachPort, &fatal), ECONNREFUSED);
  CHECK(fatal);
  CHECK_EQ(icmp_unreach_errno(kUnreachHost, &fatal), EHOSTUNREACH);
  CHECK(!fatal);
  CHECK_EQ(icmp_unreach_errno(200, &fatal), EHOSTUNREACH);

  uint8_t u[13];
  emit_udp(u, 1000, 2000, 13);
  std::memcpy(u + 8, "hello", 5);
  uint8_t s[4] = {10, 0, 0, 1}, d[4] = {10, 0, 0, 2};
  udp_checksum_v4(u, 13, s, d);
  CHECK(csum_ok(csum_add(pseudo_v4(s, d, 17, 13), u, 13)));
  UdpHeader uh;
  CHECK(parse_udp(u, 13, &uh));
  CHECK_EQ(uh.src_port, 1000);
  CHECK_EQ(uh.length, 13);
  CHECK(!parse_udp(u, 12, &uh));  // length beyond the IP payload
  u[5] = 7;                       // length below the header
  CHECK(!parse_udp(u, 13, &uh));
  for (size_t n = 0; n < 8; n++) CHECK(!parse_udp(u, n, &uh));
}

TEST("ipv6: fixed header round trip, version and length checks") {
  Ipv6Header h;
  h.traffic_class = 0xab;
  h.flow_label = 0x12345;
  h.payload_len = 8;
  h.next_header = kNextIcmpv6;
  h.hop_limit = 255;
  IpAddr a;
  a.parse("fe80::1");
  std::memcpy(h.src, a.b, 16);
  uint8_t p[48] = {};
  emit_ipv6(p, h);
  Ipv6Header o;
  CHECK(parse_ipv6(p, 48, &o) == Ipv6Error::None);
  CHECK(o.traffic_class == 0xab && o.flow_label == 0x12345 && o.payload_len == 8 && o.hop_limit == 255);
  CHECK(IpAddr::v6_bytes(o.src).str() == "fe80::1");
  CHECK(parse_ipv6(p, 47, &o) == Ipv6Error::PayloadLength);
  CHECK(parse_ipv6(p, 39, &o) == Ipv6Error::Truncated);
  p[0] = 0x45;
  CHECK(parse_ipv6(p, 48, &o) == Ipv6Error::Version);
}

TEST("parsers: random bytes of every length never read out of bounds") {
  Rng r(7);
  std::vector<uint8_t> b;
  int accepted = 0;
  for (int i = 0; i < 200000; i++) {
    size_t n = r.below(i % 100 == 0 ? 2000 : 80);
    b.resize(n);
    for (auto& x : b) x = uint8_t(r.next());
    if (n > 0 && i % 3 == 0) b[0] = 0x45;
    // exact-size heap copy so ASan sees any overread
    std::unique_ptr<uint8_t[]> p(new uint8_t[n ? n : 1]);
    if (n) std::memcpy(p.get(), b.data(), n);
    EthHeader eh; ArpPacket ap; Ipv4Header h; IcmpHeader ih; UdpHeader uh; Ipv6Header h6;
    accepted += parse_ipv6(p.get(), n, &h6) == Ipv6Error::None;
    accepted += parse_ethernet(p.get(), n, &eh);
    accepted += parse_arp(p.get(), n, &ap);
    accepted += parse_ipv4(p.get(), n, i & 1, &h) == Ipv4Error::None;
    accepted += parse_icmp(p.get(), n, i & 1, &ih);
    accepted += parse_udp(p.get(), n, &uh);
  }
  CHECK(accepted > 0);
}

TEST("RecordRing: random pushes and pops against a deque, growth, wrap, limit") {
  RecordRing ring(64, 1 << 16);
  std::deque<std::vector<uint8_t>> ref;
  Rng r(3);
  int refused = 0;
  for (int i = 0; i < 200000; i++) {
    if (r.below(100) < 55) {
      size_t n = r.below(r.below(10) == 0 ? 3000 : 100);
      std::vector<uint8_t> v(n);
      for (auto& x : v) x = uint8_t(r.next());
      if (ring.push_copy(v.data(), n, uint32_t(n * 3))) ref.push_back(v);
      else refused++;
    } else if (!ref.empty()) {
      size_t n;
      uint32_t tag;
      uint8_t* p = ring.front(&n, &tag);
      if (n != ref.front().size() || tag != n * 3 || (n && std::memcmp(p, ref.front().data(), n) != 0)) { CHECK(false); break; }
      ring.pop();
      ref.pop_front();
    }
    if (ring.count() != ref.size()) { CHECK_EQ(ring.count(), ref.size()); break; }
  }
  CHECK(refused > 0);  // the limit was reached at times
  CHECK(ring.capacity() <= (1u << 16));
  while (!ring.empty()) ring.pop();
  ring.release();
  CHECK_EQ(ring.capacity(), 0u);
}

TEST_MAIN()
