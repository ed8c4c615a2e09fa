// Segment generation: what to send now (new data under Nagle/SWS/cwnd/rwnd, SACK-based loss
// recovery per RFC 6675 with RACK's lost marks, go-back-N after an RTO), building segments
// straight into PacketBufs, ACKs with SACK and D-SACK blocks, window advertisement, the
// retransmission and persist timers.
#include <algorithm>

#include "tcp_internal.h"

namespace ms {
using namespace tcpw;

uint16_t TcpCore::rcv_window(TcpSocket* s, bool update) {
  // the advertised right edge never moves left; it moves right only by at least
  // min(buffer/2, MSS) (receiver-side SWS avoidance, RFC 9293 3.8.6.2.2). Rounded down to the
  // scale so that no advertised edge is beyond the buffer.
  uint32_t cap = s->rcvbuf_cap;
  uint32_t freesp = cap > s->rcv_unread ? cap - s->rcv_unread : 0;
  if (s->rd_shut && s->orphan) freesp = 0;
  uint32_t cand = s->rcv_nxt + freesp;
  uint32_t edge = seq_lt(s->rcv_adv, s->rcv_nxt) ? s->rcv_nxt : s->rcv_adv;
  // Without SACK the peer knows of a hole only by duplicate ACKs, and an ACK whose window
  // changed is no duplicate (RFC 5681 2, (e)): while data waits beyond a hole, the edge stays
  // where it is (the application reading what came before the hole would otherwise move it
  // in the very next duplicate ACK), as long as the peer may still send four segments beyond
  // what is held: new data is what draws duplicate ACKs, and a window filled by held data
  // would leave only the retransmission timer.
  bool hold = !s->sack_ok && !s->ofo.empty() && seq_lt(s->ofo.back().end, edge) &&
              edge - s->ofo.back().end >= 4 * s->mss;
  if (!hold && seq_gt(cand, edge)) {
    uint32_t inc = cand - edge;
    uint32_t thresh = std::min(cap / 2, s->mss);
    if (inc >= thresh) edge = cand;
  }
  uint64_t field = uint64_t(edge - s->rcv_nxt) >> s->rcv_wscale;
  if (field > 65535) field = 65535;
  if (update) {
    uint32_t ne = s->rcv_nxt + uint32_t(field << s->rcv_wscale);
    if (seq_gt(ne, s->rcv_adv)) s->rcv_adv = ne;
  }
  return uint16_t(field);
}

void TcpCore::send_raw(const IpAddr& src, const IpAddr& dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                       uint8_t flags, uint16_t wnd, const uint8_t* opts, size_t optlen, bool offload) {
  size_t hl = kHeaderLen + ((optlen + 3) & ~size_t(3));
  PacketBuf pb(hl);
  uint8_t* h = pb.append(hl);
  put16(h, sport); put16(h + 2, dport);
  put32(h + 4, seq); put32(h + 8, ack);
  h[12] = uint8_t((hl / 4) << 4);
  h[13] = flags;
  put16(h + 14, wnd);
  h[16] = h[17] = 0; h[18] = h[19] = 0;
  if (optlen) std::memcpy(h + kHeaderLen, opts, optlen);
  for (size_t i = kHeaderLen + optlen; i < hl; i++) h[i] = kOptEnd;
  if (!offload) set_checksum(src, dst, h, hl);
  st.out_segs++;
  if (flags & kRst) st.out_rsts++;
  host.output(src, dst, std::move(pb));
}

void TcpCore::send_rst_for(const IpAddr& src, const IpAddr& dst, const TcpSegment& seg) {
  if (seg.has(kRst)) return;
  if (dst.family == 4 && (dst.b[0] >= 224 || dst.b[0] == 0)) return;  // never answer multicast/broadcast
  RouteInfo ri;
  bool offload = host.route(src, &ri) == 0 && ri.csum_offload;
  if (seg.has(kAck)) send_raw(dst, src, seg.dport, seg.sport, seg.ack, 0, kRst, 0, nullptr, 0, offload);
  else send_raw(dst, src, seg.dport, seg.sport, 0, seg.seq + seg.seg_len(), kRst | kAck, 0, nullptr, 0, offload);
}

void TcpCore::send_rst(TcpSocket* s) {
  send_raw(s->local.addr, s->remote.addr, s->local.port, s->remote.port, s->snd_nxt, s->rcv_nxt, kRst | kAck, 0,
           nullptr, 0, s->route.csum_offload);
}

bool TcpCore::send_segment(TcpSocket* s, uint32_t seq, uint32_t len, uint8_t flags, bool rexmit) {
  uint8_t opts[40];
  size_t n = 0;
  bool syn = flags & kSyn;
  if (syn) {
    uint32_t hdr = (ip6_wire(s->remote.addr) ? 40 : 20) + 20;
    uint32_t adv = s->pmtu > hdr ? s->pmtu - hdr : 536;
    if (cfg.mss) adv = std::min(adv, cfg.mss);
    adv = std::min<uint32_t>(adv, 65535);
    opts[n++] = kOptMss; opts[n++] = 4; put16(opts + n, uint16_t(adv)); n += 2;
    bool active = s->state == TcpState::SynSent || s->state == TcpState::Closed;
    bool ws = active ? cfg.window_scale : s->ws_ok;
    bool sack = active ? cfg.sack : s->sack_ok;
    bool ts = active ? cfg.timestamps : s->ts_ok;
    if (ws) { opts[n++] = kOptNop; opts[n++] = kOptWs; opts[n++] = 3; opts[n++] = s->rcv_wscale; }
    if (sack && !ts) { opts[n++] = kOptNop; opts[n++] = kOptNop; opts[n++] = kOptSackOk; opts[n++] = 2; }
    if (ts) {
      if (sack) { opts[n++] = kOptSackOk; opts[n++] = 2; } else { opts[n++] = kOptNop; opts[n++] = kOptNop; }
      opts[n++] = kOptTs; opts[n++] = 10; put32(opts + n, ts_now(s->ts_offset));
      put32(opts + n + 4, (flags & kAck) ? s->ts_recent : 0); n += 8;
    }
  } else {
    if (s->ts_ok) {
      opts[n++] = kOptNop; opts[n++] = kOptNop; opts[n++] = kOptTs; opts[n++] = 10;
      put32(opts + n, ts_now(s->ts_offset)); put32(opts + n + 4, s->ts_recent); n += 8;
    }
    if (s->sack_ok && (flags & kAck) && (!s->ofo.empty() || s->dsack_pending)) {
      // RFC 2018: the first block covers the most recently received segment, then others by
      // recency; RFC 2883: a D-SACK goes first, followed by the block holding it if any
      size_t maxb = s->ts_ok ? 3 : 4;
      size_t nb = 0;
      uint32_t blocks[4][2];
      const OfoBlock* holder = nullptr;
      if (s->dsack_pending) {
        blocks[nb][0] = s->dsack_start; blocks[nb][1] = s->dsack_end; nb++;
        for (const OfoBlock& o : s->ofo)
          if (seq_le(o.start, s->dsack_start) && seq_ge(o.end, s->dsack_end)) { holder = &o; break; }
        if (holder) { blocks[nb][0] = holder->start; blocks[nb][1] = holder->end; nb++; }
        s->dsack_pending = false;
        st.dsacks_out++;
      }
      uint32_t last_stamp = UINT32_MAX;
      while (nb < maxb) {
        const OfoBlock* best = nullptr;
        for (const OfoBlock& o : s->ofo)
          if (o.stamp < last_stamp && (!best || o.stamp > best->stamp)) best = &o;
        if (!best) break;
        last_stamp = best->stamp;
        if (best == holder) continue;
        blocks[nb][0] = best->start; blocks[nb][1] = best->end; nb++;
      }
      opts[n++] = kOptNop; opts[n++] = kOptNop; opts[n++] = kOptSack; opts[n++] = uint8_t(2 + 8 * nb);
      for (size_t b = 0; b < nb; b++) { put32(opts + n, blocks[b][0]); put32(opts + n + 4, blocks[b][1]); n += 8; }
    }
  }
  size_t hl = kHeaderLen + ((n + 3) & ~size_t(3));
  // keep the IP packet within the path MTU whatever the options took
  uint32_t iph = ip6_wire(s->remote.addr) ? 40 : 20;
  uint32_t maxpay = s->pmtu > iph + hl ? uint32_t(s->pmtu - iph - hl) : 0;
  if (len > maxpay) len = maxpay;
  if (len > s->mss) len = s->mss;
  if (len && s->fin_queued && seq + len != s->data_end()) flags &= uint8_t(~kFin);
  PacketBuf pb(hl + len);
  uint8_t* h = pb.append(hl + len);
  put16(h, s->local.port); put16(h + 2, s->remote.port);
  put32(h + 4, seq);
  put32(h + 8, (flags & kAck) ? s->rcv_nxt : 0);
  h[12] = uint8_t((hl / 4) << 4);
  h[16] = h[17] = 0; h[18] = h[19] = 0;
  uint16_t wnd;
  if (syn) {
    wnd = uint16_t(std::min<uint32_t>(s->rcvbuf_cap, 65535));
    if (flags & kAck) s->rcv_adv = seq_max(s->rcv_adv, s->rcv_nxt + wnd);
  } else {
    wnd = rcv_window(s, true);
  }
  if (len && seq + len == s->data_end()) flags |= kPsh;
  h[13] = flags;
  put16(h + 14, wnd);
  if (n) std::memcpy(h + kHeaderLen, opts, n);
  for (size_t i = kHeaderLen + n; i < hl; i++) h[i] = kOptEnd;
  if (len) s->sbuf.copy_out(seq - s->snd_buf_seq, h + hl, len);
  if (!s->route.csum_offload) set_checksum(s->local.addr, s->remote.addr, h, hl + len);
  if (flags & kAck) {
    s->last_ack_sent = s->rcv_nxt;
    s->ack_pending = 0;
    s->ack_now = false;
    s->t_delack = kNever;
  }
  uint32_t seglen = len + (syn ? 1 : 0) + ((flags & kFin) ? 1 : 0);
  if (seglen) {
    if (s->sack_ok && !syn) tx_sent(s, seq, seglen, rexmit);
    if (rexmit) {
      st.retrans_segs++; s->total_retrans++;
      if (!s->sack_ok && !syn) {
        if (seq_gt(seq + seglen, s->rexmit_high)) s->rexmit_high = seq + seglen;
        if (seq == s->snd_una) { s->una_rexmit_at = now; s->late_dupacks = 0; }
      }
    }
    else if (!s->rtt_timing && seq == s->snd_max) { s->rtt_timing = true; s->rtt_seq = seq + seglen; s->rtt_start = now; }
    if (s->t_rto == kNever) s->t_rto = now + s->rto_us;
  }
  st.out_segs++;
  s->last_sent_len = len;
  host.output(s->local.addr, s->remote.addr, std::move(pb));
  return true;
}

void TcpCore::send_probe(TcpSocket* s) {
  // an old sequence number with no data: the peer answers with an ACK carrying its window
  send_segment(s, s->snd_una - 1, 0, kAck, false);
}

void TcpCore::schedule_delack(TcpSocket* s) {
  if (s->t_delack == kNever) s->t_delack = now + Micros(cfg.delayed_ack_ms) * 1000;
}

void TcpCore::set_rto_timer(TcpSocket* s) {
  bool outstanding = s->snd_una != s->snd_max || s->state == TcpState::SynSent || s->state == TcpState::SynReceived;
  s->t_rto = outstanding ? now + s->rto_us : kNever;
}

void TcpCore::keepalive_reset(TcpSocket* s) {
  s->t_keep = s->keepalive && s->state >= TcpState::Established && s->state != TcpState::TimeWait
                  ? s->last_recv_time + Micros(s->keep_idle_ms) * 1000
                  : kNever;
  if (s->t_keep != kNever && s->t_keep < now) s->t_keep = now;
}

void TcpCore::persist_check(TcpSocket* s) {
  // data waiting, nothing in flight, and nothing went out: probe the window (or override SWS)
  bool waiting = s->snd_una == s->snd_max && seq_lt(s->snd_nxt, s->data_end());
  if (!waiting) { s->t_persist = kNever; s->persist_backoff = 0; return; }
  if (s->t_persist == kNever) {
    uint64_t iv = std::max<uint64_t>(s->rto_us, uint64_t(cfg.rto_min_ms) * 1000);
    s->t_persist = now + std::min<uint64_t>(iv, uint64_t(cfg.rto_max_ms) * 1000);
  }
}

void TcpCore::persist_fire(TcpSocket* s) {
  bool waiting = s->snd_una == s->snd_max && seq_lt(s->snd_nxt, s->data_end());
  if (!waiting || s->state < TcpState::Established) return;
  if (s->snd_wnd == 0) {
    st.zero_window_probes++;
    if (s->persist_backoff < 16) s->persist_backoff++;
    send_probe(s);
    uint64_t iv = uint64_t(std::max<uint32_t>(s->rto_us, cfg.rto_min_ms * 1000)) << std::min<uint32_t>(s->persist_backoff, 12);
    s->t_persist = now + std::min<uint64_t>(iv, uint64_t(cfg.rto_max_ms) * 1000);
  } else {
    s->force_send = true;
    output(s);
    s->force_send = false;
  }
}

void TcpCore::retransmit_first(TcpSocket* s) {
  uint32_t end = s->data_end();
  uint32_t len = seq_lt(s->snd_una, end) ? std::min(s->mss, end - s->snd_una) : 0;
  uint8_t flags = kAck;
  if (s->fin_sent && s->snd_una + len == end) flags |= kFin;
  if (len == 0 && !(flags & kFin)) return;
  send_segment(s, s->snd_una, len, flags, true);
}

// RFC 6675 NextSeg(), with RACK's lost marks for IsLost(): (1) the lowest segment marked lost
// and not retransmitted since, (2) new data the peer's window allows. The rule (3)/(4)
// retransmissions of segments not deemed lost are left to RACK's timer and the loss probe.
bool TcpCore::next_seg(TcpSocket* s, uint32_t* seq, uint32_t* len, uint8_t* flags, bool* rexmit) {
  uint32_t end = s->data_end();
  size_t i;
  if (next_lost(s, &i)) {
    const TxSeg& e = s->txq[i];
    bool fin = s->fin_sent && seq_gt(e.end, end);
    uint32_t dlen = (fin ? e.end - 1 : e.end) - e.start;
    *seq = e.start;
    *len = std::min(dlen, s->mss);
    *flags = uint8_t(kAck | ((fin && *len == dlen) ? kFin : 0));
    *rexmit = true;
    return true;
  }
  uint32_t wnd_end = s->send_window_end();
  if (seq_lt(s->snd_max, end) && seq_lt(s->snd_max, wnd_end)) {
    *seq = s->snd_max;
    *len = std::min(std::min(s->mss, end - s->snd_max), wnd_end - s->snd_max);
    *flags = uint8_t(kAck | ((s->fin_queued && *seq + *len == end) ? kFin : 0));
    *rexmit = false;
    return true;
  }
  if (s->fin_queued && !s->fin_sent && s->snd_max == end) {
    *seq = end; *len = 0; *flags = kAck | kFin; *rexmit = false;
    return true;
  }
  return false;
}

void TcpCore::output(TcpSocket* s) {
  if (s->dead) return;
  switch (s->state) {
    case TcpState::Established: case TcpState::CloseWait: case TcpState::FinWait1:
    case TcpState::Closing: case TcpState::LastAck: break;
    case TcpState::FinWait2: case TcpState::TimeWait: case TcpState::SynReceived:
      if (s->ack_now) send_ack(s);
      return;
    default:
      return;
  }
  bool sent = false, sent_new = false;
  for (int guard = 0; guard < 4096; guard++) {
    uint32_t end = s->data_end();
    uint32_t wnd_end = s->send_window_end();
    if (s->in_recovery && s->sack_recovery) {
      uint32_t pp = pipe(s);
      if (pp >= s->cwnd || s->cwnd - pp < s->mss) break;
      uint32_t seq, len; uint8_t flags; bool rex;
      if (!next_seg(s, &seq, &len, &flags, &rex)) break;
      send_segment(s, seq, len, flags, rex);
      len = s->last_sent_len;
      if (len == 0 && !(flags & kFin)) break;
      sent = true;
      if (!rex) {
        if (seq + len != end) flags &= uint8_t(~kFin);
        s->snd_max = s->snd_nxt = seq + len + ((flags & kFin) ? 1 : 0);
        if (flags & kFin) s->fin_sent = true;
      }
      continue;
    }
    // go-back-N after an RTO skips what the peer has SACKed
    bool resend = seq_lt(s->snd_nxt, s->snd_max);
    if (resend) {
      for (const SeqRange& b : s->sacked)
        if (seq_le(b.start, s->snd_nxt) && seq_lt(s->snd_nxt, b.end)) s->snd_nxt = b.end;
      if (seq_ge(s->snd_nxt, s->snd_max)) { s->snd_nxt = s->snd_max; s->loss_state = false; continue; }
    }
    uint32_t in_flight;
    if (s->in_recovery) in_flight = s->snd_max - s->snd_una;  // NewReno: cwnd is inflated instead
    else if (resend) {
      in_flight = (s->snd_nxt - s->snd_una) - sacked_in(s, s->snd_una, s->snd_nxt);
      // without SACK, each duplicate ACK is a segment that left the network (as NewReno's
      // inflation): the resend goes on, and what it sends draws the duplicate ACKs that find a
      // lost resend (late_dupack)
      if (!s->sack_ok) {
        uint64_t gone = uint64_t(s->dupacks) * s->mss;
        in_flight = gone < in_flight ? in_flight - uint32_t(gone) : 0;
      }
    }
    else {
      in_flight = pipe(s);
      // RFC 3042 limited transmit (without SACK; with it, pipe already leaves SACKed data out):
      // each of the first two duplicate ACKs lets one new segment out beyond cwnd, so that a
      // small window still draws the three duplicate ACKs fast retransmit needs. After an RTO
      // (fast retransmit is not used below "recover"), every duplicate ACK counts as a segment
      // gone, as during the go-back-N resend.
      if (!s->sack_ok && s->dupacks) {
        uint64_t lt = uint64_t(s->loss_state ? s->dupacks : std::min<uint32_t>(s->dupacks, 2)) * s->mss;
        in_flight = in_flight > lt ? in_flight - uint32_t(lt) : 0;
      }
    }
    uint32_t cw_room = s->cwnd > in_flight ? s->cwnd - in_flight : 0;
    uint32_t seq = s->snd_nxt;
    bool fin_only = seq_ge(seq, end);
    if (fin_only) {
      // nothing but maybe the FIN (first time or after an RTO)
      bool need_fin = s->fin_queued && (resend ? s->fin_sent && seq == end : !s->fin_sent);
      if (!need_fin) break;
      if (!resend && s->snd_una != s->snd_max && cw_room == 0) break;
      send_segment(s, seq, 0, kAck | kFin, resend);
      s->fin_sent = true;
      s->snd_nxt = seq + 1;
      if (seq_gt(s->snd_nxt, s->snd_max)) { s->snd_max = s->snd_nxt; sent_new = true; }
      sent = true;
      break;
    }
    uint32_t limit_end = resend ? seq_max(wnd_end, s->snd_max) : wnd_end;
    uint32_t wnd_room = seq_gt(limit_end, seq) ? limit_end - seq : 0;
    uint32_t avail = end - seq;
    if (resend) {
      avail = std::min(avail, s->snd_max - seq);
      for (const SeqRange& b : s->sacked)
        if (seq_gt(b.start, seq)) { avail = std::min(avail, b.start - seq); break; }
    }
    uint32_t len = std::min(std::min(avail, s->mss), std::min(wnd_room, cw_room));
    if (len == 0) {
      if (cw_room && wnd_room == 0 && !resend && s->snd_wnd == 0) persist_check(s);
      break;
    }
    if (!resend && len < s->mss && !s->force_send) {
      if (len < avail) {
        // window- or cwnd-limited small segment: sender SWS avoidance (RFC 9293 3.8.6.2.1)
        if (len < s->max_snd_wnd / 2 || cw_room < s->mss) {
          if (s->snd_una == s->snd_max) persist_check(s);
          break;
        }
      } else if (!s->nodelay && s->snd_una != s->snd_max && !s->fin_queued) {
        break;  // Nagle: a small segment waits for the ACK of what is in flight
      }
    }
    uint8_t flags = kAck;
    if (s->fin_queued && seq + len == end && (!resend || s->fin_sent)) flags |= kFin;
    send_segment(s, seq, len, flags, resend);
    len = s->last_sent_len;
    if (len == 0) break;
    sent = true;
    if (seq + len != end) flags &= uint8_t(~kFin);
    s->snd_nxt = seq + len + ((flags & kFin) ? 1 : 0);
    if (flags & kFin) s->fin_sent = true;
    if (seq_gt(s->snd_nxt, s->snd_max)) { s->snd_max = s->snd_nxt; sent_new = true; }
    if (s->force_send) break;
  }
  if (!sent && (s->ack_now)) send_ack(s);
  if (sent_new && s->sack_ok && !s->tlp_active) tlp_schedule(s);  // RFC 8985 7.2: after new data
  else if (sent_new && !s->sack_ok) una_probe_schedule(s);
  if (s->snd_una == s->snd_max && seq_lt(s->snd_nxt, s->data_end())) persist_check(s);
  else if (s->snd_una != s->snd_max) s->t_persist = kNever;
}

void TcpCore::on_rto(TcpSocket* s) {
  if (s->state == TcpState::SynSent || s->state == TcpState::SynReceived) {
    uint32_t limit = s->state == TcpState::SynSent ? cfg.syn_retries : cfg.syn_ack_retries;
    if (s->backoff >= limit) {
      st.attempt_fails++;
      conn_done(s, s->soft_error ? s->soft_error : -ETIMEDOUT);
      return;
    }
    s->backoff++;
    s->rto_us = uint32_t(std::min<uint64_t>(uint64_t(s->rto_us) * 2, uint64_t(cfg.rto_max_ms) * 1000));
    st.timeouts++;
    s->rtt_timing = false;
    send_segment(s, s->iss, 0, s->state == TcpState::SynSent ? uint8_t(kSyn) : uint8_t(kSyn | kAck), true);
    s->t_rto = now + s->rto_us;
    return;
  }
  if (s->state < TcpState::Established || s->state == TcpState::TimeWait) return;
  if (s->snd_una == s->snd_max) return;
  uint32_t limit = cfg.retries2;
  if (s->orphan) limit = std::min<uint32_t>(limit, 8);
  if (s->backoff >= limit) {
    conn_done(s, s->soft_error ? s->soft_error : -ETIMEDOUT);
    return;
  }
  st.timeouts++;
  bool fresh = s->backoff == 0 && !s->loss_state;
  s->probe_on = false;
  s->t_tlp = kNever;
  if (s->sack_ok) {
    s->t_tlp = s->t_rack = kNever;
    s->tlp_active = false;
    if (fresh) undo_begin(s, true);
    else s->undo_cur_on = false;  // a repeated timeout: nothing of this episode will be undone
  }
  if (fresh) s->ssthresh = cc->on_loss(*s, now);
  bool reneg = s->backoff >= 1;
  if (reneg) { s->sacked.clear(); s->sacked_bytes = 0; }  // protect against SACK reneging
  if (s->sack_ok) tx_mark_all_lost(s, reneg);
  s->cwnd = s->mss;
  s->ca_acc = 0;
  if (s->sack_ok && fresh) undo_post(s);
  s->in_recovery = false;
  s->sack_recovery = false;
  s->dupacks = 0;
  s->snd_nxt = s->snd_una;
  s->loss_state = true;
  s->loss_recover = s->snd_max;
  // RFC 6582 4.1: duplicate ACKs below what was sent before the timeout may come from the
  // go-back-N resend itself; they do not start a fast retransmit (lost resends are found by
  // late_dupack())
  s->recover = s->snd_max;
  s->rtt_timing = false;
  s->backoff++;
  s->rto_us = uint32_t(std::min<uint64_t>(uint64_t(s->rto_us) * 2, uint64_t(cfg.rto_max_ms) * 1000));
  s->t_rto = kNever;
  output(s);
  if (s->t_rto == kNever) s->t_rto = now + s->rto_us;
}

}  // namespace ms
