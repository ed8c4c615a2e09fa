// Test fixture for link drivers that talk to the real world (vde://, vxvde://, vxlan://):
// engine stacks driven in real time by a poll(2) loop over their FdLinks' descriptors, plus
// helpers for what such tests set up and always tear down: network namespaces, devices,
// child processes (vde_switch, vde_plug, a kernel-side echo server), temp directories, and a
// tshark check of the captures; and what the link tests share: opening a link, refused and
// random URLs, ping and TCP streams between a node and its peer.
//
// Missing peers (a program, root): outside CI the test prints why and skips; under CI=true it
// fails (need()).
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "check.h"
#include "engine/stack.h"
#include "link/fdlink.h"
#include "link/vnl.h"

namespace live {
using namespace ms;

inline Micros now_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return Micros(ts.tv_sec) * 1000000 + Micros(ts.tv_nsec) / 1000;
}

inline IpAddr ip(const char* s) { IpAddr a; if (!a.parse(s)) std::abort(); return a; }
inline Endpoint ep(const char* s, uint16_t port) { Endpoint e; e.addr = ip(s); e.port = port; return e; }

/** run a shell command, quietly; its exit status */
inline int sh(const std::string& cmd) {
  int r = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}
/** run a shell command; its standard output (and error) */
inline std::string sh_out(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}
/** a peer the test needs: true if present; else a skip (outside CI) or a failure (CI=true) */
inline bool need(bool present, const std::string& what) {
  if (present) return true;
  if (in_ci()) {
    check::failures()++;
    std::printf("  FAILED (CI=true): %s\n", what.c_str());
  } else {
    std::printf("  skipped: %s\n", what.c_str());
  }
  return false;
}
inline bool have_program(const char* p) { return sh(std::string("command -v ") + p) == 0; }
inline bool need_root_and(std::initializer_list<const char*> progs) {
  if (!need(geteuid() == 0, "needs root (network namespaces)")) return false;
  for (const char* p : progs)
    if (!need(have_program(p), std::string(p) + " is not installed")) return false;
  return true;
}

/** a temporary directory, removed with its contents */
struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/msvx-XXXXXX";
    if (mkdtemp(t)) path = t;
  }
  ~TempDir() { if (!path.empty()) sh("rm -rf '" + path + "'"); }
};

/** a network namespace, created fresh (a stale one of the same name is deleted first) and
    deleted with everything in it */
struct Netns {
  std::string name;
  bool ok = false;
  explicit Netns(const std::string& n) : name(n) {
    sh("ip netns del " + name);
    ok = sh("ip netns add " + name) == 0 && sh("ip -n " + name + " link set lo up") == 0;
  }
  ~Netns() {
    // processes still inside keep it alive: kill them first
    sh("ip netns pids " + name + " | xargs -r kill -9");
    sh("ip netns del " + name);
  }
  int run(const std::string& cmd) const { return sh("ip netns exec " + name + " " + cmd); }
  std::string out(const std::string& cmd) const { return sh_out("ip netns exec " + name + " " + cmd); }
};

/** a device of this namespace (e.g. a veth end before it moves away), deleted when the object
    goes if it is still here (a stale one of the same name is deleted first) */
struct DevGuard {
  std::string dev;
  explicit DevGuard(const std::string& d) : dev(d) { sh("ip link del " + dev); }
  ~DevGuard() { sh("ip link del " + dev); }
};

/** this thread in namespace `name` while the object lives (sockets made meanwhile stay there) */
struct InNetns {
  int orig = -1;
  bool ok = false;
  explicit InNetns(const std::string& name) {
    orig = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    ok = orig >= 0 && fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) close(fd);
  }
  ~InNetns() {
    if (orig >= 0) {
      if (setns(orig, CLONE_NEWNET) != 0) std::abort();
      close(orig);
    }
  }
};

/** turn off transmit checksum offload of device dev in namespace ns (what `ethtool -K dev tx
    off` does). Needed where a kernel device's frames reach us through a veth: a veth passes
    offloaded packets on with their checksums never filled in, as no real NIC would. */
inline bool tx_csum_off(const std::string& ns, const std::string& dev) {
  InNetns in(ns);
  if (!in.ok) return false;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev.c_str());
  ethtool_value ev{};
  ev.cmd = ETHTOOL_STXCSUM;
  ev.data = 0;
  ifr.ifr_data = reinterpret_cast<char*>(&ev);
  bool ok = ioctl(fd, SIOCETHTOOL, &ifr) == 0;
  close(fd);
  return ok;
}

/** a child process (argv), its output in log; stdin is a pipe held open until the end.
    Killed (TERM, then KILL) and reaped when the object goes. */
struct Proc {
  pid_t pid = -1;
  int in = -1;
  std::string log;
  Proc(const std::vector<std::string>& argv, const std::string& logfile) : log(logfile) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return;
    pid = fork();
    if (pid == 0) {
      dup2(p[0], 0);
      int fd = open(logfile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); }
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      execvp(a[0], a.data());
      _exit(127);
    }
    close(p[0]);
    in = p[1];
  }
  int code = -1;  // exit status once reaped (128 + signal if killed)
  bool alive() {
    if (pid <= 0) return false;
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == 0) return true;
    if (r == pid) code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pid = -1;
    return false;
  }
  void stop() {
    if (in >= 0) { close(in); in = -1; }
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
      int st;
      if (waitpid(pid, &st, WNOHANG) != 0) { pid = -1; return; }
      usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  std::string output() const {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  ~Proc() { stop(); }
};

/** two namespaces a and b joined by a veth (dev_a in a, dev_b in b) with addresses
    SUBNET.1/24 and SUBNET.2/24, multicast routed onto it: two hosts on one LAN */
struct VethLan {
  Netns a, b;
  DevGuard ga, gb;  // declared after the namespaces: gone before them
  bool ok = false;
  VethLan(const std::string& ns_a, const std::string& ns_b, const std::string& dev_a, const std::string& dev_b,
          const std::string& subnet)
      : a(ns_a), b(ns_b), ga(dev_a), gb(dev_b) {
    ok = a.ok && b.ok && sh("ip link add " + dev_a + " type veth peer name " + dev_b) == 0 &&
         sh("ip link set " + dev_a + " netns " + a.name) == 0 && sh("ip link set " + dev_b + " netns " + b.name) == 0 &&
         a.run("ip addr add " + subnet + ".1/24 dev " + dev_a) == 0 && b.run("ip addr add " + subnet + ".2/24 dev " + dev_b) == 0 &&
         a.run("ip link set " + dev_a + " up") == 0 && b.run("ip link set " + dev_b + " up") == 0 &&
         a.run("ip route add 224.0.0.0/4 dev " + dev_a) == 0 && b.run("ip route add 224.0.0.0/4 dev " + dev_b) == 0;
  }
};

/** poll pred every 10 ms for up to ms milliseconds */
inline bool wait_for(const std::function<bool()>& pred, int ms) {
  for (int i = 0; i <= ms / 10; i++) {
    if (pred()) return true;
    usleep(10000);
  }
  return pred();
}

struct Node {
  std::unique_ptr<Stack> st;
  std::unique_ptr<FdLink> link;
  int ifindex = 0;
  MacAddr mac;
  std::vector<PingResult> pings;
};

/** stacks on FdLinks, run in real time by poll(2) */
struct Live {
  std::vector<std::unique_ptr<Node>> nodes;

  /** a stack with one interface on `link` (already open, opened with `mac`), address cidr */
  Node& add(std::unique_ptr<FdLink> link, const MacAddr& mac, const char* cidr) {
    auto n = std::make_unique<Node>();
    Node* np = n.get();
    StackConfig cfg;
    cfg.seed += nodes.size() * 7919 + uint64_t(getpid());
    n->st = std::make_unique<Stack>(cfg);
    n->st->set_now(now_us());
    n->link = std::move(link);
    n->mac = mac;
    n->link->set_receiver([](void* c, const uint8_t* f, size_t len) {
      Node* x = static_cast<Node*>(c);
      x->st->input(x->ifindex, f, len);
    }, np);
    InterfaceConfig ic;
    ic.mac = mac;
    ic.link = n->link.get();
    n->ifindex = n->st->add_interface(ic);
    std::string s(cidr);
    auto slash = s.find('/');
    n->st->add_address(n->ifindex, ip(s.substr(0, slash).c_str()), uint8_t(std::atoi(s.c_str() + slash + 1)));
    n->st->set_ping_handler([](void* c, const PingResult& r) { static_cast<Node*>(c)->pings.push_back(r); }, np);
    nodes.push_back(std::move(n));
    return *np;
  }

  /** detach and close a node's link (vxvde: says goodbye) */
  void unplug(Node& n) {
    n.st->set_link(n.ifindex, nullptr);
    if (n.link) { n.link->close(); n.link.reset(); }
  }

  /** one round: wait up to max_wait_us for a descriptor or a timer, handle what is ready */
  void pump(Micros max_wait_us = 10000) {
    std::vector<pollfd> pfds;
    std::vector<FdLink*> owners;
    for (auto& n : nodes) {
      if (!n->link || n->link->down()) continue;  // as the binding: a link down is not polled
      for (int fd : n->link->fds()) {
        short ev = POLLIN;
        if (n->link->wants_write(fd)) ev |= POLLOUT;
        pfds.push_back({fd, ev, 0});
        owners.push_back(n->link.get());
      }
    }
    Micros t = now_us();
    Micros next = t + max_wait_us;
    for (auto& n : nodes) next = std::min(next, n->st->poll_at());
    int timeout = next <= t ? 0 : int((next - t + 999) / 1000);
    int r = poll(pfds.data(), pfds.size(), timeout);
    t = now_us();
    for (auto& n : nodes) {
      if (n->link) n->link->set_now(t);
      n->st->set_now(t);
    }
    if (r > 0) {
      for (size_t i = 0; i < pfds.size(); i++) {
        if (pfds[i].revents & POLLOUT) owners[i]->on_writable(pfds[i].fd);
        if (pfds[i].revents & (POLLIN | POLLERR | POLLHUP)) owners[i]->on_readable(pfds[i].fd, 256);
      }
    }
    for (auto& n : nodes)
      if (n->st->poll_at() <= t) n->st->poll(t);
  }

  /** pump until pred() holds or timeout_us passes; true if it held */
  bool until(Micros timeout_us, const std::function<bool()>& pred) {
    Micros end = now_us() + timeout_us;
    while (!pred()) {
      if (now_us() >= end) return pred();
      pump();
    }
    return true;
  }

  /** one ping from a to dst: the RTT in microseconds, or -status on failure */
  long ping(Node& a, const char* dst, size_t payload = 56, Micros timeout = 5000000) {
    size_t before = a.pings.size();
    uint16_t idseq[2];
    int rc = a.st->ping(ip(dst), payload, idseq);
    if (rc < 0) return rc;
    if (!until(timeout, [&] { return a.pings.size() > before; })) return -ETIMEDOUT;
    const PingResult& pr = a.pings.back();
    return pr.status == 0 ? long(pr.rtt) : long(pr.status);
  }
};

/** the test data: byte i of a stream (a hash, so that misplaced bytes show) */
inline uint8_t pat(uint64_t i, uint64_t seed = 0) {
  uint64_t z = (i / 8) + seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return uint8_t(z >> ((i % 8) * 8));
}

/** send pattern bytes on socket c, from *sent on up to total, as far as its send buffer takes them */
inline void send_pattern(Stack& s, int c, uint64_t total, uint64_t* sent, std::vector<uint8_t>& buf) {
  while (*sent < total) {
    size_t n = size_t(std::min<uint64_t>(buf.size(), total - *sent));
    for (size_t i = 0; i < n; i++) buf[i] = pat(*sent + i);
    long r = s.send(c, buf.data(), n);
    if (r <= 0) break;
    *sent += uint64_t(r);
  }
}

/** TCP: connect from a to dst:port, send `total` pattern bytes and read back what the peer
    returns until `expect_back` bytes came (0: none; the peer then closes after reading all).
    Byte-exact checks on both. Returns elapsed microseconds, or 0 on failure (with CHECKs). */
struct StreamResult { bool ok = false; Micros elapsed = 0; uint64_t sent = 0, back = 0; };
inline StreamResult tcp_stream(Live& w, Node& a, const char* dst, uint16_t port, uint64_t total, uint64_t expect_back,
                               Micros timeout = 60000000) {
  StreamResult res;
  Stack& s = *a.st;
  int c = s.socket(AF_INET, SOCK_STREAM, 0);
  if (c < 0) { CHECK(c >= 0); return res; }
  int rc = s.connect(c, ep(dst, port));
  CHECK_EQ(rc, -EINPROGRESS);
  if (!w.until(10000000, [&] { return (s.events(c) & (kEvWritable | kEvError)) != 0; }) || (s.events(c) & kEvError)) {
    std::printf("  connect to %s:%u failed\n", dst, port);
    CHECK(false);
    s.close(c);
    return res;
  }
  Micros t0 = now_us();
  std::vector<uint8_t> out(65536), in(65536);
  uint64_t sent = 0, back = 0;
  bool bad = false, shut = false;
  w.until(timeout, [&] {
    send_pattern(s, c, total, &sent, out);
    if (sent == total && !shut && expect_back == 0) { s.shutdown(c, SHUT_WR); shut = true; }
    for (;;) {
      long r = s.recv(c, in.data(), in.size());
      if (r <= 0) break;
      for (long i = 0; i < r; i++)
        if (in[size_t(i)] != pat(back + uint64_t(i))) bad = true;
      back += uint64_t(r);
    }
    return bad || (sent == total && back >= expect_back && (expect_back || shut));
  });
  res.elapsed = now_us() - t0;
  res.sent = sent;
  res.back = back;
  CHECK(!bad);
  CHECK_EQ(sent, total);
  CHECK_EQ(back, expect_back);
  res.ok = !bad && sent == total && back == expect_back;
  s.close(c);
  w.until(200000, [] { return false; });  // let the FIN exchange finish
  return res;
}

/** receive on an accepted engine socket until EOF, checking the pattern; bytes received */
struct Sink {
  Stack* s = nullptr;
  int listener = -1, conn = -1;
  uint64_t got = 0;
  bool bad = false, eof = false;
  void start(Stack& st, uint16_t port) {
    s = &st;
    listener = st.socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(st.bind(listener, ep("0.0.0.0", port)), 0);
    CHECK_EQ(st.listen(listener, 8), 0);
  }
  void step() {
    if (conn < 0) { Endpoint p; int c = s->accept(listener, &p); if (c > 0) conn = c; }
    if (conn < 0) return;
    uint8_t buf[65536];
    for (;;) {
      long r = s->recv(conn, buf, sizeof buf);
      if (r == 0) { eof = true; break; }
      if (r < 0) break;
      for (long i = 0; i < r; i++) if (buf[i] != pat(got + uint64_t(i))) bad = true;
      got += uint64_t(r);
    }
  }
  void stop() {
    if (conn > 0) s->close(conn);
    if (listener > 0) s->close(listener);
    conn = listener = -1;
  }
};

/** tshark over a capture: frames, malformed frames, bad checksums (IP, ICMP, UDP, TCP),
    error-level expert infos. The payloads of our tests are pseudo-random bytes: application
    dissectors (every protocol with a heuristic dissector on TCP or UDP, and whatever claims
    the ports the test names) are kept off them, so that what is judged is ethernet, ARP, IP,
    ICMP, UDP and TCP. MSVX_KEEP_PCAP=DIR keeps a copy of every capture checked. */
struct TsharkReport { long frames = -1, malformed = -1, bad_csum = -1, errors = -1; std::string protocols; };
inline std::string tshark_base(const std::string& pcap, const std::vector<int>& ports) {
  static std::string heur;
  if (heur.empty()) {
    std::string list = sh_out("tshark -G heuristic-decodes 2>/dev/null | awk '$1==\"tcp\"||$1==\"udp\" {print $2}' | sort -u");
    std::istringstream in(list);
    std::string name;
    while (in >> name) heur += " --disable-protocol " + name;
    if (heur.empty()) heur = " ";
  }
  std::string cmd = "tshark -n -r '" + pcap + "' -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE" + heur;
  for (int p : ports) cmd += " -d tcp.port==" + std::to_string(p) + ",data -d udp.port==" + std::to_string(p) + ",data";
  return cmd + " ";
}
inline TsharkReport tshark_check(const std::string& pcap, const std::vector<int>& ports) {
  TsharkReport r;
  std::string base = tshark_base(pcap, ports);
  auto count = [&](const std::string& filter) {
    std::string o = sh_out(base + (filter.empty() ? "" : "-Y '" + filter + "' ") + "-T fields -e frame.number 2>/dev/null | wc -l");
    return std::atol(o.c_str());
  };
  r.frames = count("");
  r.malformed = count("_ws.malformed");
  r.bad_csum = count("ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0 || icmp.checksum.status == 0");
  r.errors = count("_ws.expert.severity == error");
  r.protocols = sh_out(base + "-T fields -e _ws.col.Protocol 2>/dev/null | sort | uniq -c | tr -s ' \\n' ' '");
  return r;
}
inline bool tshark_clean(const std::string& pcap, long min_frames, const std::vector<int>& ports) {
  TsharkReport r = tshark_check(pcap, ports);
  if (const char* keep = std::getenv("MSVX_KEEP_PCAP"))  // a directory to keep every capture in
    sh(std::string("cp '") + pcap + "' '" + keep + "/'");
  std::printf("  tshark %s: %ld frames, %ld malformed, %ld bad checksums, %ld expert errors; %s\n", pcap.c_str(), r.frames,
              r.malformed, r.bad_csum, r.errors, r.protocols.c_str());
  if (r.malformed || r.bad_csum || r.errors) {
    std::printf("%s", sh_out(tshark_base(pcap, ports) + "-Y '_ws.malformed || _ws.expert.severity == error || ip.checksum.status == 0 || "
                                                      "tcp.checksum.status == 0 || udp.checksum.status == 0' 2>/dev/null | head -20").c_str());
    std::string keep = "/tmp/msvx-failed-" + pcap.substr(pcap.rfind('/') + 1);
    sh("cp '" + pcap + "' '" + keep + "'");
    std::printf("  (kept as %s)\n", keep.c_str());
  }
  CHECK(r.frames >= min_frames);
  CHECK_EQ(r.malformed, 0);
  CHECK_EQ(r.bad_csum, 0);
  CHECK_EQ(r.errors, 0);
  return r.frames >= min_frames && r.malformed == 0 && r.bad_csum == 0 && r.errors == 0;
}

/** the python3 program's path ("" if there is none) */
inline std::string python3() {
  std::string py = sh_out("command -v python3");
  py.erase(py.find_last_not_of("\n ") + 1);
  return py;
}

/** a python3 TCP echo server (echoes each connection until EOF, then closes it) */
inline const char* kEchoPy =
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4); print('ready', flush=True)\n"
    "while True:\n"
    "  c,_=s.accept()\n"
    "  while True:\n"
    "    d=c.recv(262144)\n"
    "    if not d: break\n"
    "    c.sendall(d)\n"
    "  c.close()\n";

/** kEchoPy listening on addr:port inside namespace ns (script and log in dir); ready: it said so */
struct EchoServer {
  std::unique_ptr<Proc> proc;
  bool ready = false;
  EchoServer(const std::string& ns, const std::string& dir, const char* addr, const char* port) {
    std::string script = dir + "/echo.py";
    { std::ofstream f(script); f << kEchoPy; }
    proc.reset(new Proc({"ip", "netns", "exec", ns, python3(), script, addr, port}, dir + "/echo.log"));
    ready = wait_for([&] { return proc->output().find("ready") != std::string::npos; }, 10000);
    CHECK(ready);
  }
};

/** stop node n's capture and check the file with tshark (when installed): at least min_frames
    frames, the test payloads on ports decoded as data */
inline void capture_clean(Node& n, const std::string& cap, long min_frames, const std::vector<int>& ports) {
  n.st->flush_captures();
  CHECK_EQ(n.st->set_capture(n.ifindex, nullptr), 0);
  if (need(have_program("tshark"), "tshark is not installed")) tshark_clean(cap, min_frames, ports);
}

// ---- opening links

using LinkOpener = FdLinkOpen (*)(const std::string& rest, const FdLinkParams& params);

inline FdLinkParams params_for(const MacAddr& m) {
  FdLinkParams p;
  p.mac = m;
  return p;
}

/** open SCHEME://rest with mac m, which must work (a CHECK, the reason printed, if not) */
inline std::unique_ptr<FdLink> open_ok(LinkOpener open, const char* scheme, const std::string& rest, const MacAddr& m) {
  FdLinkOpen o = open(rest, params_for(m));
  if (!o.link) std::printf("  open %s://%s: %s\n", scheme, rest.c_str(), o.message.c_str());
  CHECK(o.link != nullptr);
  return std::move(o.link);
}

/** each url is refused with its errno and a message that begins "SCHEME: " */
struct Refused { const char* url; int err; };
inline void check_refused(LinkOpener open, const char* scheme, const std::vector<Refused>& cases, const FdLinkParams& p) {
  std::string prefix = std::string(scheme) + ": ";
  for (auto& c : cases) {
    FdLinkOpen o = open(c.url, p);
    if (o.err != c.err) std::printf("  %s: %d %s\n", c.url, o.err, o.message.c_str());
    CHECK(!o.link);
    CHECK_EQ(o.err, c.err);
    CHECK(o.message.compare(0, prefix.size(), prefix) == 0);
  }
}

/** 3000 random URLs, the i-th one prefixes[i % prefixes.size()] and then fewer than max_extra
    characters, half of them any byte and half from alphabet: each either opens or fails with
    an errno and a message, never both or neither. How many opened. */
inline int random_urls(LinkOpener open, uint64_t seed, const std::vector<std::string>& prefixes, int max_extra,
                       const std::string& alphabet, const FdLinkParams& p) {
  uint64_t x = seed;
  int opened = 0;
  for (size_t i = 0; i < 3000; i++) {
    std::string s = prefixes[i % prefixes.size()];
    int n = int(x % uint64_t(max_extra));
    for (int k = 0; k < n; k++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      s.push_back(x & 1 ? char(x >> 8) : alphabet[(x >> 8) % alphabet.size()]);
    }
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    FdLinkOpen r = open(s, p);
    CHECK((r.link != nullptr) != (r.err != 0));
    CHECK(r.link || !r.message.empty());
    if (r.link) opened++;
  }
  return opened;
}

/** a vxvde or vxlan node's link */
inline VxLink* vx(Node& n) { return dynamic_cast<VxLink*>(n.link.get()); }

/** l (when there is one: open_ok has checked that) is a vxvde or vxlan link on group
    ("239.0.0.1:4789") and VNI vni; false if there is no link */
inline bool check_vx(FdLink* l, const char* group, uint32_t vni) {
  if (!l) return false;
  auto* v = dynamic_cast<VxLink*>(l);
  CHECK(v != nullptr);
  if (!v) return false;
  CHECK(v->group() == group);
  CHECK_EQ(v->vni(), vni);
  return true;
}

/** "aa:bb:cc:dd:ee:ff" (a trailing newline allowed) */
inline MacAddr parse_mac(const std::string& s) {
  MacAddr m;
  unsigned b[6] = {};
  CHECK_EQ(std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]), 6);
  for (int i = 0; i < 6; i++) m.b[i] = uint8_t(b[i]);
  return m;
}

inline MacAddr mac(uint8_t a, uint8_t b) {
  MacAddr m;
  m.b[0] = 0x02; m.b[1] = 0x6d; m.b[2] = 0x73; m.b[3] = uint8_t(getpid() & 0xff); m.b[4] = a; m.b[5] = b;
  return m;
}

inline std::string mbps(uint64_t bytes, Micros us) {
  char b[64];
  std::snprintf(b, sizeof b, "%.1f Mbit/s", us ? double(bytes) * 8 / double(us) : 0.0);
  return b;
}

/** `vde_plug URL tap://TAP` in namespace ns (its log in dir); ok once the TAP is there, given
    address cidr and up */
struct PlugTap {
  std::unique_ptr<Proc> proc;
  bool ok = false;
  PlugTap(const Netns& ns, const std::string& url, const std::string& tap, const std::string& cidr, const std::string& dir) {
    proc.reset(new Proc({"ip", "netns", "exec", ns.name, "vde_plug", url, "tap://" + tap}, dir + "/plug.log"));
    bool there = wait_for([&] { return ns.run("ip link show " + tap) == 0; }, 5000);
    if (!there) std::printf("  vde_plug: %s\n", proc->output().c_str());
    CHECK(there);
    if (!there) return;
    CHECK_EQ(ns.run("ip addr add " + cidr + " dev " + tap), 0);
    CHECK_EQ(ns.run("ip link set " + tap + " up"), 0);
    ok = true;
  }
};

/** node n captures to path from now on */
inline void capture_to(Node& n, const std::string& path) { CHECK_EQ(n.st->set_capture(n.ifindex, path.c_str()), 0); }

/** a pings dst and is answered: the RTT, printed after what */
inline long ping_ok(Live& w, Node& a, const char* dst, const char* what) {
  long rtt = w.ping(a, dst);
  std::printf("  ping %s: %ld us\n", what, rtt);
  CHECK(rtt > 0);
  return rtt;
}

/** a sends 4 MiB to the echo server (kEchoPy) at dst:port and gets them back byte-exact;
    the rate printed after what */
inline StreamResult echo_ok(Live& w, Node& a, const char* dst, uint16_t port, const char* what) {
  StreamResult r = tcp_stream(w, a, dst, port, 4u << 20, 4u << 20);
  std::printf("  TCP %s: %llu bytes each way in %.3f s = %s each way\n", what, (unsigned long long)r.back,
              double(r.elapsed) / 1e6, mbps(r.back, r.elapsed).c_str());
  CHECK(r.ok);
  return r;
}

/** from stack s, connect to dst:port, where sink (started on the peer) accepts; send total
    pattern bytes and shut down, stepping the sink meanwhile, until it sees the end or a wrong
    byte or timeout passes; close. The time it took (the caller checks the sink). */
inline Micros stream_to_sink(Live& w, Stack& s, const char* dst, uint16_t port, uint64_t total, Sink& sink, Micros timeout) {
  Micros t0 = now_us();
  int c = s.socket(AF_INET, SOCK_STREAM, 0);
  CHECK_EQ(s.connect(c, ep(dst, port)), -EINPROGRESS);
  uint64_t sent = 0;
  bool shut = false;
  std::vector<uint8_t> out(65536);
  w.until(timeout, [&] {
    send_pattern(s, c, total, &sent, out);
    if (sent == total && !shut) { s.shutdown(c, SHUT_WR); shut = true; }
    sink.step();
    return sink.eof || sink.bad;
  });
  Micros dt = now_us() - t0;
  s.close(c);
  return dt;
}

}  // namespace live
