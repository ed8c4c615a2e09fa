// vxvde:// (vdeplug4's distributed ethernet over UDP multicast): option parsing and defaults,
// three engine stacks on one group (all pairs ping/UDP/TCP, learning then unicast, the
// receive filters, goodbye), and interop with Debian's vde_plug: a kernel TAP plugged into the
// same group by `vde_plug vxvde://... tap://...` in another namespace, across a veth.
// run.sh links: native/link/vnl.cc native/link/vxvde.cc
#include <arpa/inet.h>

#include "live.h"

using namespace live;

namespace {

FdLinkParams params_for(const MacAddr& m) {
  FdLinkParams p;
  p.mac = m;
  return p;
}

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

std::unique_ptr<FdLink> open_ok(const std::string& rest, const MacAddr& m) {
  FdLinkOpen o = open_vxvde_link(rest, params_for(m));
  if (!o.link) std::printf("  open vxvde://%s: %s\n", rest.c_str(), o.message.c_str());
  CHECK(o.link != nullptr);
  return std::move(o.link);
}

VxLink* vx(Node& n) { return dynamic_cast<VxLink*>(n.link.get()); }

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
    if (l) {
      auto* v = dynamic_cast<VxLink*>(l.get());
      CHECK(v->group() == "239.0.0.1:14789");
      CHECK_EQ(v->vni(), 1u);
      CHECK(std::string(l->kind()) == "vxvde");
      CHECK_EQ(l->fds().size(), size_t(2));
    }
  }
  {
    auto l = open_ok("/grp=1000", m);  // group 239.0.3.232, VNI 1000 (the reference's example)
    if (l) {
      auto* v = dynamic_cast<VxLink*>(l.get());
      CHECK(v->group() == "239.0.3.232:14789");
      CHECK_EQ(v->vni(), 1000u);
    }
  }
  {
    auto l = open_ok("239.5.6.7/v=42/p=15000/t=2/h=16/e=10/r=1M", m);  // v is vni, p port, ...
    if (l) {
      auto* v = dynamic_cast<VxLink*>(l.get());
      CHECK(v->group() == "239.5.6.7:15000");
      CHECK_EQ(v->vni(), 42u);
    }
  }
  CHECK(open_ok("239.5.6.8/vni=\"7\"/if=msvxd0/v4", m) != nullptr);
  struct { const char* url; int err; } bad[] = {
      {"239.1.1.1/colour=red", EINVAL}, {"239.1.1.1/port=0", EINVAL},     {"239.1.1.1/port=x", EINVAL},
      {"239.1.1.1/vni=16777216", EINVAL}, {"239.1.1.1/ttl=300", EINVAL},  {"239.1.1.1/hashsize=0", EINVAL},
      {"10.0.0.1", EINVAL},             {"239.1.1.1/if=nosuchif0", ENODEV}, {"239.1.1.1/v6", EINVAL},
      {"not..an..address", EINVAL},
  };
  for (auto& c : bad) {
    FdLinkOpen o = open_vxvde_link(c.url, params_for(m));
    if (o.err != c.err) std::printf("  %s: %d %s\n", c.url, o.err, o.message.c_str());
    CHECK(!o.link);
    CHECK_EQ(o.err, c.err);
    CHECK(o.message.compare(0, 7, "vxvde: ") == 0);
  }
  uint64_t x = 0x2545F4914F6CDD1Dull;
  int opened = 0;
  for (int i = 0; i < 3000; i++) {
    std::string s = i % 2 ? "239.9.9.9" : "";
    int n = int(x % 30);
    for (int k = 0; k < n; k++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      const char alphabet[] = "/=\\'\"%0a9vptrhegib46 .:";
      s.push_back(x & 1 ? char(x >> 8) : alphabet[(x >> 8) % (sizeof alphabet - 1)]);
    }
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    FdLinkOpen r = open_vxvde_link(s, params_for(m));
    CHECK((r.link != nullptr) != (r.err != 0));
    if (r.link) opened++;
  }
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
  CHECK_EQ(w.nodes[0]->st->set_capture(w.nodes[0]->ifindex, cap.c_str()), 0);

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
      // drive the sink while the stream runs
      Node& a = *w.nodes[size_t(i)];
      Stack& s = *a.st;
      int c = s.socket(AF_INET, SOCK_STREAM, 0);
      CHECK_EQ(s.connect(c, ep(addrs[j], 9000)), -EINPROGRESS);
      uint64_t sent = 0;
      bool shut = false;
      std::vector<uint8_t> out(65536);
      Micros t0 = now_us();
      w.until(30000000, [&] {
        while (sent < total) {
          size_t n = size_t(std::min<uint64_t>(out.size(), total - sent));
          for (size_t q = 0; q < n; q++) out[q] = pat(sent + q);
          long r = s.send(c, out.data(), n);
          if (r <= 0) break;
          sent += uint64_t(r);
        }
        if (sent == total && !shut) { s.shutdown(c, SHUT_WR); shut = true; }
        sink.step();
        return sink.eof || sink.bad;
      });
      Micros dt = now_us() - t0;
      std::printf("  TCP %s -> %s: %llu bytes, %s\n", addrs[i], addrs[j], (unsigned long long)sink.got, mbps(sink.got, dt).c_str());
      CHECK(!sink.bad);
      CHECK_EQ(sink.got, total);
      s.close(c);
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

  w.nodes[0]->st->flush_captures();
  CHECK_EQ(w.nodes[0]->st->set_capture(w.nodes[0]->ifindex, nullptr), 0);
  if (need(have_program("tshark"), "tshark is not installed")) tshark_clean(cap, 1000, {45200, 9000});
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
  Netns na("msvx-vxA-" + id), nb("msvx-vxB-" + id);
  CHECK(na.ok && nb.ok);
  if (!na.ok || !nb.ok) return;
  // two "hosts" on one LAN: a veth pair, multicast routed onto it
  DevGuard ga("msvxva"), gb("msvxvb");
  bool lan = sh("ip link add msvxva type veth peer name msvxvb") == 0 && sh("ip link set msvxva netns " + na.name) == 0 &&
             sh("ip link set msvxvb netns " + nb.name) == 0 && na.run("ip addr add 10.211.0.1/24 dev msvxva") == 0 &&
             nb.run("ip addr add 10.211.0.2/24 dev msvxvb") == 0 && na.run("ip link set msvxva up") == 0 &&
             nb.run("ip link set msvxvb up") == 0 && na.run("ip route add 224.0.0.0/4 dev msvxva") == 0 &&
             nb.run("ip route add 224.0.0.0/4 dev msvxvb") == 0;
  CHECK(lan);
  if (!lan) return;
  TempDir tmp;
  const char* group = "239.77.0.3";
  Proc plug({"ip", "netns", "exec", nb.name, "vde_plug", std::string("vxvde://") + group + "/vni=77", "tap://msvxtap1"},
            tmp.path + "/plug.log");
  bool tap = wait_for([&] { return nb.run("ip link show msvxtap1") == 0; }, 5000);
  if (!tap) std::printf("  vde_plug: %s\n", plug.output().c_str());
  CHECK(tap);
  if (!tap) return;
  CHECK_EQ(nb.run("ip addr add 10.0.4.100/24 dev msvxtap1"), 0);
  CHECK_EQ(nb.run("ip link set msvxtap1 up"), 0);
  std::string kmac = nb.out("cat /sys/class/net/msvxtap1/address");
  kmac.erase(kmac.find_last_not_of("\n ") + 1);
  std::string py = sh_out("command -v python3");
  py.erase(py.find_last_not_of("\n ") + 1);
  std::string script = tmp.path + "/echo.py";
  { std::ofstream f(script); f << kEchoPy; }
  Proc echo({"ip", "netns", "exec", nb.name, py, script, "10.0.4.100", "7777"}, tmp.path + "/echo.log");
  CHECK(wait_for([&] { return echo.output().find("ready") != std::string::npos; }, 10000));

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
  CHECK_EQ(a.st->set_capture(a.ifindex, cap.c_str()), 0);
  long rtt = w.ping(a, "10.0.4.100");
  std::printf("  ping the kernel across vxvde: %ld us\n", rtt);
  CHECK(rtt > 0);
  StreamResult r = tcp_stream(w, a, "10.0.4.100", 7777, 4u << 20, 4u << 20);
  std::printf("  TCP engine->kernel echo across vxvde: %llu bytes each way in %.3f s = %s each way\n",
              (unsigned long long)r.back, double(r.elapsed) / 1e6, mbps(r.back, r.elapsed).c_str());
  print_stats("engine's vxvde link", *a.link);
  CHECK(r.ok);
  if (!r.ok) { a.st->flush_captures(); sh("cp " + cap + " /tmp/msvx-failed-stall.pcap"); }
  // we learned the TAP's MAC at vde_plug's unicast address, and spoke unicast to it
  MacAddr km;
  unsigned b[6] = {};
  CHECK_EQ(std::sscanf(kmac.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]), 6);
  for (int i = 0; i < 6; i++) km.b[i] = uint8_t(b[i]);
  std::string peer = vx(a)->peer_of(km);
  std::printf("  learned %s at %s; tx unicast %llu, multicast %llu\n", kmac.c_str(), peer.c_str(),
              (unsigned long long)vx(a)->vx_stats().tx_unicast, (unsigned long long)vx(a)->vx_stats().tx_multicast);
  CHECK(peer.compare(0, 11, "10.211.0.2:") == 0);
  CHECK(vx(a)->vx_stats().tx_unicast > 1000);
  a.st->flush_captures();
  CHECK_EQ(a.st->set_capture(a.ifindex, nullptr), 0);
  if (need(have_program("tshark"), "tshark is not installed")) tshark_clean(cap, 3000, {7777});
  w.unplug(a);
}

TEST_MAIN()
