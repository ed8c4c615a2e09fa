// vxlan:// against Linux vxlan devices: option parsing and defaults; an engine stack in one
// namespace and a kernel `ip link add ... type vxlan` device in another, joined by a veth:
// ping, TCP byte-exact to a kernel echo server, learning (replies to the kernel's VXLAN port),
// a device on another VNI ignored, runts dropped; and the pcap decodes clean.
// run.sh links: native/link/vnl.cc native/link/vxlan.cc
#include <arpa/inet.h>

#include "live.h"

using namespace live;

namespace {

std::unique_ptr<FdLink> open_ok(const std::string& rest, const MacAddr& m) { return live::open_ok(open_vxlan_link, "vxlan", rest, m); }

/** two namespaces on a veth LAN (10.212.0.1 and .2), multicast routed onto it */
struct Lan : VethLan {
  Lan() : VethLan("msvx-xlA-" + std::to_string(getpid()), "msvx-xlB-" + std::to_string(getpid()), "msvxla", "msvxlb", "10.212.0") {}
};

}  // namespace

TEST("vxlan: options and defaults; EINVAL/ENODEV/EADDRINUSE with a message; any bytes are safe") {
  if (!need_root_and({"ip"})) return;
  Lan lan;
  CHECK(lan.ok);
  if (!lan.ok) return;
  InNetns in(lan.a.name);
  MacAddr m = mac(7, 1);
  {
    auto l = open_ok("", m);
    if (check_vx(l.get(), "239.0.0.1:4789", 1)) {
      CHECK_EQ(dynamic_cast<VxLink*>(l.get())->local_port(), 4789);
      CHECK(std::string(l->kind()) == "vxlan");
      CHECK_EQ(l->fds().size(), size_t(1));
      // one endpoint per host and port: a second one cannot bind
      FdLinkOpen o = open_vxlan_link("239.0.0.2", params_for(m));
      CHECK(!o.link);
      CHECK_EQ(o.err, EADDRINUSE);
      std::printf("  second endpoint: %s\n", o.message.c_str());
    }
  }
  check_vx(open_ok("239.5.6.7/v=42/p=4790/t=2/h=16/e=10/if=msvxla/v4", m).get(), "239.5.6.7:4790", 42);  // v is vni, p port, ...
  check_refused(open_vxlan_link, "vxlan",
                {
                    {"239.1.1.1/colour=red", EINVAL}, {"239.1.1.1/port=0", EINVAL},  {"239.1.1.1/vni=16777216", EINVAL},
                    {"239.1.1.1/vni=abc", EINVAL},    {"239.1.1.1/grp=1", EINVAL},   {"10.0.0.1", EINVAL},
                    {"239.1.1.1/if=nosuchif0", ENODEV},
                },
                params_for(m));
  int opened = random_urls(open_vxlan_link, 0x9E3779B97F4A7C15ull, {"", "239.9.9.9"}, 30, "/=\\'\"%0a9vptrhegi46 .:", params_for(m));
  std::printf("  3000 random URLs: %d opened, the rest refused\n", opened);
}

TEST("vxlan: an engine stack and a Linux vxlan device: ping, TCP byte-exact, learning, other VNI and runts dropped") {
  if (!need_root_and({"ip", "python3"})) return;
  Lan lan;
  CHECK(lan.ok);
  if (!lan.ok) return;
  TempDir tmp;
  const char* group = "239.77.0.5";
  // the kernel: VNI 42 (and a second device on VNI 43 sharing the same UDP port)
  // (no IPv6 in the kernel's namespace: its router solicitations would be frames we count)
  lan.b.run("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
  bool dev = lan.b.run(std::string("ip link add msvx42 type vxlan id 42 group ") + group + " dev msvxlb dstport 4789") == 0 &&
             lan.b.run("ip addr add 10.0.5.100/24 dev msvx42") == 0 && lan.b.run("ip link set msvx42 up") == 0 &&
             lan.b.run(std::string("ip link add msvx43 type vxlan id 43 group ") + group + " dev msvxlb dstport 4789") == 0 &&
             lan.b.run("ip addr add 10.0.6.100/24 dev msvx43") == 0 && lan.b.run("ip link set msvx43 up") == 0;
  CHECK(dev);
  if (!dev) return;
  // the veth would carry the kernel's TCP segments with their checksums left to an offload
  // that never happens: have the kernel fill them in itself
  CHECK(tx_csum_off(lan.b.name, "msvx42"));
  MacAddr kmac = parse_mac(lan.b.out("cat /sys/class/net/msvx42/address"));
  std::string py = python3();
  EchoServer echo(lan.b.name, tmp.path, "10.0.5.100", "7777");

  Live w;
  MacAddr ma = mac(8, 1);
  std::unique_ptr<FdLink> l;
  {
    InNetns in(lan.a.name);
    l = open_ok(std::string(group) + "/vni=42", ma);
  }
  if (!l) return;
  Node& a = w.add(std::move(l), ma, "10.0.5.1/24");
  std::string cap = tmp.path + "/vxlan-kernel.pcap";
  capture_to(a, cap);

  ping_ok(w, a, "10.0.5.100", "the kernel's vxlan device");
  StreamResult r = echo_ok(w, a, "10.0.5.100", 7777, "engine->kernel echo over VXLAN");
  if (!r.ok) { a.st->flush_captures(); sh("cp " + cap + " /tmp/msvx-failed-vxlan-stall.pcap"); }
  // learned: the kernel device's MAC at its host address and the VXLAN port (not its source port)
  std::string peer = vx(a)->peer_of(kmac);
  const VxStats& s = vx(a)->vx_stats();
  std::printf("  learned the kernel at %s; tx unicast %llu multicast %llu\n", peer.c_str(), (unsigned long long)s.tx_unicast,
              (unsigned long long)s.tx_multicast);
  CHECK(peer == "10.212.0.2:4789");
  CHECK(s.tx_unicast > 1000);
  // the kernel learned us too: its fdb points our MAC at our host
  std::string fdb = lan.b.out("bridge fdb show dev msvx42");
  char macs[32];
  std::snprintf(macs, sizeof macs, "%02x:%02x:%02x:%02x:%02x:%02x", ma.b[0], ma.b[1], ma.b[2], ma.b[3], ma.b[4], ma.b[5]);
  bool kernel_learned = fdb.find(macs) != std::string::npos && fdb.find("10.212.0.1") != std::string::npos;
  if (!kernel_learned) std::printf("  kernel fdb: %s\n", fdb.c_str());
  CHECK(kernel_learned);

  // the VNI 43 device's traffic reaches our socket and is dropped
  uint64_t wrong0 = s.rx_wrong_header, rx0 = a.link->stats().rx_frames;
  Proc ping43({"ip", "netns", "exec", lan.b.name, py, "-c",
               "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
               "for i in range(3): s.sendto(b'x'*100, ('10.0.6.1', 9))\n"},
              tmp.path + "/p43.log");
  w.until(3000000, [&] { return !ping43.alive() && s.rx_wrong_header > wrong0; });
  std::printf("  VNI 43 traffic: %llu datagrams dropped for the wrong VNI\n", (unsigned long long)(s.rx_wrong_header - wrong0));
  CHECK(s.rx_wrong_header > wrong0);
  CHECK_EQ(a.link->stats().rx_frames, rx0);
  // runts to our port: counted as malformed, nothing delivered
  uint64_t mal0 = a.link->stats().rx_malformed;
  Proc runt({"ip", "netns", "exec", lan.b.name, py, "-c",
             "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
             "s.sendto(bytes([8,0,0,0,0,0,42,0,1,2,3]), ('10.212.0.1', 4789))\ns.sendto(b'ab', ('10.212.0.1', 4789))\n"},
           tmp.path + "/runt.log");
  w.until(3000000, [&] { return a.link->stats().rx_malformed >= mal0 + 2; });
  CHECK_EQ(a.link->stats().rx_malformed, mal0 + 2);
  CHECK_EQ(a.link->stats().rx_frames, rx0);
  CHECK_EQ(a.link->stats().tx_errors, uint64_t(0));

  capture_clean(a, cap, 3000, {7777});
  w.unplug(a);
}

TEST_MAIN()
