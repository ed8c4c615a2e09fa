// UDP and ICMP echo between stacks on an in-process hub.
#include "check.h"
#include "engine/wire/checksum.h"
#include "world.h"

using namespace tw;

static int udp_socket(Stack& s, const char* addr, uint16_t port) {
  int sd = s.socket(AF_INET, SOCK_DGRAM, 0);
  if (sd < 0) return sd;
  int r = s.bind(sd, ep(addr, port));
  return r < 0 ? r : sd;
}

TEST("udp: datagrams both ways between two stacks, with ARP on the way") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  int sa = udp_socket(*a.st, "0.0.0.0", 0);
  int sb = udp_socket(*b.st, "10.0.0.2", 5000);
  CHECK(sa > 0 && sb > 0);
  Endpoint to = ep("10.0.0.2", 5000);
  CHECK_EQ(a.st->sendto(sa, "hello", 5, 0, &to), 5);
  w.settle();
  char buf[100];
  Endpoint from;
  CHECK_EQ(b.st->recvfrom(sb, buf, sizeof buf, 0, &from), 5);
  CHECK(std::memcmp(buf, "hello", 5) == 0);
  CHECK(from.addr == ip("10.0.0.1"));
  Endpoint local;
  a.st->getsockname(sa, &local);
  CHECK_EQ(from.port, local.port);
  CHECK(local.port >= 32768 && local.port <= 60999);
  // the event sink heard that sb became readable
  bool heard = false;
  for (auto& e : b.events) if (e.first == sb && (e.second & kEvReadable)) heard = true;
  CHECK(heard);
  CHECK_EQ(b.st->recvfrom(sb, buf, sizeof buf, 0, &from), -EAGAIN);
  // reply
  CHECK_EQ(b.st->sendto(sb, "world!", 6, 0, &from), 6);
  w.settle();
  CHECK_EQ(a.st->recv(sa, buf, sizeof buf), 6);
  CHECK(a.st->neighbour_count() == 1 && b.st->neighbour_count() == 1);
  CHECK_EQ(a.st->stats().arp.out_requests - a.st->stats().arp.out_gratuitous, 1u);  // one resolution, then the cache
  CHECK(b.st->stats().udp.in_datagrams == 1 && a.st->stats().udp.in_datagrams == 1);
}

TEST("udp: zero-length datagrams, truncation, MSG_PEEK, EMSGSIZE, FIONREAD") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  int sa = udp_socket(*a.st, "0.0.0.0", 0);
  int sb = udp_socket(*b.st, "0.0.0.0", 7);
  Endpoint to = ep("10.0.0.2", 7);
  CHECK_EQ(a.st->sendto(sa, "", 0, 0, &to), 0);
  std::vector<char> big(65508, 'x');
  CHECK_EQ(a.st->sendto(sa, big.data(), 65508, 0, &to), -EMSGSIZE);
  CHECK_EQ(a.st->sendto(sa, big.data(), 65507, 0, &to), 65507);  // fragmented, reassembled
  CHECK_EQ(a.st->sendto(sa, "abcdef", 6, 0, &to), 6);
  w.settle();
  char buf[4];
  CHECK_EQ(b.st->recv_available(sb), 0);
  CHECK_EQ(b.st->recv(sb, buf, sizeof buf), 0);  // the empty datagram
  CHECK_EQ(b.st->recv_available(sb), 65507);
  std::vector<char> rb(70000);
  CHECK_EQ(b.st->recv(sb, rb.data(), rb.size()), 65507);
  CHECK(rb[0] == 'x' && rb[65506] == 'x');
  CHECK_EQ(b.st->recv(sb, buf, 4, MSG_PEEK), 4);
  CHECK_EQ(b.st->recv(sb, buf, 4, MSG_TRUNC), 6);  // truncated, real length reported
  CHECK(std::memcmp(buf, "abcd", 4) == 0);
  CHECK_EQ(b.st->recv(sb, buf, 4), -EAGAIN);
  CHECK(a.st->stats().ip.frag_creates >= 45);
  CHECK_EQ(b.st->stats().ip.reasm_oks, 1u);
}

TEST("udp: ECONNREFUSED on a connected socket from a port unreachable; none when unconnected") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  int sa = udp_socket(*a.st, "0.0.0.0", 0);
  CHECK_EQ(a.st->connect(sa, ep("10.0.0.2", 9999)), 0);
  Endpoint peer;
  CHECK_EQ(a.st->getpeername(sa, &peer), 0);
  CHECK_EQ(peer.port, 9999);
  Endpoint name;
  a.st->getsockname(sa, &name);
  CHECK(name.addr == ip("10.0.0.1"));  // connect chose the source
  CHECK_EQ(a.st->send(sa, "x", 1), 1);
  w.settle();
  CHECK_EQ(b.st->stats().udp.no_ports, 1u);
  CHECK_EQ(b.st->stats().icmp.out_dest_unreachs, 1u);
  CHECK(a.st->events(sa) & kEvError);
  char buf[8];
  CHECK_EQ(a.st->recv(sa, buf, sizeof buf), -ECONNREFUSED);
  CHECK_EQ(a.st->recv(sa, buf, sizeof buf), -EAGAIN);  // read once, then cleared
  CHECK_EQ(a.st->send(sa, "x", 1), 1);
  w.settle();
  CHECK_EQ(a.st->send(sa, "x", 1), -ECONNREFUSED);  // the next send reports it
  // unconnected: the error is not reported (as Linux without IP_RECVERR)
  int su = udp_socket(*a.st, "0.0.0.0", 0);
  Endpoint to = ep("10.0.0.2", 9998);
  CHECK_EQ(a.st->sendto(su, "x", 1, 0, &to), 1);
  w.settle();
  CHECK_EQ(a.st->recv(su, buf, sizeof buf), -EAGAIN);
  CHECK_EQ(a.st->stats().icmp.in_dest_unreachs, 3u);
  // disconnect (AF_UNSPEC)
  Endpoint unspec;
  CHECK_EQ(a.st->connect(sa, unspec), 0);
  CHECK_EQ(a.st->getpeername(sa, &peer), -ENOTCONN);
  CHECK_EQ(a.st->send(sa, "x", 1), -EDESTADDRREQ);
}

TEST("udp: broadcast needs SO_BROADCAST; limited and directed broadcast reach every stack") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  Node& c = w.add("10.0.0.3/24");
  int sa = udp_socket(*a.st, "0.0.0.0", 0);
  int sb = udp_socket(*b.st, "0.0.0.0", 6000);
  int sc = udp_socket(*c.st, "0.0.0.0", 6000);
  int sc2 = udp_socket(*c.st, "10.0.0.3", 6001);  // bound to the unicast address: no broadcasts
  CHECK(sc2 > 0);
  Endpoint lim = ep("255.255.255.255", 6000), dir = ep("10.0.0.255", 6000), dir2 = ep("10.0.0.255", 6001);
  CHECK_EQ(a.st->sendto(sa, "b", 1, 0, &lim), -EACCES);
  CHECK_EQ(a.st->sendto(sa, "b", 1, 0, &dir), -EACCES);
  int one = 1;
  CHECK_EQ(a.st->setsockopt(sa, SOL_SOCKET, SO_BROADCAST, &one, sizeof one), 0);
  CHECK_EQ(a.st->sendto(sa, "L", 1, 0, &lim), 1);
  CHECK_EQ(a.st->sendto(sa, "D", 1, 0, &dir), 1);
  CHECK_EQ(a.st->sendto(sa, "X", 1, 0, &dir2), 1);
  w.settle();
  char buf[4];
  for (auto [n, sd] : {std::pair<Node*, int>{&b, sb}, {&c, sc}}) {
    CHECK_EQ(n->st->recv(sd, buf, 4), 1);
    CHECK_EQ(buf[0], 'L');
    CHECK_EQ(n->st->recv(sd, buf, 4), 1);
    CHECK_EQ(buf[0], 'D');
  }
  CHECK_EQ(c.st->recv(sc2, buf, 4), -EAGAIN);
  CHECK_EQ(a.st->stats().arp.out_requests, a.st->stats().arp.out_gratuitous);  // broadcast needs no resolution
  CHECK_EQ(c.st->stats().icmp.out_dest_unreachs, 0u);  // never an ICMP error about a broadcast
}

TEST("udp: bind conflicts, SO_REUSEADDR, SO_REUSEPORT spreading, EADDRNOTAVAIL") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Stack& s = *a.st;
  int s1 = udp_socket(s, "0.0.0.0", 4000);
  CHECK(s1 > 0);
  CHECK_EQ(udp_socket(s, "10.0.0.1", 4000), -EADDRINUSE);
  CHECK_EQ(udp_socket(s, "10.9.9.9", 4001), -EADDRNOTAVAIL);
  CHECK(udp_socket(s, "10.0.0.1", 4002) > 0);
  CHECK(udp_socket(s, "127.0.0.1", 4002) > 0);  // different addresses do not conflict
  int one = 1;
  int r1 = s.socket(AF_INET, SOCK_DGRAM, 0), r2 = s.socket(AF_INET, SOCK_DGRAM, 0), r3 = s.socket(AF_INET, SOCK_DGRAM, 0);
  for (int sd : {r1, r2, r3}) s.setsockopt(sd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  CHECK_EQ(s.bind(r1, ep("0.0.0.0", 5000)), 0);
  CHECK_EQ(s.bind(r2, ep("0.0.0.0", 5000)), 0);
  CHECK_EQ(s.bind(r3, ep("0.0.0.0", 5000)), 0);
  CHECK_EQ(s.bind(r3, ep("0.0.0.0", 5001)), -EINVAL);  // already bound
  int x = s.socket(AF_INET, SOCK_DGRAM, 0);
  CHECK_EQ(s.bind(x, ep("0.0.0.0", 5000)), -EADDRINUSE);
  // datagrams from many source ports spread over the group
  Node& b = w.add("10.0.0.2/24");
  int got[3] = {0, 0, 0};
  for (int i = 0; i < 60; i++) {
    int c = udp_socket(*b.st, "0.0.0.0", 0);
    Endpoint to = ep("10.0.0.1", 5000);
    b.st->sendto(c, "q", 1, 0, &to);
    b.st->close(c);
  }
  w.settle();
  char buf[2];
  int k = 0, total = 0;
  for (int sd : {r1, r2, r3}) {
    while (s.recv(sd, buf, 2) == 1) got[k]++;
    total += got[k++];
  }
  CHECK_EQ(total, 60);
  CHECK(got[0] > 5 && got[1] > 5 && got[2] > 5);
  // SO_REUSEADDR on both: sharing allowed
  int u1 = s.socket(AF_INET, SOCK_DGRAM, 0), u2 = s.socket(AF_INET, SOCK_DGRAM, 0);
  s.setsockopt(u1, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  s.setsockopt(u2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  CHECK_EQ(s.bind(u1, ep("0.0.0.0", 5100)), 0);
  CHECK_EQ(s.bind(u2, ep("10.0.0.1", 5100)), 0);
}

TEST("udp: SO_RCVBUF bounds the queue, drops counted") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  int sb = udp_socket(*b.st, "0.0.0.0", 7000);
  int v = 8192;
  CHECK_EQ(b.st->setsockopt(sb, SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
  size_t len = sizeof v;
  CHECK_EQ(b.st->getsockopt(sb, SOL_SOCKET, SO_RCVBUF, &v, &len), 0);
  CHECK_EQ(v, 16384);  // doubled, as Linux
  int sa = udp_socket(*a.st, "0.0.0.0", 0);
  Endpoint to = ep("10.0.0.2", 7000);
  CHECK(a.st->ping(ip("10.0.0.2"), 8, nullptr) == 0);  // resolve first: the ARP queue is not the test
  w.settle();
  char data[1000] = {};
  for (int i = 0; i < 100; i++) a.st->sendto(sa, data, sizeof data, 0, &to);
  w.settle();
  int n = 0;
  char buf[1000];
  while (b.st->recv(sb, buf, sizeof buf) > 0) n++;
  CHECK(n >= 15 && n <= 17);
  CHECK_EQ(b.st->stats().udp.rcvbuf_errors, uint64_t(100 - n));
  auto socks = b.st->sockets();
  CHECK(socks.size() == 1 && socks[0].drops == uint64_t(100 - n));
}

TEST("udp: loopback and own address within one stack, multicast to a joined group") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  Stack& s = *a.st;
  int srv = udp_socket(s, "127.0.0.1", 53);
  int cli = udp_socket(s, "0.0.0.0", 0);
  Endpoint to = ep("127.0.0.1", 53);
  CHECK_EQ(s.sendto(cli, "q", 1, 0, &to), 1);  // delivered on the way out of the call
  char buf[4];
  Endpoint from;
  CHECK_EQ(s.recvfrom(srv, buf, 4, 0, &from), 1);
  CHECK(from.addr == ip("127.0.0.1"));
  int srv2 = udp_socket(s, "0.0.0.0", 54);
  Endpoint own = ep("10.0.0.1", 54);
  CHECK_EQ(s.sendto(cli, "r", 1, 0, &own), 1);
  CHECK_EQ(s.recvfrom(srv2, buf, 4, 0, &from), 1);
  CHECK(from.addr == ip("10.0.0.1"));
  // multicast: b joins 239.1.2.3, a sends
  int m = udp_socket(*b.st, "0.0.0.0", 5353);
  uint8_t mreq[8] = {239, 1, 2, 3, 0, 0, 0, 0};
  CHECK_EQ(b.st->setsockopt(m, IPPROTO_IP, IP_ADD_MEMBERSHIP, mreq, 8), 0);
  CHECK_EQ(b.st->setsockopt(m, IPPROTO_IP, IP_ADD_MEMBERSHIP, mreq, 8), -EADDRINUSE);
  Endpoint g = ep("239.1.2.3", 5353), g2 = ep("239.1.2.4", 5353);
  CHECK_EQ(s.sendto(cli, "M", 1, 0, &g), 1);
  CHECK_EQ(s.sendto(cli, "N", 1, 0, &g2), 1);  // a group b did not join
  w.settle();
  CHECK_EQ(b.st->recv(m, buf, 4), 1);
  CHECK_EQ(buf[0], 'M');
  CHECK_EQ(b.st->recv(m, buf, 4), -EAGAIN);
  // IGMPv2: the join was announced (report to the group), a query is answered, the drop says leave
  auto* bi = b.st->interface(b.ifindex);
  uint64_t tx0 = bi->stats.tx_frames;
  uint8_t query[60] = {0x01, 0x00, 0x5e, 0, 0, 1, 2, 0, 0, 0, 0, 0x77, 0x08, 0x00,
                       0x45, 0, 0, 28, 0, 0, 0, 0, 1, 2, 0, 0, 10, 0, 0, 99, 224, 0, 0, 1,
                       0x11, 100, 0, 0, 0, 0, 0, 0};
  uint16_t c = wire::internet_checksum(query + 14, 20);
  std::memcpy(query + 24, &c, 2);
  c = wire::internet_checksum(query + 34, 8);
  std::memcpy(query + 36, &c, 2);
  b.st->input(b.ifindex, query, sizeof query);
  CHECK_EQ(bi->stats.tx_frames, tx0 + 1);  // one report for the one group
  CHECK_EQ(b.st->setsockopt(m, IPPROTO_IP, IP_DROP_MEMBERSHIP, mreq, 8), 0);
  CHECK_EQ(bi->stats.tx_frames, tx0 + 2);  // leave
  CHECK_EQ(s.sendto(cli, "M", 1, 0, &g), 1);
  w.settle();
  CHECK_EQ(b.st->recv(m, buf, 4), -EAGAIN);
}

TEST("ping: echo between two stacks on a hub, RTT reported; timeout for a silent address") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  w.add("10.0.0.2/24");
  w.settle();  // the gratuitous ARPs are out of the way
  a.st->set_impair(a.ifindex, Impair{0, 0, 0, 0, 5, 0, 4096});  // 5 ms one way
  uint16_t idseq[2];
  CHECK_EQ(a.st->ping(ip("10.0.0.2"), 56, idseq), 0);
  CHECK(w.until(1000000, [&] { return !a.pings.empty(); }));
  CHECK(a.pings.size() == 1 && a.pings[0].status == 0);
  CHECK_EQ(a.pings[0].seq, idseq[1]);
  CHECK_EQ(a.pings[0].bytes, 56u);
  CHECK(a.pings[0].from == ip("10.0.0.2"));
  // ARP request + echo each delayed 5 ms: at least 10 ms
  CHECK(a.pings[0].rtt >= 10000 && a.pings[0].rtt < 20000);

  CHECK_EQ(a.st->ping(ip("10.0.0.2"), 1000, idseq), 0);
  CHECK(w.until(1000000, [&] { return a.pings.size() == 2; }));
  CHECK(a.pings[1].status == 0 && a.pings[1].rtt >= 5000 && a.pings[1].rtt < 10000);
  CHECK_EQ(a.st->ping(ip("10.0.0.1"), 8, idseq), 0);  // ourselves
  w.settle();
  CHECK(a.pings.size() == 3 && a.pings[2].status == 0 && a.pings[2].rtt == 0);
  CHECK_EQ(a.st->ping(ip("192.168.1.1"), 8, idseq), -ENETUNREACH);
  CHECK_EQ(a.st->ping(ip("10.0.0.99"), 8, idseq), 0);  // nobody: ARP fails
  CHECK(w.until(10000000, [&] { return a.pings.size() == 4; }));
  CHECK(a.pings.size() == 4 && a.pings[3].status == -EHOSTUNREACH);
}
TEST("udp: closing the stack: descriptors hear of it, then fail with ECONNABORTED until closed") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  int s1 = udp_socket(*a.st, "0.0.0.0", 1000);
  int s2 = udp_socket(*a.st, "0.0.0.0", 1001);
  w.settle();
  a.events.clear();
  a.st->close();
  int heard = 0;
  for (auto& e : a.events) if ((e.first == s1 || e.first == s2) && (e.second & kEvError) && (e.second & kEvHangup)) heard++;
  CHECK_EQ(heard, 2);
  char buf[4];
  CHECK_EQ(a.st->recv(s1, buf, 4), -ECONNABORTED);
  Endpoint to = ep("10.0.0.2", 1);
  CHECK_EQ(a.st->sendto(s2, "x", 1, 0, &to), -ECONNABORTED);
  CHECK_EQ(a.st->close(s1), 0);
  CHECK_EQ(a.st->recv(s1, buf, 4), -EBADF);
  CHECK_EQ(a.st->socket(AF_INET, SOCK_DGRAM, 0), -ENETDOWN);
  CHECK_EQ(a.st->ping(ip("10.0.0.2"), 8, nullptr), -ENETDOWN);
  a.st->poll(w.now + 1000000);  // harmless
  uint8_t junk[60] = {};
  a.st->input(a.ifindex, junk, sizeof junk);
  CHECK_EQ(a.st->poll_at(), kNever);
}
TEST_MAIN()
