// The Stack: configuration, driving (input/poll), events, and the socket API dispatch.
// Link layer and ARP: stack_link.cc; IPv4 and ICMP: stack_ip.cc; UDP: stack_udp.cc.
#include "stack.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "wire/arp.h"
#include "wire/ethernet.h"

namespace ms {

Stack::Stack(const StackConfig& cfg)
    : cfg_(cfg), rng_(cfg.seed), neigh_(cfg.neighbour), reasm_(cfg.reassembly) {
  ping_id_ = uint16_t(rng_.next());
  bool zero = true;
  for (uint8_t b : cfg_.stable_secret) if (b) zero = false;
  if (zero) for (auto& b : cfg_.stable_secret) b = uint8_t(rng_.next());
  ip_id_ = uint16_t(rng_.next());
  icmp_tokens_ = cfg_.icmp_burst;
}

Stack::~Stack() {
  // destruction is silent: the owner is going away, nobody is told
  sink_ = nullptr;
  ping_fn_ = nullptr;
  if (!closed_) close();
}

// ---------------------------------------------------------------- configuration

int Stack::add_interface(const InterfaceConfig& c) {
  if (closed_) return -ENETDOWN;
  if (c.mtu < 68 || c.mtu > 65535) return -EINVAL;
  auto ifp = std::make_unique<Interface>();
  ifp->index = int(ifs_.size()) + 1;
  ifp->name = c.name.empty() ? "eth" + std::to_string(ifs_.size()) : c.name;
  ifp->mac = c.mac;
  ifp->mtu = c.mtu;
  ifp->link = c.link;
  ifp->force_checksums = c.force_checksums;
  ifp->link_mtu = c.mtu;
  ifs_.push_back(std::move(ifp));
  int ifindex = int(ifs_.size());
  if (c.ipv6 || c.slaac) enable_ipv6(ifindex, c.slaac);
  return ifindex;
}

int Stack::set_link(int ifindex, Link* link) {
  Interface* ifp = iface(ifindex);
  if (!ifp) return -ENODEV;
  ifp->link = link;
  return 0;
}

int Stack::set_mtu(int ifindex, uint32_t mtu) {
  Interface* ifp = iface(ifindex);
  if (!ifp) return -ENODEV;
  if (mtu < 68 || mtu > 65535) return -EINVAL;
  ifp->mtu = mtu;
  ifp->link_mtu = mtu;
  rc_gen_ = 0;
  return 0;
}

int Stack::add_address(int ifindex, const IpAddr& addr, uint8_t prefix) {
  Entry guard(this);
  if (closed_) return -ENETDOWN;
  Interface* ifp = iface(ifindex);
  if (!ifp) return -ENODEV;
  if ((addr.family != 4 && addr.family != 6) || prefix > addr.size() * 8 || addr.is_unspecified()) return -EINVAL;
  if (addr.family == 4 && (addr.b[0] >= 224 || addr.b[0] == 127)) return -EINVAL;
  if (addr.family == 6) return add_address6(ifp, addr, prefix, false, kNever);
  for (auto& i : ifs_)
    for (auto& a : i->addrs)
      if (a.addr == addr) return -EEXIST;
  IfAddr x;
  x.addr = addr;
  x.prefix = prefix;
  ifp->addrs.push_back(x);
  if (prefix < addr.size() * 8) {
    Route r;
    r.dst = prefix_network(addr, prefix);
    r.prefix = prefix;
    r.ifindex = ifindex;
    r.src = addr;
    r.connected = true;
    routes_.add(r);
  }
  rc_gen_ = 0;
  if (addr.family == 4 && ifp->link) {
    // gratuitous ARP (RFC 5227 announcement): a request for our own address
    arp_send(ifp, wire::kArpRequest, wire::mac_broadcast(), MacAddr{}, addr.b, addr.b);
    stats_.arp.out_gratuitous++;
  }
  return 0;
}

void Stack::remove_connected_route(Interface* ifp, const IpAddr& addr, uint8_t prefix) {
  // the on-link route stays while another address of the interface is on that network
  IpAddr net = prefix_network(addr, prefix);
  for (auto& x : ifp->addrs)
    if (x.addr.family == addr.family && x.prefix == prefix && prefix_network(x.addr, prefix) == net) return;
  routes_.remove_connected(ifp->index, net, prefix);
}

int Stack::remove_address(int ifindex, const IpAddr& addr) {
  Interface* ifp = iface(ifindex);
  if (!ifp) return -ENODEV;
  for (size_t i = 0; i < ifp->addrs.size(); i++) {
    if (ifp->addrs[i].addr == addr) {
      if (addr.family == 6) { remove_address6(ifp, i); return 0; }
      uint8_t prefix = ifp->addrs[i].prefix;
      ifp->addrs.erase(ifp->addrs.begin() + long(i));
      remove_connected_route(ifp, addr, prefix);
      rc_gen_ = 0;
      return 0;
    }
  }
  return -EADDRNOTAVAIL;
}

int Stack::add_route(const IpAddr& dst, uint8_t prefix, const IpAddr& gateway, int ifindex, uint32_t metric) {
  if (closed_) return -ENETDOWN;
  if ((dst.family != 4 && dst.family != 6) || prefix > dst.size() * 8) return -EINVAL;
  if (gateway.is_set() && gateway.family != dst.family) return -EINVAL;
  if (ifindex && !iface(ifindex)) return -ENODEV;
  Route r;
  r.dst = prefix_network(dst, prefix);
  r.prefix = prefix;
  r.metric = metric;
  if (gateway.is_set() && !gateway.is_unspecified()) {
    r.gateway = gateway;
    r.gateway.scope = 0;
    if (!ifindex) {
      // the gateway must be on-link: a connected route holds it
      for (auto& e : routes_.routes())
        if (!e.gateway.is_set() && prefix_match(e.dst, gateway, e.prefix)) { ifindex = e.ifindex; break; }
      if (!ifindex && gateway.family == 6 && gateway.b[0] == 0xfe && (gateway.b[1] & 0xc0) == 0x80) {
        // a link-local router: its zone, or the only IPv6 interface
        if (gateway.scope && iface(int(gateway.scope))) ifindex = int(gateway.scope);
        else {
          int n = 0;
          for (auto& i : ifs_) if (i->v6) { ifindex = i->index; n++; }
          if (n != 1) return -EINVAL;
        }
      }
      if (!ifindex) return -ENETUNREACH;
    }
  } else {
    if (!ifindex) {
      if (ifs_.size() != 1) return -EINVAL;
      ifindex = 1;
    }
  }
  r.ifindex = ifindex;
  routes_.add(r);
  rc_gen_ = 0;
  return 0;
}

int Stack::remove_route(const IpAddr& dst, uint8_t prefix) {
  int n = routes_.remove(prefix_network(dst, prefix), prefix, nullptr);
  rc_gen_ = 0;
  return n ? 0 : -ESRCH;
}

int Stack::set_impair(int ifindex, const Impair& im) {
  Interface* ifp = iface(ifindex);
  if (!ifp) return -ENODEV;
  if (!(im.loss >= 0 && im.loss <= 1 && im.duplicate >= 0 && im.duplicate <= 1 && im.reorder >= 0 && im.reorder <= 1 &&
        im.corrupt >= 0 && im.corrupt <= 1))
    return -EINVAL;
  ifp->impair = im;
  rc_gen_ = 0;  // offload may have changed
  return 0;
}

int Stack::set_capture(int ifindex, const char* path) {
  Interface* ifp = iface(ifindex);
  if (!ifp) return -ENODEV;
  if (!path) { ifp->pcap.reset(); return 0; }
  auto w = std::make_unique<PcapWriter>();
  int r = w->open(path);
  if (r < 0) return r;
  ifp->pcap = std::move(w);
  return 0;
}

void Stack::flush_captures() {
  for (auto& ifp : ifs_)
    if (ifp->pcap) ifp->pcap->flush();
}

const Interface* Stack::interface(int ifindex) const {
  return ifindex >= 1 && size_t(ifindex) <= ifs_.size() ? ifs_[size_t(ifindex) - 1].get() : nullptr;
}

bool Stack::neighbour_lookup(int ifindex, const IpAddr& addr, MacAddr* mac) {
  Neighbour* n = neigh_.find({addr, ifindex});
  if (!n || n->state == Neighbour::Incomplete || n->state == Neighbour::Failed) return false;
  if (mac) *mac = n->mac;
  return true;
}

// ---------------------------------------------------------------- driving, events

void Stack::mark(int sd) {
  Slot* s = slot(sd);
  if (!s || s->dirty) return;
  s->dirty = true;
  dirty_.push_back(sd);
}

void Stack::finish() {
  if (closed_) { dirty_.clear(); return; }
  depth_++;
  if (loopback_head_ < loopback_.size()) loopback_deliver(cfg_.loopback_budget);
  while (!tcp_failed_.empty()) {
    std::vector<IpAddr> v;
    v.swap(tcp_failed_);
    for (auto& a : v) tcp_neighbour_failed(a);
  }
  depth_--;
  // events and ping results: the callbacks may call back into the stack
  while (!dirty_.empty() || !ping_done_.empty()) {
    std::vector<int> d;
    d.swap(spare_dirty_);  // reuse capacity: no allocation per call
    d.swap(dirty_);
    for (int sd : d) {
      Slot* s = slot(sd);
      if (!s || !s->dirty) continue;
      s->dirty = false;
      if (sink_) sink_(sink_ctx_, sd, events(sd));
    }
    d.clear();
    if (spare_dirty_.capacity() < d.capacity()) spare_dirty_.swap(d);
    if (!ping_done_.empty()) {
      std::vector<PingResult> p;
      p.swap(ping_done_);
      for (auto& r : p)
        if (ping_fn_) ping_fn_(ping_ctx_, r);
    }
    if (closed_) break;
  }
}

void Stack::poll(Micros now) {
  Entry guard(this);
  set_now(now);
  if (closed_) return;
  arp_poll();
  ndp_poll();
  if (!reasm6_.empty()) reasm6_poll();
  reasm_.expire(now_, [this](const uint8_t* orig, size_t len) {
    icmp_send_error(wire::kIcmpTimeExceeded, 1, orig, len);
  });
  for (auto& ifp : ifs_)
    if (!ifp->delayed.empty()) impair_poll(ifp.get());
  ping_poll();
#if MS_HAVE_TCP
  if (tcp_) tcp_->poll(now_);
#endif
}

Micros Stack::poll_at() const {
  if (closed_) return kNever;
  if (loopback_head_ < loopback_.size() || !tcp_failed_.empty()) return now_;
  Micros t = std::min(neigh_.next_timer(), nd_next_);
  for (auto& f : reasm6_) t = std::min(t, f.created + Micros(cfg_.reasm6_timeout_ms) * 1000);
  if (reasm_.in_progress()) t = std::min(t, reasm_.next_deadline());
  for (auto& ifp : ifs_)
    if (!ifp->delayed.empty()) t = std::min(t, ifp->delayed.front().due);
  if (!pings_.empty()) t = std::min(t, pings_.front().sent + Micros(cfg_.ping_timeout_ms) * 1000);
#if MS_HAVE_TCP
  if (tcp_) t = std::min(t, tcp_->poll_at());
#endif
  return t;
}

// ---------------------------------------------------------------- descriptors

int Stack::alloc_sd(uint8_t kind, void* p) {
  if (slots_.empty()) slots_.resize(1);  // descriptor 0 is never used
  int sd;
  if (!free_sds_.empty()) { sd = free_sds_.back(); free_sds_.pop_back(); }
  else { sd = int(slots_.size()); slots_.emplace_back(); }
  slots_[size_t(sd)] = Slot{kind, false, p};
  stats_.sockets_open++;
  return sd;
}

int Stack::socket(int domain, int type, int protocol) {
  Entry guard(this);
  if (closed_) return -ENETDOWN;
  if (domain != AF_INET && domain != AF_INET6) return -EAFNOSUPPORT;
  const uint8_t fam = domain == AF_INET6 ? 6 : 4;
  type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (type == SOCK_DGRAM) {
    if (protocol != 0 && protocol != IPPROTO_UDP) return -EPROTONOSUPPORT;
    auto* s = new UdpSocket;
    s->family = fam;
    s->local.addr.family = fam;
    s->ttl = cfg_.default_ttl;
    s->sd = alloc_sd(kUdp, s);
    udp_count_++;
    mark(s->sd);  // writable
    return s->sd;
  }
  if (type == SOCK_STREAM) {
    if (protocol != 0 && protocol != IPPROTO_TCP) return -EPROTONOSUPPORT;
#if MS_HAVE_TCP
    return tcp_socket(fam);
#else
    return -EPROTONOSUPPORT;
#endif
  }
  return -ESOCKTNOSUPPORT;
}

int Stack::bind(int sd, const Endpoint& ep) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) {
    auto* s = static_cast<UdpSocket*>(sl->p);
    if (s->bound) return -EINVAL;
    if (ep.addr.family != s->family && ep.addr.family != 0) return s->family == 6 ? -EINVAL : -EAFNOSUPPORT;
    IpAddr a = ep.addr;
    if (!a.family) a.family = s->family;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a.family == 6 && std::memcmp(a.b, mapped, 12) == 0) {
      const uint8_t* v = a.b + 12;
      if (s->v6only) return -EINVAL;
      const bool zero = !(v[0] | v[1] | v[2] | v[3]);
      if (!zero && !is_local_v4(v) && !is_broadcast_v4(v) && !(v[0] >= 224 && v[0] < 240)) return -EADDRNOTAVAIL;
    } else if (a.family == 6) {
      if (!a.is_unspecified() && !is_local_v6(a.b, true) && a.b[0] != 0xff) return -EADDRNOTAVAIL;
    } else if (!a.is_unspecified() && !is_local_v4(a.b) && !is_broadcast_v4(a.b) && !(a.b[0] >= 224 && a.b[0] < 240)) {
      return -EADDRNOTAVAIL;
    }
    int r = udp_bind(s, a, ep.port);
    if (r < 0) return r;
    s->addr_locked = !a.is_unspecified();
    s->port_locked = ep.port != 0;
    return 0;
  }
#if MS_HAVE_TCP
  return tcp_bind(sl, ep);
#else
  return -EBADF;
#endif
}

int Stack::listen(int sd, int backlog) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) return -EOPNOTSUPP;
#if MS_HAVE_TCP
  return tcp_listen(sl, backlog);
#else
  return -EBADF;
#endif
}

int Stack::accept(int sd, Endpoint* peer) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) return -EOPNOTSUPP;
#if MS_HAVE_TCP
  return tcp_accept(sl, peer);
#else
  return -EBADF;
#endif
}

int Stack::connect(int sd, const Endpoint& ep) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) return udp_connect(static_cast<UdpSocket*>(sl->p), ep);
#if MS_HAVE_TCP
  return tcp_connect(sl, ep);
#else
  return -EBADF;
#endif
}

long Stack::send(int sd, const void* buf, size_t len, int flags) { return sendto(sd, buf, len, flags, nullptr); }

long Stack::sendto(int sd, const void* buf, size_t len, int flags, const Endpoint* to) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) return udp_sendto(static_cast<UdpSocket*>(sl->p), buf, len, flags, to);
#if MS_HAVE_TCP
  return tcp_send(sl, buf, len, flags);
#else
  return -EBADF;
#endif
}

long Stack::recv(int sd, void* buf, size_t len, int flags) { return recvfrom(sd, buf, len, flags, nullptr); }

long Stack::recvfrom(int sd, void* buf, size_t len, int flags, Endpoint* from) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) return udp_recvfrom(static_cast<UdpSocket*>(sl->p), buf, len, flags, from);
#if MS_HAVE_TCP
  return tcp_recv(sl, buf, len, flags, from);
#else
  return -EBADF;
#endif
}

long Stack::recvmany(int sd, uint8_t* buf, size_t cap, Dgram* out, size_t max) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind != kUdp) return -EOPNOTSUPP;
  return udp_recvmany(static_cast<UdpSocket*>(sl->p), buf, cap, out, max);
}

long Stack::recv_available(int sd) {
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) {
    auto* s = static_cast<UdpSocket*>(sl->p);
    if (s->rq.empty()) return 0;
    size_t n;
    s->rq.front(&n);
    return long(n - 16);
  }
#if MS_HAVE_TCP
  return tcp_available(sl);
#else
  return -EBADF;
#endif
}

int Stack::shutdown(int sd, int how) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (how < SHUT_RD || how > SHUT_RDWR) return -EINVAL;
  if (sl->kind == kUdp) {
    auto* s = static_cast<UdpSocket*>(sl->p);
    // as Linux: the flags are set, and an unconnected socket also reports ENOTCONN
    if (how != SHUT_WR) s->shut_rd = true;
    if (how != SHUT_RD) s->shut_wr = true;
    mark(sd);
    return s->connected ? 0 : -ENOTCONN;
  }
#if MS_HAVE_TCP
  return tcp_shutdown(sl, how);
#else
  return -EBADF;
#endif
}

int Stack::close(int sd) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) { *sl = Slot{}; free_sds_.push_back(sd); return 0; }
  if (sl->kind == kUdp) {
    udp_close(static_cast<UdpSocket*>(sl->p));
  } else {
#if MS_HAVE_TCP
    tcp_close(sl, false);
#endif
  }
  *sl = Slot{};
  free_sds_.push_back(sd);
  stats_.sockets_open--;
  return 0;
}

int Stack::abort(int sd) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) { *sl = Slot{}; free_sds_.push_back(sd); return 0; }
  if (sl->kind == kUdp) return close(sd);
#if MS_HAVE_TCP
  tcp_close(sl, true);
#endif
  *sl = Slot{};
  free_sds_.push_back(sd);
  stats_.sockets_open--;
  return 0;
}

int Stack::getsockname(int sd, Endpoint* ep) {
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) {
    *ep = static_cast<UdpSocket*>(sl->p)->local;
    return 0;
  }
#if MS_HAVE_TCP
  return tcp_name(sl, ep, false);
#else
  return -EBADF;
#endif
}

int Stack::getpeername(int sd, Endpoint* ep) {
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) {
    auto* s = static_cast<UdpSocket*>(sl->p);
    if (!s->connected) return -ENOTCONN;
    *ep = s->remote;
    return 0;
  }
#if MS_HAVE_TCP
  return tcp_name(sl, ep, true);
#else
  return -EBADF;
#endif
}

int Stack::setsockopt(int sd, int level, int name, const void* val, size_t len) {
  Entry guard(this);
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) return udp_setsockopt(static_cast<UdpSocket*>(sl->p), level, name, val, len);
#if MS_HAVE_TCP
  return tcp_setsockopt(sl, level, name, val, len);
#else
  return -EBADF;
#endif
}

int Stack::getsockopt(int sd, int level, int name, void* val, size_t* len) {
  Slot* sl = slot(sd);
  if (!sl) return -EBADF;
  if (sl->kind == kDead) return -ECONNABORTED;  // its stack was closed
  if (sl->kind == kUdp) return udp_getsockopt(static_cast<UdpSocket*>(sl->p), level, name, val, len);
#if MS_HAVE_TCP
  return tcp_getsockopt(sl, level, name, val, len);
#else
  return -EBADF;
#endif
}

uint32_t Stack::events(int sd) {
  Slot* sl = slot(sd);
  if (!sl) return 0;
  if (sl->kind == kDead) return kEvReadable | kEvWritable | kEvError | kEvHangup;
  if (sl->kind == kUdp) {
    auto* s = static_cast<UdpSocket*>(sl->p);
    uint32_t ev = 0;
    if (s->readable()) ev |= kEvReadable;
    if (!s->shut_wr || s->so_error) ev |= kEvWritable;
    if (s->so_error) ev |= kEvError;
    if (s->shut_rd && s->shut_wr) ev |= kEvHangup;
    return ev;
  }
#if MS_HAVE_TCP
  return tcp_events(sl);
#else
  return 0;
#endif
}

// ---------------------------------------------------------------- introspection, teardown

const StackStats& Stack::stats() {
  auto& rs = reasm_.stats();
  stats_.ip.reasm_reqds = rs.reqds;
  stats_.ip.reasm_oks = rs.oks;
  stats_.ip.reasm_fails = rs.fails;
  stats_.ip.reasm_timeouts = rs.timeouts;
  stats_.ip.reasm_overlaps = rs.overlaps;
  stats_.ip.reasm_over_limit = rs.over_limit + rs.too_big;
#if MS_HAVE_TCP
  if (tcp_) tcp_->stats(&stats_.tcp);
#endif
  stats_.tcp.bad_csum += tcp_bad_csum_;
  return stats_;
}

std::vector<SocketInfo> Stack::sockets() {
  std::vector<SocketInfo> out;
  for (size_t sd = 1; sd < slots_.size(); sd++) {
    Slot& sl = slots_[sd];
    if (sl.kind == kUdp) {
      auto* s = static_cast<UdpSocket*>(sl.p);
      SocketInfo i;
      i.sd = int(sd);
      i.type = SOCK_DGRAM;
      i.state = s->connected ? "ESTAB" : "UNCONN";
      i.local = s->local;
      i.remote = s->remote;
      i.recv_queue = uint32_t(s->rq.used());
      i.drops = s->drops;
      out.push_back(i);
    }
  }
#if MS_HAVE_TCP
  tcp_list(&out);
#endif
  return out;
}

void Stack::close() {
  if (closed_) return;
  {
    Entry guard(this);
    // every socket learns that it is over: UDP keeps an error, TCP connections are reset
    std::vector<int> ended;
    for (size_t sd = 1; sd < slots_.size(); sd++) {
      Slot& sl = slots_[sd];
      if (sl.kind == kUdp) {
        auto* s = static_cast<UdpSocket*>(sl.p);
        s->so_error = ECONNABORTED;
        s->shut_rd = s->shut_wr = true;
        ended.push_back(int(sd));
      }
#if MS_HAVE_TCP
      else if (sl.kind == kTcp) {
        tcp_close(&sl, true);  // RST to the peer; the handle is gone
        sl.p = nullptr;
        sl.kind = kDead;
        ended.push_back(int(sd));
      }
#endif
    }
    for (auto& p : pings_) {
      PingResult r;
      r.id = ping_id_; r.seq = p.seq; r.status = -ECONNABORTED; r.from = p.dst;
      ping_done_.push_back(r);
    }
    pings_.clear();
    // frames held by the impairment go out now (the RSTs among them)
    for (auto& ifp : ifs_) {
      if (ifp->delayed.empty()) continue;
      Micros saved = now_;
      now_ = kNever - 1;
      impair_poll(ifp.get());
      now_ = saved;
    }
    dirty_.clear();
    for (size_t sd = 1; sd < slots_.size(); sd++) slots_[sd].dirty = false;
    for (int sd : ended)
      if (sink_) sink_(sink_ctx_, sd, kEvError | kEvHangup | kEvReadable | kEvWritable);
    std::vector<PingResult> p;
    p.swap(ping_done_);
    for (auto& r : p)
      if (ping_fn_) ping_fn_(ping_ctx_, r);
    closed_ = true;
  }
  // the descriptors stay, dead: every call on them fails with ECONNABORTED until closed
  for (size_t sd = 1; sd < slots_.size(); sd++) {
    if (slots_[sd].kind == kUdp) delete static_cast<UdpSocket*>(slots_[sd].p);
    if (slots_[sd].kind) slots_[sd] = Slot{kDead, false, nullptr};
  }
  std::vector<int>().swap(dirty_);
  udp_ports_.clear();
  udp_count_ = 0;
#if MS_HAVE_TCP
  tcp_.reset();
#endif
  neigh_.clear();
  reasm_.clear();
  std::vector<Frag6>().swap(reasm6_);
  reasm6_bytes_ = 0;
  std::vector<PmtuEntry>().swap(pmtu_);
  std::vector<Router>().swap(routers_);
  nd_next_ = kNever;
  std::vector<PacketBuf>().swap(loopback_);
  loopback_head_ = 0;
  std::vector<PendingPing>().swap(pings_);
  for (auto& ifp : ifs_) if (ifp->pcap) ifp->pcap->close();
  ifs_.clear();
  routes_.clear();
  rc_gen_ = 0;
  tx_ = PacketBuf();
  stats_.sockets_open = 0;
}

}  // namespace ms
