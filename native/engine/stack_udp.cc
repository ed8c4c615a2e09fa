// UDP of the Stack (RFC 768; bind, reuse, connect and error semantics as Linux).
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "stack.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"
#include "wire/udp.h"

namespace ms {

static inline bool v4_multicast(const uint8_t* a) { return (a[0] & 0xf0) == 0xe0; }
static constexpr size_t kAddrPrefix = 16;  // source address stored before each payload

// ---------------------------------------------------------------- input

bool Stack::udp_enqueue(UdpSocket* s, const IpAddr& src, uint16_t sport, const uint8_t* data, size_t len) {
  size_t need = (8 + kAddrPrefix + len + 7) & ~size_t(7);
  // as Linux: an empty queue takes one datagram even beyond SO_RCVBUF
  if (s->rq.used() && s->rq.used() + need > s->rcvbuf) {
    s->drops++;
    stats_.udp.rcvbuf_errors++;
    stats_.udp.in_errors++;
    return false;
  }
  uint8_t* p = s->rq.push(kAddrPrefix + len, uint32_t(sport) | uint32_t(src.family) << 16 | (src.scope & 0xff) << 24);
  if (!p) {
    s->drops++;
    stats_.udp.rcvbuf_errors++;
    stats_.udp.in_errors++;
    return false;
  }
  std::memcpy(p, src.b, kAddrPrefix);
  std::memcpy(p + kAddrPrefix, data, len);
  stats_.udp.in_datagrams++;
  mark(s->sd);
  return true;
}

static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static inline bool is_mapped(const IpAddr& a) { return a.family == 6 && std::memcmp(a.b, kMapped, 12) == 0; }
static inline IpAddr to_mapped(const IpAddr& v4) {
  IpAddr m; m.family = 6; std::memcpy(m.b, kMapped, 12); std::memcpy(m.b + 12, v4.b, 4); return m;
}
static inline IpAddr unmap(const IpAddr& a) { return IpAddr::v4_bytes(a.b + 12); }
/** an address as socket s sees it: IPv4 peers of an AF_INET6 socket are ::ffff:a.b.c.d */
static inline IpAddr seen_by(const UdpSocket* s, const IpAddr& a) { return s->family == 6 && a.family == 4 ? to_mapped(a) : a; }
static inline bool same_addr(const IpAddr& a, const IpAddr& b) { return a == b; }

bool Stack::udp_local_match(const UdpSocket* s, const IpAddr& dst) const {
  if (s->family == 4) return dst.family == 4 && (s->local.addr.is_unspecified() || same_addr(s->local.addr, dst));
  if (dst.family == 4) {
    if (s->v6only) return false;
    if (s->local.addr.is_unspecified()) return true;
    return is_mapped(s->local.addr) && std::memcmp(s->local.addr.b + 12, dst.b, 4) == 0;
  }
  return s->local.addr.is_unspecified() || same_addr(s->local.addr, dst);
}

void Stack::udp_input(Interface* ifp, const IpAddr& src_in, const IpAddr& dst, const uint8_t* ip, size_t ip_len,
                      const uint8_t* p, size_t len, bool verify, bool bcast_or_mcast) {
  auto& st = stats_.udp;
  wire::UdpHeader uh;
  if (!wire::parse_udp(p, len, &uh)) { st.in_errors++; return; }
  if (src_in.family == 6 && uh.checksum == 0) { st.in_errors++; return; }  // mandatory over IPv6 (RFC 8200 8.1)
  if (verify && uh.checksum != 0) {
    uint64_t acc = src_in.family == 6 ? wire::pseudo_v6(src_in.b, dst.b, wire::kProtoUdp, uh.length)
                                      : wire::pseudo_v4(src_in.b, dst.b, wire::kProtoUdp, uh.length);
    if (!wire::csum_ok(wire::csum_add(acc, p, uh.length))) { st.in_csum_errors++; st.in_errors++; return; }
  }
  const uint8_t* data = p + wire::kUdpHeader;
  size_t n = uh.length - wire::kUdpHeader;
  const IpAddr& src = src_in;
  auto it = udp_ports_.find(uh.dst_port);
  if (bcast_or_mcast) {
    bool any = false;
    if (it != udp_ports_.end()) {
      for (UdpSocket* s : it->second) {
        if (!udp_local_match(s, dst)) continue;
        IpAddr from = seen_by(s, src);
        if (s->connected && (s->remote.addr != from || s->remote.port != uh.src_port)) continue;
        any = true;
        udp_enqueue(s, from, uh.src_port, data, n);
      }
    }
    if (!any) { st.no_ports++; st.ignored_multi++; }
    return;
  }
  UdpSocket* best = nullptr;
  int best_score = -1;
  if (it != udp_ports_.end()) {
    // Linux compute_score: a bound address and a connected peer each make a better match;
    // among equals in a SO_REUSEPORT group, a hash of the source picks one
    int ties = 0;
    auto score_of = [&](UdpSocket* s) {
      if (!udp_local_match(s, dst)) return -1;
      int score = s->family == dst.family ? 1 : 0;  // an AF_INET socket before a dual-stack one
      if (!s->local.addr.is_unspecified()) score += 4;
      if (s->connected) {
        if (s->remote.addr != seen_by(s, src) || s->remote.port != uh.src_port) return -1;
        score += 8;
      }
      return score;
    };
    for (UdpSocket* s : it->second) {
      int score = score_of(s);
      if (score < 0) continue;
      if (score > best_score) { best_score = score; best = s; ties = s->reuseport ? 1 : 0; }
      else if (score == best_score && s->reuseport && best->reuseport) ties++;
      else if (score == best_score && !s->reuseport) best = s;  // the latest bound
    }
    if (best && ties > 1) {
      uint32_t hsh = (wire::ld32(src.b + (src.family == 6 ? 12 : 0)) * 0x9e3779b1u) ^ (uint32_t(uh.src_port) * 0x85ebca6bu);
      hsh ^= hsh >> 15;
      uint32_t pick = hsh % uint32_t(ties), k = 0;
      for (UdpSocket* s : it->second) {
        if (!s->reuseport || score_of(s) != best_score) continue;
        if (k++ == pick) { best = s; break; }
      }
    }
  }
  if (!best) {
    st.no_ports++;
    if (src.family == 6) icmp6_send_error(1, 4, 0, ip, ip_len);
    else icmp_send_error(wire::kIcmpDestUnreach, wire::kUnreachPort, ip, ip_len);
    return;
  }
  udp_enqueue(best, seen_by(best, src), uh.src_port, data, n);
}

void Stack::udp_error_addr(const IpAddr& local, uint16_t sport, const IpAddr& remote, uint16_t dport, int err) {
  auto it = udp_ports_.find(sport);
  if (it == udp_ports_.end()) return;
  UdpSocket* best = nullptr;
  for (UdpSocket* s : it->second) {
    if (!udp_local_match(s, local)) continue;
    if (s->connected && (s->remote.addr != seen_by(s, remote) || s->remote.port != dport)) continue;
    if (!best || (s->connected && !best->connected)) best = s;
  }
  // as Linux without IP_RECVERR: only hard errors (the caller's choice), only on connected sockets
  if (!best || !best->connected) return;
  best->so_error = err;
  mark(best->sd);
}

void Stack::udp_error(const uint8_t* inner, size_t len, int err, bool fatal) {
  size_t ihl = size_t(inner[0] & 15) * 4;
  if (len < ihl + 4 || !fatal) return;
  uint16_t sport = wire::ld16(inner + ihl), dport = wire::ld16(inner + ihl + 2);
  udp_error_addr(IpAddr::v4_bytes(inner + 12), sport, IpAddr::v4_bytes(inner + 16), dport, err);
}

// ---------------------------------------------------------------- binding

bool Stack::udp_conflict(const UdpSocket* s, const IpAddr& addr, uint16_t port, bool reuseaddr, bool reuseport) const {
  auto it = udp_ports_.find(port);
  if (it == udp_ports_.end()) return false;
  // each binding is an IPv4 one (AF_INET, or a v4-mapped address) or an IPv6 one; a
  // dual-stack wildcard covers both
  auto v4view = [](const IpAddr& a, IpAddr* out) {
    if (a.family == 4) { *out = a; return true; }
    if (is_mapped(a)) { *out = unmap(a); return true; }
    return false;
  };
  IpAddr a4, o4;
  bool mine4 = v4view(addr, &a4);
  for (const UdpSocket* o : it->second) {
    if (o == s) continue;
    bool their4 = v4view(o->local.addr, &o4);
    bool overlap;
    if (mine4 && their4) overlap = a4.is_unspecified() || o4.is_unspecified() || a4 == o4;
    else if (!mine4 && !their4) overlap = o->local.addr.is_unspecified() || addr.is_unspecified() || o->local.addr == addr;
    else if (mine4) overlap = o->local.addr.is_unspecified() && !o->v6only;
    else overlap = addr.is_unspecified() && !s->v6only;
    if (!overlap) continue;
    if (reuseaddr && o->reuseaddr) continue;
    if (reuseport && o->reuseport) continue;
    return true;
  }
  return false;
}

int Stack::udp_bind(UdpSocket* s, const IpAddr& addr, uint16_t port) {
  if (port == 0) {
    // RFC 6056 algorithm 1: a random start in the ephemeral range, then the next free port
    uint32_t lo = cfg_.ephemeral_low, n = uint32_t(cfg_.ephemeral_high) - lo + 1;
    uint32_t start = rng_.below(n);
    bool found = false;
    for (uint32_t i = 0; i < n; i++) {
      uint16_t cand = uint16_t(lo + (start + i) % n);
      if (udp_ports_.count(cand)) continue;  // an unused port: never share by accident
      port = cand;
      found = true;
      break;
    }
    if (!found) return -EAGAIN;
  } else if (udp_conflict(s, addr, port, s->reuseaddr, s->reuseport)) {
    return -EADDRINUSE;
  }
  s->local.addr = addr;
  s->local.port = port;
  s->bound = true;
  udp_ports_[port].push_back(s);
  return 0;
}

int Stack::udp_autobind(UdpSocket* s) {
  if (s->bound) return 0;
  IpAddr any;
  any.family = s->family;
  return udp_bind(s, any, 0);
}

void Stack::udp_unhash(UdpSocket* s) {
  if (!s->bound) return;
  auto it = udp_ports_.find(s->local.port);
  if (it != udp_ports_.end()) {
    auto& v = it->second;
    v.erase(std::remove(v.begin(), v.end(), s), v.end());
    if (v.empty()) udp_ports_.erase(it);
  }
  s->bound = false;
}

int Stack::udp_connect(UdpSocket* s, const Endpoint& ep) {
  if (ep.addr.family == 0) {
    // AF_UNSPEC: dissolve the association; an address/port chosen by connect goes too
    s->connected = false;
    s->remote = Endpoint{};
    if (!s->addr_locked) { s->local.addr = IpAddr(); s->local.addr.family = s->family; }
    if (!s->port_locked && s->bound) {
      udp_unhash(s);
      s->local.port = 0;
    }
    mark(s->sd);
    return 0;
  }
  if (ep.addr.family != s->family) return -EAFNOSUPPORT;
  if (ep.port == 0) return -ECONNREFUSED;  // as Linux would fail the first send
  RouteResult rr;
  if (s->family == 6) {
    int e;
    if (is_mapped(ep.addr)) {
      if (s->v6only) return -ENETUNREACH;
      e = route_v4(unmap(ep.addr), 0, &rr);
      if (e == 0) rr.src = to_mapped(rr.src);
    } else {
      e = route_v6(ep.addr, int(ep.addr.scope), &rr);
    }
    if (e < 0) return e;
  } else {
    int mcast_if = 0;
    if (v4_multicast(ep.addr.b) && s->mcast_if.is_set())
      for (auto& i : ifs_) for (auto& x : i->addrs) if (x.addr == s->mcast_if) mcast_if = i->index;
    int e = route_v4(ep.addr, mcast_if, &rr);
    if (e < 0) return e;
    if (rr.broadcast && !v4_multicast(ep.addr.b) && !s->broadcast) return -EACCES;
  }
  int e = udp_autobind(s);
  if (e < 0) return e;
  if (s->local.addr.is_unspecified()) s->local.addr = rr.src;
  s->remote = ep;
  s->connected = true;
  return 0;
}

void Stack::udp_close(UdpSocket* s) {
  for (size_t i = 0; i < s->groups.size(); i++) {
    Interface* ifp = iface(s->group_ifs[i]);
    if (!ifp) continue;
    for (size_t g = 0; g < ifp->groups.size(); g++)
      if (s->groups[i].family == 6) { mld_leave(ifp, s->groups[i]); break; }
      else if (ifp->groups[g].group == s->groups[i] && --ifp->groups[g].refs == 0) {
        igmp_send(ifp, 0x17, s->groups[i].b);  // leave
        ifp->groups.erase(ifp->groups.begin() + long(g));
        break;
      }
  }
  udp_unhash(s);
  udp_count_--;
  delete s;
}

// ---------------------------------------------------------------- send, receive

long Stack::udp_sendto(UdpSocket* s, const void* buf, size_t len, int flags, const Endpoint* to) {
  if (closed_) return -ENETDOWN;
  if (s->so_error) { int e = s->so_error; s->so_error = 0; return -e; }
  if (s->shut_wr) return -EPIPE;
  Endpoint dst;
  if (to && to->addr.family) {
    dst = *to;
  } else if (s->connected) {
    dst = s->remote;
  } else {
    return -EDESTADDRREQ;
  }
  if (dst.addr.family != s->family) return -EAFNOSUPPORT;
  if (dst.port == 0) return -EINVAL;
  if (s->family == 6) {
    if (!is_mapped(dst.addr)) return udp_sendto6(s, buf, len, dst);
    if (s->v6only) return -ENETUNREACH;
    dst.addr = unmap(dst.addr);  // an IPv4 peer of a dual-stack socket
  }
  if (len > wire::kUdpMaxPayloadV4) return -EMSGSIZE;
  const bool mcast = v4_multicast(dst.addr.b);
  int hint = 0;
  if (mcast && s->mcast_if.is_set())
    for (auto& i : ifs_) for (auto& x : i->addrs) if (x.addr == s->mcast_if) hint = i->index;
  RouteResult rr;
  int e = route_v4(dst.addr, hint, &rr);
  if (e < 0) { stats_.udp.out_errors++; stats_.ip.out_no_routes++; return e; }
  if (rr.broadcast && !mcast && !s->broadcast) return -EACCES;
  e = udp_autobind(s);
  if (e < 0) return e;
  IpAddr src = rr.src;
  IpAddr local = is_mapped(s->local.addr) ? unmap(s->local.addr) : s->local.addr;
  if (local.family == 4 && !local.is_unspecified() && !v4_multicast(local.b) && !is_broadcast_v4(local.b)) src = local;
  uint8_t* p = udp_build(s, dst.port, buf, len);
  bool offload = rr.ifp ? rr.ifp->offload() : true;
  if (!offload && !s->no_check) wire::udp_checksum_v4(p, wire::kUdpHeader + len, src.b, dst.addr.b);
  return udp_output(s, src, dst.addr, mcast ? s->mcast_ttl : s->ttl, hint, len);
}

long Stack::udp_sendto6(UdpSocket* s, const void* buf, size_t len, const Endpoint& dst) {
  if (len > 65535 - wire::kUdpHeader) return -EMSGSIZE;
  const bool mcast = dst.addr.b[0] == 0xff;
  RouteResult rr;
  int hint = int(dst.addr.scope);
  if (mcast && !hint) hint = s->mcast_ifindex;
  int e = route_v6(dst.addr, hint, &rr);
  if (e < 0) { stats_.udp.out_errors++; stats_.ip6.out_no_routes++; return e; }
  e = udp_autobind(s);
  if (e < 0) return e;
  IpAddr src = rr.src;
  if (!s->local.addr.is_unspecified() && s->local.addr.b[0] != 0xff) src = s->local.addr;
  uint8_t* p = udp_build(s, dst.port, buf, len);
  size_t need = wire::kUdpHeader + len;
  // always computed: zero is not allowed over IPv6, and any other constant would be wrong on a capture
  uint16_t c = wire::csum_finish(wire::csum_add(wire::pseudo_v6(src.b, dst.addr.b, wire::kProtoUdp, uint32_t(need)), p, need));
  if (c == 0) c = 0xffff;
  std::memcpy(p + 6, &c, 2);
  return udp_output(s, src, dst.addr, mcast ? s->mcast_ttl : s->hops6, hint, len);
}

uint8_t* Stack::udp_build(const UdpSocket* s, uint16_t dport, const void* buf, size_t len) {
  // the reusable transmit buffer (kept unless the packet has to wait for its neighbour)
  size_t need = wire::kUdpHeader + len;
  if (!tx_.valid() || tx_.capacity() < need + PacketBuf::kDefaultHeadroom) tx_ = PacketBuf((need + 2047) & ~size_t(2047));
  tx_.reset();
  uint8_t* p = tx_.append(need);
  wire::emit_udp(p, s->local.port, dport, uint16_t(need));
  if (len) std::memcpy(p + wire::kUdpHeader, buf, len);
  return p;
}

long Stack::udp_output(const UdpSocket* s, const IpAddr& src, const IpAddr& dst, uint8_t ttl, int ifindex, size_t len) {
  TxOpts o;
  o.ttl = ttl;
  o.tos = s->tos;
  o.mcast_loop = s->mcast_loop;
  o.ifindex = ifindex;
  int e = dst.family == 4 ? ip_output(src, dst, wire::kProtoUdp, tx_, o) : ip6_output(src, dst, wire::kProtoUdp, tx_, o);
  if (e < 0) { stats_.udp.out_errors++; return e; }
  stats_.udp.out_datagrams++;
  return long(len);
}

long Stack::udp_recvfrom(UdpSocket* s, void* buf, size_t len, int flags, Endpoint* from) {
  if (s->rq.empty()) {
    if (s->so_error) { int e = s->so_error; s->so_error = 0; return -e; }
    if (s->shut_rd) return 0;
    return -EAGAIN;
  }
  size_t n;
  uint32_t tag;
  uint8_t* p = s->rq.front(&n, &tag);
  size_t plen = n - kAddrPrefix;
  size_t copy = std::min(plen, len);
  if (copy) std::memcpy(buf, p + kAddrPrefix, copy);
  if (from) {
    from->addr = IpAddr();
    from->addr.family = uint8_t(tag >> 16);
    from->addr.scope = tag >> 24;
    std::memcpy(from->addr.b, p, from->addr.size());
    from->port = uint16_t(tag);
  }
  if (!(flags & MSG_PEEK)) s->rq.pop();
  return long((flags & MSG_TRUNC) ? plen : copy);
}

long Stack::udp_recvmany(UdpSocket* s, uint8_t* buf, size_t cap, Dgram* out, size_t max) {
  size_t n = 0, off = 0;
  while (n < max && !s->rq.empty()) {
    size_t rec;
    s->rq.front(&rec);
    size_t size = rec - kAddrPrefix;
    if (n && size > cap - off) break;  // the next call takes it
    long r = udp_recvfrom(s, buf + off, cap - off, MSG_TRUNC, &out[n].from);
    if (r < 0) break;  // cannot happen with a datagram queued
    out[n].size = uint32_t(size);
    out[n].len = uint32_t(std::min(size, cap - off));
    off += out[n].len;
    n++;
  }
  if (n) return long(n);
  if (s->so_error) { int e = s->so_error; s->so_error = 0; return -e; }
  return 0;
}

// ---------------------------------------------------------------- options

static int get_int(const void* val, size_t len, int* out) {
  if (!val || len < sizeof(int)) return -EINVAL;
  std::memcpy(out, val, sizeof(int));
  return 0;
}

static int put_int(void* val, size_t* len, int v) {
  if (!val || !len || *len < sizeof(int)) return -EINVAL;
  std::memcpy(val, &v, sizeof(int));
  *len = sizeof(int);
  return 0;
}

int Stack::mcast_join(UdpSocket* s, const IpAddr& group, const IpAddr& ifaddr, bool join) {
  if (group.family != 4 || !v4_multicast(group.b)) return -EINVAL;
  Interface* ifp = nullptr;
  if (ifaddr.is_set() && !ifaddr.is_unspecified()) {
    for (auto& i : ifs_) for (auto& x : i->addrs) if (x.addr == ifaddr) ifp = i.get();
    if (!ifp) return -ENODEV;
  } else {
    RouteResult rr;
    if (route_v4(group, 0, &rr) == 0 && rr.ifp) ifp = rr.ifp;
    else if (!ifs_.empty()) ifp = ifs_[0].get();
    if (!ifp) return -ENODEV;
  }
  size_t k = 0;
  for (; k < s->groups.size(); k++) if (s->groups[k] == group && s->group_ifs[k] == ifp->index) break;
  if (join) {
    if (k < s->groups.size()) return -EADDRINUSE;
    if (s->groups.size() >= 20) return -ENOBUFS;  // as Linux igmp_max_memberships
    s->groups.push_back(group);
    s->group_ifs.push_back(ifp->index);
    for (auto& g : ifp->groups) if (g.group == group) { g.refs++; return 0; }
    ifp->groups.push_back({group, 1});
    igmp_send(ifp, 0x16, group.b);  // v2 membership report: switches that snoop start forwarding
    return 0;
  }
  if (k == s->groups.size()) return -EADDRNOTAVAIL;
  s->groups.erase(s->groups.begin() + long(k));
  s->group_ifs.erase(s->group_ifs.begin() + long(k));
  for (size_t g = 0; g < ifp->groups.size(); g++)
    if (ifp->groups[g].group == group && --ifp->groups[g].refs == 0) {
      igmp_send(ifp, 0x17, group.b);  // leave
      ifp->groups.erase(ifp->groups.begin() + long(g));
      break;
    }
  return 0;
}

int Stack::udp_setsockopt(UdpSocket* s, int level, int name, const void* val, size_t len) {
  int v = 0;
  if (level == SOL_SOCKET) {
    int e = get_int(val, len, &v);
    if (e < 0) return e;
    switch (name) {
      case SO_REUSEADDR: s->reuseaddr = v != 0; return 0;
      case SO_REUSEPORT: s->reuseport = v != 0; return 0;
      case SO_BROADCAST: s->broadcast = v != 0; return 0;
      case SO_NO_CHECK: s->no_check = v != 0; return 0;
      case SO_KEEPALIVE: return 0;
      case SO_RCVBUF: {
        // as Linux: the kernel doubles the value (bookkeeping overhead), with a floor
        uint32_t b = uint32_t(std::min(std::max(v, 0), 16 << 20)) * 2;
        s->rcvbuf = std::max<uint32_t>(b, 2304);
        s->rq.set_limit(s->rcvbuf + 65536 + 64);
        return 0;
      }
      case SO_SNDBUF: {
        uint32_t b = uint32_t(std::min(std::max(v, 0), 16 << 20)) * 2;
        s->sndbuf = std::max<uint32_t>(b, 4608);
        return 0;
      }
      default: return -ENOPROTOOPT;
    }
  }
  if (level == IPPROTO_IP) {
    if (name == IP_ADD_MEMBERSHIP || name == IP_DROP_MEMBERSHIP) {
      if (!val || len < 8) return -EINVAL;
      const uint8_t* m = static_cast<const uint8_t*>(val);
      IpAddr group = IpAddr::v4_bytes(m), ifaddr = IpAddr::v4_bytes(m + 4);
      return mcast_join(s, group, ifaddr, name == IP_ADD_MEMBERSHIP);
    }
    if (name == IP_MULTICAST_IF) {
      if (!val || len < 4) return -EINVAL;
      const uint8_t* m = static_cast<const uint8_t*>(val);
      // struct in_addr, or struct ip_mreqn whose second field is the address
      IpAddr a = IpAddr::v4_bytes(len >= 8 ? m + 4 : m);
      if (a.is_unspecified()) { s->mcast_if = IpAddr(); return 0; }
      if (!is_local_v4(a.b)) return -EADDRNOTAVAIL;
      s->mcast_if = a;
      return 0;
    }
    int e;
    if (len >= sizeof(int)) e = get_int(val, len, &v);
    else if (len == 1 && val) { v = *static_cast<const uint8_t*>(val); e = 0; }
    else e = -EINVAL;
    if (e < 0) return e;
    switch (name) {
      case IP_TTL:
        if (v == -1) { s->ttl = cfg_.default_ttl; return 0; }
        if (v < 1 || v > 255) return -EINVAL;
        s->ttl = uint8_t(v);
        return 0;
      case IP_TOS: s->tos = uint8_t(v); return 0;
      case IP_MULTICAST_TTL:
        if (v == -1) v = 1;
        if (v < 0 || v > 255) return -EINVAL;
        s->mcast_ttl = uint8_t(v);
        return 0;
      case IP_MULTICAST_LOOP: s->mcast_loop = v != 0; return 0;
      default: return -ENOPROTOOPT;
    }
  }
  if (level == IPPROTO_IPV6) {
    if (s->family != 6) return -ENOPROTOOPT;
    if (name == IPV6_JOIN_GROUP || name == IPV6_LEAVE_GROUP) {
      // struct ipv6_mreq: the group, then the interface index
      if (!val || len < 20) return -EINVAL;
      const uint8_t* m = static_cast<const uint8_t*>(val);
      IpAddr group = IpAddr::v6_bytes(m);
      int ifx;
      std::memcpy(&ifx, m + 16, 4);
      if (group.b[0] != 0xff) return -EINVAL;
      Interface* ifp = iface(ifx);
      if (!ifp) {
        RouteResult rr;
        if (ifx == 0 && route_v6(group, 0, &rr) == 0 && rr.ifp) ifp = rr.ifp;
      }
      if (!ifp) return -ENODEV;
      size_t k = 0;
      for (; k < s->groups.size(); k++) if (s->groups[k] == group && s->group_ifs[k] == ifp->index) break;
      if (name == IPV6_JOIN_GROUP) {
        if (k < s->groups.size()) return -EADDRINUSE;
        if (s->groups.size() >= 20) return -ENOBUFS;
        s->groups.push_back(group);
        s->group_ifs.push_back(ifp->index);
        mld_join(ifp, group);
        return 0;
      }
      if (k == s->groups.size()) return -EADDRNOTAVAIL;
      s->groups.erase(s->groups.begin() + long(k));
      s->group_ifs.erase(s->group_ifs.begin() + long(k));
      mld_leave(ifp, group);
      return 0;
    }
    int e = get_int(val, len, &v);
    if (e < 0) return e;
    switch (name) {
      case IPV6_V6ONLY:
        if (s->bound) return -EINVAL;
        s->v6only = v != 0;
        return 0;
      case IPV6_UNICAST_HOPS:
        if (v < -1 || v > 255) return -EINVAL;
        s->hops6 = uint8_t(v == -1 ? 0 : v);
        return 0;
      case IPV6_MULTICAST_HOPS:
        if (v < -1 || v > 255) return -EINVAL;
        s->mcast_ttl = uint8_t(v == -1 ? 1 : v);
        return 0;
      case IPV6_MULTICAST_LOOP: s->mcast_loop = v != 0; return 0;
      case IPV6_MULTICAST_IF:
        if (v && !iface(v)) return -ENODEV;
        s->mcast_ifindex = v;
        return 0;
      default: return -ENOPROTOOPT;
    }
  }
  return -ENOPROTOOPT;
}

int Stack::udp_getsockopt(UdpSocket* s, int level, int name, void* val, size_t* len) {
  if (level == SOL_SOCKET) {
    switch (name) {
      case SO_ERROR: { int e = s->so_error; s->so_error = 0; return put_int(val, len, e); }
      case SO_TYPE: return put_int(val, len, SOCK_DGRAM);
      case SO_REUSEADDR: return put_int(val, len, s->reuseaddr);
      case SO_REUSEPORT: return put_int(val, len, s->reuseport);
      case SO_BROADCAST: return put_int(val, len, s->broadcast);
      case SO_NO_CHECK: return put_int(val, len, s->no_check);
      case SO_RCVBUF: return put_int(val, len, int(s->rcvbuf));
      case SO_SNDBUF: return put_int(val, len, int(s->sndbuf));
      case SO_KEEPALIVE: return put_int(val, len, 0);
      default: return -ENOPROTOOPT;
    }
  }
  if (level == IPPROTO_IP) {
    switch (name) {
      case IP_TTL: return put_int(val, len, s->ttl);
      case IP_TOS: return put_int(val, len, s->tos);
      case IP_MULTICAST_TTL: return put_int(val, len, s->mcast_ttl);
      case IP_MULTICAST_LOOP: return put_int(val, len, s->mcast_loop);
      default: return -ENOPROTOOPT;
    }
  }
  if (level == IPPROTO_IPV6 && s->family == 6) {
    switch (name) {
      case IPV6_V6ONLY: return put_int(val, len, s->v6only);
      case IPV6_UNICAST_HOPS: return put_int(val, len, s->hops6 ? s->hops6 : cfg_.default_ttl);
      case IPV6_MULTICAST_HOPS: return put_int(val, len, s->mcast_ttl);
      case IPV6_MULTICAST_LOOP: return put_int(val, len, s->mcast_loop);
      case IPV6_MULTICAST_IF: return put_int(val, len, s->mcast_ifindex);
      default: return -ENOPROTOOPT;
    }
  }
  return -ENOPROTOOPT;
}

}  // namespace ms
