// vxvde:// (vdeplug4's distributed ethernet over UDP multicast): option parsing and defaults,
// three engine stacks on one group (all pairs ping/UDP/TCP, learning then unicast, the
// receive filters, goodbye), and interop with Debian's vde_plug: a kernel TAP plugged into the
// same group by `vde_plug vxvde://... tap://...` in another namespace, across a veth.
// run.sh links: native/link/vnl.cc native/link/vxvde.cc
#include <arpa/inet.h>

#include "live.h"

using namespace live;

namespace {

/** a namespace with a dummy interface carrying multicast: plugs on one host */
struct OneHost {
  Netns ns;
  bool ok = false;
  explicit OneHost(const std::string& name) : ns(name) {
    // (no dummy driver everywhere: a veth pair with both ends inside serves as well)
    ok = ns.ok && ns.run("ip link add msvxd0 type veth peer name msvxd1") == 0 &&
         ns.run("ip addr add 10.210.0.1/24 dev msvxd0") == 0 && ns.run("ip link set msvxd0 up") == 0 &&
         ns.run("ip link set msvxd1 up") == 0 &&
         ns.run("ip route add 224.0.0.0/4 dev msvxd0") == 0;
  }
};

std::unique_ptr<FdLink> open_ok(const std::string& rest, const MacAddr& m) { return live::open_ok(open_vxvde_link, "vxvde", rest, m); }

void print_stats(const char* who, FdLink& l) {
  const FdLinkStats& s = l.stats();
  std::printf("  %s: rx %llu frames, tx %llu frames, tx dropped %llu, tx errors %llu, malformed %llu, filtered %llu\n", who,
              (unsigned long long)s.rx_frames, (unsigned long long)s.tx_frames, (unsigned long long)s.tx_dropped,
              (unsigned long long)s.tx_errors, (unsigned long long)s.rx_malformed, (unsigned long long)s.rx_filtered);
}

/** send raw bytes to group:port from a plain UDP socket */
void send_raw(const char* group, uint16_t port, const std::vector<uint8_t>& bytes) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  inet_pton(AF_INET, group, &to.sin_addr);
  sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  close(fd);
}

}  // namespace

TEST("vxvde: options, defaults, grp=, prefix keys; EINVAL/ENODEV with a message; any bytes are safe") {
  if (!need_root_and({"ip"})) return;
  OneHost h("msvx-vxo-" + std::to_string(getpid()));
  CHECK(h.ok);
  if (!h.ok) return;
  InNetns in(h.ns.name);
  CHECK(in.ok);
  MacAddr m = mac(9, 1);
  {
    auto l = open_ok("", m);
    if (check_vx(l.get(), "239.0.0.1:14789", 1)) {
      CHECK(std::string(l->kind()) == "vxvde");
      CHECK_EQ(l->fds().size(), size_t(2));
    }
  }
  check_vx(open_ok("/grp=1000", m).get(), "239.0.3.232:14789", 1000);  // group 239.0.3.232, VNI 1000 (the reference's example)
  check_vx(open_ok("239.5.6.7/v=42/p=15000/t=2/h=16/e=10/r=1M", m).get(), "239.5.6.7:15000", 42);  // v is vni, p port, ...
  CHECK(open_ok("239.5.6.8/vni=\"7\"/if=msvxd0/v4", m) != nullptr);
  check_refused(open_vxvde_link, "vxvde",
                {
                    {"239.1.1.1/colour=red", EINVAL},   {"239.1.1.1/port=0", EINVAL},       {"239.1.1.1/port=x", EINVAL},
                    {"239.1.1.1/vni=16777216", EINVAL}, {"239.1.1.1/ttl=300", EINVAL},      {"239.1.1.1/hashsize=0", EINVAL},
                    {"10.0.0.1", EINVAL},               {"239.1.1.1/if=nosuchif0", ENODEV}, {"239.1.1.1/v6", EINVAL},
                    {"not..an..address", EINVAL},
                },
                params_for(m));
  int opened = random_urls(open_vxvde_link, 0x2545F4914F6CDD1Dull, {"", "239.9.9.9"}, 30, "/=\\'\"%0a9vptrhegib46 .:", params_for(m));
  std::printf("  3000 random URLs: %d opened, the rest refused\n", opened);
}

TEST("vxvde: three engine stacks on one group: all pairs ping/UDP/TCP, learning, unicast, filters, goodbye") {
  if (!need_root_and({"ip"})) return;
  OneHost h("msvx-vx3-" + std::to_string(getpid()));
  CHECK(h.ok);
  if (!h.ok) return;
  InNetns in(h.ns.name);  // all sockets of this test live in the namespace
  CHECK(in.ok);
  TempDir tmp;
  Live w;
  const char* group = "239.77.0.1";
  std::string url = std::string(group) + "/vni=4242";
  const char* addrs[3] = {"10.0.3.1", "10.0.3.2", "10.0.3.3"};
  for (int i = 0; i < 3; i++) {
    MacAddr m = mac(3, uint8_t(i + 1));
    auto l = open_ok(url, m);
    if (!l) return;
    w.add(std::move(l), m, (std::string(addrs[i]) + "/24").c_str());
  }
  // an eavesdropper on another VNI of the same group: it must hear nothing
  MacAddr me = mac(3, 9);
  auto other = open_ok(std::string(group) + "/vni=99", me);
  if (!other) return;
  Node& e = w.add(std::move(other), me, "10.0.3.9/24");
  std::string cap = tmp.path + "/vxvde.pcap";
  capture_to(*w.nodes[0], cap);

  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      if (i == j) continue;
      long rtt = w.ping(*w.nodes[size_t(i)], addrs[j]);
      if (rtt <= 0) std::printf("  ping %s -> %s: %ld\n", addrs[i], addrs[j], rtt);
      CHECK(rtt > 0);
    }
  // UDP all pairs: 20 datagrams each way
  int us[3];
  for (int i = 0; i < 3; i++) {
    us[i] = w.nodes[size_t(i)]->st->socket(AF_INET, SOCK_DGRAM, 0);
    CHECK_EQ(w.nodes[size_t(i)]->st->bind(us[i], ep("0.0.0.0", 45200)), 0);
  }
  int got[3] = {0, 0, 0}, wrong = 0;
  for (int k = 0; k < 20; k++)
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++) {
        if (i == j) continue;
        std::vector<uint8_t> d(size_t(100 + k * 60));
        for (size_t q = 0; q < d.size(); q++) d[q] = pat(q, uint64_t(i * 3 + j));
        Endpoint to = ep(addrs[j], 45200);
        CHECK_EQ(w.nodes[size_t(i)]->st->sendto(us[i], d.data(), d.size(), 0, &to), long(d.size()));
      }
  w.until(3000000, [&] {
    for (int j = 0; j < 3; j++) {
      uint8_t buf[2048];
      Endpoint from;
      long r;
      while ((r = w.nodes[size_t(j)]->st->recvfrom(us[j], buf, sizeof buf, 0, &from)) > 0) {
        int i = -1;
        for (int q = 0; q < 3; q++) if (from.addr == ip(addrs[q])) i = q;
        bool ok = i >= 0 && r >= 100 && (r - 100) % 60 == 0;
        for (long q = 0; ok && q < r; q++) if (buf[q] != pat(uint64_t(q), uint64_t(i * 3 + j))) ok = false;
        if (!ok) wrong++;
        got[j]++;
      }
    }
    return got[0] + got[1] + got[2] >= 120;
  });
  std::printf("  UDP all pairs: %d %d %d of 40 each, %d wrong\n", got[0], got[1], got[2], wrong);
  CHECK(got[0] + got[1] + got[2] >= 117);
  CHECK_EQ(wrong, 0);
  // TCP all pairs, byte-exact
  for (int j = 0; j < 3; j++) {
    Sink sink;
    sink.start(*w.nodes[size_t(j)]->st, 9000);
    for (int i = 0; i < 3; i++) {
      if (i == j) continue;
      sink.got = 0; sink.eof = false;
      uint64_t total = 1u << 20;
      Micros dt = stream_to_sink(w, *w.nodes[size_t(i)]->st, addrs[j], 9000, total, sink, 30000000);
      std::printf("  TCP %s -> %s: %llu bytes, %s\n", addrs[i], addrs[j], (unsigned long long)sink.got, mbps(sink.got, dt).c_str());
      CHECK(!sink.bad);
      CHECK_EQ(sink.got, total);
      if (sink.conn > 0) { w.nodes[size_t(j)]->st->close(sink.conn); sink.conn = -1; }
    }
    sink.stop();
  }
  w.until(300000, [] { return false; });

  // learning: each plug knows the other two, at their unicast ports, and used unicast
  for (int i = 0; i < 3; i++) {
    Node& n = *w.nodes[size_t(i)];
    VxLink* v = vx(n);
    const VxStats& s = v->vx_stats();
    std::printf("  plug %d (port %u): table %zu, tx unicast %llu multicast %llu, own echoes dropped %llu, learned %llu\n", i,
                v->local_port(), v->table_size(), (unsigned long long)s.tx_unicast, (unsigned long long)s.tx_multicast,
                (unsigned long long)s.rx_own, (unsigned long long)s.learned);
    CHECK(v->table_size() >= 2);
    CHECK(s.tx_unicast > 1000);
    CHECK(s.tx_multicast >= 1 && s.tx_multicast < 20);
    CHECK(s.rx_own >= 1);  // our ARP broadcasts came back to our own group socket
    CHECK_EQ(n.link->stats().rx_malformed, uint64_t(0));
    for (int j = 0; j < 3; j++) {
      if (i == j) continue;
      std::string peer = v->peer_of(w.nodes[size_t(j)]->mac);
      std::string expect = "10.210.0.1:" + std::to_string(vx(*w.nodes[size_t(j)])->local_port());
      if (peer != expect) std::printf("  plug %d learned %s for plug %d, expected %s\n", i, peer.c_str(), j, expect.c_str());
      CHECK(peer == expect);
    }
  }
  // the other VNI heard the broadcasts but delivered nothing
  std::printf("  vni=99 plug: rx %llu, wrong header %llu\n", (unsigned long long)e.link->stats().rx_frames,
              (unsigned long long)vx(e)->vx_stats().rx_wrong_header);
  CHECK_EQ(e.link->stats().rx_frames, uint64_t(0));
  CHECK(vx(e)->vx_stats().rx_wrong_header >= 3);
  CHECK_EQ(vx(e)->table_size(), size_t(0));

  // runts and garbage to the group: counted, dropped, nothing delivered
  uint64_t rx0 = w.nodes[0]->link->stats().rx_frames, mal0 = w.nodes[0]->link->stats().rx_malformed;
  uint64_t filt0 = w.nodes[0]->link->stats().rx_filtered;
  send_raw(group, 14789, {0x08, 0, 0, 0, 0, 0x10, 0x92, 0, 1, 2, 3});      // header + 3 bytes
  send_raw(group, 14789, {1, 2, 3});                                          // shorter than a header
  std::vector<uint8_t> junk(60, 0xab);
  send_raw(group, 14789, junk);                                               // a wrong header
  w.until(500000, [&] { return w.nodes[0]->link->stats().rx_malformed >= mal0 + 2 && w.nodes[0]->link->stats().rx_filtered > filt0; });
  CHECK_EQ(w.nodes[0]->link->stats().rx_malformed, mal0 + 2);
  CHECK(w.nodes[0]->link->stats().rx_filtered > filt0);
  CHECK_EQ(w.nodes[0]->link->stats().rx_frames, rx0);

  // goodbye: plug 2 leaves; 0 and 1 forget its MAC at once (not after 128 s)
  w.unplug(*w.nodes[2]);
  CHECK(w.until(1000000, [&] { return vx(*w.nodes[0])->vx_stats().goodbyes_rx >= 1 && vx(*w.nodes[1])->vx_stats().goodbyes_rx >= 1; }));
  for (int i = 0; i < 2; i++) {
    VxLink* v = vx(*w.nodes[size_t(i)]);
    CHECK(v->peer_of(w.nodes[2]->mac).empty());
    CHECK_EQ(v->vx_stats().forgotten, uint64_t(1));
    CHECK(!v->peer_of(w.nodes[size_t(1 - i)]->mac).empty());
  }
  // the eavesdropper on the other VNI ignores that goodbye too
  CHECK_EQ(vx(e)->vx_stats().goodbyes_rx, uint64_t(0));
  // the two left still talk (unicast to each other)
  CHECK(w.ping(*w.nodes[0], addrs[1]) > 0);

  capture_clean(*w.nodes[0], cap, 1000, {45200, 9000});
  for (auto& n : w.nodes) if (n->link) w.unplug(*n);
}

TEST("vxvde: aging: a learned MAC is forgotten after expiretime, the table is bounded by hashsize") {
  if (!need_root_and({"ip"})) return;
  OneHost h("msvx-vxa-" + std::to_string(getpid()));
  CHECK(h.ok);
  if (!h.ok) return;
  InNetns in(h.ns.name);
  // a plug with a 4-entry table and 1 s expiry; frames from 10 source MACs reach it
  MacAddr m = mac(4, 1);
  FdLinkOpen o = open_vxvde_link("239.77.0.2/hashsize=4/expiretime=1", params_for(m));
  CHECK(o.link != nullptr);
  if (!o.link) return;
  FdLink& l = *o.link;
  VxLink& v = dynamic_cast<VxLink&>(l);
  size_t delivered = 0;
  l.set_receiver([](void* c, const uint8_t*, size_t) { (*static_cast<size_t*>(c))++; }, &delivered);
  Micros t = 1000000;
  l.set_now(t);
  for (int i = 0; i < 10; i++) {
    std::vector<uint8_t> d = {0x08, 0, 0, 0, 0, 0, 1, 0};  // VNI 1
    uint8_t frame[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, uint8_t(i), 0x08, 0x06};
    d.insert(d.end(), frame, frame + sizeof frame);
    send_raw("239.77.0.2", 14789, d);
  }
  wait_for([&] {
    for (int fd : l.fds()) l.on_readable(fd, 64);
    return delivered >= 10;
  }, 2000);
  CHECK_EQ(delivered, size_t(10));
  CHECK(v.table_size() <= 4);
  CHECK(v.vx_stats().learned >= 10);
  MacAddr last;
  last.b[0] = 0x02; last.b[5] = 9;
  CHECK(!v.peer_of(last).empty());
  l.set_now(t + 2500000);  // 2.5 s later: everything expired and swept
  CHECK(v.peer_of(last).empty());
  CHECK_EQ(v.table_size(), size_t(0));
  CHECK(v.vx_stats().expired >= 1);
  l.close();
  l.close();  // idempotent
  CHECK(l.fds().empty());
}

TEST("vxvde: interop with Debian vde_plug: a kernel TAP on the group in another namespace answers ping and TCP") {
  if (!need_root_and({"ip", "vde_plug", "python3"})) return;
  std::string id = std::to_string(getpid());
  // two "hosts" on one LAN: a veth pair, multicast routed onto it
  VethLan lan("msvx-vxA-" + id, "msvx-vxB-" + id, "msvxva", "msvxvb", "10.211.0");
  CHECK(lan.ok);
  if (!lan.ok) return;
  Netns& na = lan.a;
  Netns& nb = lan.b;
  TempDir tmp;
  const char* group = "239.77.0.3";
  PlugTap plug(nb, std::string("vxvde://") + group + "/vni=77", "msvxtap1", "10.0.4.100/24", tmp.path);
  if (!plug.ok) return;
  std::string kmac = nb.out("cat /sys/class/net/msvxtap1/address");
  kmac.erase(kmac.find_last_not_of("\n ") + 1);
  EchoServer echo(nb.name, tmp.path, "10.0.4.100", "7777");

  Live w;
  MacAddr ma = mac(5, 1);
  std::unique_ptr<FdLink> l;
  {
    InNetns in(na.name);
    l = open_ok(std::string(group) + "/vni=77", ma);
  }
  if (!l) return;
  Node& a = w.add(std::move(l), ma, "10.0.4.1/24");
  std::string cap = tmp.path + "/vxvde-kernel.pcap";
  capture_to(a, cap);
  ping_ok(w, a, "10.0.4.100", "the kernel across vxvde");
  StreamResult r = echo_ok(w, a, "10.0.4.100", 7777, "engine->kernel echo across vxvde");
  print_stats("engine's vxvde link", *a.link);
  if (!r.ok) { a.st->flush_captures(); sh("cp " + cap + " /tmp/msvx-failed-stall.pcap"); }
  // we learned the TAP's MAC at vde_plug's unicast address, and spoke unicast to it
  std::string peer = vx(a)->peer_of(parse_mac(kmac));
  std::printf("  learned %s at %s; tx unicast %llu, multicast %llu\n", kmac.c_str(), peer.c_str(),
              (unsigned long long)vx(a)->vx_stats().tx_unicast, (unsigned long long)vx(a)->vx_stats().tx_multicast);
  CHECK(peer.compare(0, 11, "10.211.0.2:") == 0);
  CHECK(vx(a)->vx_stats().tx_unicast > 1000);
  capture_clean(a, cap, 3000, {7777});
  w.unplug(a);
}

TEST_MAIN()
