// IPv4: routing (longest prefix, gateways, source selection), fragmentation and
// reassembly (shuffled, duplicated, overlapping, bounded, timed out), input validation.
#include <algorithm>

#include "check.h"
#include "engine/wire/arp.h"
#include "engine/wire/ethernet.h"
#include "engine/wire/icmp.h"
#include "engine/wire/ipv4.h"
#include "engine/wire/udp.h"
#include "world.h"

using namespace tw;

struct Host {
  std::unique_ptr<Stack> s;
  SinkLink link;
  int ifx = 0;
  explicit Host(const char* addr, uint8_t prefix, uint8_t mac, StackConfig cfg = {}, uint32_t mtu = 1500) {
    s = std::make_unique<Stack>(cfg);
    InterfaceConfig ic;
    ic.mac.b[0] = 2;
    ic.mac.b[5] = mac;
    ic.mtu = mtu;
    ic.link = &link;
    ifx = s->add_interface(ic);
    s->add_address(ifx, ip(addr), prefix);
    link.frames.clear();
  }
};

/** the target address of the ARP request in frame f, or "" */
static std::string arp_target(const std::vector<uint8_t>& f) {
  wire::EthHeader eh;
  wire::ArpPacket a;
  if (!wire::parse_ethernet(f.data(), f.size(), &eh) || eh.ethertype != wire::kEtherArp) return "";
  if (!wire::parse_arp(f.data() + 14, f.size() - 14, &a)) return "";
  return IpAddr::v4_bytes(a.tpa).str();
}

TEST("routing: longest prefix wins, gateways are resolved, on-link check, no route") {
  Host h("10.0.0.1", 24, 1);
  Stack& s = *h.s;
  CHECK_EQ(s.add_route(ip("0.0.0.0"), 0, ip("10.0.0.254")), 0);
  CHECK_EQ(s.add_route(ip("192.168.0.0"), 16, ip("10.0.0.253")), 0);
  CHECK_EQ(s.add_route(ip("192.168.1.0"), 24, ip("10.0.0.252")), 0);
  CHECK_EQ(s.add_route(ip("172.16.0.0"), 12, ip("10.9.9.9")), -ENETUNREACH);  // gateway not on-link
  int sd = s.socket(AF_INET, SOCK_DGRAM, 0);
  struct { const char* dst; const char* via; } cases[] = {
      {"192.168.1.7", "10.0.0.252"}, {"192.168.2.7", "10.0.0.253"}, {"8.8.8.8", "10.0.0.254"}, {"10.0.0.77", "10.0.0.77"}};
  for (auto& c : cases) {
    h.link.frames.clear();
    Endpoint to = ep(c.dst, 53);
    CHECK_EQ(s.sendto(sd, "q", 1, 0, &to), 1);
    CHECK(h.link.frames.size() == 1 && arp_target(h.link.frames[0]) == c.via);
  }
  RouteInfo ri;
  CHECK_EQ(s.route(ip("8.8.8.8"), &ri), 0);
  CHECK(ri.src == ip("10.0.0.1") && ri.mtu == 1500 && !ri.csum_offload);
  CHECK_EQ(s.remove_route(ip("0.0.0.0"), 0), 0);
  Endpoint far = ep("8.8.8.8", 53);
  CHECK_EQ(s.sendto(sd, "q", 1, 0, &far), -ENETUNREACH);
  CHECK_EQ(s.route(ip("8.8.8.8"), &ri), -ENETUNREACH);
  CHECK_EQ(s.route(ip("10.0.0.1"), &ri), 0);  // local: loopback
  CHECK(ri.ifindex == 0 && ri.csum_offload);
}

TEST("routing: source address follows the interface/subnet") {
  Stack s;
  SinkLink l1, l2;
  InterfaceConfig c1, c2;
  c1.link = &l1; c1.mac.b[5] = 1;
  c2.link = &l2; c2.mac.b[5] = 2;
  int i1 = s.add_interface(c1), i2 = s.add_interface(c2);
  s.add_address(i1, ip("10.0.0.1"), 24);
  s.add_address(i2, ip("10.1.0.1"), 24);
  s.add_address(i2, ip("10.2.0.1"), 16);
  CHECK_EQ(s.add_address(i2, ip("10.2.0.1"), 16), -EEXIST);
  CHECK_EQ(s.add_route(ip("0.0.0.0"), 0, ip("10.2.0.254")), 0);
  RouteInfo ri;
  s.route(ip("10.1.0.9"), &ri);
  CHECK(ri.src == ip("10.1.0.1") && ri.ifindex == i2);
  s.route(ip("10.0.0.9"), &ri);
  CHECK(ri.src == ip("10.0.0.1") && ri.ifindex == i1);
  s.route(ip("1.1.1.1"), &ri);
  CHECK(ri.src == ip("10.2.0.1") && ri.ifindex == i2);  // the gateway's subnet
  CHECK(s.is_local_address(ip("10.2.0.1")) && s.is_local_address(ip("127.0.0.5")) && !s.is_local_address(ip("10.2.0.2")));
}

/** the IPv4 fragments (ethernet frames) of one UDP datagram of n bytes sent to the broadcast address */
static std::vector<std::vector<uint8_t>> fragments_of(size_t n, uint16_t port, uint32_t mtu = 1500) {
  Host h("10.0.0.1", 24, 1, {}, mtu);
  int sd = h.s->socket(AF_INET, SOCK_DGRAM, 0);
  int one = 1;
  h.s->setsockopt(sd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
  std::vector<uint8_t> data(n);
  for (size_t i = 0; i < n; i++) data[i] = uint8_t(i * 7 + i / 256);
  Endpoint to = ep("10.0.0.255", port);
  h.s->sendto(sd, data.data(), n, 0, &to);
  return h.link.frames;
}

static int recv_one(Host& h, int sd, size_t n) {
  std::vector<uint8_t> buf(70000);
  long r = h.s->recv(sd, buf.data(), buf.size());
  if (r != long(n)) return int(r);
  for (size_t i = 0; i < n; i++) if (buf[i] != uint8_t(i * 7 + i / 256)) return -1000;
  return int(r);
}

TEST("fragmentation: sizes and flags on the wire; shuffled and duplicated fragments reassemble") {
  auto frags = fragments_of(20000, 4000);
  CHECK_EQ(frags.size(), 14u);  // 20008 bytes of UDP in 1480-byte pieces
  size_t total = 0;
  for (size_t i = 0; i < frags.size(); i++) {
    wire::Ipv4Header h;
    CHECK(wire::parse_ipv4(frags[i].data() + 14, frags[i].size() - 14, true, &h) == wire::Ipv4Error::None);
    CHECK(h.total_len <= 1500 && !h.df);
    CHECK_EQ(h.mf, i + 1 < frags.size());
    CHECK_EQ(size_t(h.frag_offset), total);
    total += h.total_len - 20;
  }
  CHECK_EQ(total, 20008u);
  Rng r(5);
  for (int round = 0; round < 20; round++) {
    Host b("10.0.0.2", 24, 2);
    int sd = b.s->socket(AF_INET, SOCK_DGRAM, 0);
    b.s->bind(sd, ep("0.0.0.0", 4000));
    auto f = frags;
    for (size_t i = f.size() - 1; i > 0; i--) std::swap(f[i], f[r.below(uint32_t(i + 1))]);
    if (round & 1) f.push_back(f[r.below(uint32_t(f.size()))]);  // a duplicate too
    for (auto& x : f) b.s->input(b.ifx, x.data(), x.size());
    CHECK_EQ(recv_one(b, sd, 20000), 20000);
    CHECK_EQ(b.s->recv_available(sd), 0);
    CHECK_EQ(b.s->stats().ip.reasm_oks, 1u);
  }
  // small MTU: many fragments
  auto small = fragments_of(3000, 4001, 68);
  CHECK_EQ(small.size(), 3008u / 48 + 1);
  Host b("10.0.0.2", 24, 2);
  int sd = b.s->socket(AF_INET, SOCK_DGRAM, 0);
  b.s->bind(sd, ep("0.0.0.0", 4001));
  std::reverse(small.begin(), small.end());
  for (auto& x : small) b.s->input(b.ifx, x.data(), x.size());
  CHECK_EQ(recv_one(b, sd, 3000), 3000);
}

TEST("reassembly: overlaps drop the datagram, timeout sends time exceeded, bounds hold") {
  auto frags = fragments_of(5000, 4000);
  CHECK_EQ(frags.size(), 4u);
  {
    // a conflicting overlap: fragment 1 shifted by 8 bytes
    Host b("10.0.0.2", 24, 2);
    int sd = b.s->socket(AF_INET, SOCK_DGRAM, 0);
    b.s->bind(sd, ep("0.0.0.0", 4000));
    auto bad = frags[1];
    uint8_t* ip4 = bad.data() + 14;
    uint16_t ff = wire::ld16(ip4 + 6);
    wire::st16(ip4 + 6, uint16_t(ff + 1));
    ip4[10] = ip4[11] = 0;
    uint16_t c = wire::internet_checksum(ip4, 20);
    std::memcpy(ip4 + 10, &c, 2);
    b.s->input(b.ifx, frags[0].data(), frags[0].size());
    b.s->input(b.ifx, bad.data(), bad.size());
    for (size_t i = 1; i < frags.size(); i++) b.s->input(b.ifx, frags[i].data(), frags[i].size());
    CHECK_EQ(b.s->recv_available(sd), 0);
    CHECK(b.s->stats().ip.reasm_overlaps >= 1);
  }
  {
    // the last fragment never comes: 30 s later the datagram is dropped, the sender told
    Host b("10.0.0.2", 24, 2);
    b.s->set_now(1000000);
    for (size_t i = 0; i + 1 < frags.size(); i++) {
      auto f = frags[i];  // made unicast: no ICMP error is ever sent about a broadcast
      uint8_t* ip4 = f.data() + 14;
      ip4[19] = 2;
      ip4[10] = ip4[11] = 0;
      uint16_t c = wire::internet_checksum(ip4, 20);
      std::memcpy(ip4 + 10, &c, 2);
      b.s->input(b.ifx, f.data(), f.size());
    }
    CHECK(b.s->poll_at() == 31000000);
    b.s->poll(30999999);
    CHECK_EQ(b.s->stats().ip.reasm_timeouts, 0u);
    b.s->poll(31000000);
    CHECK_EQ(b.s->stats().ip.reasm_timeouts, 1u);
    CHECK_EQ(b.s->stats().icmp.out_time_excds, 1u);
    CHECK(b.s->poll_at() > 31000000);
  }
  {
    // at most 64 datagrams in progress, at most max_bytes held
    StackConfig cfg;
    cfg.reassembly.max_bytes = 64 * 1024;
    Host b("10.0.0.2", 24, 2, cfg);
    for (int id = 0; id < 200; id++) {
      auto f = frags[0];
      wire::st16(f.data() + 14 + 4, uint16_t(id));
      f[14 + 10] = f[14 + 11] = 0;
      uint16_t c = wire::internet_checksum(f.data() + 14, 20);
      std::memcpy(f.data() + 14 + 10, &c, 2);
      b.s->input(b.ifx, f.data(), f.size());
    }
    CHECK(b.s->stats().ip.reasm_over_limit >= 136);
    CHECK(b.s->stats().ip.reasm_reqds == 200);
  }
  {
    // ping of death: a fragment that would end beyond 65535
    Host b("10.0.0.2", 24, 2);
    auto f = frags.back();
    uint8_t* ip4 = f.data() + 14;
    wire::st16(ip4 + 6, uint16_t(65528 / 8));
    ip4[10] = ip4[11] = 0;
    uint16_t c = wire::internet_checksum(ip4, 20);
    std::memcpy(ip4 + 10, &c, 2);
    b.s->input(b.ifx, f.data(), f.size());
    CHECK(b.s->stats().ip.reasm_over_limit == 1);
  }
}

TEST("ip input: checksum, version, lengths, martians, not ours: each counted, none delivered") {
  Host b("10.0.0.2", 24, 2);
  int sd = b.s->socket(AF_INET, SOCK_DGRAM, 0);
  b.s->bind(sd, ep("0.0.0.0", 4000));
  auto good = fragments_of(100, 4000)[0];  // one whole datagram, broadcast
  auto feed = [&](std::vector<uint8_t> f, bool fix_csum = true) {
    if (fix_csum) {
      uint8_t* ip4 = f.data() + 14;
      size_t ihl = size_t(ip4[0] & 15) * 4;
      ip4[10] = ip4[11] = 0;
      if (ihl <= f.size() - 14) {
        uint16_t c = wire::internet_checksum(ip4, ihl);
        std::memcpy(ip4 + 10, &c, 2);
      }
    }
    b.s->input(b.ifx, f.data(), f.size());
  };
  feed(good);
  char buf[200];
  CHECK_EQ(b.s->recv(sd, buf, sizeof buf), 100);
  auto f = good; f[14 + 8] ^= 1; feed(f, false);
  CHECK_EQ(b.s->stats().ip.in_csum_errors, 1u);
  f = good; f[14] = 0x65; feed(f);
  CHECK_EQ(b.s->stats().ip.in_hdr_errors, 1u);
  f = good; f[14] = 0x43; feed(f);
  CHECK_EQ(b.s->stats().ip.in_hdr_errors, 2u);
  f = good; f.resize(14 + 60); feed(f);
  CHECK_EQ(b.s->stats().ip.in_truncated, 1u);
  f = good; f[14 + 12] = 224; feed(f);  // multicast source
  f = good; f[14 + 12] = 127; feed(f);  // loopback from the wire
  f = good; std::memcpy(&f[14 + 12], "\x0a\x00\x00\x02", 4); feed(f);  // our own address
  CHECK_EQ(b.s->stats().ip.in_martians, 3u);
  f = good; std::memcpy(&f[14 + 16], "\x0a\x00\x00\x07", 4); feed(f);  // someone else's
  CHECK_EQ(b.s->stats().ip.in_addr_errors, 1u);
  f = good; f[14 + 20 + 6] ^= 0x55; feed(f);  // UDP checksum wrong
  CHECK_EQ(b.s->stats().udp.in_csum_errors, 1u);
  f = good; f[14 + 20 + 6] = f[14 + 20 + 7] = 0; feed(f);  // no UDP checksum: accepted
  CHECK_EQ(b.s->recv(sd, buf, sizeof buf), 100);
  CHECK_EQ(b.s->recv(sd, buf, sizeof buf), -EAGAIN);
  f = good; f.push_back(0); f.push_back(0); feed(f);  // ethernet padding is ignored
  CHECK_EQ(b.s->recv(sd, buf, sizeof buf), 100);
}
TEST_MAIN()
