// IPv6: neighbour discovery, ping6, UDP/TCP between stacks, dual-stack sockets, DAD,
// extension headers, Packet Too Big, fragmentation, SLAAC from a router advertisement, and
// parsers fed hostile bytes.
#include "check.h"
#include "engine/wire/checksum.h"
#include "engine/wire/ethernet.h"
#include "engine/wire/ipv6.h"
#include "world.h"

using namespace tw;

static StackConfig no_dad() { StackConfig c; c.dad = false; return c; }

/** the MAC of sink_iface()'s interface */
static const MacAddr kSinkMac = [] { MacAddr m; m.b[0] = 2; m.b[5] = 1; return m; }();

/** an interface of st on link with MAC kSinkMac and fd00::1/64; its index */
static int sink_iface(Stack& st, SinkLink& link) {
  InterfaceConfig ic;
  ic.mac = kSinkMac;
  ic.link = &link;
  int ifx = st.add_interface(ic);
  CHECK_EQ(st.add_address(ifx, ip("fd00::1"), 64), 0);
  return ifx;
}

static int sock(Stack& s, int domain, int type, const char* addr, uint16_t port) {
  int sd = s.socket(domain, type, 0);
  if (sd < 0) return sd;
  int r = s.bind(sd, ep(addr, port));
  return r < 0 ? r : sd;
}

/** an ethernet + IPv6 frame to `dst` from `src` carrying payload (checksum of ICMPv6 filled when icmp) */
static std::vector<uint8_t> frame6(const MacAddr& dmac, const char* src, const char* dst, uint8_t nh, const std::vector<uint8_t>& payload,
                                   uint8_t hops = 64, int icmp_csum_at = -1) {
  std::vector<uint8_t> f(14 + 40 + payload.size());
  MacAddr smac; smac.b[0] = 0x02; smac.b[5] = 0x99;
  wire::emit_ethernet(f.data(), dmac, smac, wire::kEtherIpv6);
  wire::Ipv6Header h;
  IpAddr s = ip(src), d = ip(dst);
  std::memcpy(h.src, s.b, 16);
  std::memcpy(h.dst, d.b, 16);
  h.next_header = nh;
  h.hop_limit = hops;
  h.payload_len = uint16_t(payload.size());
  wire::emit_ipv6(f.data() + 14, h);
  std::memcpy(f.data() + 54, payload.data(), payload.size());
  if (icmp_csum_at >= 0) {
    uint8_t* q = f.data() + 54 + icmp_csum_at;
    q[2] = q[3] = 0;
    size_t n = payload.size() - size_t(icmp_csum_at);
    uint16_t c = wire::csum_finish(wire::csum_add(wire::pseudo_v6(s.b, d.b, 58, uint32_t(n)), q, n));
    std::memcpy(q + 2, &c, 2);
  }
  return f;
}

TEST("ipv6: ping6 between two stacks resolves the neighbour with NDP") {
  World w;
  Node& a = w.add("fd00::1/64", no_dad());
  Node& b = w.add("fd00::2/64", no_dad());
  uint16_t idseq[2];
  CHECK_EQ(a.st->ping(ip("fd00::2"), 56, idseq), 0);
  w.settle();
  CHECK_EQ(a.pings.size(), size_t(1));
  if (!a.pings.empty()) {
    CHECK_EQ(a.pings[0].status, 0);
    CHECK(a.pings[0].from == ip("fd00::2"));
    CHECK_EQ(a.pings[0].bytes, size_t(56));
  }
  MacAddr m;
  CHECK(a.st->neighbour_lookup(a.ifindex, ip("fd00::2"), &m));
  CHECK(m == b.st->interface(b.ifindex)->mac);
  CHECK(a.st->stats().icmp6.out_neighbor_solicits >= 1);
  CHECK(b.st->stats().icmp6.out_neighbor_adverts >= 1);
  CHECK_EQ(b.st->stats().icmp6.out_echo_reps, 1u);
  // link-local ping with a scope id, and every interface has its EUI-64 link-local address
  const Interface* bi = b.st->interface(b.ifindex);
  IpAddr ll;
  for (auto& x : bi->addrs) if (x.addr.b[0] == 0xfe) ll = x.addr;
  CHECK(ll.is_set());
  CHECK_EQ(ll.b[8], uint8_t(bi->mac.b[0] ^ 2));
  CHECK_EQ(ll.b[11], 0xff);
  CHECK_EQ(ll.b[12], 0xfe);
  ll.scope = uint32_t(a.ifindex);
  CHECK_EQ(a.st->ping(ll, 8, idseq), 0);
  w.settle();
  CHECK_EQ(a.pings.size(), size_t(2));
  if (a.pings.size() == 2) { CHECK_EQ(a.pings[1].status, 0); CHECK(a.pings[1].from == ll); }
}

TEST("ipv6: ping6 to an absent neighbour fails with EHOSTUNREACH after the probes") {
  World w;
  Node& a = w.add("fd00::1/64", no_dad());
  uint16_t idseq[2];
  CHECK_EQ(a.st->ping(ip("fd00::77"), 8, idseq), 0);
  w.advance(5000000);
  CHECK_EQ(a.pings.size(), size_t(1));
  if (!a.pings.empty()) CHECK_EQ(a.pings[0].status, -EHOSTUNREACH);
  CHECK_EQ(a.st->stats().icmp6.out_neighbor_solicits, 3u);
}

TEST("ipv6: UDP both ways, and a dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d") {
  World w;
  Node& a = w.add("fd00::1/64", no_dad());
  Node& b = w.add("fd00::2/64", no_dad());
  CHECK_EQ(a.st->add_address(a.ifindex, ip("10.0.0.1"), 24), 0);
  CHECK_EQ(b.st->add_address(b.ifindex, ip("10.0.0.2"), 24), 0);
  int sb = sock(*b.st, AF_INET6, SOCK_DGRAM, "::", 5000);
  int sa = sock(*a.st, AF_INET6, SOCK_DGRAM, "::", 0);
  int s4 = sock(*a.st, AF_INET, SOCK_DGRAM, "0.0.0.0", 0);
  CHECK(sa > 0 && sb > 0 && s4 > 0);
  Endpoint to = ep("fd00::2", 5000);
  CHECK_EQ(a.st->sendto(sa, "hello6", 6, 0, &to), 6);
  Endpoint to4 = ep("10.0.0.2", 5000);
  CHECK_EQ(a.st->sendto(s4, "hello4", 6, 0, &to4), 6);
  w.settle();
  char buf[64];
  Endpoint from, from4, e;
  for (int i = 0; i < 2; i++) {  // ARP and NDP race: either may arrive first
    CHECK_EQ(b.st->recvfrom(sb, buf, sizeof buf, 0, &e), 6);
    if (std::memcmp(buf, "hello6", 6) == 0) from = e;
    else if (std::memcmp(buf, "hello4", 6) == 0) from4 = e;
  }
  CHECK(from.addr == ip("fd00::1"));
  CHECK(from4.addr == ip("::ffff:10.0.0.1"));
  // replies: to the v6 peer, and to the mapped v4 peer (goes out as IPv4)
  CHECK_EQ(b.st->sendto(sb, "r6", 2, 0, &from), 2);
  CHECK_EQ(b.st->sendto(sb, "r4", 2, 0, &from4), 2);
  w.settle();
  CHECK_EQ(a.st->recvfrom(sa, buf, sizeof buf, 0, &from), 2);
  CHECK(from.addr == ip("fd00::2") && from.port == 5000);
  CHECK_EQ(a.st->recvfrom(s4, buf, sizeof buf, 0, &from), 2);
  CHECK(from.addr == ip("10.0.0.2") && from.port == 5000);
  // IPV6_V6ONLY: set before bind, then IPv4 is refused
  int so = a.st->socket(AF_INET6, SOCK_DGRAM, 0);
  int one = 1;
  CHECK_EQ(a.st->setsockopt(so, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one), 0);
  CHECK_EQ(a.st->bind(so, ep("::", 6000)), 0);
  CHECK_EQ(a.st->setsockopt(so, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one), -EINVAL);
  Endpoint m4 = ep("::ffff:10.0.0.2", 5000);
  CHECK_EQ(a.st->sendto(so, "x", 1, 0, &m4), -ENETUNREACH);
  // a v4 socket and a v6-only socket share the port; a dual-stack one would not
  CHECK(sock(*a.st, AF_INET, SOCK_DGRAM, "0.0.0.0", 6000) > 0);
  CHECK_EQ(sock(*a.st, AF_INET6, SOCK_DGRAM, "::", 6000), -EADDRINUSE);
  // to a closed port: ICMPv6 port unreachable makes a connected socket fail
  int sc = a.st->socket(AF_INET6, SOCK_DGRAM, 0);
  CHECK_EQ(a.st->connect(sc, ep("fd00::2", 7)), 0);
  CHECK_EQ(a.st->send(sc, "z", 1, 0), 1);
  w.settle();
  CHECK_EQ(a.st->recv(sc, buf, sizeof buf, 0), -ECONNREFUSED);
}

TEST("ipv6: a UDP datagram larger than the MTU is fragmented and reassembled") {
  World w;
  Node& a = w.add("fd00::1/64", no_dad());
  Node& b = w.add("fd00::2/64", no_dad());
  int sb = sock(*b.st, AF_INET6, SOCK_DGRAM, "fd00::2", 5000);
  int sa = sock(*a.st, AF_INET6, SOCK_DGRAM, "::", 0);
  std::vector<uint8_t> big(9000);
  for (size_t i = 0; i < big.size(); i++) big[i] = uint8_t(i * 7 + 3);
  Endpoint to = ep("fd00::2", 5000);
  CHECK_EQ(a.st->sendto(sa, big.data(), big.size(), 0, &to), long(big.size()));
  w.settle();
  std::vector<uint8_t> got(10000);
  CHECK_EQ(b.st->recvfrom(sb, got.data(), got.size(), 0, nullptr), long(big.size()));
  CHECK(std::memcmp(got.data(), big.data(), big.size()) == 0);
  CHECK_EQ(a.st->stats().ip6.frag_creates, 7u);
  CHECK_EQ(b.st->stats().ip6.reasm_oks, 1u);
}

TEST("ipv6: TCP transfer between two stacks is byte-exact, MSS from the v6 MTU") {
  World w;
  Node& a = w.add("fd00::1/64", no_dad());
  Node& b = w.add("fd00::2/64", no_dad());
  int l = sock(*b.st, AF_INET6, SOCK_STREAM, "::", 80);
  CHECK(l > 0);
  CHECK_EQ(b.st->listen(l, 8), 0);
  int c = a.st->socket(AF_INET6, SOCK_STREAM, 0);
  CHECK_EQ(a.st->connect(c, ep("fd00::2", 80)), -EINPROGRESS);
  w.settle();
  Endpoint peer;
  int s = b.st->accept(l, &peer);
  CHECK(s > 0);
  CHECK(peer.addr == ip("fd00::1"));
  const size_t total = 1 << 20;
  std::vector<uint8_t> data(total), got;
  for (size_t i = 0; i < total; i++) data[i] = uint8_t((i * 131) ^ (i >> 9));
  size_t sent = 0;
  uint8_t buf[65536];
  for (int round = 0; round < 100000 && got.size() < total; round++) {
    if (sent < total) {
      long n = a.st->send(c, data.data() + sent, total - sent, 0);
      if (n > 0) sent += size_t(n);
    }
    w.advance(1000);
    long r;
    while ((r = b.st->recv(s, buf, sizeof buf, 0)) > 0) got.insert(got.end(), buf, buf + r);
  }
  CHECK_EQ(got.size(), total);
  CHECK(got == data);
  auto socks = a.st->sockets();
  for (auto& i : socks) if (i.sd == c && i.has_tcp) CHECK_EQ(i.tcp.mss, 1500u - 40 - 20 - 12);  // minus timestamps
  // a dual-stack listener takes an IPv4 connection as ::ffff:a.b.c.d
  CHECK_EQ(a.st->add_address(a.ifindex, ip("10.0.0.1"), 24), 0);
  CHECK_EQ(b.st->add_address(b.ifindex, ip("10.0.0.2"), 24), 0);
  int c4 = a.st->socket(AF_INET, SOCK_STREAM, 0);
  CHECK_EQ(a.st->connect(c4, ep("10.0.0.2", 80)), -EINPROGRESS);
  w.settle();
  int s4 = b.st->accept(l, &peer);
  CHECK(s4 > 0);
  CHECK(peer.addr == ip("::ffff:10.0.0.1"));
  CHECK_EQ(a.st->send(c4, "ping", 4, 0), 4);
  w.advance(100000);
  CHECK_EQ(b.st->recv(s4, buf, sizeof buf, 0), 4);
  CHECK_EQ(b.st->send(s4, "pong!", 5, 0), 5);
  w.advance(100000);
  CHECK_EQ(a.st->recv(c4, buf, sizeof buf, 0), 5);
  CHECK(std::memcmp(buf, "pong!", 5) == 0);
  // a dual-stack client: to an IPv4 server as ::ffff:a.b.c.d; to an absent IPv4 host, ARP's
  // failure ends the attempt with EHOSTUNREACH
  int d = a.st->socket(AF_INET6, SOCK_STREAM, 0);
  CHECK_EQ(a.st->connect(d, ep("::ffff:10.0.0.2", 80)), -EINPROGRESS);
  w.settle();
  Endpoint me;
  CHECK_EQ(a.st->getsockname(d, &me), 0);
  CHECK(me.addr == ip("::ffff:10.0.0.1"));
  CHECK(b.st->accept(l, &peer) > 0);
  int dead = a.st->socket(AF_INET6, SOCK_STREAM, 0);
  CHECK_EQ(a.st->connect(dead, ep("::ffff:10.0.0.77", 80)), -EINPROGRESS);
  w.advance(5000000);
  int err = 0;
  size_t elen = sizeof err;
  CHECK_EQ(a.st->getsockopt(dead, SOL_SOCKET, SO_ERROR, &err, &elen), 0);
  CHECK_EQ(err, EHOSTUNREACH);
}

TEST("ipv6: duplicate address detection keeps an address tentative, then gives it up on a conflict") {
  World w;
  Node& a = w.add("fd00::1/64");  // DAD on (the default)
  CHECK(!a.st->address_ready(ip("fd00::1")));
  w.advance(3000000);
  CHECK(a.st->address_ready(ip("fd00::1")));
  CHECK(a.st->stats().icmp6.out_mld_reports >= 1);
  // a second node claiming the same address loses it
  Node& b = w.add("fd00::1/64");
  w.advance(3000000);
  CHECK(!b.st->address_ready(ip("fd00::1")));
  CHECK_EQ(b.st->stats().icmp6.dad_failures, 1u);
  CHECK(a.st->address_ready(ip("fd00::1")));
}

TEST("ipv6: unknown next header gets a parameter problem; unknown options follow their action bits") {
  SinkLink link;
  Stack st(no_dad());
  int ifx = sink_iface(st, link);
  // the sender's link address, so that the error can go out at once
  std::vector<uint8_t> na(32, 0);
  na[0] = 136; na[4] = 0x20;
  IpAddr peer = ip("fd00::9");
  std::memcpy(na.data() + 8, peer.b, 16);
  na[24] = 2; na[25] = 1; na[26] = 2; na[31] = 0x99;
  auto f0 = frame6(kSinkMac, "fd00::9", "fd00::1", 253, {1, 2, 3, 4, 5, 6, 7, 8});
  link.frames.clear();
  st.input(ifx, f0.data(), f0.size());
  CHECK_EQ(st.stats().ip6.in_unknown_protos, 1u);
  // the reply waits for NDP: an NS went out; answer it
  auto fna = frame6(kSinkMac, "fd00::9", "fd00::1", 58, na, 255, 0);
  st.input(ifx, fna.data(), fna.size());
  bool pp = false;
  for (auto& f : link.frames)
    if (f.size() >= 62 && f[12] == 0x86 && f[13] == 0xdd && f[20] == 58 && f[54] == 4 && f[55] == 1 && wire::ld32(&f[58]) == 6) pp = true;
  CHECK(pp);
  // destination options with an unknown option of action 00 (skip): delivered to ICMPv6 echo
  std::vector<uint8_t> dst_opts = {58, 0, 0x1e, 4, 0, 0, 0, 0};  // next ICMPv6, len 8, option type 0x1e len 4
  std::vector<uint8_t> echo = {128, 0, 0, 0, 0x12, 0x34, 0, 1};
  std::vector<uint8_t> pl = dst_opts;
  pl.insert(pl.end(), echo.begin(), echo.end());
  auto f1 = frame6(kSinkMac, "fd00::9", "fd00::1", 60, pl, 64, 8);
  uint64_t reps = st.stats().icmp6.out_echo_reps;
  st.input(ifx, f1.data(), f1.size());
  CHECK_EQ(st.stats().icmp6.out_echo_reps, reps + 1);
  // action 01 (discard silently)
  pl[2] = 0x5e;
  auto f2 = frame6(kSinkMac, "fd00::9", "fd00::1", 60, pl, 64, 8);
  st.input(ifx, f2.data(), f2.size());
  CHECK_EQ(st.stats().icmp6.out_echo_reps, reps + 1);
  CHECK_EQ(st.stats().ip6.in_discards, 1u);
  // a hop-by-hop header that is not first: parameter problem code 1
  uint64_t errs = st.stats().icmp6.out_parm_problems;
  std::vector<uint8_t> two = {0, 0, 1, 4, 0, 0, 0, 0, 58, 0, 1, 4, 0, 0, 0, 0};  // dest opts -> hop-by-hop
  two[0] = 0;
  auto f3 = frame6(kSinkMac, "fd00::9", "fd00::1", 60, two);
  st.input(ifx, f3.data(), f3.size());
  CHECK_EQ(st.stats().icmp6.out_parm_problems, errs + 1);
}

TEST("ipv6: Packet Too Big lowers the path MTU per destination, never below 1280, bounded") {
  StackConfig cfg = no_dad();
  cfg.pmtu_entries = 4;
  SinkLink link;
  Stack st(cfg);
  int ifx = sink_iface(st, link);
  for (int i = 0; i < 10; i++) {
    // quote a packet of ours to fd00::1:<i>
    std::vector<uint8_t> q(48, 0);
    q[0] = 0x60; q[5] = 8; q[6] = 17; q[7] = 64;
    IpAddr me = ip("fd00::1"), d = ip("fd00::100");
    d.b[15] = uint8_t(i);
    std::memcpy(q.data() + 8, me.b, 16);
    std::memcpy(q.data() + 24, d.b, 16);
    std::vector<uint8_t> ptb = {2, 0, 0, 0, 0, 0, 0x05, 0x00};  // MTU 1280
    if (i == 0) ptb[6] = 0x03;  // 768: raised to 1280
    if (i == 1) { ptb[6] = 0x05; ptb[7] = 0xdc; }  // 1500
    ptb.insert(ptb.end(), q.begin(), q.end());
    auto f = frame6(kSinkMac, "fd00::fe", "fd00::1", 58, ptb, 64, 0);
    st.input(ifx, f.data(), f.size());
    if (i == 0) CHECK_EQ(st.path_mtu(d), 1280u);
    if (i == 1) CHECK_EQ(st.path_mtu(d), 1500u);
  }
  IpAddr last = ip("fd00::109");
  CHECK_EQ(st.path_mtu(last), 1280u);
  CHECK_EQ(st.stats().icmp6.in_pkt_too_bigs, 10u);
  int n = 0;
  for (int i = 0; i < 10; i++) { IpAddr d = ip("fd00::100"); d.b[15] = uint8_t(i); if (st.path_mtu(d)) n++; }
  CHECK_EQ(n, 4);
}

TEST("ipv6: a Packet Too Big from a router shrinks a TCP connection's segments; the transfer completes") {
  // two stacks wired by hand, so that a test "router" can answer one segment with a PTB
  SinkLink la, lb;
  Stack a(no_dad()), b(no_dad());
  InterfaceConfig ca, cb;
  ca.mac.b[0] = 2; ca.mac.b[5] = 1; ca.link = &la; ca.force_checksums = true;
  cb.mac.b[0] = 2; cb.mac.b[5] = 2; cb.link = &lb; cb.force_checksums = true;
  int ia = a.add_interface(ca), ib = b.add_interface(cb);
  CHECK_EQ(a.add_address(ia, ip("fd00::1"), 64), 0);
  CHECK_EQ(b.add_address(ib, ip("fd00::2"), 64), 0);
  Micros now = 1000000;
  bool ptb_sent = false;
  size_t max_after = 0, big_before = 0;
  auto pump = [&]() {
    for (int round = 0; round < 64; round++) {
      auto fa = std::move(la.frames); la.frames.clear();
      auto fb = std::move(lb.frames); lb.frames.clear();
      if (fa.empty() && fb.empty()) return;
      bool sent_before_batch = ptb_sent;
      for (auto& f : fa) {
        bool tcp_data = f.size() > 1000 && f[12] == 0x86 && f[13] == 0xdd && f[20] == 6;
        if (sent_before_batch && tcp_data) max_after = std::max(max_after, f.size());
        if (f.size() > 1280 + 14) {  // the router's next link: too big is dropped
          if (ptb_sent) continue;
          // the "router" fd00::fe refuses it: MTU 1280, quoting the packet (as much as fits)
          ptb_sent = true;
          big_before = f.size();
          std::vector<uint8_t> ptb = {2, 0, 0, 0, 0, 0, 0x05, 0x00};
          ptb.insert(ptb.end(), f.begin() + 14, f.begin() + 14 + 1232);
          auto frame = frame6(ca.mac, "fd00::fe", "fd00::1", 58, ptb, 64, 0);
          a.input(ia, frame.data(), frame.size());
          continue;  // dropped: TCP retransmits it smaller
        }
        b.input(ib, f.data(), f.size());
      }
      for (auto& f : fb) a.input(ia, f.data(), f.size());
    }
  };
  int l = b.socket(AF_INET6, SOCK_STREAM, 0);
  CHECK_EQ(b.bind(l, ep("::", 80)), 0);
  CHECK_EQ(b.listen(l, 4), 0);
  int c = a.socket(AF_INET6, SOCK_STREAM, 0);
  CHECK_EQ(a.connect(c, ep("fd00::2", 80)), -EINPROGRESS);
  pump();
  int s = b.accept(l, nullptr);
  CHECK(s > 0);
  std::vector<uint8_t> data(200000), got;
  for (size_t i = 0; i < data.size(); i++) data[i] = uint8_t(i * 13 + (i >> 8));
  size_t sent = 0;
  uint8_t buf[65536];
  for (int i = 0; i < 5000 && got.size() < data.size(); i++) {
    if (sent < data.size()) { long n = a.send(c, data.data() + sent, data.size() - sent, 0); if (n > 0) sent += size_t(n); }
    now += 5000;
    a.poll(now); b.poll(now);
    pump();
    long r;
    while ((r = b.recv(s, buf, sizeof buf, 0)) > 0) got.insert(got.end(), buf, buf + r);
  }
  CHECK(ptb_sent);
  CHECK_EQ(big_before, size_t(1514));
  CHECK(got == data);
  CHECK_EQ(a.path_mtu(ip("fd00::2")), 1280u);
  CHECK(max_after > 0 && max_after <= 1280 + 14);
  for (auto& i : a.sockets()) if (i.sd == c && i.has_tcp) CHECK(i.tcp.mss <= 1280 - 60);
}

TEST("ipv6: SLAAC forms an EUI-64 address and a default route from a router advertisement") {
  SinkLink link;
  Stack st;  // DAD on
  InterfaceConfig ic;
  ic.mac.b[0] = 2; ic.mac.b[1] = 0x11; ic.mac.b[5] = 7;
  ic.link = &link;
  ic.slaac = true;
  int ifx = st.add_interface(ic);
  st.set_now(1000000);
  for (int i = 0; i < 30; i++) st.poll(1000000 + Micros(i) * 100000);
  CHECK(st.stats().icmp6.out_router_solicits >= 1);
  // RA: hop limit 64, lifetime 1800 s, prefix fd00:1::/64 with L and A
  std::vector<uint8_t> ra = {134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<uint8_t> pi(32, 0);
  pi[0] = 3; pi[1] = 4; pi[2] = 64; pi[3] = 0xc0;
  wire::st32(&pi[4], 86400); wire::st32(&pi[8], 14400);
  IpAddr pfx = ip("fd00:1::");
  std::memcpy(&pi[16], pfx.b, 16);
  ra.insert(ra.end(), pi.begin(), pi.end());
  std::vector<uint8_t> sll = {1, 1, 2, 0, 0, 0, 0, 0xfe};
  ra.insert(ra.end(), sll.begin(), sll.end());
  MacAddr allnodes = wire::mac_ipv6_multicast(ip("ff02::1").b);
  auto f = frame6(allnodes, "fe80::fe", "ff02::1", 58, ra, 255, 0);
  st.input(ifx, f.data(), f.size());
  IpAddr want = ip("fd00:1::11:ff:fe00:7");
  CHECK(!st.address_ready(want));  // tentative first
  for (int i = 0; i < 30; i++) st.poll(4000000 + Micros(i) * 100000);
  CHECK(st.address_ready(want));
  bool dflt = false;
  for (auto& r : st.routes()) if (r.dst.family == 6 && r.prefix == 0 && r.gateway == ip("fe80::fe")) dflt = true;
  CHECK(dflt);
  CHECK_EQ(st.stats().icmp6.slaac_addresses, 1u);
  // a bad hop limit (not 255) is ignored
  auto f2 = frame6(allnodes, "fe80::fd", "ff02::1", 58, ra, 64, 0);
  st.input(ifx, f2.data(), f2.size());
  CHECK_EQ(st.stats().icmp6.nd_malformed, 1u);
}

static std::vector<uint8_t> ra_frame(const char* prefix, const char* router) {
  std::vector<uint8_t> ra = {134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<uint8_t> pi(32, 0);
  pi[0] = 3; pi[1] = 4; pi[2] = 64; pi[3] = 0xc0;
  wire::st32(&pi[4], 86400); wire::st32(&pi[8], 14400);
  IpAddr pfx = ip(prefix);
  std::memcpy(&pi[16], pfx.b, 16);
  ra.insert(ra.end(), pi.begin(), pi.end());
  return frame6(wire::mac_ipv6_multicast(ip("ff02::1").b), router, "ff02::1", 58, ra, 255, 0);
}

TEST("ipv6: RFC 7217 stable identifiers: opaque, the same for the same secret and prefix, a new one after a conflict") {
  auto slaac_stack = [](Stack& st, SinkLink& link) {
    InterfaceConfig ic;
    ic.mac.b[0] = 2; ic.mac.b[5] = 7;
    ic.link = &link;
    ic.slaac = true;
    return st.add_interface(ic);
  };
  StackConfig cfg;
  cfg.stable_iids = true;
  for (int i = 0; i < 16; i++) cfg.stable_secret[i] = uint8_t(i + 1);
  auto formed = [](Stack& st, int ifx) {
    std::vector<IpAddr> v;
    for (auto& x : st.interface(ifx)->addrs) if (x.autoconf) v.push_back(x.addr);
    return v;
  };
  SinkLink l1, l2, l3;
  Stack s1(cfg), s2(cfg);
  StackConfig other = cfg;
  other.stable_secret[0] ^= 0xff;
  Stack s3(other);
  int i1 = slaac_stack(s1, l1), i2 = slaac_stack(s2, l2), i3 = slaac_stack(s3, l3);
  auto ra = ra_frame("fd00:1::", "fe80::fe");
  for (Stack* st : {&s1, &s2, &s3}) st->input(1, ra.data(), ra.size());
  auto a1 = formed(s1, i1), a2 = formed(s2, i2), a3 = formed(s3, i3);
  CHECK(a1.size() == 1 && a2.size() == 1 && a3.size() == 1);
  if (a1.empty() || a2.empty() || a3.empty()) return;
  CHECK(a1[0] == a2[0]);  // same secret, prefix and interface: the same address
  CHECK(a1[0] != a3[0]);  // another secret: another address
  IpAddr eui = ip("fd00:1::ff:fe00:7");
  CHECK(a1[0] != eui);
  CHECK(prefix_match(a1[0], ip("fd00:1::"), 64));
  // another prefix: an unrelated identifier
  auto ra2 = ra_frame("fd00:2::", "fe80::fe");
  s1.input(i1, ra2.data(), ra2.size());
  auto b1 = formed(s1, i1);
  CHECK_EQ(b1.size(), size_t(2));
  if (b1.size() == 2) CHECK(std::memcmp(b1[0].b + 8, b1[1].b + 8, 8) != 0);
  // a conflict during DAD: the next DAD counter gives a new address in the same prefix
  std::vector<uint8_t> na(32, 0);
  na[0] = 136; na[4] = 0x20;
  std::memcpy(na.data() + 8, a1[0].b, 16);
  na[24] = 2; na[25] = 1; na[26] = 2; na[31] = 0x55;
  auto fna = frame6(wire::mac_ipv6_multicast(ip("ff02::1").b), a1[0].str().c_str(), "ff02::1", 58, na, 255, 0);
  s1.input(i1, fna.data(), fna.size());
  CHECK_EQ(s1.stats().icmp6.dad_failures, 1u);
  auto c1 = formed(s1, i1);
  bool replaced = false;
  for (auto& x : c1) if (prefix_match(x, ip("fd00:1::"), 64) && x != a1[0]) replaced = true;
  CHECK(replaced);
  for (int k = 0; k < 40; k++) s1.poll(2000000 + Micros(k) * 100000);
  for (auto& x : formed(s1, i1)) CHECK(s1.address_ready(x));
}

TEST("ipv6: hostile bytes (random, truncated chains, fragments) never crash or leak") {
  Rng rng(42);
  SinkLink link;
  Stack st(no_dad());
  int ifx = sink_iface(st, link);
  IpAddr me = ip("fd00::1");
  const uint8_t nhs[] = {0, 43, 44, 58, 59, 60, 6, 17, 253};
  for (int i = 0; i < 200000; i++) {
    size_t n = 14 + 40 + rng.below(200);
    std::vector<uint8_t> f(n);
    for (auto& b : f) b = uint8_t(rng.next());
    std::memcpy(f.data(), kSinkMac.b, 6);
    f[12] = 0x86; f[13] = 0xdd;
    if (rng.below(4)) {
      f[14] = 0x60;
      wire::st16(&f[18], uint16_t(rng.below(4) ? n - 54 : rng.below(300)));
      f[20] = nhs[rng.below(sizeof nhs)];
      f[22] = 0xfd; f[23] = 0; f[22 + 15] = 0;  // a unicast source (not multicast)
      std::memcpy(&f[38], me.b, 16);
      // chains: make the extension headers' next-header fields plausible
      for (size_t off = 54; off + 8 <= n && rng.below(3); off += 8) { f[off] = nhs[rng.below(sizeof nhs)]; f[off + 1] = uint8_t(rng.below(2)); }
    }
    if (f[14] == 0x60 && rng.below(2) && n >= 54 + 8) {
      // neighbour discovery and MLD with random bodies and a valid checksum, so their
      // option parsers see hostile bytes (they are verified even on offloading links)
      static const uint8_t nd[] = {130, 133, 134, 135, 136, 137, 1, 2, 3, 4, 128, 129};
      wire::st16(&f[18], uint16_t(n - 54));
      f[20] = 58;
      f[21] = rng.below(4) ? 255 : 1;
      if (rng.below(2)) { f[22] = 0xfe; f[23] = 0x80; }  // link-local source (RA, MLD)
      if (rng.below(3) == 0) { IpAddr an = ip("ff02::1"); std::memcpy(&f[38], an.b, 16); }
      f[54] = nd[rng.below(sizeof nd)];
      f[55] = rng.below(4) ? 0 : uint8_t(rng.next());
      f[56] = f[57] = 0;
      uint64_t acc = wire::pseudo_v6(&f[22], &f[38], 58, uint32_t(n - 54));
      uint16_t c = wire::csum_finish(wire::csum_add(acc, &f[54], n - 54));
      std::memcpy(&f[56], &c, 2);
    }
    st.input(ifx, f.data(), f.size());
    if (i % 1000 == 0) st.poll(Micros(i) * 1000);
  }
  CHECK(st.stats().icmp6.in_msgs > 10000);
  CHECK(st.neighbour_count() <= 512);  // the neighbour cache stays bounded
  st.poll(Micros(1) << 40);
  CHECK(st.stats().ip6.in_receives > 0);
}

int main(int argc, char** argv) { return check::run_all(argc, argv); }
