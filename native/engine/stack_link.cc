// Link layer of the Stack: frame input, ethernet output, egress impairment, capture,
// ARP and the neighbour cache.
#include <algorithm>

#include "stack.h"
#include "wire/arp.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/udp.h"

namespace ms {

bool Interface::accepts_mac(const MacAddr& m) const { return m == mac || m.is_multicast(); }

void Stack::input(int ifindex, const uint8_t* frame, size_t len) {
  Entry guard(this);
  if (closed_) return;
  Interface* ifp = iface(ifindex);
  if (!ifp) return;
  ifp->stats.rx_frames++;
  ifp->stats.rx_bytes += len;
  stats_.eth.in_frames++;
  if (ifp->pcap) ifp->pcap->write(now_, frame, len);
  wire::EthHeader eh;
  if (!wire::parse_ethernet(frame, len, &eh)) {
    ifp->stats.rx_malformed++;
    stats_.eth.malformed++;
    return;
  }
  if (!ifp->accepts_mac(eh.dst)) {
    ifp->stats.rx_not_for_us++;
    stats_.eth.not_for_us++;
    return;
  }
  const uint8_t* p = frame + eh.header_len;
  size_t n = len - eh.header_len;
  switch (eh.ethertype) {
    case wire::kEtherIpv4: ip_input(ifp, p, n, !ifp->offload()); break;
    case wire::kEtherArp: arp_input(ifp, p, n); break;
    case wire::kEtherIpv6:
      if (ifp->v6) { ip6_input(ifp, p, n, !ifp->offload()); break; }
      [[fallthrough]];
    default:
      ifp->stats.rx_unknown_type++;
      stats_.eth.unknown_type++;
      break;
  }
}

void Stack::eth_output(Interface* ifp, const MacAddr& dst, uint16_t type, PacketBuf& pkt) {
  pkt.ensure_headroom(wire::kEthHeader);
  uint8_t* h = pkt.prepend(wire::kEthHeader);
  wire::emit_ethernet(h, dst, ifp->mac, type);
  stats_.eth.out_frames++;
  link_transmit(ifp, pkt.data(), pkt.size());
}

static void wire_send(Interface* ifp, Micros now, const uint8_t* frame, size_t len) {
  if (ifp->pcap) ifp->pcap->write(now, frame, len);
  ifp->link->transmit(frame, len);
}

void Stack::link_transmit(Interface* ifp, const uint8_t* frame, size_t len) {
  if (!ifp->link) {
    ifp->stats.tx_no_link++;
    stats_.eth.out_no_link++;
    return;
  }
  ifp->stats.tx_frames++;
  ifp->stats.tx_bytes += len;
  if (ifp->impair.active()) impair_transmit(ifp, frame, len);
  else wire_send(ifp, now_, frame, len);
}

static bool delayed_later(const Interface::Delayed& a, const Interface::Delayed& b) {
  return a.due != b.due ? a.due > b.due : a.seq > b.seq;
}

void Stack::impair_transmit(Interface* ifp, const uint8_t* frame, size_t len) {
  const Impair& im = ifp->impair;
  auto& st = ifp->stats;
  if (im.loss > 0 && rng_.unit() < im.loss) { st.impair_lost++; return; }
  int copies = 1;
  if (im.duplicate > 0 && rng_.unit() < im.duplicate) { copies = 2; st.impair_duplicated++; }
  for (int c = 0; c < copies; c++) {
    Micros d = Micros(im.delay_ms) * 1000;
    if (im.jitter_ms) d += rng_.below(im.jitter_ms * 1000 + 1);
    if (im.reorder > 0 && rng_.unit() < im.reorder) {
      // as netem: with a delay, a reordered frame goes at once; without, it is held back 1 ms
      d = im.delay_ms ? 0 : 1000;
      st.impair_reordered++;
    }
    bool corrupt = im.corrupt > 0 && len > wire::kEthHeader && rng_.unit() < im.corrupt;
    if (!d && !corrupt) { wire_send(ifp, now_, frame, len); continue; }
    PacketBuf b(len, 0);
    b.append(frame, len);
    if (corrupt) {
      // flip one bit after the ethernet header: the IP/UDP/TCP/ICMP checksum catches it
      size_t off = wire::kEthHeader + rng_.below(uint32_t(len - wire::kEthHeader));
      b.data()[off] ^= uint8_t(1u << rng_.below(8));
      st.impair_corrupted++;
    }
    if (!d) { wire_send(ifp, now_, b.data(), b.size()); continue; }
    if (ifp->delayed.size() >= im.queue_limit) { st.impair_queue_drops++; continue; }
    st.impair_delayed++;
    ifp->delayed.push_back({now_ + d, ifp->delay_seq++, std::move(b)});
    std::push_heap(ifp->delayed.begin(), ifp->delayed.end(), delayed_later);
  }
}

void Stack::impair_poll(Interface* ifp) {
  auto& q = ifp->delayed;
  while (!q.empty() && q.front().due <= now_) {
    std::pop_heap(q.begin(), q.end(), delayed_later);
    PacketBuf b = std::move(q.back().frame);
    q.pop_back();
    if (ifp->link) wire_send(ifp, now_, b.data(), b.size());
  }
}

// ---------------------------------------------------------------- ARP

static bool iface_has_v4(const Interface* ifp, const uint8_t* a) {
  for (auto& x : ifp->addrs)
    if (x.addr.family == 4 && std::memcmp(x.addr.b, a, 4) == 0) return true;
  return false;
}

/** the interface address to use as ARP sender for target (same subnet first) */
static const IpAddr* arp_source(const Interface* ifp, const IpAddr& target) {
  const IpAddr* first = nullptr;
  for (auto& x : ifp->addrs) {
    if (x.addr.family != 4) continue;
    if (prefix_match(x.addr, target, x.prefix)) return &x.addr;
    if (!first) first = &x.addr;
  }
  return first;
}

void Stack::arp_send(Interface* ifp, uint16_t op, const MacAddr& eth_dst, const MacAddr& tha, const uint8_t* spa, const uint8_t* tpa) {
  PacketBuf b(wire::kArpLen + 18, wire::kEthHeader);  // padded to the 60-byte minimum frame
  wire::ArpPacket a;
  a.op = op;
  a.sha = ifp->mac;
  a.tha = tha;
  std::memcpy(a.spa, spa, 4);
  std::memcpy(a.tpa, tpa, 4);
  uint8_t* p = b.append(wire::kArpLen + 18);
  wire::emit_arp(p, a);
  std::memset(p + wire::kArpLen, 0, 18);
  if (op == wire::kArpRequest) stats_.arp.out_requests++;
  else stats_.arp.out_replies++;
  eth_output(ifp, eth_dst, wire::kEtherArp, b);
}

void Stack::arp_probe(Interface* ifp, Neighbour* n, bool unicast) {
  n->probes++;
  n->timer = now_ + Micros(neigh_.config().probe_interval_ms) * 1000;
  neigh_.note_timer(n->timer);
  const IpAddr* src = arp_source(ifp, n->key.addr);
  if (!src) return;  // no address to ask from: the probes time out
  arp_send(ifp, wire::kArpRequest, unicast ? n->mac : wire::mac_broadcast(), MacAddr{}, src->b, n->key.addr.b);
}

void Stack::arp_input(Interface* ifp, const uint8_t* p, size_t len) {
  wire::ArpPacket a;
  if (!wire::parse_arp(p, len, &a)) {
    stats_.arp.in_malformed++;
    return;
  }
  if (a.op == wire::kArpRequest) stats_.arp.in_requests++;
  else stats_.arp.in_replies++;
  if (a.sha == ifp->mac || a.sha.is_multicast()) return;  // our own, or nonsense
  uint32_t spa_host = wire::ld32(a.spa);
  bool spa_valid = spa_host != 0 && spa_host != 0xffffffffu && (a.spa[0] < 224);
  if (spa_valid && iface_has_v4(ifp, a.spa)) {
    stats_.arp.duplicate_address++;  // someone else claims our address
    return;
  }
  bool for_us = iface_has_v4(ifp, a.tpa);
  if (spa_valid) {
    NeighbourKey k{IpAddr::v4_bytes(a.spa), ifp->index};
    Neighbour* n = neigh_.find(k);
    if (!n && for_us) {
      bool created;
      n = neigh_.get_or_create(k, &created, &stats_.arp.evictions);
      n->state = Neighbour::Failed;  // becomes Reachable just below
    }
    if (n) {
      n->mac = a.sha;
      n->confirmed = now_;
      n->probes = 0;
      n->timer = kNever;
      bool was_incomplete = n->state == Neighbour::Incomplete;
      n->state = Neighbour::Reachable;
      if (was_incomplete && !n->queue.empty()) {
        std::vector<PacketBuf> q;
        q.swap(n->queue);
        n->queue_bytes = 0;
        MacAddr mac = n->mac;
        for (auto& pkt : q) eth_output(ifp, mac, wire::kEtherIpv4, pkt);
      }
    }
  }
  if (!for_us) {
    stats_.arp.in_other_target++;
    return;
  }
  if (a.op == wire::kArpRequest) arp_send(ifp, wire::kArpReply, a.sha, a.sha, a.tpa, a.spa);
}

int Stack::neigh_output(Interface* ifp, const IpAddr& next_hop, PacketBuf& pkt) {
  NeighbourKey k{next_hop, ifp->index};
  Neighbour* n = neigh_.find(k);
  const uint16_t etype = next_hop.family == 6 ? wire::kEtherIpv6 : wire::kEtherIpv4;
  if (n) {
    if (next_hop.family == 6) {
      // RFC 4861 7.3.3: a stale entry is used, and probed after DELAY_FIRST_PROBE_TIME
      if (n->state == Neighbour::Reachable && now_ - n->confirmed > Micros(neigh_.config().reachable_ms) * 1000)
        n->state = Neighbour::Stale;
      if (n->state == Neighbour::Stale) {
        n->state = Neighbour::Delay;
        n->probes = 0;
        n->timer = now_ + Micros(neigh_.config().delay_first_probe_ms) * 1000;
        neigh_.note_timer(n->timer);
      }
      if (n->state == Neighbour::Reachable || n->state == Neighbour::Delay || n->state == Neighbour::Probe) {
        eth_output(ifp, n->mac, etype, pkt);
        return 0;
      }
    }
    if (n->state == Neighbour::Reachable) {
      if (now_ - n->confirmed > Micros(neigh_.config().reachable_ms) * 1000) {
        // stale: keep using it, confirm with unicast probes
        n->state = Neighbour::Probe;
        n->probes = 0;
        arp_probe(ifp, n, true);
      }
      eth_output(ifp, n->mac, etype, pkt);
      return 0;
    }
    if (n->state == Neighbour::Probe) {
      eth_output(ifp, n->mac, etype, pkt);
      return 0;
    }
    if (n->state == Neighbour::Failed) {
      if (now_ < n->timer) {
        stats_.arp.failed_drops++;
        return -EHOSTUNREACH;
      }
      n->state = Neighbour::Incomplete;
      n->probes = 0;
      n->timer = kNever;
    }
  } else {
    bool created;
    n = neigh_.get_or_create(k, &created, &stats_.arp.evictions);
    n->state = Neighbour::Incomplete;
  }
  // Incomplete: hold the packet (the oldest goes when the queue is full)
  auto& cfg = neigh_.config();
  while (!n->queue.empty() && (n->queue.size() >= cfg.queue_packets || n->queue_bytes + pkt.size() > cfg.queue_bytes)) {
    n->queue_bytes -= n->queue.front().size();
    n->queue.erase(n->queue.begin());
    stats_.arp.queue_drops++;
  }
  n->queue_bytes += pkt.size();
  n->queue.push_back(std::move(pkt));
  if (n->probes == 0) neigh_probe(ifp, n, false);
  return 0;
}

void Stack::neigh_probe(Interface* ifp, Neighbour* n, bool unicast) {
  if (n->key.addr.family == 6) ndp_probe(ifp, n, unicast); else arp_probe(ifp, n, unicast);
  if (n->state != Neighbour::Incomplete) return;
  // resolution fails max_probes intervals after the first probe, however late the polls that
  // sent the probes ran: a ping sent with the first probe fails through neighbour_failed
  // (EHOSTUNREACH) no later than its own timeout of the same length (ETIMEDOUT)
  if (n->probes == 1) {
    n->since = now_;
  } else if (n->probes >= neigh_.config().max_probes) {
    Micros interval = n->timer - now_;
    n->timer = std::max(now_, std::min(n->timer, n->since + interval * n->probes));
    neigh_.note_timer(n->timer);
  }
}

void Stack::neighbour_failed(Neighbour* n) {
  stats_.arp.resolve_failures++;
  n->state = Neighbour::Failed;
  n->timer = now_ + Micros(neigh_.config().failed_hold_ms) * 1000;
  std::vector<PacketBuf> q;
  q.swap(n->queue);
  n->queue_bytes = 0;
  // what was waiting learns of the failure, as a local host unreachable would tell it
  for (auto& pkt : q) {
    if (pkt.size() && (pkt.data()[0] >> 4) == 6) { v6_neigh_failed_packet(pkt); continue; }
    wire::Ipv4Header h;
    if (wire::parse_ipv4(pkt.data(), pkt.size(), false, &h) != wire::Ipv4Error::None) continue;
    IpAddr dst = IpAddr::v4_bytes(h.dst);
    if (h.proto == wire::kProtoTcp) {
      if (std::find(tcp_failed_.begin(), tcp_failed_.end(), dst) == tcp_failed_.end()) tcp_failed_.push_back(dst);
    } else if (h.proto == wire::kProtoUdp) {
      udp_error(pkt.data(), pkt.size(), EHOSTUNREACH, true);
    } else if (h.proto == wire::kProtoIcmp && h.frag_offset == 0 && h.total_len >= h.header_len + 8) {
      const uint8_t* ic = pkt.data() + h.header_len;
      if (ic[0] == 8 && wire::ld16(ic + 4) == ping_id_) ping_fail(wire::ld16(ic + 6), EHOSTUNREACH);
    }
  }
  // pings to that address whose request is no longer queued (the queue is bounded) fail too
  size_t kept = 0;
  for (auto& p : pings_) {
    if (p.dst == n->key.addr) ping_failed(p, EHOSTUNREACH);
    else pings_[kept++] = p;
  }
  pings_.resize(kept);
}

void Stack::arp_poll() {
  if (now_ < neigh_.next_timer()) return;
  Micros next = kNever;
  std::vector<NeighbourKey> gone;
  for (auto& n : neigh_.entries()) {
    if (n.state == Neighbour::Delay) {
      if (n.timer <= now_) {  // no upper-layer confirmation came: probe (RFC 4861 7.3.3)
        n.state = Neighbour::Probe;
        n.probes = 0;
        if (Interface* ifp = iface(n.key.ifindex)) ndp_probe(ifp, &n, true);
        else n.timer = now_;
      }
      next = std::min(next, n.timer);
      continue;
    }
    if (n.state != Neighbour::Incomplete && n.state != Neighbour::Probe) continue;
    if (n.timer <= now_) {
      Interface* ifp = iface(n.key.ifindex);
      if (!ifp || n.probes >= neigh_.config().max_probes) {
        if (n.state == Neighbour::Incomplete) neighbour_failed(&n);
        else gone.push_back(n.key);  // a stale entry that stopped answering: resolve afresh
        continue;
      }
      neigh_probe(ifp, &n, n.state == Neighbour::Probe);
    }
    next = std::min(next, n.timer);
  }
  for (auto& k : gone) neigh_.erase(k);
  neigh_.set_next_timer(next);
}

}  // namespace ms
