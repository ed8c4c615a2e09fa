// IPv6 of the Stack (RFC 8200 host side): input validation and extension headers, routing
// and source selection, output with source fragmentation, reassembly with bounds, ICMPv6
// (RFC 4443: echo, errors, Packet Too Big with a per-destination path MTU cache), neighbour
// discovery (RFC 4861: NS/NA/RS/RA, the shared neighbour cache with NDP states), duplicate
// address detection and stateless autoconfiguration (RFC 4862, EUI-64 interface
// identifiers), and MLDv2 reports (RFC 3810) for the groups the host belongs to.
#include <algorithm>

#include "stack.h"
#include "tcp/tcp_wire.h"
#include "wire/ethernet.h"
#include "wire/ipv6.h"
#include "wire/udp.h"

namespace ms {

namespace {

enum : uint8_t {
  kIcmp6DestUnreach = 1, kIcmp6PacketTooBig = 2, kIcmp6TimeExceeded = 3, kIcmp6ParamProblem = 4,
  kIcmp6EchoRequest = 128, kIcmp6EchoReply = 129, kMldQuery = 130, kMldReport = 131, kMldDone = 132,
  kNdRouterSolicit = 133, kNdRouterAdvert = 134, kNdNeighborSolicit = 135, kNdNeighborAdvert = 136,
  kNdRedirect = 137, kMld2Report = 143,
};
enum : uint8_t { kOptSrcLinkAddr = 1, kOptTgtLinkAddr = 2, kOptPrefixInfo = 3, kOptMtu = 5 };
constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;
constexpr uint32_t kMinMtu6 = 1280;

inline bool v6_multicast(const uint8_t* a) { return a[0] == 0xff; }
inline bool v6_linklocal(const uint8_t* a) { return a[0] == 0xfe && (a[1] & 0xc0) == 0x80; }
inline bool v6_zero(const uint8_t* a) { for (int i = 0; i < 16; i++) if (a[i]) return false; return true; }
inline bool v6_loopback(const uint8_t* a) { for (int i = 0; i < 15; i++) if (a[i]) return false; return a[15] == 1; }
inline bool v6_mapped(const uint8_t* a) {
  static const uint8_t m[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a, m, 12) == 0;
}
/** multicast scope link-local or smaller (ff01::/16, ff02::/16) */
inline bool v6_mcast_linkscope(const uint8_t* a) { return v6_multicast(a) && (a[1] & 15) <= 2; }

IpAddr all_nodes() { IpAddr a; a.family = 6; a.b[0] = 0xff; a.b[1] = 0x02; a.b[15] = 1; return a; }
IpAddr all_routers() { IpAddr a = all_nodes(); a.b[15] = 2; return a; }
IpAddr mldv2_routers() { IpAddr a = all_nodes(); a.b[15] = 0x16; return a; }
IpAddr unspecified6() { IpAddr a; a.family = 6; return a; }
/** RFC 4291 2.7.1: ff02::1:ffXX:XXXX */
IpAddr solicited_node(const IpAddr& x) {
  IpAddr a = all_nodes();
  a.b[11] = 1; a.b[12] = 0xff; a.b[13] = x.b[13]; a.b[14] = x.b[14]; a.b[15] = x.b[15];
  return a;
}
/** modified EUI-64 interface identifier (RFC 4291 appendix A) into b[8..15] */
void eui64(const MacAddr& m, uint8_t* out8) {
  out8[0] = uint8_t(m.b[0] ^ 2); out8[1] = m.b[1]; out8[2] = m.b[2]; out8[3] = 0xff;
  out8[4] = 0xfe; out8[5] = m.b[3]; out8[6] = m.b[4]; out8[7] = m.b[5];
}

/** walks the options of an ND message; false if one is malformed (length 0 or past the end) */
template <class F>
bool nd_options(const uint8_t* p, size_t len, F&& fn) {
  size_t off = 0;
  while (off < len) {
    if (len - off < 2) return false;
    size_t olen = size_t(p[off + 1]) * 8;
    if (olen == 0 || olen > len - off) return false;
    fn(p[off], p + off, olen);
    off += olen;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------- addresses

bool Stack::is_local_v6(const uint8_t* a, bool include_tentative) const {
  if (v6_loopback(a)) return true;
  for (auto& ifp : ifs_)
    for (auto& x : ifp->addrs)
      if (x.addr.family == 6 && std::memcmp(x.addr.b, a, 16) == 0 && (include_tentative || !x.tentative)) return true;
  return false;
}

bool Stack::address_ready(const IpAddr& addr) const {
  for (auto& ifp : ifs_)
    for (auto& x : ifp->addrs)
      if (x.addr == addr) return !x.tentative;
  return false;
}

uint32_t Stack::path_mtu(const IpAddr& dst) const {
  for (auto& e : pmtu_)
    if (e.dst == dst && e.expires > now_) return e.mtu;
  return 0;
}

void Stack::pmtu_update(const IpAddr& dst, uint32_t mtu) {
  mtu = std::max(mtu, kMinMtu6);  // RFC 8201 4: never below the IPv6 minimum
  Micros exp = now_ + Micros(cfg_.pmtu_expire_ms) * 1000;
  for (auto& e : pmtu_)
    if (e.dst == dst) { if (mtu < e.mtu || e.expires <= now_) e.mtu = mtu; e.expires = exp; return; }
  if (cfg_.pmtu_entries == 0) return;
  if (pmtu_.size() >= cfg_.pmtu_entries) {
    auto oldest = std::min_element(pmtu_.begin(), pmtu_.end(), [](const PmtuEntry& a, const PmtuEntry& b) { return a.expires < b.expires; });
    *oldest = {dst, mtu, exp};
  } else {
    pmtu_.push_back({dst, mtu, exp});
  }
}

int Stack::enable_ipv6(int ifindex, bool slaac) {
  Entry guard(this);
  if (closed_) return -ENETDOWN;
  Interface* ifp = iface(ifindex);
  if (!ifp) return -ENODEV;
  if (slaac && !ifp->slaac) {
    ifp->slaac = true;
    ifp->rs_left = 3;  // MAX_RTR_SOLICITATIONS, sent once the link-local address is ready
    ifp->rs_timer = kNever;
  }
  if (ifp->v6) return 0;
  ifp->v6 = true;
  ifp->link_mtu = ifp->mtu;
  ifp->groups.push_back({all_nodes(), 1});  // never reported (RFC 3810 6)
  IpAddr ll;
  ll.family = 6;
  ll.b[0] = 0xfe; ll.b[1] = 0x80;
  eui64(ifp->mac, ll.b + 8);
  add_address6(ifp, ll, 64, false, kNever);
  if (ifp->slaac && !cfg_.dad) { ifp->rs_timer = now_; nd_next_ = std::min(nd_next_, now_); }
  return 0;
}

void Stack::slaac_iid(const Interface* ifp, const IpAddr& prefix, uint8_t dad_counter, uint8_t* out8) const {
  if (!cfg_.stable_iids) { eui64(ifp->mac, out8); return; }
  // RFC 7217 5: RID = F(Prefix, Net_Iface, Network_ID (none), DAD_Counter, secret_key)
  for (uint8_t extra = 0;; extra++) {
    uint8_t m[8 + 4 + 32 + 1];
    size_t n = 0;
    std::memcpy(m, prefix.b, 8); n = 8;
    wire::st32(m + n, uint32_t(ifp->index)); n += 4;
    size_t nl = std::min<size_t>(ifp->name.size(), 32);
    std::memcpy(m + n, ifp->name.data(), nl); n += nl;
    m[n++] = uint8_t(dad_counter + extra);
    uint64_t h = tcpw::siphash(cfg_.stable_secret, m, n);
    for (int i = 0; i < 8; i++) out8[i] = uint8_t(h >> (56 - 8 * i));
    // RFC 5453 reserved identifiers: the subnet-router anycast (0) and fdff:ffff:ffff:ff80..ff
    bool zero = true;
    for (int i = 0; i < 8; i++) if (out8[i]) zero = false;
    bool anycast = out8[0] == 0xfd && out8[1] == 0xff && out8[2] == 0xff && out8[3] == 0xff && out8[4] == 0xff &&
                   out8[5] == 0xff && out8[6] == 0xff && out8[7] >= 0x80;
    if (!zero && !anycast) return;
  }
}

int Stack::add_address6(Interface* ifp, const IpAddr& addr_in, uint8_t prefix, bool autoconf, Micros valid_until, uint8_t dad_counter) {
  IpAddr addr = addr_in;
  addr.scope = 0;
  if (v6_multicast(addr.b) || v6_loopback(addr.b) || v6_mapped(addr.b) || v6_zero(addr.b)) return -EINVAL;
  for (auto& i : ifs_)
    for (auto& a : i->addrs)
      if (a.addr == addr) return -EEXIST;
  if (!ifp->v6) enable_ipv6(ifp->index, ifp->slaac);  // the link-local address comes first
  IfAddr x;
  x.addr = addr;
  x.prefix = prefix;
  x.autoconf = autoconf;
  x.valid_until = valid_until;
  x.dad_counter = dad_counter;
  if (cfg_.dad && cfg_.dad_transmits > 0) {
    x.tentative = true;
    x.dad_left = cfg_.dad_transmits;
    x.dad_timer = now_;  // the first solicitation goes at the next poll
    nd_next_ = std::min(nd_next_, now_);
  }
  ifp->addrs.push_back(x);
  if (prefix < 128 && !v6_linklocal(addr.b)) {
    Route r;
    r.dst = prefix_network(addr, prefix);
    r.prefix = prefix;
    r.ifindex = ifp->index;
    r.connected = true;
    routes_.add(r);
  }
  rc_gen_ = 0;
  mld_join(ifp, solicited_node(addr));
  return 0;
}

IfAddr Stack::remove_address6(Interface* ifp, size_t i) {
  IfAddr x = ifp->addrs[i];
  ifp->addrs.erase(ifp->addrs.begin() + long(i));
  if (x.prefix < 128 && !v6_linklocal(x.addr.b)) remove_connected_route(ifp, x.addr, x.prefix);
  mld_leave(ifp, solicited_node(x.addr));
  rc_gen_ = 0;
  return x;
}

void Stack::dad_failed(Interface* ifp, IpAddr addr) {
  stats_.icmp6.dad_failures++;
  for (size_t i = 0; i < ifp->addrs.size(); i++) {
    if (ifp->addrs[i].addr != addr) continue;
    IfAddr x = remove_address6(ifp, i);
    if (!x.autoconf || !x.tentative) return;
    // a conflict on an autoconfigured address: RFC 7217 6 tries the next DAD counter (at most
    // IDGEN_RETRIES = 3 more); with EUI-64 identifiers the address is not formed again
    if (cfg_.stable_iids && x.dad_counter < 3) {
      IpAddr next = prefix_network(addr, 64);
      slaac_iid(ifp, next, uint8_t(x.dad_counter + 1), next.b + 8);
      add_address6(ifp, next, x.prefix, true, x.valid_until, uint8_t(x.dad_counter + 1));
      return;
    }
    if (ifp->dad_failed.size() >= 16) ifp->dad_failed.erase(ifp->dad_failed.begin());
    ifp->dad_failed.push_back(prefix_network(addr, 64));
    return;
  }
}

/** source address for dst out of ifp (RFC 6724, simplified: same scope, then longest prefix) */
const IfAddr* Stack::v6_source(const Interface* ifp, const IpAddr& dst) const {
  const IfAddr* best = nullptr;
  int best_score = -1;
  const bool dst_ll = v6_linklocal(dst.b) || v6_mcast_linkscope(dst.b);
  for (auto& x : ifp->addrs) {
    if (x.addr.family != 6 || x.tentative || x.draining) continue;
    bool ll = v6_linklocal(x.addr.b);
    int score = 0;
    if (ll == dst_ll) score += 1000;  // rule 2: appropriate scope
    if (prefix_match(x.addr, dst, x.prefix)) score += 100 + x.prefix;  // rule 8: longest match
    if (score > best_score) { best = &x; best_score = score; }
  }
  return best;
}

// ---------------------------------------------------------------- routing

int Stack::route_v6(const IpAddr& dst, int ifindex_hint, RouteResult* out) {
  if (dst.family != 6) return -ENETUNREACH;
  RouteResult r;
  if (is_local_v6(dst.b, true) && !v6_multicast(dst.b)) {
    r.ifp = nullptr;
    r.next_hop = dst;
    r.src = dst;
    r.src.scope = 0;
    r.mtu = 65535;
    *out = r;
    return 0;
  }
  Interface* ifp = nullptr;
  const bool ll = v6_linklocal(dst.b) || v6_multicast(dst.b);
  if (ll) {
    // link-local and multicast: the zone names the interface; without one, the only v6 one
    ifp = iface(ifindex_hint);
    if (!ifp && v6_multicast(dst.b)) {
      if (const Route* rt = routes_.lookup(dst)) ifp = iface(rt->ifindex);
    }
    if (!ifp) {
      int n = 0;
      for (auto& i : ifs_) if (i->v6) { if (!ifp) ifp = i.get(); n++; }
      if (n > 1 && !v6_multicast(dst.b)) return -EINVAL;  // ambiguous without a scope id, as Linux
    }
    if (!ifp || !ifp->v6) return -ENETUNREACH;
    r.next_hop = dst;
    r.broadcast = v6_multicast(dst.b);
  } else {
    const Route* rt = nullptr;
    for (auto& e : routes_.routes()) {
      if (e.dst.family != 6 || !prefix_match(e.dst, dst, e.prefix)) continue;
      if (ifindex_hint && e.ifindex != ifindex_hint) continue;
      rt = &e;
      break;
    }
    if (!rt) return -ENETUNREACH;
    ifp = iface(rt->ifindex);
    if (!ifp) return -ENETUNREACH;
    r.next_hop = rt->gateway.is_set() ? rt->gateway : dst;
    if (rt->src.is_set()) { r.src = rt->src; }
  }
  r.ifp = ifp;
  r.next_hop.scope = 0;
  r.mtu = ifp->mtu;
  if (uint32_t pm = path_mtu(dst)) r.mtu = std::min(r.mtu, pm);
  if (!r.src.is_set()) {
    const IfAddr* s = v6_source(ifp, dst);
    if (!s) {
      // another interface's address (weak host model), else none yet (DAD running)
      for (auto& i : ifs_) if (!s && i.get() != ifp) s = v6_source(i.get(), dst);
    }
    if (!s) return -EADDRNOTAVAIL;
    r.src = s->addr;
  }
  if (v6_linklocal(r.src.b)) r.src.scope = uint32_t(ifp->index);
  *out = r;
  return 0;
}

// ---------------------------------------------------------------- output

int Stack::ip6_output(const IpAddr& src_in, const IpAddr& dst, uint8_t nh, PacketBuf& pkt, const TxOpts& o) {
  auto& st = stats_.ip6;
  st.out_requests++;
  RouteResult rr;
  int e = route_v6(dst, o.ifindex ? o.ifindex : int(dst.scope), &rr);
  if (e < 0) { st.out_no_routes++; return e; }
  const IpAddr& src = src_in.family == 6 && !src_in.is_unspecified() ? src_in : rr.src;
  size_t plen = pkt.size();
  if (plen > 65535) { st.out_discards++; return -EMSGSIZE; }
  pkt.ensure_headroom(wire::kIpv6Header + wire::kEthHeader);
  wire::Ipv6Header h;
  std::memcpy(h.src, src.b, 16);
  std::memcpy(h.dst, dst.b, 16);
  h.next_header = nh;
  h.hop_limit = o.ttl ? o.ttl : (rr.ifp ? rr.ifp->hop_limit : cfg_.default_ttl);
  h.traffic_class = o.tos;
  h.payload_len = uint16_t(plen);
  wire::emit_ipv6(pkt.prepend(wire::kIpv6Header), h);
  if (!rr.ifp) {
    if (loopback_.size() - loopback_head_ >= cfg_.loopback_queue) { stats_.ip.loopback_drops++; return -ENOBUFS; }
    st.out_loopback++;
    loopback_.push_back(std::move(pkt));
    return 0;
  }
  const bool mcast = v6_multicast(dst.b);
  if (mcast && o.mcast_loop && rr.ifp->joined6(dst.b) && loopback_.size() - loopback_head_ < cfg_.loopback_queue)
    loopback_.push_back(pkt.clone());
  if (pkt.size() > rr.mtu) return ip6_fragment(rr.ifp, rr.next_hop, mcast, pkt, rr.mtu);
  if (mcast) {
    eth_output(rr.ifp, wire::mac_ipv6_multicast(dst.b), wire::kEtherIpv6, pkt);
    return 0;
  }
  return neigh_output(rr.ifp, rr.next_hop, pkt);
}

/** source fragmentation (RFC 8200 4.5): our packets carry no extension headers before the
    upper layer, so the unfragmentable part is the fixed header */
int Stack::ip6_fragment(Interface* ifp, const IpAddr& next_hop, bool mcast, PacketBuf& pkt, uint32_t mtu) {
  const uint8_t* p = pkt.data();
  const size_t payload = pkt.size() - wire::kIpv6Header;
  const size_t chunk = ((mtu - wire::kIpv6Header - 8) / 8) * 8;
  if (chunk == 0 || mtu < kMinMtu6) { stats_.ip6.frag_fails++; return -EMSGSIZE; }
  const uint32_t id = ++frag6_id_ ^ uint32_t(rng_.next());
  const uint8_t nh = p[6];
  int err = 0;
  for (size_t off = 0; off < payload; off += chunk) {
    size_t n = std::min(chunk, payload - off);
    PacketBuf f(wire::kIpv6Header + 8 + n, wire::kEthHeader + 16);
    uint8_t* q = f.append(wire::kIpv6Header + 8 + n);
    std::memcpy(q, p, wire::kIpv6Header);
    wire::st16(q + 4, uint16_t(8 + n));
    q[6] = wire::kNextFragment;
    uint8_t* fh = q + wire::kIpv6Header;
    fh[0] = nh; fh[1] = 0;
    wire::st16(fh + 2, uint16_t(off | (off + n < payload ? 1 : 0)));
    wire::st32(fh + 4, id);
    std::memcpy(fh + 8, p + wire::kIpv6Header + off, n);
    stats_.ip6.frag_creates++;
    if (mcast) {
      eth_output(ifp, wire::mac_ipv6_multicast(p + 24), wire::kEtherIpv6, f);
    } else {
      int e = neigh_output(ifp, next_hop, f);
      if (e < 0) err = e;
    }
  }
  stats_.ip6.frag_oks++;
  return err;
}

// ---------------------------------------------------------------- input

void Stack::ip6_input(Interface* ifp, const uint8_t* p, size_t len, bool verify) {
  auto& st = stats_.ip6;
  st.in_receives++;
  wire::Ipv6Header h;
  switch (wire::parse_ipv6(p, len, &h)) {
    case wire::Ipv6Error::None: break;
    case wire::Ipv6Error::Version: st.in_hdr_errors++; return;
    default: st.in_truncated++; return;
  }
  len = wire::kIpv6Header + h.payload_len;  // ethernet padding goes
  if (v6_multicast(h.src) || (ifp && (v6_loopback(h.src) || v6_loopback(h.dst) || v6_mapped(h.src) || v6_mapped(h.dst)))) {
    st.in_addr_errors++;
    return;
  }
  bool mcast = false;
  if (v6_multicast(h.dst)) {
    bool joined = false;
    if (ifp) joined = ifp->joined6(h.dst);
    else for (auto& i : ifs_) if (i->joined6(h.dst)) { joined = true; break; }
    if (!joined) { st.in_addr_errors++; return; }
    mcast = true;
    st.in_multicasts++;
  } else if (!is_local_v6(h.dst, true)) {
    st.in_addr_errors++;  // a host does not forward
    return;
  } else if (!is_local_v6(h.dst, false) && h.next_header != wire::kNextIcmpv6) {
    st.in_discards++;  // to a tentative address: only neighbour discovery (RFC 4862 5.4)
    return;
  }
  ip6_upper(ifp, p, len, wire::kIpv6Header, h.next_header, 6, verify, mcast);
}

void Stack::ip6_upper(Interface* ifp, const uint8_t* p, size_t len, size_t off, uint8_t nh, size_t nh_field, bool verify, bool mcast) {
  auto& st = stats_.ip6;
  auto param_problem = [&](uint8_t code, size_t ptr, bool even_mcast) {
    st.in_hdr_errors++;
    icmp6_send_error(kIcmp6ParamProblem, code, uint32_t(ptr), p, len, even_mcast);
  };
  for (int hdrs = 0;; hdrs++) {
    if (hdrs > 16) { st.in_hdr_errors++; return; }  // a chain that long is an attack
    switch (nh) {
      case wire::kNextHopByHop:
        if (off != wire::kIpv6Header) { param_problem(1, nh_field, false); return; }  // only first (RFC 8200 4.1)
        [[fallthrough]];
      case wire::kNextDestOpts: {
        if (len - off < 2) { st.in_truncated++; return; }
        size_t hl = (size_t(p[off + 1]) + 1) * 8;
        if (hl > len - off) { st.in_truncated++; return; }
        for (size_t i = off + 2; i < off + hl;) {
          uint8_t type = p[i];
          if (type == 0) { i++; continue; }  // Pad1
          if (off + hl - i < 2) { param_problem(0, i, false); return; }
          size_t olen = size_t(p[i + 1]) + 2;
          if (olen > off + hl - i) { param_problem(0, i + 1, false); return; }
          if (type != 1 && !(type == 5 && nh == wire::kNextHopByHop)) {  // PadN, Router Alert
            switch (type >> 6) {  // RFC 8200 4.2: the action for an unrecognised option
              case 0: break;
              case 1: st.in_discards++; return;
              case 2: param_problem(2, i, true); return;
              default:
                if (mcast) { st.in_discards++; return; }
                param_problem(2, i, false);
                return;
            }
          }
          i += olen;
        }
        nh_field = off;
        nh = p[off];
        off += hl;
        continue;
      }
      case wire::kNextRouting: {
        if (len - off < 4) { st.in_truncated++; return; }
        size_t hl = (size_t(p[off + 1]) + 1) * 8;
        if (hl > len - off) { st.in_truncated++; return; }
        if (p[off + 3] != 0) { param_problem(0, off + 2, false); return; }  // a host routes nothing onward
        nh_field = off;
        nh = p[off];
        off += hl;
        continue;
      }
      case wire::kNextFragment: {
        if (len - off < 8) { st.in_truncated++; return; }
        uint16_t fo = wire::ld16(p + off + 2);
        bool more = fo & 1;
        uint32_t foff = fo & 0xfff8;
        size_t flen = len - off - 8;
        if (foff == 0 && !more) {  // atomic fragment (RFC 6946): processed in isolation
          nh_field = off;
          nh = p[off];
          off += 8;
          continue;
        }
        if (more && (flen % 8 || flen == 0)) { param_problem(0, 4, false); return; }
        if (foff + flen > 65535) { param_problem(0, off + 2, false); return; }
        ip6_deliver_reassembled(ifp, p, len, off, verify, mcast);
        return;
      }
      case wire::kNextNone: st.in_delivers++; return;
      case kProtoUdp: {
        st.in_delivers++;
        IpAddr src = IpAddr::v6_bytes(p + 8), dst = IpAddr::v6_bytes(p + 24);
        if (ifp && v6_linklocal(p + 8)) src.scope = uint32_t(ifp->index);
        udp_input(ifp, src, dst, p, len, p + off, len - off, verify, mcast);
        return;
      }
      case kProtoTcp: {
        st.in_delivers++;
        if (mcast) { st.in_addr_errors++; return; }
        IpAddr src = IpAddr::v6_bytes(p + 8), dst = IpAddr::v6_bytes(p + 24);
        if (ifp && v6_linklocal(p + 8)) src.scope = uint32_t(ifp->index);
        tcp_input(src, dst, p + off, len - off, verify);
        return;
      }
      case wire::kNextIcmpv6:
        st.in_delivers++;
        icmp6_input(ifp, p, p + off, len - off, verify, mcast);
        return;
      default:
        st.in_unknown_protos++;
        if (!mcast) param_problem(1, nh_field, false);
        return;
    }
  }
}

// ---------------------------------------------------------------- reassembly (RFC 8200 4.5, RFC 5722)

void Stack::ip6_deliver_reassembled(Interface* ifp, const uint8_t* p, size_t len, size_t frag_off, bool verify, bool mcast) {
  auto& st = stats_.ip6;
  st.reasm_reqds++;
  const uint8_t* fh = p + frag_off;
  const uint32_t id = wire::ld32(fh + 4);
  const uint32_t foff = wire::ld16(fh + 2) & 0xfff8;
  const bool more = fh[3] & 1;
  const uint32_t flen = uint32_t(len - frag_off - 8);
  IpAddr src = IpAddr::v6_bytes(p + 8), dst = IpAddr::v6_bytes(p + 24);
  const int ifx = ifp ? ifp->index : 0;
  Frag6* e = nullptr;
  size_t ei = 0;
  for (; ei < reasm6_.size(); ei++)
    if (reasm6_[ei].id == id && reasm6_[ei].src == src && reasm6_[ei].dst == dst && reasm6_[ei].ifindex == ifx) { e = &reasm6_[ei]; break; }
  if (!e) {
    if (reasm6_.size() >= cfg_.reasm6_datagrams || reasm6_bytes_ + flen > cfg_.reassembly.max_bytes) {
      st.reasm_fails++;  // bounded: a new datagram is refused rather than evicting one in progress
      return;
    }
    reasm6_.emplace_back();
    ei = reasm6_.size() - 1;
    e = &reasm6_.back();
    e->src = src; e->dst = dst; e->id = id; e->ifindex = ifx; e->created = now_;
  }
  auto drop = [&](size_t i) {
    reasm6_bytes_ -= reasm6_[i].data.size();
    reasm6_.erase(reasm6_.begin() + long(i));
  };
  const uint32_t end = foff + flen;
  // RFC 5722: any overlap drops the whole datagram; a fragment past a known end too
  bool bad = (e->have_last && (end > e->total || (!more && end != e->total))) || (!more && e->data.size() > end) ||
             e->ranges.size() >= 64 || reasm6_bytes_ + (end > e->data.size() ? end - e->data.size() : 0) > cfg_.reassembly.max_bytes;
  for (auto& r : e->ranges) if (foff < r.second && end > r.first) { bad = true; st.reasm_overlaps++; break; }
  if (!bad && !more) { for (auto& r : e->ranges) if (r.second > end) bad = true; }
  if (bad) { st.reasm_fails++; drop(ei); return; }
  if (e->data.size() < end) { reasm6_bytes_ += end - e->data.size(); e->data.resize(end); }
  std::memcpy(e->data.data() + foff, fh + 8, flen);
  auto it = std::lower_bound(e->ranges.begin(), e->ranges.end(), std::make_pair(foff, end));
  e->ranges.insert(it, {foff, end});
  // merge neighbours
  for (size_t i = 0; i + 1 < e->ranges.size();) {
    if (e->ranges[i].second == e->ranges[i + 1].first) { e->ranges[i].second = e->ranges[i + 1].second; e->ranges.erase(e->ranges.begin() + long(i) + 1); }
    else i++;
  }
  if (!more) { e->have_last = true; e->total = end; }
  if (foff == 0) {
    // the unfragmentable part, with the fragment header's next header in its place
    e->have_first = true;
    e->nh = fh[0];
    e->head.assign(p, p + frag_off);
    // find the next-header byte that named the fragment header: walk the chain again
    size_t field = 6, o = wire::kIpv6Header;
    uint8_t n = p[6];
    while (o < frag_off && (n == wire::kNextHopByHop || n == wire::kNextDestOpts || n == wire::kNextRouting)) {
      field = o;
      n = p[o];
      o += (size_t(p[o + 1]) + 1) * 8;
    }
    if (o != frag_off) { st.reasm_fails++; drop(ei); return; }
    e->head[field] = e->nh;
  }
  if (!(e->have_first && e->have_last && e->ranges.size() == 1 && e->ranges[0].first == 0 && e->ranges[0].second == e->total)) return;
  size_t hl = e->head.size();
  size_t total = hl + e->total;
  if (total - wire::kIpv6Header > 65535) { st.reasm_fails++; drop(ei); return; }
  std::vector<uint8_t> pkt(total);
  std::memcpy(pkt.data(), e->head.data(), hl);
  std::memcpy(pkt.data() + hl, e->data.data(), e->total);
  wire::st16(pkt.data() + 4, uint16_t(total - wire::kIpv6Header));
  drop(ei);
  st.reasm_oks++;
  // the reassembled packet goes through the header chain again (a nested fragment header is
  // refused by the bound on reassembled sizes: it cannot complete twice)
  size_t field = 6, o = wire::kIpv6Header;
  uint8_t n = pkt[6];
  while (o < hl && (n == wire::kNextHopByHop || n == wire::kNextDestOpts || n == wire::kNextRouting)) {
    field = o;
    n = pkt[o];
    o += (size_t(pkt[o + 1]) + 1) * 8;
  }
  if (n == wire::kNextFragment) { st.in_hdr_errors++; return; }
  ip6_upper(ifp, pkt.data(), total, o, n, field, verify, mcast);
}

void Stack::reasm6_poll() {
  Micros to = Micros(cfg_.reasm6_timeout_ms) * 1000;
  for (size_t i = 0; i < reasm6_.size();) {
    Frag6& e = reasm6_[i];
    if (e.created + to > now_) { i++; continue; }
    stats_.ip6.reasm_timeouts++;
    stats_.ip6.reasm_fails++;
    if (e.have_first && !e.head.empty()) {
      // RFC 8200 4.5: time exceeded (code 1) quoting the first fragment
      std::vector<uint8_t> q(e.head);
      size_t n = std::min<size_t>(e.data.size(), 64);
      q.insert(q.end(), e.data.begin(), e.data.begin() + long(n));
      wire::st16(q.data() + 4, uint16_t(q.size() - wire::kIpv6Header));
      icmp6_send_error(kIcmp6TimeExceeded, 1, 0, q.data(), q.size());
    }
    reasm6_bytes_ -= reasm6_[i].data.size();
    reasm6_.erase(reasm6_.begin() + long(i));
  }
}

// ---------------------------------------------------------------- ICMPv6

void Stack::icmp6_send(Interface* ifp, const IpAddr& src, const IpAddr& dst, PacketBuf& b, uint8_t hop_limit, bool router_alert) {
  // checksum over the pseudo-header, then out directly on ifp (ND and MLD name their interface)
  uint8_t* q = b.data();
  q[2] = q[3] = 0;
  uint64_t acc = wire::pseudo_v6(src.b, dst.b, wire::kNextIcmpv6, uint32_t(b.size()));
  uint16_t c = wire::csum_finish(wire::csum_add(acc, q, b.size()));
  std::memcpy(q + 2, &c, 2);
  size_t ext = router_alert ? 8 : 0;
  b.ensure_headroom(wire::kIpv6Header + ext + wire::kEthHeader);
  if (router_alert) {
    uint8_t* hbh = b.prepend(8);
    hbh[0] = wire::kNextIcmpv6; hbh[1] = 0;
    hbh[2] = 5; hbh[3] = 2; hbh[4] = 0; hbh[5] = 0;  // Router Alert: MLD (RFC 2711)
    hbh[6] = 1; hbh[7] = 0;                          // PadN of 2
  }
  wire::Ipv6Header h;
  std::memcpy(h.src, src.b, 16);
  std::memcpy(h.dst, dst.b, 16);
  h.next_header = router_alert ? wire::kNextHopByHop : wire::kNextIcmpv6;
  h.hop_limit = hop_limit;
  h.payload_len = uint16_t(b.size());
  wire::emit_ipv6(b.prepend(wire::kIpv6Header), h);
  stats_.ip6.out_requests++;
  stats_.icmp6.out_msgs++;
  if (v6_multicast(dst.b)) { eth_output(ifp, wire::mac_ipv6_multicast(dst.b), wire::kEtherIpv6, b); return; }
  neigh_output(ifp, dst, b);
}

void Stack::icmp6_send_error(uint8_t type, uint8_t code, uint32_t info, const uint8_t* orig, size_t orig_len, bool even_mcast) {
  if (orig_len < wire::kIpv6Header) return;
  const uint8_t* osrc = orig + 8;
  const uint8_t* odst = orig + 24;
  // RFC 4443 2.4 (e): never to an unspecified or multicast source; about multicast only
  // Packet Too Big and parameter problem code 2; never about an ICMPv6 error
  if (v6_zero(osrc) || v6_multicast(osrc)) return;
  if (v6_multicast(odst) && !(type == kIcmp6PacketTooBig || (type == kIcmp6ParamProblem && code == 2 && even_mcast))) return;
  if (orig[6] == wire::kNextIcmpv6 && orig_len > wire::kIpv6Header && orig[wire::kIpv6Header] < 128) return;
  if (!icmp_rate_allow()) { stats_.icmp6.out_rate_limited++; return; }
  size_t quote = std::min<size_t>(orig_len, kMinMtu6 - wire::kIpv6Header - 8);
  PacketBuf b(8 + quote);
  uint8_t* q = b.append(8 + quote);
  q[0] = type; q[1] = code; q[2] = q[3] = 0;
  wire::st32(q + 4, info);
  std::memcpy(q + 8, orig, quote);
  uint64_t acc;
  IpAddr dst = IpAddr::v6_bytes(osrc);
  RouteResult rr;
  if (route_v6(dst, 0, &rr) < 0) return;
  IpAddr src = !v6_multicast(odst) && is_local_v6(odst) ? IpAddr::v6_bytes(odst) : rr.src;
  acc = wire::pseudo_v6(src.b, dst.b, wire::kNextIcmpv6, uint32_t(b.size()));
  uint16_t c = wire::csum_finish(wire::csum_add(acc, q, b.size()));
  std::memcpy(q + 2, &c, 2);
  stats_.icmp6.out_msgs++;
  if (type == kIcmp6DestUnreach) stats_.icmp6.out_dest_unreachs++;
  if (type == kIcmp6TimeExceeded) stats_.icmp6.out_time_excds++;
  if (type == kIcmp6ParamProblem) stats_.icmp6.out_parm_problems++;
  TxOpts o;
  o.ttl = 0;
  ip6_output(src, dst, wire::kNextIcmpv6, b, o);
}

void Stack::icmp6_input(Interface* ifp, const uint8_t* ip, const uint8_t* p, size_t len, bool verify, bool mcast) {
  auto& st = stats_.icmp6;
  if (len < 4) { st.in_errors++; return; }
  // ND and MLD are checked always: they change state (RFC 4861 7.1.1)
  uint8_t type = p[0];
  bool must_verify = verify || (type >= kMldQuery && type <= kNdRedirect) || type == kMld2Report;
  if (must_verify && !wire::csum_ok(wire::csum_add(wire::pseudo_v6(ip + 8, ip + 24, wire::kNextIcmpv6, uint32_t(len)), p, len))) {
    st.in_errors++;
    st.in_csum_errors++;
    return;
  }
  st.in_msgs++;
  IpAddr src = IpAddr::v6_bytes(ip + 8), dst = IpAddr::v6_bytes(ip + 24);
  switch (type) {
    case kIcmp6EchoRequest: {
      st.in_echos++;
      if (len < 8) { st.in_errors++; return; }
      if (v6_zero(ip + 8)) return;
      IpAddr from;  // a reply to a multicast request comes from a unicast address of ours
      if (!mcast) from = dst;
      if (ifp && v6_linklocal(ip + 8)) src.scope = uint32_t(ifp->index);
      PacketBuf b(len);
      uint8_t* q = b.append(len);
      std::memcpy(q, p, len);
      q[0] = kIcmp6EchoReply;
      q[1] = 0;
      q[2] = q[3] = 0;
      RouteResult rr;
      if (route_v6(src, ifp ? ifp->index : 0, &rr) < 0) return;
      if (!from.is_set()) from = rr.src;
      uint16_t c = wire::csum_finish(wire::csum_add(wire::pseudo_v6(from.b, src.b, wire::kNextIcmpv6, uint32_t(len)), q, len));
      std::memcpy(q + 2, &c, 2);
      st.out_msgs++;
      st.out_echo_reps++;
      TxOpts o;
      o.ttl = 0;
      o.tos = uint8_t((ip[0] << 4) | (ip[1] >> 4));
      o.ifindex = ifp ? ifp->index : 0;
      ip6_output(from, src, wire::kNextIcmpv6, b, o);
      return;
    }
    case kIcmp6EchoReply: {
      st.in_echo_reps++;
      if (len < 8 || wire::ld16(p + 4) != ping_id_) return;
      uint16_t seq = wire::ld16(p + 6);
      for (auto it = pings_.begin(); it != pings_.end(); ++it) {
        if (it->seq != seq || it->dst.family != 6) continue;
        PingResult r;
        r.id = ping_id_;
        r.seq = seq;
        r.rtt = now_ - it->sent;
        r.from = src;
        if (ifp && v6_linklocal(ip + 8)) r.from.scope = uint32_t(ifp->index);
        r.ttl = ip[7];
        r.bytes = len - 8;
        pings_.erase(it);
        ping_done_.push_back(r);
        return;
      }
      return;
    }
    case kIcmp6DestUnreach: case kIcmp6PacketTooBig: case kIcmp6TimeExceeded: case kIcmp6ParamProblem:
      if (type == kIcmp6DestUnreach) st.in_dest_unreachs++;
      else if (type == kIcmp6PacketTooBig) st.in_pkt_too_bigs++;
      else if (type == kIcmp6TimeExceeded) st.in_time_excds++;
      else st.in_parm_problems++;
      if (len < 8) { st.in_errors++; return; }
      icmp6_error_input(type, p[1], wire::ld32(p + 4), p + 8, len - 8);
      return;
    case kMldQuery: {
      st.in_mld_queries++;
      if (!ifp || ip[7] != 1 || !v6_linklocal(ip + 8) || len < 24) { st.nd_malformed++; return; }
      // answer at once with the state of every reported group (no per-group timers)
      std::vector<IpAddr> gs;
      bool general = v6_zero(p + 8);
      for (auto& g : ifp->groups)
        if (g.group.family == 6 && (general || std::memcmp(g.group.b, p + 8, 16) == 0)) gs.push_back(g.group);
      if (!gs.empty()) mld_report(ifp, gs.data(), gs.size(), 2);  // MODE_IS_EXCLUDE
      return;
    }
    case kNdRouterAdvert: case kNdNeighborSolicit: case kNdNeighborAdvert: case kNdRouterSolicit: case kNdRedirect:
      if (ifp) ndp_input(ifp, ip, p, len);
      return;
    default:
      st.in_other++;
      return;
  }
}

void Stack::icmp6_error_input(uint8_t type, uint8_t code, uint32_t info, const uint8_t* inner, size_t len) {
  if (len < wire::kIpv6Header || (inner[0] >> 4) != 6) { stats_.icmp6.in_errors++; return; }
  if (!is_local_v6(inner + 8)) return;  // not about a packet of ours
  IpAddr lsrc = IpAddr::v6_bytes(inner + 8), rdst = IpAddr::v6_bytes(inner + 24);
  if (type == kIcmp6PacketTooBig) {
    if (info < kMinMtu6) info = kMinMtu6;
    pmtu_update(rdst, info);
    rc_gen_ = 0;
  }
  // find the upper layer behind our (extension-header-free, or fragment) header
  size_t off = wire::kIpv6Header;
  uint8_t nh = inner[6];
  for (int i = 0; i < 8 && (nh == wire::kNextHopByHop || nh == wire::kNextDestOpts || nh == wire::kNextRouting || nh == wire::kNextFragment); i++) {
    if (len < off + 8) return;
    size_t hl = nh == wire::kNextFragment ? 8 : (size_t(inner[off + 1]) + 1) * 8;
    if (nh == wire::kNextFragment && (wire::ld16(inner + off + 2) & 0xfff8)) return;  // not the first fragment
    nh = inner[off];
    off += hl;
  }
  if (len < off + 8) return;
  int err;
  bool fatal;
  switch (type) {
    case kIcmp6DestUnreach:
      switch (code) {
        case 0: err = ENETUNREACH; fatal = false; break;   // no route
        case 1: err = EACCES; fatal = true; break;         // administratively prohibited
        case 3: err = EHOSTUNREACH; fatal = false; break;  // address unreachable
        case 4: err = ECONNREFUSED; fatal = true; break;   // port unreachable
        default: err = EHOSTUNREACH; fatal = false; break;
      }
      break;
    case kIcmp6PacketTooBig: err = EMSGSIZE; fatal = false; break;
    case kIcmp6TimeExceeded: err = EHOSTUNREACH; fatal = false; break;
    default: err = EPROTO; fatal = true; break;
  }
  const uint8_t* up = inner + off;
  switch (nh) {
    case kProtoTcp:
#if MS_HAVE_TCP
      if (tcp_ && type != kIcmp6ParamProblem) {
        int terr = type == kIcmp6PacketTooBig ? -EMSGSIZE : -err;
        tcp_->icmp_error(lsrc, rdst, up, len - off, terr, type == kIcmp6PacketTooBig ? info : 0);
      }
#endif
      break;
    case kProtoUdp: {
      if (fatal) {
        uint16_t sport = wire::ld16(up), dport = wire::ld16(up + 2);
        udp_error_addr(lsrc, sport, rdst, dport, err);
      }
      break;
    }
    case wire::kNextIcmpv6: {
      if (up[0] != kIcmp6EchoRequest || wire::ld16(up + 4) != ping_id_) break;
      if (type != kIcmp6PacketTooBig) ping_fail(wire::ld16(up + 6), err);  // too big: the next one is smaller or fragmented
      break;
    }
    default: break;
  }
}

int Stack::ping6(const IpAddr& dst, size_t payload, uint16_t* id_seq_out) {
  if (payload > 65535 - 8) return -EMSGSIZE;
  if (pings_.size() >= 1024) return -ENOBUFS;
  RouteResult rr;
  int e = route_v6(dst, int(dst.scope), &rr);
  if (e < 0) return e;
  uint16_t seq = ++ping_seq_;
  PacketBuf b(8 + payload);
  uint8_t* q = b.append(8 + payload);
  for (size_t i = 0; i < payload; i++) q[8 + i] = uint8_t(0x10 + i);
  if (payload >= 8) std::memcpy(q + 8, &now_, 8);
  q[0] = kIcmp6EchoRequest; q[1] = 0; q[2] = q[3] = 0;
  wire::st16(q + 4, ping_id_);
  wire::st16(q + 6, seq);
  uint16_t c = wire::csum_finish(wire::csum_add(wire::pseudo_v6(rr.src.b, dst.b, wire::kNextIcmpv6, uint32_t(b.size())), q, b.size()));
  std::memcpy(q + 2, &c, 2);
  pings_.push_back({seq, now_, dst});
  TxOpts o;
  o.ttl = 0;
  o.ifindex = int(dst.scope);
  e = ip6_output(rr.src, dst, wire::kNextIcmpv6, b, o);
  if (e < 0) { pings_.pop_back(); return e; }
  stats_.icmp6.out_msgs++;
  stats_.icmp6.out_echos++;
  if (id_seq_out) { id_seq_out[0] = ping_id_; id_seq_out[1] = seq; }
  return 0;
}

// ---------------------------------------------------------------- neighbour discovery (RFC 4861)

void Stack::ndp_send_ns(Interface* ifp, const IpAddr& target, bool unicast, const MacAddr* mac, bool dad) {
  IpAddr src;
  if (dad) {
    src = unspecified6();
  } else {
    const IfAddr* s = v6_source(ifp, target);
    if (!s) return;  // nothing to ask from yet: the probes time out
    src = s->addr;
  }
  size_t n = 24 + (dad ? 0 : 8);
  PacketBuf b(n);
  uint8_t* q = b.append(n);
  std::memset(q, 0, n);
  q[0] = kNdNeighborSolicit;
  std::memcpy(q + 8, target.b, 16);
  if (!dad) { q[24] = kOptSrcLinkAddr; q[25] = 1; std::memcpy(q + 26, ifp->mac.b, 6); }
  IpAddr dst = unicast ? target : solicited_node(target);
  stats_.icmp6.out_neighbor_solicits++;
  if (unicast && mac) {
    // straight to the cached link address (a probe must not queue behind itself)
    uint8_t* c = b.data();
    uint64_t acc = wire::pseudo_v6(src.b, dst.b, wire::kNextIcmpv6, uint32_t(b.size()));
    uint16_t ck = wire::csum_finish(wire::csum_add(acc, c, b.size()));
    std::memcpy(c + 2, &ck, 2);
    wire::Ipv6Header h;
    std::memcpy(h.src, src.b, 16);
    std::memcpy(h.dst, dst.b, 16);
    h.next_header = wire::kNextIcmpv6;
    h.hop_limit = 255;
    h.payload_len = uint16_t(b.size());
    wire::emit_ipv6(b.prepend(wire::kIpv6Header), h);
    stats_.ip6.out_requests++;
    stats_.icmp6.out_msgs++;
    eth_output(ifp, *mac, wire::kEtherIpv6, b);
    return;
  }
  icmp6_send(ifp, src, dst, b, 255);
}

void Stack::ndp_send_na(Interface* ifp, const IpAddr& target, const IpAddr& dst, bool solicited) {
  PacketBuf b(32);
  uint8_t* q = b.append(32);
  std::memset(q, 0, 32);
  q[0] = kNdNeighborAdvert;
  q[4] = uint8_t((solicited ? 0x40 : 0) | 0x20);  // S, O (we are not a router)
  std::memcpy(q + 8, target.b, 16);
  q[24] = kOptTgtLinkAddr; q[25] = 1;
  std::memcpy(q + 26, ifp->mac.b, 6);
  stats_.icmp6.out_neighbor_adverts++;
  icmp6_send(ifp, target, dst, b, 255);
}

void Stack::ndp_send_rs(Interface* ifp) {
  const IfAddr* s = nullptr;
  for (auto& x : ifp->addrs) if (x.addr.family == 6 && !x.tentative && v6_linklocal(x.addr.b)) { s = &x; break; }
  size_t n = s ? 16 : 8;
  PacketBuf b(n);
  uint8_t* q = b.append(n);
  std::memset(q, 0, n);
  q[0] = kNdRouterSolicit;
  if (s) { q[8] = kOptSrcLinkAddr; q[9] = 1; std::memcpy(q + 10, ifp->mac.b, 6); }
  stats_.icmp6.out_router_solicits++;
  icmp6_send(ifp, s ? s->addr : unspecified6(), all_routers(), b, 255);
}

void Stack::ndp_probe(Interface* ifp, Neighbour* n, bool unicast) {
  n->probes++;
  n->timer = now_ + Micros(cfg_.retrans_timer_ms) * 1000;
  neigh_.note_timer(n->timer);
  MacAddr mac = n->mac;
  ndp_send_ns(ifp, n->key.addr, unicast, unicast ? &mac : nullptr, false);
}

void Stack::ndp_neighbour_update(Interface* ifp, const IpAddr& addr, const MacAddr& mac, bool solicited, bool override, bool is_na) {
  NeighbourKey k{addr, ifp->index};
  k.addr.scope = 0;
  Neighbour* n = neigh_.find(k);
  if (!n) {
    if (is_na) return;  // RFC 4861 7.2.5: an unsolicited advertisement creates nothing
    bool created;
    n = neigh_.get_or_create(k, &created, &stats_.arp.evictions);
    n->state = Neighbour::Stale;
    n->mac = mac;
    return;
  }
  bool changed = n->mac != mac;
  if (n->state == Neighbour::Incomplete || n->state == Neighbour::Failed) {
    n->mac = mac;
    n->probes = 0;
    n->timer = kNever;
    n->confirmed = now_;
    n->state = (is_na && solicited) ? Neighbour::Reachable : Neighbour::Stale;
    if (!n->queue.empty()) {
      std::vector<PacketBuf> q;
      q.swap(n->queue);
      n->queue_bytes = 0;
      if (n->state == Neighbour::Stale) {  // sending makes it DELAY
        n->state = Neighbour::Delay;
        n->timer = now_ + Micros(neigh_.config().delay_first_probe_ms) * 1000;
        neigh_.note_timer(n->timer);
      }
      for (auto& pkt : q) eth_output(ifp, mac, wire::kEtherIpv6, pkt);
    }
    return;
  }
  if (!is_na) {  // NS / RS / RA with a source link-layer address
    if (changed) { n->mac = mac; n->state = Neighbour::Stale; n->timer = kNever; }
    return;
  }
  if (!override && changed) {
    if (n->state == Neighbour::Reachable) n->state = Neighbour::Stale;
    return;
  }
  if (override || !changed) {
    n->mac = mac;
    if (solicited) {
      n->state = Neighbour::Reachable;
      n->confirmed = now_;
      n->probes = 0;
      n->timer = kNever;
    } else if (changed) {
      n->state = Neighbour::Stale;
      n->timer = kNever;
    }
  }
}

void Stack::ndp_input(Interface* ifp, const uint8_t* ip, const uint8_t* p, size_t len) {
  auto& st = stats_.icmp6;
  uint8_t type = p[0];
  // RFC 4861 6.1/7.1: hop limit 255 (it came from this link), code 0
  if (ip[7] != 255 || p[1] != 0) { st.nd_malformed++; return; }
  const uint8_t* src = ip + 8;
  const uint8_t* dst = ip + 24;
  switch (type) {
    case kNdNeighborSolicit: {
      st.in_neighbor_solicits++;
      if (len < 24 || v6_multicast(p + 8)) { st.nd_malformed++; return; }
      const bool dad = v6_zero(src);
      if (dad && !(dst[0] == 0xff && dst[1] == 0x02 && dst[11] == 1 && dst[12] == 0xff)) { st.nd_malformed++; return; }
      MacAddr sll;
      bool has_sll = false;
      if (!nd_options(p + 24, len - 24, [&](uint8_t t, const uint8_t* o, size_t ol) {
            if (t == kOptSrcLinkAddr && ol >= 8) { std::memcpy(sll.b, o + 2, 6); has_sll = true; }
          })) { st.nd_malformed++; return; }
      if (dad && has_sll) { st.nd_malformed++; return; }
      IpAddr target = IpAddr::v6_bytes(p + 8);
      IfAddr* mine = nullptr;
      for (auto& x : ifp->addrs) if (x.addr == target) mine = &x;
      if (!mine) return;
      if (mine->tentative) {
        // RFC 4862 5.4.3: another node is doing DAD for the same address
        if (dad) dad_failed(ifp, target);
        return;
      }
      if (has_sll) {
        if (sll == ifp->mac) return;  // our own solicitation looped back by the switch
        ndp_neighbour_update(ifp, IpAddr::v6_bytes(src), sll, false, true, false);
      }
      if (dad) ndp_send_na(ifp, target, all_nodes(), false);
      else ndp_send_na(ifp, target, IpAddr::v6_bytes(src), true);
      return;
    }
    case kNdNeighborAdvert: {
      st.in_neighbor_adverts++;
      if (len < 24 || v6_multicast(p + 8)) { st.nd_malformed++; return; }
      bool solicited = p[4] & 0x40, override = p[4] & 0x20;
      if (solicited && v6_multicast(dst)) { st.nd_malformed++; return; }
      MacAddr tll;
      bool has_tll = false;
      if (!nd_options(p + 24, len - 24, [&](uint8_t t, const uint8_t* o, size_t ol) {
            if (t == kOptTgtLinkAddr && ol >= 8) { std::memcpy(tll.b, o + 2, 6); has_tll = true; }
          })) { st.nd_malformed++; return; }
      IpAddr target = IpAddr::v6_bytes(p + 8);
      for (auto& x : ifp->addrs) {
        if (x.addr != target) continue;
        if (has_tll && tll == ifp->mac) return;  // ours, looped back
        if (x.tentative) dad_failed(ifp, target);
        else stats_.arp.duplicate_address++;  // someone else claims our address
        return;
      }
      if (!has_tll) {
        // without the option only a confirmation of what we have
        Neighbour* n = neigh_.find({target, ifp->index});
        if (n && solicited && n->state != Neighbour::Incomplete) { n->state = Neighbour::Reachable; n->confirmed = now_; n->probes = 0; n->timer = kNever; }
        return;
      }
      ndp_neighbour_update(ifp, target, tll, solicited, override, true);
      return;
    }
    case kNdRouterAdvert:
      st.in_router_adverts++;
      if (len < 16 || !v6_linklocal(src)) { st.nd_malformed++; return; }
      ndp_ra_input(ifp, ip, p, len);
      return;
    case kNdRouterSolicit:
    case kNdRedirect:
    default:
      st.in_other++;  // a host ignores solicitations for routers; redirects are not followed
      return;
  }
}

void Stack::ndp_ra_input(Interface* ifp, const uint8_t* ip, const uint8_t* p, size_t len) {
  auto& st = stats_.icmp6;
  IpAddr router = IpAddr::v6_bytes(ip + 8);
  struct Pfx { IpAddr net; uint8_t len; bool onlink, autonomous; uint32_t valid, preferred; };
  std::vector<Pfx> pfx;
  MacAddr sll;
  bool has_sll = false;
  uint32_t mtu = 0;
  if (!nd_options(p + 16, len - 16, [&](uint8_t t, const uint8_t* o, size_t ol) {
        if (t == kOptSrcLinkAddr && ol >= 8) { std::memcpy(sll.b, o + 2, 6); has_sll = true; }
        else if (t == kOptMtu && ol >= 8) mtu = wire::ld32(o + 4);
        else if (t == kOptPrefixInfo && ol >= 32 && pfx.size() < 16) {
          Pfx x;
          x.len = o[2];
          x.onlink = o[3] & 0x80;
          x.autonomous = o[3] & 0x40;
          x.valid = wire::ld32(o + 4);
          x.preferred = wire::ld32(o + 8);
          x.net = IpAddr::v6_bytes(o + 16);
          if (x.len <= 128) pfx.push_back(x);
        }
      })) { st.nd_malformed++; return; }
  if (ifp->rs_left) { ifp->rs_left = 0; ifp->rs_timer = kNever; }  // answered
  if (p[4]) ifp->hop_limit = p[4];
  uint32_t reach = wire::ld32(p + 8);
  if (reach && reach <= 3600000) neigh_.config().reachable_ms = reach;
  if (has_sll) ndp_neighbour_update(ifp, router, sll, false, true, false);
  if (mtu >= kMinMtu6 && mtu <= ifp->link_mtu) { ifp->mtu = mtu; rc_gen_ = 0; }
  // the default router list (RFC 4861 6.3.4), bounded
  uint16_t lifetime = wire::ld16(p + 6);
  auto rit = std::find_if(routers_.begin(), routers_.end(), [&](const Router& r) { return r.addr == router && r.ifindex == ifp->index; });
  IpAddr any6 = unspecified6();
  if (lifetime) {
    Micros exp = now_ + Micros(lifetime) * 1000000;
    if (rit != routers_.end()) {
      rit->expires = exp;
    } else if (routers_.size() < cfg_.max_routers) {
      routers_.push_back({router, ifp->index, exp});
      Route r;
      r.dst = any6;
      r.prefix = 0;
      r.gateway = router;
      r.ifindex = ifp->index;
      r.metric = 1024;  // as Linux's RA routes: a static default wins
      routes_.add(r);
      rc_gen_ = 0;
    }
    nd_next_ = std::min(nd_next_, exp);
  } else if (rit != routers_.end()) {
    routes_.remove(any6, 0, &router);
    routers_.erase(rit);
    rc_gen_ = 0;
  }
  // prefixes: on-link routes, and addresses from autonomous /64s (RFC 4862 5.5.3)
  for (auto& x : pfx) {
    if (v6_linklocal(x.net.b) || v6_multicast(x.net.b)) continue;
    IpAddr net = prefix_network(x.net, x.len);
    if (x.onlink && x.valid) {
      bool have = false;
      for (auto& e : routes_.routes()) if (e.dst == net && e.prefix == x.len && e.ifindex == ifp->index && !e.gateway.is_set()) have = true;
      if (!have) { Route r; r.dst = net; r.prefix = x.len; r.ifindex = ifp->index; r.metric = 256; routes_.add(r); rc_gen_ = 0; }
    }
    if (!x.autonomous || !ifp->slaac || x.len != 64 || x.preferred > x.valid || x.valid == 0) continue;
    if (std::find(ifp->dad_failed.begin(), ifp->dad_failed.end(), net) != ifp->dad_failed.end()) continue;
    IpAddr a = net;
    slaac_iid(ifp, net, 0, a.b + 8);
    Micros until = x.valid == 0xffffffffu ? kNever : now_ + Micros(x.valid) * 1000000;
    bool found = false;
    for (auto& y : ifp->addrs) {
      if (!y.autoconf || !prefix_match(y.addr, net, 64)) continue;  // ours from this prefix (any DAD counter)
      found = true;
      // RFC 4862 5.5.3 (e): never shorten below two hours from an advertisement
      if (y.autoconf && (until > y.valid_until || until > now_ + 7200ull * 1000000)) y.valid_until = until;
    }
    if (found) continue;
    size_t n = 0;
    for (auto& y : ifp->addrs) if (y.autoconf) n++;
    if (n >= cfg_.max_autoconf) continue;
    if (add_address6(ifp, a, 64, true, until) == 0) st.slaac_addresses++;
  }
}

void Stack::ndp_poll() {
  if (now_ < nd_next_) return;
  Micros next = kNever;
  for (auto& up : ifs_) {
    Interface* ifp = up.get();
    if (!ifp->v6) continue;
    for (size_t i = 0; i < ifp->addrs.size();) {
      IfAddr& x = ifp->addrs[i];
      if (x.addr.family != 6) { i++; continue; }
      if (x.valid_until <= now_) {  // an autoconfigured address whose lifetime ended
        IpAddr a = x.addr;
        dad_failed(ifp, a);
        stats_.icmp6.dad_failures--;
        continue;
      }
      next = std::min(next, x.valid_until);
      if (x.tentative && x.dad_timer <= now_) {
        if (x.dad_left > 0) {
          x.dad_left--;
          x.dad_timer = now_ + Micros(cfg_.retrans_timer_ms) * 1000;
          IpAddr a = x.addr;
          ndp_send_ns(ifp, a, false, nullptr, true);  // may not touch addrs
        } else {
          x.tentative = false;  // no one objected: the address is ours
          x.dad_timer = kNever;
          rc_gen_ = 0;
          if (v6_linklocal(x.addr.b) && ifp->slaac && ifp->rs_left) ifp->rs_timer = now_;
        }
      }
      if (x.tentative) next = std::min(next, x.dad_timer);
      i++;
    }
    if (ifp->rs_left && ifp->rs_timer <= now_) {
      ifp->rs_left--;
      ndp_send_rs(ifp);
      ifp->rs_timer = ifp->rs_left ? now_ + 4000000 : kNever;  // RTR_SOLICITATION_INTERVAL
    }
    if (ifp->rs_left) next = std::min(next, ifp->rs_timer);
  }
  for (size_t i = 0; i < routers_.size();) {
    if (routers_[i].expires <= now_) {
      routes_.remove(unspecified6(), 0, &routers_[i].addr);
      routers_.erase(routers_.begin() + long(i));
      rc_gen_ = 0;
    } else {
      next = std::min(next, routers_[i].expires);
      i++;
    }
  }
  nd_next_ = next;
}

void Stack::v6_neigh_failed_packet(const PacketBuf& pkt) {
  // our packets: the upper header follows the fixed header (or a fragment header)
  if (pkt.size() < wire::kIpv6Header + 8) return;
  const uint8_t* p = pkt.data();
  IpAddr dst = IpAddr::v6_bytes(p + 24);
  uint8_t nh = p[6];
  const uint8_t* up = p + wire::kIpv6Header;
  if (nh == wire::kNextFragment) {
    if (wire::ld16(up + 2) & 0xfff8) return;
    nh = up[0];
    up += 8;
    if (size_t(up - p) + 8 > pkt.size()) return;
  }
  if (nh == kProtoTcp) {
    if (std::find(tcp_failed_.begin(), tcp_failed_.end(), dst) == tcp_failed_.end()) tcp_failed_.push_back(dst);
  } else if (nh == kProtoUdp) {
    udp_error_addr(IpAddr::v6_bytes(p + 8), wire::ld16(up), dst, wire::ld16(up + 2), EHOSTUNREACH);
  } else if (nh == wire::kNextIcmpv6 && up[0] == kIcmp6EchoRequest && wire::ld16(up + 4) == ping_id_) {
    ping_fail(wire::ld16(up + 6), EHOSTUNREACH);
  }
}

// ---------------------------------------------------------------- MLDv2 (RFC 3810), host side

void Stack::mld_join(Interface* ifp, const IpAddr& group) {
  for (auto& g : ifp->groups) if (g.group == group) { g.refs++; return; }
  ifp->groups.push_back({group, 1});
  mld_report(ifp, &group, 1, 4);  // CHANGE_TO_EXCLUDE_MODE {}: join
}

void Stack::mld_leave(Interface* ifp, const IpAddr& group) {
  for (size_t g = 0; g < ifp->groups.size(); g++)
    if (ifp->groups[g].group == group) {
      if (--ifp->groups[g].refs == 0) {
        ifp->groups.erase(ifp->groups.begin() + long(g));
        mld_report(ifp, &group, 1, 3);  // CHANGE_TO_INCLUDE_MODE {}: leave
      }
      return;
    }
}

void Stack::mld_report(Interface* ifp, const IpAddr* groups, size_t n, uint8_t record_type) {
  if (!ifp->link) return;
  std::vector<const IpAddr*> rep;
  for (size_t i = 0; i < n && rep.size() < 64; i++)
    if (!(groups[i] == all_nodes()) && !((groups[i].b[1] & 15) <= 1)) rep.push_back(&groups[i]);  // never ff02::1, interface-local
  if (rep.empty()) return;
  size_t len = 8 + rep.size() * 20;
  PacketBuf b(len);
  uint8_t* q = b.append(len);
  std::memset(q, 0, len);
  q[0] = kMld2Report;
  wire::st16(q + 6, uint16_t(rep.size()));
  for (size_t i = 0; i < rep.size(); i++) {
    uint8_t* r = q + 8 + i * 20;
    r[0] = record_type;
    std::memcpy(r + 4, rep[i]->b, 16);
  }
  // RFC 3810 5.2.13 / RFC 3590: from the link-local address, or :: while it is tentative
  IpAddr src = unspecified6();
  for (auto& x : ifp->addrs) if (x.addr.family == 6 && !x.tentative && v6_linklocal(x.addr.b)) { src = x.addr; break; }
  stats_.icmp6.out_mld_reports++;
  icmp6_send(ifp, src, mldv2_routers(), b, 1, true);
}

}  // namespace ms
