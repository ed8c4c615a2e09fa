// ARP and the neighbour cache: resolution, passive learning, staleness and re-probe,
// the pending queue bound, the request rate, failure, the cache bound.
#include "check.h"
#include "engine/wire/arp.h"
#include "engine/wire/ethernet.h"
#include "world.h"

using namespace tw;

static int udp_any(Stack& s) {
  int sd = s.socket(AF_INET, SOCK_DGRAM, 0);
  s.bind(sd, ep("0.0.0.0", 0));
  return sd;
}

TEST("arp: one request resolves both ways (the target learns the asker)") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  w.settle();
  int sa = udp_any(*a.st), sb = udp_any(*b.st);
  Endpoint tb = ep("10.0.0.2", 9), ta = ep("10.0.0.1", 9);
  CHECK_EQ(a.st->sendto(sa, "x", 1, 0, &tb), 1);
  w.settle();
  CHECK_EQ(b.st->sendto(sb, "y", 1, 0, &ta), 1);
  w.settle();
  MacAddr m;
  CHECK(a.st->neighbour_lookup(a.ifindex, ip("10.0.0.2"), &m));
  CHECK(m == b.st->interface(b.ifindex)->mac);
  CHECK(b.st->neighbour_lookup(b.ifindex, ip("10.0.0.1"), &m));
  auto& as = a.st->stats().arp;
  auto& bs = b.st->stats().arp;
  CHECK_EQ(as.out_requests - as.out_gratuitous, 1u);
  CHECK_EQ(bs.out_requests - bs.out_gratuitous, 0u);
  CHECK_EQ(bs.out_replies, 1u);
}

TEST("arp: a stale entry is re-probed by unicast; a silent neighbour is dropped, then fails") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  w.settle();
  int sa = udp_any(*a.st);
  Endpoint tb = ep("10.0.0.2", 9);
  a.st->sendto(sa, "x", 1, 0, &tb);
  w.settle();
  uint64_t req0 = a.st->stats().arp.out_requests;
  w.advance(31000000);  // past reachable_ms
  CHECK_EQ(a.st->sendto(sa, "x", 1, 0, &tb), 1);  // still sent with the old MAC...
  w.settle();
  CHECK_EQ(a.st->stats().arp.out_requests, req0 + 1);  // ...and confirmed by one unicast probe
  CHECK_EQ(b.st->stats().udp.no_ports, 2u);            // both datagrams arrived
  w.advance(5000000);
  CHECK_EQ(a.st->stats().arp.out_requests, req0 + 1);  // confirmed: no more probes
  // b goes away
  w.hub.detach(b.port);
  b.st->set_link(b.ifindex, nullptr);
  w.advance(31000000);
  a.st->sendto(sa, "x", 1, 0, &tb);
  w.advance(4000000);  // 3 unicast probes unanswered: forgotten
  CHECK(!a.st->neighbour_lookup(a.ifindex, ip("10.0.0.2"), nullptr));
  CHECK_EQ(a.st->sendto(sa, "x", 1, 0, &tb), 1);  // resolution from scratch
  w.advance(4000000);
  CHECK_EQ(a.st->stats().arp.resolve_failures, 1u);
}

TEST("arp: failure after 3 requests 1 s apart; EHOSTUNREACH for UDP; bounded pending queue") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  w.settle();
  uint64_t req0 = a.st->stats().arp.out_requests;
  int su = udp_any(*a.st);
  int sc = udp_any(*a.st);
  CHECK_EQ(a.st->connect(sc, ep("10.0.0.9", 9)), 0);
  Endpoint t = ep("10.0.0.9", 9);
  for (int i = 0; i < 100; i++) CHECK_EQ(a.st->sendto(su, "x", 1, 0, &t), 1);
  CHECK_EQ(a.st->send(sc, "c", 1), 1);
  CHECK_EQ(a.st->stats().arp.queue_drops, 101u - 64u);  // 64 held, the oldest dropped
  CHECK_EQ(a.st->stats().arp.out_requests, req0 + 1);  // one request however many packets
  w.advance(1500000);
  CHECK_EQ(a.st->stats().arp.out_requests, req0 + 2);  // one per second
  w.advance(2000000);
  CHECK_EQ(a.st->stats().arp.out_requests, req0 + 3);
  CHECK_EQ(a.st->stats().arp.resolve_failures, 1u);
  // the connected socket hears of it; unconnected sends fail at once while the failure holds
  CHECK(a.st->events(sc) & kEvError);
  char buf[4];
  CHECK_EQ(a.st->recv(sc, buf, 4), -EHOSTUNREACH);
  CHECK_EQ(a.st->sendto(su, "x", 1, 0, &t), -EHOSTUNREACH);
  CHECK_EQ(a.st->stats().arp.failed_drops, 1u);
  w.advance(3000000);  // the hold is over: resolution starts again
  CHECK_EQ(a.st->sendto(su, "x", 1, 0, &t), 1);
  CHECK_EQ(a.st->stats().arp.out_requests, req0 + 4);
}

TEST("arp: bounded cache (LRU), answers only for own addresses, ignores malformed") {
  StackConfig cfg;
  cfg.neighbour.max_entries = 8;
  Stack s(cfg);
  SinkLink link;
  InterfaceConfig ic;
  ic.mac.b[5] = 1;
  ic.link = &link;
  int ifx = s.add_interface(ic);
  s.add_address(ifx, ip("10.0.0.1"), 24);
  link.frames.clear();
  auto request = [&](uint8_t from, uint8_t target) {
    wire::ArpPacket a;
    a.op = wire::kArpRequest;
    a.sha.b[0] = 2; a.sha.b[5] = from;
    uint8_t spa[4] = {10, 0, 0, from}, tpa[4] = {10, 0, 0, target};
    std::memcpy(a.spa, spa, 4);
    std::memcpy(a.tpa, tpa, 4);
    uint8_t f[60] = {};
    wire::emit_ethernet(f, wire::mac_broadcast(), a.sha, wire::kEtherArp);
    wire::emit_arp(f + 14, a);
    s.input(ifx, f, sizeof f);
  };
  for (int i = 0; i < 20; i++) request(uint8_t(10 + i), 1);
  CHECK_EQ(s.neighbour_count(), 8u);
  CHECK_EQ(s.stats().arp.evictions, 12u);
  CHECK_EQ(link.frames.size(), 20u);  // 20 replies
  wire::EthHeader eh;
  wire::ArpPacket rep;
  CHECK(wire::parse_ethernet(link.frames[0].data(), link.frames[0].size(), &eh));
  CHECK(wire::parse_arp(link.frames[0].data() + 14, link.frames[0].size() - 14, &rep));
  CHECK_EQ(rep.op, wire::kArpReply);
  CHECK(rep.spa[3] == 1 && rep.tpa[3] == 10 && eh.dst.b[5] == 10);
  CHECK(link.frames[0].size() >= 60);  // padded to the minimum frame
  request(50, 77);  // not for us: no reply, nothing learned
  CHECK_EQ(link.frames.size(), 20u);
  CHECK(!s.neighbour_lookup(ifx, ip("10.0.0.50"), nullptr));
  uint8_t junk[30] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 9, 0x08, 0x06, 0, 1, 0x08, 0};
  s.input(ifx, junk, sizeof junk);
  CHECK_EQ(s.stats().arp.in_malformed, 1u);
  request(1, 1);  // someone else claims 10.0.0.1
  CHECK_EQ(s.stats().arp.duplicate_address, 1u);
}
TEST("arp: pings to an address that never resolves fail with EHOSTUNREACH: late polls, requests the queue dropped") {
  World w;
  StackConfig cfg;
  cfg.neighbour.queue_packets = 1;  // the pending queue keeps only the last request
  Node& a = w.add("10.0.0.1/24", cfg);
  w.settle();
  uint16_t idseq[2];
  for (int i = 0; i < 3; i++) CHECK_EQ(a.st->ping(ip("10.0.0.99"), 8, idseq), 0);
  // the timers are served 7 ms late, as a busy event loop serves them: the probes drift, and
  // the pings' own timeouts (3 s, as the 3 probes 1 s apart) are not the first to end them
  for (int i = 0; i < 100 && a.pings.size() < 3; i++) {
    w.set_time(a.st->poll_at() + 7000);
    w.settle();
  }
  CHECK_EQ(a.pings.size(), size_t(3));
  for (auto& r : a.pings) CHECK_EQ(r.status, -EHOSTUNREACH);
  CHECK_EQ(a.st->stats().arp.resolve_failures, 1u);
  CHECK_EQ(a.st->stats().arp.out_requests - a.st->stats().arp.out_gratuitous, 3u);
}

TEST_MAIN()
