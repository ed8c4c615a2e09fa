// vde:// against the real vde_switch (Debian vde2) and vde_plug (Debian vdeplug): option
// parsing, a missing switch, two engine stacks through a switch (ping, UDP, TCP byte-exact),
// ports refused and freed, the switch going away, and the Linux kernel (a TAP in a namespace,
// plugged into the switch by vde_plug) answering ping and TCP from an engine stack.
// run.sh links: native/link/vnl.cc native/link/vde.cc
#include "live.h"

using namespace live;

namespace {

/** a vde_switch on a fresh control directory, stopped (and the directory removed) at the end */
struct Switch {
  TempDir tmp;
  std::string dir;
  std::unique_ptr<Proc> proc;
  bool ok = false;
  explicit Switch(int ports = 32, const char* extra = nullptr) {
    dir = tmp.path + "/sw";
    std::vector<std::string> argv = {"vde_switch", "-s", dir, "-n", std::to_string(ports)};
    if (extra) argv.push_back(extra);
    proc.reset(new Proc(argv, tmp.path + "/switch.log"));
    ok = wait_for([&] { struct stat st; return stat((dir + "/ctl").c_str(), &st) == 0 && S_ISSOCK(st.st_mode); }, 5000);
    if (!ok) std::printf("  vde_switch did not start: %s\n", proc->output().c_str());
  }
};

std::unique_ptr<FdLink> open_ok(const std::string& rest, const MacAddr& m) { return live::open_ok(open_vde_link, "vde", rest, m); }

size_t files_in(const std::string& dir) {
  return size_t(std::atol(sh_out("ls -A '" + dir + "' | wc -l").c_str()));
}

}  // namespace

TEST("vde: bad URLs are EINVAL with a message; no switch is ENOENT; any bytes are safe") {
  FdLinkParams p;
  check_refused(open_vde_link, "vde",
                {
                    {"/tmp/x[", EINVAL},           {"/tmp/x[1]junk", EINVAL},      {"/tmp/x[port=abc]", EINVAL},
                    {"/tmp/x[port=70000]", EINVAL}, {"/tmp/x[colour=red]", EINVAL}, {"/tmp/x[mode=9]", EINVAL},
                    {"/tmp/x[portgroup=..]", EINVAL},
                    {"/nonexistent-msvx/sw", ENOENT}, {"/nonexistent-msvx/sw[5]", ENOENT},
                },
                p);
  FdLinkOpen o = open_vde_link("/nonexistent-msvx/sw", p);
  CHECK(o.message.find("no switch") != std::string::npos && o.message.find("ENOENT") != std::string::npos);
  std::string huge(5000, 'a');
  CHECK_EQ(open_vde_link("/" + huge, p).err, EINVAL);
  // a directory that exists but holds no switch
  TempDir t;
  o = open_vde_link(t.path, p);
  CHECK_EQ(o.err, ENOENT);
  CHECK_EQ(files_in(t.path), size_t(0));  // nothing left behind
  // random bytes after a path that does not exist: never a crash, always an error
  CHECK_EQ(random_urls(open_vde_link, 88172645463325252ull, {"/nonexistent-msvx/"}, 40, "[]/=\\'\"%0a9xpmgo ", p), 0);
}

TEST("vde: two engine stacks through vde_switch: ping, UDP, TCP byte-exact; ports; pcap clean") {
  if (!need(have_program("vde_switch"), "vde_switch (Debian vde2) is not installed")) return;
  Switch sw;
  CHECK(sw.ok);
  if (!sw.ok) return;
  Live w;
  MacAddr ma = mac(1, 1), mb = mac(1, 2);
  auto la = open_ok(sw.dir, ma);
  auto lb = open_ok(sw.dir + "[7]", mb);
  if (!la || !lb) return;
  auto* va = dynamic_cast<VdeLink*>(la.get());
  auto* vb = dynamic_cast<VdeLink*>(lb.get());
  CHECK(va && vb);
  std::printf("  ports %d (%s) and %d (%s)\n", va->port(), va->switch_socket().c_str(), vb->port(), vb->switch_socket().c_str());
  CHECK(va->port() >= 1 && va->port() != 7);
  CHECK_EQ(vb->port(), 7);
  CHECK(std::string(la->kind()) == "vde");
  // our own datagram sockets were unlinked once connected: only the switch's files remain
  CHECK_EQ(std::atol(sh_out("ls -A '" + sw.dir + "' | grep -c '^\\.'").c_str()), 0L);
  Node& a = w.add(std::move(la), ma, "10.0.1.1/24");
  Node& b = w.add(std::move(lb), mb, "10.0.1.2/24");
  std::string cap = sw.tmp.path + "/a.pcap";
  capture_to(a, cap);
  ping_ok(w, a, "10.0.1.2", "10.0.1.2");

  // UDP: 200 datagrams of every size class, b echoes them
  int ua = a.st->socket(AF_INET, SOCK_DGRAM, 0), ub = b.st->socket(AF_INET, SOCK_DGRAM, 0);
  CHECK_EQ(a.st->bind(ua, ep("0.0.0.0", 45123)), 0);
  CHECK_EQ(b.st->bind(ub, ep("0.0.0.0", 45124)), 0);
  Endpoint to = ep("10.0.1.2", 45124);
  int got = 0, bad = 0;
  for (int i = 0; i < 200; i++) {
    size_t n = size_t(1 + (i * 37) % 1472);
    std::vector<uint8_t> d(n);
    for (size_t k = 0; k < n; k++) d[k] = pat(k, uint64_t(i));
    CHECK_EQ(a.st->sendto(ua, d.data(), n, 0, &to), long(n));
    w.until(2000000, [&] {
      uint8_t buf[2048];
      Endpoint from;
      long r = b.st->recvfrom(ub, buf, sizeof buf, 0, &from);
      if (r >= 0) b.st->sendto(ub, buf, size_t(r), 0, &from);
      r = a.st->recvfrom(ua, buf, sizeof buf, 0, &from);
      if (r < 0) return false;
      if (size_t(r) != n || std::memcmp(buf, d.data(), n) != 0) bad++;
      got++;
      return true;
    });
  }
  std::printf("  UDP: %d/200 echoed, %d wrong\n", got, bad);
  CHECK(got >= 195);  // datagrams: a loss or two is the network's right, corruption is not
  CHECK_EQ(bad, 0);

  // TCP both ways, byte-exact
  Sink sink;
  sink.start(*b.st, 80);
  uint64_t total = 4u << 20;
  Micros dt = stream_to_sink(w, *a.st, "10.0.1.2", 80, total, sink, 60000000);
  std::printf("  TCP engine->engine through vde_switch: %llu bytes in %.3f s = %s\n", (unsigned long long)sink.got,
              double(dt) / 1e6, mbps(sink.got, dt).c_str());
  CHECK(!sink.bad);
  CHECK_EQ(sink.got, total);
  CHECK(sink.eof);
  sink.stop();
  w.until(300000, [] { return false; });

  // the reverse direction through the same code: b connects to a
  Sink sink2;
  sink2.start(*a.st, 81);
  StreamResult r2 = tcp_stream(w, b, "10.0.1.1", 81, 1u << 20, 0);
  w.until(5000000, [&] { sink2.step(); return sink2.eof || sink2.bad; });
  CHECK(r2.ok);
  CHECK(!sink2.bad && sink2.got == (1u << 20));
  sink2.stop();

  const FdLinkStats& sa = w.nodes[0]->link->stats();
  std::printf("  link a: tx %llu frames, rx %llu frames, tx dropped %llu, malformed %llu\n", (unsigned long long)sa.tx_frames,
              (unsigned long long)sa.rx_frames, (unsigned long long)sa.tx_dropped, (unsigned long long)sa.rx_malformed);
  CHECK(sa.tx_frames > 2000 && sa.rx_frames > 1000);
  CHECK_EQ(sa.rx_malformed, uint64_t(0));
  CHECK_EQ(sa.tx_errors, uint64_t(0));

  // vde_switch lets one user share a port: a second plug on port 7 is accepted
  FdLinkOpen dup = open_vde_link(sw.dir + "[7]", params_for(mac(1, 3)));
  CHECK(dup.link != nullptr);
  if (dup.link) CHECK_EQ(dynamic_cast<VdeLink*>(dup.link.get())->port(), 7);
  dup.link.reset();
  // a port the switch does not have is refused (vde_switch 2.3.2 says nothing: we time out;
  // newer ones close the connection)
  FdLinkOpen beyond = open_vde_link(sw.dir + "[port=40]", params_for(mac(1, 3)));  // a 32-port switch
  std::printf("  port 40: %s\n", beyond.message.c_str());
  CHECK(!beyond.link && (beyond.err == ECONNREFUSED || beyond.err == ETIMEDOUT));
  CHECK(beyond.message.find("port 40") != std::string::npos);
  // b leaves: closing its control connection makes the switch free the port (and remove the
  // port's data socket)
  std::string b_sock = dynamic_cast<VdeLink*>(b.link.get())->switch_socket();
  struct stat bst;
  CHECK_EQ(stat(b_sock.c_str(), &bst), 0);
  w.unplug(b);
  CHECK(wait_for([&] { return stat(b_sock.c_str(), &bst) != 0; }, 3000));

  capture_clean(a, cap, 3000, {45123, 45124, 80, 81});

  // the switch goes away: the link goes down and says why
  sw.proc->stop();
  CHECK(w.until(3000000, [&] { return w.nodes[0]->link->down(); }));
  std::printf("  after the switch stopped: %s\n", w.nodes[0]->link->down_reason().c_str());
  CHECK(w.nodes[0]->link->down_reason().find("switch") != std::string::npos);
  CHECK(!w.nodes[0]->link->fds().empty());  // open until close(), which the binding calls
  w.nodes[0]->link->transmit(std::vector<uint8_t>(60, 0xff).data(), 60);  // a link down sends nothing
  w.nodes[0]->link->close();
  CHECK(w.nodes[0]->link->fds().empty());
}

TEST("vde: vde_plug puts a kernel TAP (in a namespace) on the switch: ping and TCP from an engine stack") {
  if (!need_root_and({"vde_switch", "vde_plug", "ip", "python3"})) return;
  Switch sw;
  CHECK(sw.ok);
  if (!sw.ok) return;
  Netns ns("msvx-vde-" + std::to_string(getpid()));
  CHECK(ns.ok);
  if (!ns.ok) return;
  // the kernel side: vde_plug (vdeplug4) joins the switch and a TAP inside the namespace
  PlugTap plug(ns, "vde://" + sw.dir, "msvxtap0", "10.0.2.100/24", sw.tmp.path);
  if (!plug.ok) return;
  EchoServer echo(ns.name, sw.tmp.path, "10.0.2.100", "7777");

  Live w;
  MacAddr ma = mac(2, 1);
  auto la = open_ok(sw.dir, ma);
  if (!la) return;
  Node& a = w.add(std::move(la), ma, "10.0.2.1/24");
  std::string cap = sw.tmp.path + "/kernel.pcap";
  capture_to(a, cap);
  ping_ok(w, a, "10.0.2.100", "the kernel");
  // and the kernel pings us (a child process, while this thread keeps the stack running)
  if (have_program("ping")) {
  Proc kping({"ip", "netns", "exec", ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.1"}, sw.tmp.path + "/ping.log");
  w.until(10000000, [&] { return !kping.alive(); });
  if (kping.code != 0) std::printf("  kernel ping: %s\n", kping.output().c_str());
  CHECK_EQ(kping.code, 0);
  } else {
    std::printf("  (no ping program: the kernel does not ping back)\n");
  }
  echo_ok(w, a, "10.0.2.100", 7777, "engine->kernel echo through vde_switch");
  capture_clean(a, cap, 3000, {7777});
  w.unplug(a);
}

TEST_MAIN()
