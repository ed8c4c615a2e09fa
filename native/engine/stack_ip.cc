// IPv4 (RFC 791/1122 host requirements) and ICMPv4 of the Stack: input validation, local
// delivery, routing and source selection, fragmentation and reassembly, loopback, echo,
// errors, ping.
#include <algorithm>

#include "stack.h"
#include "wire/ethernet.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"
#include "wire/udp.h"

namespace ms {

static inline bool v4_multicast(const uint8_t* a) { return (a[0] & 0xf0) == 0xe0; }
static inline bool v4_limited_bcast(const uint8_t* a) { return (a[0] & a[1] & a[2] & a[3]) == 0xff; }
static inline bool v4_loopback(const uint8_t* a) { return a[0] == 127; }
static inline bool v4_zero(const uint8_t* a) { return !(a[0] | a[1] | a[2] | a[3]); }

bool Stack::is_local_v4(const uint8_t* a) const {
  if (v4_loopback(a)) return true;
  for (auto& ifp : ifs_)
    for (auto& x : ifp->addrs)
      if (x.addr.family == 4 && std::memcmp(x.addr.b, a, 4) == 0) return true;
  return false;
}

bool Stack::is_broadcast_v4(const uint8_t* a) const {
  if (v4_limited_bcast(a)) return true;
  uint32_t v = wire::ld32(a);
  for (auto& ifp : ifs_)
    for (auto& x : ifp->addrs) {
      if (x.addr.family != 4 || x.prefix >= 31) continue;
      uint32_t mask = x.prefix ? ~uint32_t(0) << (32 - x.prefix) : 0;
      if ((v & ~mask) == ~mask && (v & mask) == (x.addr.v4_host() & mask)) return true;
    }
  return false;
}

bool Stack::is_local_address(const IpAddr& a) const {
  if (a.family == 4) return is_local_v4(a.b);
  if (a.family == 6) {
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a.b, mapped, 12) == 0) return is_local_v4(a.b + 12);  // ::ffff:a.b.c.d
    return is_local_v6(a.b);
  }
  return false;
}

bool Stack::accepts_new_connections(const IpAddr& a) const {
  for (auto& i : ifs_)
    for (auto& x : i->addrs)
      if (x.draining && x.addr == a) return false;
  return true;
}

int Stack::set_address_draining(int ifindex, const IpAddr& addr, bool draining) {
  Interface* ifp = iface(ifindex);
  if (!ifp) return -ENODEV;
  for (auto& x : ifp->addrs) {
    if (x.addr == addr) {
      x.draining = draining;
      rc_gen_ = 0;  // cached routes may hold it as a source
      return 0;
    }
  }
  return -EADDRNOTAVAIL;
}

// ---------------------------------------------------------------- input

void Stack::ip_input(Interface* ifp, const uint8_t* p, size_t len, bool verify) {
  auto& st = stats_.ip;
  st.in_receives++;
  wire::Ipv4Header h;
  switch (wire::parse_ipv4(p, len, verify, &h)) {
    case wire::Ipv4Error::None: break;
    case wire::Ipv4Error::Checksum: st.in_csum_errors++; return;
    case wire::Ipv4Error::Truncated:
    case wire::Ipv4Error::TotalLength: st.in_truncated++; return;
    default: st.in_hdr_errors++; return;
  }
  // sources that cannot be (martians): multicast, limited broadcast, loopback from a wire,
  // one of our own addresses from a wire
  if (v4_multicast(h.src) || v4_limited_bcast(h.src) || (ifp && (v4_loopback(h.src) || is_local_v4(h.src)))) {
    st.in_martians++;
    return;
  }
  bool bcast = false, mcast = false;
  if (is_local_v4(h.dst)) {
    if (ifp && v4_loopback(h.dst)) { st.in_martians++; return; }
  } else if (is_broadcast_v4(h.dst)) {
    bcast = true;
    st.in_broadcasts++;
  } else if (v4_multicast(h.dst)) {
    bool joined = false;
    if (ifp) joined = ifp->joined(h.dst);
    else for (auto& i : ifs_) if (i->joined(h.dst)) { joined = true; break; }
    static const uint8_t all_hosts[4] = {224, 0, 0, 1};
    if (!joined && std::memcmp(h.dst, all_hosts, 4) != 0) { st.in_addr_errors++; return; }
    mcast = true;
    st.in_multicasts++;
  } else {
    st.in_addr_errors++;  // a host does not forward
    return;
  }
  if (h.is_fragment()) {
    Reassembler::Done done;
    if (!reasm_.add(h, p, now_, &done)) return;
    wire::Ipv4Header h2;
    if (wire::parse_ipv4(done.packet, done.len, false, &h2) != wire::Ipv4Error::None) return;
    ip_deliver(ifp, h2, done.packet, verify, bcast || mcast);
    return;
  }
  ip_deliver(ifp, h, p, verify, bcast || mcast);
}

void Stack::ip_deliver(Interface* ifp, const wire::Ipv4Header& h, const uint8_t* p, bool verify, bool bcast_or_mcast) {
  const uint8_t* payload = p + h.header_len;
  size_t plen = size_t(h.total_len) - h.header_len;
  stats_.ip.in_delivers++;
  switch (h.proto) {
    case wire::kProtoUdp: udp_input(ifp, IpAddr::v4_bytes(h.src), IpAddr::v4_bytes(h.dst), p, h.total_len, payload, plen, verify, bcast_or_mcast); break;
    case wire::kProtoTcp:
      if (bcast_or_mcast) { stats_.ip.in_addr_errors++; break; }
      tcp_input(IpAddr::v4_bytes(h.src), IpAddr::v4_bytes(h.dst), payload, plen, verify);
      break;
    case wire::kProtoIcmp: icmp_input(ifp, h, payload, plen, verify, bcast_or_mcast); break;
    case wire::kProtoIgmp: igmp_input(ifp, payload, plen, verify); break;
    default:
      stats_.ip.in_unknown_protos++;
      if (!bcast_or_mcast) icmp_send_error(wire::kIcmpDestUnreach, wire::kUnreachProto, p, h.total_len);
      break;
  }
}

// ---------------------------------------------------------------- routing

int Stack::route_v4(const IpAddr& dst, int ifindex_hint, RouteResult* out) {
  if (dst.family != 4) return -ENETUNREACH;
  const bool cacheable = !ifindex_hint;
  if (cacheable && rc_gen_ == routes_.generation() && rc_dst_ == dst) { *out = rc_res_; return 0; }
  RouteResult r;
  if (is_local_v4(dst.b)) {
    r.ifp = nullptr;
    r.next_hop = dst;
    r.src = v4_loopback(dst.b) ? IpAddr::v4(0x7f000001) : dst;
    r.mtu = 65535;
  } else if (v4_limited_bcast(dst.b) || v4_multicast(dst.b)) {
    Interface* ifp = iface(ifindex_hint);
    if (!ifp) {
      if (const Route* rt = routes_.lookup(dst)) ifp = iface(rt->ifindex);
    }
    if (!ifp) {
      for (auto& i : ifs_)
        for (auto& x : i->addrs)
          if (x.addr.family == 4 && !ifp) ifp = i.get();
    }
    // no address anywhere yet (a DHCP client's DISCOVER): the first interface with a link,
    // the packet leaves from 0.0.0.0
    if (!ifp && v4_limited_bcast(dst.b)) {
      for (auto& i : ifs_)
        if (i->link && !ifp) ifp = i.get();
    }
    if (!ifp) return -ENETUNREACH;
    const IpAddr* src = nullptr;
    for (auto& x : ifp->addrs) if (x.addr.family == 4) { src = &x.addr; break; }
    r.ifp = ifp;
    r.next_hop = dst;
    if (src) r.src = *src; else r.src = IpAddr::v4(0);
    r.mtu = ifp->mtu;
    r.broadcast = true;
  } else {
    const Route* rt = routes_.lookup(dst);
    if (!rt) return -ENETUNREACH;
    Interface* ifp = iface(rt->ifindex);
    if (!ifp) return -ENETUNREACH;
    r.ifp = ifp;
    r.next_hop = rt->gateway.is_set() ? rt->gateway : dst;
    r.mtu = ifp->mtu;
    if (rt->src.is_set()) {
      r.src = rt->src;
    } else {
      const IpAddr* best = nullptr;
      for (auto& x : ifp->addrs) {
        if (x.addr.family != 4) continue;
        if (prefix_match(x.addr, r.next_hop, x.prefix)) { best = &x.addr; break; }
        if (!best) best = &x.addr;
      }
      if (!best) {
        for (auto& i : ifs_) for (auto& x : i->addrs) if (x.addr.family == 4 && !best) best = &x.addr;
      }
      if (!best) return -EADDRNOTAVAIL;
      r.src = *best;
    }
    r.broadcast = is_broadcast_v4(dst.b);
  }
  if (cacheable) { rc_dst_ = dst; rc_res_ = r; rc_gen_ = routes_.generation(); }
  *out = r;
  return 0;
}

int Stack::route(const IpAddr& dst, RouteInfo* out) {
  RouteResult r;
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  bool v4m = dst.family == 6 && std::memcmp(dst.b, mapped, 12) == 0;
  int e;
  if (v4m) {
    // a dual-stack socket talking to an IPv4 peer (::ffff:a.b.c.d): route as IPv4, answer mapped
    e = route_v4(IpAddr::v4_bytes(dst.b + 12), 0, &r);
    if (e == 0) { IpAddr m; m.family = 6; std::memcpy(m.b, mapped, 12); std::memcpy(m.b + 12, r.src.b, 4); r.src = m; }
  } else if (dst.family == 6) {
    e = route_v6(dst, int(dst.scope), &r);
  } else {
    e = route_v4(dst, 0, &r);
  }
  if (e < 0) return e;
  if (r.broadcast) return -ENETUNREACH;
  out->src = r.src;
  out->mtu = r.mtu;
  out->csum_offload = r.ifp ? r.ifp->offload() : true;
  out->ifindex = r.ifp ? r.ifp->index : 0;
  return 0;
}

// ---------------------------------------------------------------- output

int Stack::ip_output(const IpAddr& src_in, const IpAddr& dst, uint8_t proto, PacketBuf& pkt, const TxOpts& o) {
  auto& st = stats_.ip;
  st.out_requests++;
  RouteResult rr;
  int e = route_v4(dst, o.ifindex, &rr);
  if (e < 0) { st.out_no_routes++; return e; }
  const IpAddr& src = src_in.family == 4 && !src_in.is_unspecified() ? src_in : rr.src;
  size_t total = pkt.size() + wire::kIpv4Header;
  if (total > 65535) { st.out_discards++; return -EMSGSIZE; }
  pkt.ensure_headroom(wire::kIpv4Header + wire::kEthHeader);
  wire::Ipv4Header h;
  std::memcpy(h.src, src.b, 4);
  std::memcpy(h.dst, dst.b, 4);
  h.proto = proto;
  h.ttl = o.ttl;
  h.tos = o.tos;
  h.df = o.df;
  h.id = ip_id_++;
  h.total_len = uint16_t(total);
  wire::emit_ipv4(pkt.prepend(wire::kIpv4Header), h);
  if (!rr.ifp) {
    if (loopback_.size() - loopback_head_ >= cfg_.loopback_queue) { st.loopback_drops++; return -ENOBUFS; }
    st.out_loopback++;
    loopback_.push_back(std::move(pkt));
    return 0;
  }
  // local copies: multicast to a group we joined (IP_MULTICAST_LOOP), and broadcasts (as Linux)
  if (rr.broadcast && (v4_multicast(dst.b) ? o.mcast_loop && rr.ifp->joined(dst.b) : true)) {
    if (loopback_.size() - loopback_head_ < cfg_.loopback_queue) loopback_.push_back(pkt.clone());
  }
  if (total > rr.ifp->mtu) {
    if (o.df) { st.frag_fails++; return -EMSGSIZE; }
    return ip_fragment(rr.ifp, rr.next_hop, pkt, rr.ifp->mtu);
  }
  if (rr.broadcast) {
    MacAddr m = v4_multicast(dst.b) ? wire::mac_ipv4_multicast(dst.b) : wire::mac_broadcast();
    eth_output(rr.ifp, m, wire::kEtherIpv4, pkt);
    return 0;
  }
  return neigh_output(rr.ifp, rr.next_hop, pkt);
}

int Stack::ip_fragment(Interface* ifp, const IpAddr& next_hop, PacketBuf& pkt, uint32_t mtu) {
  const uint8_t* p = pkt.data();
  wire::Ipv4Header h;
  if (wire::parse_ipv4(p, pkt.size(), false, &h) != wire::Ipv4Error::None) return -EINVAL;
  const size_t hl = h.header_len;
  const size_t payload = h.total_len - hl;
  const size_t chunk = ((mtu - hl) / 8) * 8;
  if (chunk == 0) { stats_.ip.frag_fails++; return -EMSGSIZE; }
  const bool bcast = v4_multicast(h.dst) || is_broadcast_v4(h.dst);
  int err = 0;
  for (size_t off = 0; off < payload; off += chunk) {
    size_t n = std::min(chunk, payload - off);
    PacketBuf f(hl + n, wire::kEthHeader + 16);
    uint8_t* q = f.append(hl + n);
    wire::Ipv4Header fh = h;
    fh.total_len = uint16_t(hl + n);
    fh.frag_offset = uint16_t(off);
    fh.mf = off + n < payload;
    wire::emit_ipv4(q, fh);
    std::memcpy(q + hl, p + hl + off, n);
    stats_.ip.frag_creates++;
    if (bcast) {
      MacAddr m = v4_multicast(h.dst) ? wire::mac_ipv4_multicast(h.dst) : wire::mac_broadcast();
      eth_output(ifp, m, wire::kEtherIpv4, f);
    } else {
      int e = neigh_output(ifp, next_hop, f);
      if (e < 0) err = e;
    }
  }
  stats_.ip.frag_oks++;
  return err;
}

void Stack::loopback_deliver(size_t budget) {
  while (loopback_head_ < loopback_.size() && budget--) {
    PacketBuf pkt = std::move(loopback_[loopback_head_++]);
    if (pkt.size() && (pkt.data()[0] >> 4) == 6) ip6_input(nullptr, pkt.data(), pkt.size(), false);
    else ip_input(nullptr, pkt.data(), pkt.size(), false);  // may append to loopback_
  }
  if (loopback_head_ == loopback_.size()) {
    loopback_.clear();
    loopback_head_ = 0;
  } else if (loopback_head_ > 256 && loopback_head_ * 2 > loopback_.size()) {
    loopback_.erase(loopback_.begin(), loopback_.begin() + long(loopback_head_));
    loopback_head_ = 0;
  }
}

// ---------------------------------------------------------------- ICMP

bool Stack::icmp_rate_allow() {
  double rate = cfg_.icmp_rate;
  if (now_ > icmp_last_) {
    icmp_tokens_ = std::min<double>(cfg_.icmp_burst, icmp_tokens_ + double(now_ - icmp_last_) * rate / 1e6);
    icmp_last_ = now_;
  }
  if (icmp_tokens_ < 1) return false;
  icmp_tokens_ -= 1;
  return true;
}

void Stack::icmp_send_error(uint8_t type, uint8_t code, const uint8_t* orig, size_t orig_len, uint32_t extra) {
  if (orig_len < wire::kIpv4Header) return;
  const uint8_t* osrc = orig + 12;
  const uint8_t* odst = orig + 16;
  size_t ohl = size_t(orig[0] & 15) * 4;
  // RFC 1122 3.2.2: never about an ICMP error, a non-first fragment, a broadcast/multicast,
  // or to a source that does not name a single host
  if (v4_zero(osrc) || v4_multicast(osrc) || is_broadcast_v4(osrc) || v4_multicast(odst) || is_broadcast_v4(odst)) return;
  if ((wire::ld16(orig + 6) & 0x1fff) != 0) return;
  if (orig[9] == wire::kProtoIcmp && orig_len >= ohl + 1) {
    uint8_t t = orig[ohl];
    if (t != wire::kIcmpEcho && t != wire::kIcmpEchoReply && t != 13 && t != 14 && t != 17 && t != 18) return;
  }
  if (!icmp_rate_allow()) { stats_.icmp.out_rate_limited++; return; }
  size_t quote = std::min<size_t>(orig_len, 576 - wire::kIpv4Header - wire::kIcmpHeader);
  PacketBuf b(wire::kIcmpHeader + quote);
  uint8_t* q = b.append(wire::kIcmpHeader + quote);
  std::memcpy(q + wire::kIcmpHeader, orig, quote);
  wire::IcmpHeader ih;
  ih.type = type;
  ih.code = code;
  wire::st32(ih.rest, extra);
  wire::emit_icmp(q, b.size(), ih);
  IpAddr src;
  if (is_local_v4(odst)) src = IpAddr::v4_bytes(odst);
  stats_.icmp.out_msgs++;
  if (type == wire::kIcmpDestUnreach) stats_.icmp.out_dest_unreachs++;
  if (type == wire::kIcmpTimeExceeded) stats_.icmp.out_time_excds++;
  TxOpts o;
  o.ttl = cfg_.default_ttl;
  o.tos = 0xc0;  // internetwork control, as Linux sends errors
  ip_output(src, IpAddr::v4_bytes(osrc), wire::kProtoIcmp, b, o);
}

void Stack::icmp_input(Interface* ifp, const wire::Ipv4Header& h, const uint8_t* p, size_t len, bool verify, bool bcast) {
  auto& st = stats_.icmp;
  wire::IcmpHeader ih;
  if (len < wire::kIcmpHeader) { st.in_errors++; return; }
  if (!wire::parse_icmp(p, len, verify, &ih)) { st.in_errors++; st.in_csum_errors++; return; }
  st.in_msgs++;
  switch (ih.type) {
    case wire::kIcmpEcho: {
      st.in_echos++;
      if (bcast) return;  // as Linux icmp_echo_ignore_broadcasts
      PacketBuf b(len);
      uint8_t* q = b.append(len);
      std::memcpy(q, p, len);
      ih.type = wire::kIcmpEchoReply;
      ih.code = 0;
      wire::emit_icmp(q, len, ih);
      st.out_msgs++;
      st.out_echo_reps++;
      TxOpts o;
      o.ttl = cfg_.default_ttl;
      o.tos = h.tos;
      ip_output(IpAddr::v4_bytes(h.dst), IpAddr::v4_bytes(h.src), wire::kProtoIcmp, b, o);
      return;
    }
    case wire::kIcmpEchoReply: {
      st.in_echo_reps++;
      if (ih.id() != ping_id_) return;
      for (auto it = pings_.begin(); it != pings_.end(); ++it) {
        if (it->seq != ih.seq()) continue;
        PingResult r;
        r.id = ih.id();
        r.seq = ih.seq();
        r.rtt = now_ - it->sent;
        r.from = IpAddr::v4_bytes(h.src);
        r.ttl = h.ttl;
        r.bytes = len - wire::kIcmpHeader;
        pings_.erase(it);
        ping_done_.push_back(r);
        return;
      }
      return;
    }
    case wire::kIcmpDestUnreach:
      st.in_dest_unreachs++;
      icmp_error_input(ih, p + wire::kIcmpHeader, len - wire::kIcmpHeader);
      return;
    case wire::kIcmpTimeExceeded:
      st.in_time_excds++;
      icmp_error_input(ih, p + wire::kIcmpHeader, len - wire::kIcmpHeader);
      return;
    case wire::kIcmpParamProblem:
      icmp_error_input(ih, p + wire::kIcmpHeader, len - wire::kIcmpHeader);
      return;
    default:
      st.in_other++;
      return;
  }
}

void Stack::icmp_error_input(const wire::IcmpHeader& ih, const uint8_t* inner, size_t len) {
  // the quoted packet: an IP header we sent and at least 8 bytes of what followed
  if (len < wire::kIpv4Header + 8 || (inner[0] >> 4) != 4) { stats_.icmp.in_errors++; return; }
  size_t ihl = size_t(inner[0] & 15) * 4;
  if (ihl < wire::kIpv4Header || len < ihl + 8) { stats_.icmp.in_errors++; return; }
  if (!is_local_v4(inner + 12)) return;  // not about a packet of ours
  int err;
  bool fatal;
  if (ih.type == wire::kIcmpDestUnreach) err = wire::icmp_unreach_errno(ih.code, &fatal);
  else if (ih.type == wire::kIcmpTimeExceeded) { err = EHOSTUNREACH; fatal = false; }
  else { err = EPROTO; fatal = true; }
  switch (inner[9]) {
    case wire::kProtoTcp: tcp_icmp_error(inner, len, ih.type, ih.code, wire::ld32(ih.rest)); break;
    case wire::kProtoUdp: udp_error(inner, len, err, fatal); break;
    case wire::kProtoIcmp: {
      const uint8_t* ic = inner + ihl;
      if (ic[0] != wire::kIcmpEcho || wire::ld16(ic + 4) != ping_id_) break;
      ping_fail(wire::ld16(ic + 6), err);
      break;
    }
    default: break;
  }
}

// ---------------------------------------------------------------- IGMPv2 (RFC 2236), host side

void Stack::igmp_send(Interface* ifp, uint8_t type, const uint8_t* group4) {
  static const uint8_t all_hosts[4] = {224, 0, 0, 1}, all_routers[4] = {224, 0, 0, 2};
  if (std::memcmp(group4, all_hosts, 4) == 0 || !ifp->link) return;  // never reported
  const IpAddr* src = nullptr;
  for (auto& x : ifp->addrs) if (x.addr.family == 4) { src = &x.addr; break; }
  const uint8_t* dst = type == 0x17 ? all_routers : group4;
  PacketBuf b(24 + 8, wire::kEthHeader + 16);
  uint8_t* p = b.append(24 + 8);
  // IP header with the Router Alert option (RFC 2113), TTL 1
  p[0] = 0x46; p[1] = 0xc0;
  wire::st16(p + 2, 32);
  wire::st16(p + 4, ip_id_++);
  p[6] = 0x40; p[7] = 0;  // DF
  p[8] = 1; p[9] = wire::kProtoIgmp;
  p[10] = p[11] = 0;
  if (src) std::memcpy(p + 12, src->b, 4); else std::memset(p + 12, 0, 4);
  std::memcpy(p + 16, dst, 4);
  p[20] = 0x94; p[21] = 4; p[22] = p[23] = 0;
  uint16_t c = wire::internet_checksum(p, 24);
  std::memcpy(p + 10, &c, 2);
  uint8_t* g = p + 24;
  g[0] = type; g[1] = 0; g[2] = g[3] = 0;
  std::memcpy(g + 4, group4, 4);
  c = wire::internet_checksum(g, 8);
  std::memcpy(g + 2, &c, 2);
  stats_.ip.out_requests++;
  eth_output(ifp, wire::mac_ipv4_multicast(dst), wire::kEtherIpv4, b);
}

void Stack::igmp_input(Interface* ifp, const uint8_t* p, size_t len, bool verify) {
  if (!ifp || len < 8) return;
  if (verify && !wire::csum_ok(wire::csum_add(0, p, len))) return;
  if (p[0] != 0x11) return;  // only queries matter to a host; other reports are not suppressed
  // a general query (group 0) or a group-specific one: report what we belong to at once
  bool general = !(p[4] | p[5] | p[6] | p[7]);
  std::vector<IpAddr> report;
  for (auto& g : ifp->groups)
    if (g.group.family == 4 && (general || std::memcmp(g.group.b, p + 4, 4) == 0)) report.push_back(g.group);
  for (auto& g : report) igmp_send(ifp, 0x16, g.b);
}

// ---------------------------------------------------------------- ping

int Stack::ping(const IpAddr& dst, size_t payload, uint16_t* id_seq_out) {
  Entry guard(this);
  if (closed_) return -ENETDOWN;
  if (dst.family == 6) return ping6(dst, payload, id_seq_out);
  if (dst.family != 4) return -EAFNOSUPPORT;
  if (payload > 65535 - wire::kIpv4Header - wire::kIcmpHeader) return -EMSGSIZE;
  if (pings_.size() >= 1024) return -ENOBUFS;
  uint16_t seq = ++ping_seq_;
  PacketBuf b(wire::kIcmpHeader + payload);
  uint8_t* q = b.append(wire::kIcmpHeader + payload);
  for (size_t i = 0; i < payload; i++) q[wire::kIcmpHeader + i] = uint8_t(0x10 + i);
  if (payload >= 8) std::memcpy(q + wire::kIcmpHeader, &now_, 8);  // a timestamp, as ping(8)
  wire::IcmpHeader ih;
  ih.type = wire::kIcmpEcho;
  wire::st16(ih.rest, ping_id_);
  wire::st16(ih.rest + 2, seq);
  wire::emit_icmp(q, b.size(), ih);
  pings_.push_back({seq, now_, dst});
  TxOpts o;
  o.ttl = cfg_.default_ttl;
  int e = ip_output(IpAddr(), dst, wire::kProtoIcmp, b, o);
  if (e < 0) { pings_.pop_back(); return e; }
  stats_.icmp.out_msgs++;
  stats_.icmp.out_echos++;
  if (id_seq_out) { id_seq_out[0] = ping_id_; id_seq_out[1] = seq; }
  return 0;
}

void Stack::ping_failed(const PendingPing& p, int err) {
  PingResult r;
  r.id = ping_id_;
  r.seq = p.seq;
  r.status = -err;
  r.from = p.dst;
  ping_done_.push_back(r);
}

void Stack::ping_fail(uint16_t seq, int err) {
  for (auto it = pings_.begin(); it != pings_.end(); ++it) {
    if (it->seq != seq) continue;
    ping_failed(*it, err);
    pings_.erase(it);
    return;
  }
}

void Stack::ping_poll() {
  // (a ping whose address does not resolve is failed with EHOSTUNREACH by neighbour_failed,
  // which ARP/NDP reach no later than this timeout with the default settings)
  Micros to = Micros(cfg_.ping_timeout_ms) * 1000;
  size_t n = 0;
  while (n < pings_.size() && pings_[n].sent + to <= now_) ping_failed(pings_[n++], ETIMEDOUT);
  if (n) pings_.erase(pings_.begin(), pings_.begin() + long(n));
}

}  // namespace ms
