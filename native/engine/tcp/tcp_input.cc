// Segment arrival (RFC 9293 3.10.7) with RFC 5961 (blind RST/SYN/data mitigations), RFC 7323
// (PAWS, timestamps), RFC 2018/6675 (SACK scoreboard), RFC 2883 (D-SACK, both directions),
// RFC 6298 (RTT), RFC 6582 (NewReno partial ACKs), reassembly into the receive ring, delayed
// ACKs. Loss detection for SACK connections is RACK (tcp_recovery.cc); without SACK it is
// duplicate ACKs: RFC 5681/6582 fast retransmit, RFC 5827 early retransmit, and late_dupack()
// for lost retransmissions.
#include <algorithm>

#include "tcp_internal.h"

namespace ms {
using namespace tcpw;

static constexpr Micros kPawsIdle = 24ull * 24 * 3600 * 1000000;  // RFC 7323 5.5: ts_recent older than 24 days is stale

void TcpCore::input(const IpAddr& src, const IpAddr& dst, const uint8_t* p, size_t len) {
  st.in_segs++;
  TcpSegment seg;
  if (!seg.parse(p, len) || seg.sport == 0 || seg.dport == 0 || src.family != dst.family ||
      (src.family != 4 && src.family != 6)) {
    st.in_errs++;
    return;
  }
  TcpSocket* s = find_conn(dst, seg.dport, src, seg.sport);
  TwRecord* tw = s ? nullptr : find_tw(dst, seg.dport, src, seg.sport);
  if (!s && !tw && src.family == 4 && reqs.find(make_key(dst, seg.dport, src, seg.sport)) == reqs.end() &&
      !find_listener(dst, seg.dport)) {
    // nothing of IPv4 wants it: a dual-stack AF_INET6 socket may (as ::ffff:a.b.c.d)
    IpAddr ms = v4_mapped(src), md = v4_mapped(dst);
    if (find_conn(md, seg.dport, ms, seg.sport) || find_tw(md, seg.dport, ms, seg.sport) ||
        reqs.find(make_key(md, seg.dport, ms, seg.sport)) != reqs.end() || find_listener(md, seg.dport)) {
      st.in_segs--;
      input(ms, md, p, len);
      return;
    }
  }
  if (tw) {
    bool reopen = false;
    tw_input(tw, seg, &reopen);
    if (!reopen) return;
  }
  if (s && s->state == TcpState::TimeWait) {
    bool reopen = false;
    s->heap_refs++;
    time_wait_input(s, src, dst, seg, &reopen);
    if (--s->heap_refs == 0 && s->dead) delete s;
    if (!reopen) return;
    s = nullptr;
  }
  if (s) {
    s->heap_refs++;
    conn_input(s, seg);
    if (--s->heap_refs == 0 && s->dead) { delete s; return; }
    if (!s->dead) arm(s);
    return;
  }
  auto rit = reqs.find(make_key(dst, seg.dport, src, seg.sport));
  if (rit != reqs.end()) {
    TcpSocket* l = rit->second->listener;
    req_input(rit->second, src, dst, seg);
    arm(l);
    return;
  }
  TcpSocket* l = find_listener(dst, seg.dport);
  if (l && host.accepts_new_connections(dst)) {
    listen_input(l, src, dst, seg);
    arm(l);
    return;
  }
  send_rst_for(src, dst, seg);
}

void TcpCore::time_wait_input(TcpSocket* s, const IpAddr& src, const IpAddr& dst, const TcpSegment& seg, bool* reopen) {
  if (seg.has(kRst)) return;  // RFC 1337: TIME-WAIT ignores RSTs
  if (seg.has(kSyn) && !seg.has(kAck)) {
    // RFC 6191 / RFC 9293 3.10.7.4: a new incarnation may take the tuple over if it is provably newer
    bool newer = (s->ts_ok && seg.opt.has_ts) ? int32_t(seg.opt.tsval - s->ts_recent) > 0 : seq_gt(seg.seq, s->rcv_nxt);
    if (newer) {
      conn_done(s, 0);
      *reopen = true;
      return;
    }
    send_ack(s);
    return;
  }
  if (s->ts_ok && seg.opt.has_ts && int32_t(seg.opt.tsval - s->ts_recent) < 0) { st.paws_drops++; send_ack(s); return; }
  if (seg.has(kFin)) {
    // the peer did not see our ACK of its FIN: ACK again and restart the 2MSL wait
    send_ack(s);
    s->t_misc = now + Micros(cfg.time_wait_ms) * 1000;
    arm(s);
    return;
  }
  if (seg.seg_len()) send_ack(s);
}

// the same rules as time_wait_input(), for a record
void TcpCore::tw_input(TwRecord* r, const TcpSegment& seg, bool* reopen) {
  if (seg.has(kRst)) return;  // RFC 1337
  if (seg.has(kSyn) && !seg.has(kAck)) {
    bool newer = (r->ts_ok && seg.opt.has_ts) ? int32_t(seg.opt.tsval - r->ts_recent) > 0 : seq_gt(seg.seq, r->rcv_nxt);
    if (newer) {
      tw_free(r);
      *reopen = true;
      return;
    }
    tw_send_ack(r);
    return;
  }
  if (r->ts_ok && seg.opt.has_ts && int32_t(seg.opt.tsval - r->ts_recent) < 0) { st.paws_drops++; tw_send_ack(r); return; }
  if (seg.has(kFin)) {
    tw_send_ack(r);
    tw_unlink(r);
    r->deadline = now + Micros(cfg.time_wait_ms) * 1000;
    tw_link(r);
    return;
  }
  if (seg.seg_len()) tw_send_ack(r);
}

void TcpCore::syn_sent_input(TcpSocket* s, const TcpSegment& seg) {
  if (seg.has(kAck) && (seq_le(seg.ack, s->iss) || seq_gt(seg.ack, s->snd_max))) {
    if (!seg.has(kRst))
      send_raw(s->local.addr, s->remote.addr, s->local.port, s->remote.port, seg.ack, 0, kRst, 0, nullptr, 0,
               s->route.csum_offload);
    return;
  }
  if (seg.has(kRst)) {
    if (seg.has(kAck)) {  // RFC 5961 3.2: only an RST acknowledging our SYN counts
      st.in_rsts++;
      st.attempt_fails++;
      conn_done(s, -ECONNREFUSED);
    }
    return;
  }
  if (!seg.has(kSyn)) return;
  s->irs = seg.seq;
  s->rcv_nxt = seg.seq + 1;
  s->peer_mss = seg.opt.has_mss ? std::max<uint16_t>(seg.opt.mss, 64) : (ip6_wire(s->remote.addr) ? 1220 : 536);
  s->ws_ok = cfg.window_scale && seg.opt.has_ws;
  s->snd_wscale = s->ws_ok ? seg.opt.ws : 0;
  if (!s->ws_ok) s->rcv_wscale = 0;
  s->sack_ok = cfg.sack && seg.opt.sack_ok;
  s->ts_ok = cfg.timestamps && seg.opt.has_ts;
  if (s->ts_ok) { s->ts_recent = seg.opt.tsval; s->ts_recent_time = now; }
  s->mss = compute_mss(s);
  s->snd_wnd = seg.wnd;  // never scaled in a SYN
  s->max_snd_wnd = s->snd_wnd;
  s->snd_wl1 = seg.seq;
  s->snd_wl2 = seg.ack;
  s->rcv_adv = s->rcv_nxt + std::min<uint32_t>(s->rcvbuf_cap, 65535);
  s->last_recv_time = now;
  if (seg.has(kAck)) {
    if (s->rtt_timing && seq_ge(seg.ack, s->rtt_seq)) { rtt_sample(s, uint32_t(now - s->rtt_start)); }
    s->rtt_timing = false;
    s->cwnd = (s->backoff ? 1 : cfg.initial_window_segments) * s->mss;
    s->backoff = 0;
    s->snd_una = seg.ack;
    s->snd_nxt = s->snd_max = seq_max(s->snd_max, seg.ack);
    s->t_rto = kNever;
    s->state = TcpState::Established;
    s->ever_connected = true;
    s->quickack = 16;
    s->ack_now = true;
    if (s->fin_queued) s->state = TcpState::FinWait1;
    keepalive_reset(s);
    queue_notify(s);
    if (seg.plen || seg.has(kFin)) {
      TcpSegment rest = seg;
      rest.seq = seg.seq + 1;
      rest.flags &= uint8_t(~kSyn);
      process_data(s, rest);
    }
    output(s);
    return;
  }
  // simultaneous open (RFC 9293 3.5 figure 8)
  s->state = TcpState::SynReceived;
  s->rtt_timing = false;
  send_segment(s, s->iss, 0, kSyn | kAck, false);
  s->t_rto = now + s->rto_us;
}

void TcpCore::conn_input(TcpSocket* s, const TcpSegment& seg) {
  if (s->state == TcpState::SynSent) { syn_sent_input(s, seg); return; }
  if (s->state == TcpState::Closed || s->state == TcpState::Listen) return;
  // a crossed SYN-ACK in simultaneous open acknowledges our SYN (as Linux does)
  if (s->state == TcpState::SynReceived && seg.has(kSyn) && seg.has(kAck) && !seg.has(kRst) && seg.seq + 1 == s->rcv_nxt &&
      seg.ack == s->snd_max) {
    s->state = TcpState::Established;
    s->ever_connected = true;
    s->snd_una = seg.ack;
    s->snd_wnd = seg.wnd;
    s->max_snd_wnd = std::max(s->max_snd_wnd, s->snd_wnd);
    s->snd_wl1 = seg.seq; s->snd_wl2 = seg.ack;
    s->cwnd = (s->backoff ? 1 : cfg.initial_window_segments) * s->mss;
    s->backoff = 0;
    s->t_rto = kNever;
    if (s->fin_queued) s->state = TcpState::FinWait1;
    keepalive_reset(s);
    queue_notify(s);
    s->ack_now = true;
    output(s);
    return;
  }
  uint32_t seglen = seg.seg_len();
  // A pure ACK the network reordered: its sequence number may be behind RCV.NXT (the peer sent
  // data after it) and its timestamp behind TS.Recent. It is still taken, within bounds (one
  // receive buffer back, an RTO of timestamps back): it carries no data, a stale ACK field is
  // ignored, SND.WL1/WL2 keep a stale window out, and its SACK/D-SACK blocks are true news for
  // loss detection. (RFC 9293 and Linux drop it; Linux keeps only exact-sequence ones.)
  // RCV.NXT - 1 is left out: that is the keepalive / window probe, which must draw an ACK.
  bool late_ack = seglen == 0 && seg.has(kAck) && !seg.has(kSyn) && !seg.has(kRst) &&
                  (seg.seq == s->rcv_nxt || (seq_lt(seg.seq + 1, s->rcv_nxt) &&
                                             s->rcv_nxt - seg.seq <= std::max<uint32_t>(s->rcvbuf_cap, 65535)));
  // RFC 7323 5.3: PAWS
  if (s->ts_ok && seg.opt.has_ts && !seg.has(kRst) && int32_t(seg.opt.tsval - s->ts_recent) < 0 &&
      now - s->ts_recent_time < kPawsIdle) {
    bool disordered_ack = late_ack && uint64_t(s->ts_recent - seg.opt.tsval) * 1000 <= std::max<uint64_t>(s->rto_us, 1000);
    if (!disordered_ack) {
      st.paws_drops++;
      if (seg.plen && seq_lt(seg.seq, s->rcv_nxt))  // an old duplicate: report it (RFC 2883)
        rcv_dsack(s, seg.seq, seq_min(seg.seq + uint32_t(seg.plen), s->rcv_nxt));
      s->ack_now = true;
      output(s);
      return;
    }
  }
  // sequence acceptability (RFC 9293 3.10.7.4), with the edge case Linux also accepts:
  // a segment ending exactly at RCV.NXT
  uint32_t wnd = seq_gt(s->rcv_adv, s->rcv_nxt) ? s->rcv_adv - s->rcv_nxt : 0;
  bool ok;
  if (seglen == 0) ok = wnd == 0 ? seg.seq == s->rcv_nxt : (seq_ge(seg.seq, s->rcv_nxt) && seq_le(seg.seq, s->rcv_nxt + wnd));
  else if (wnd == 0) ok = seg.seq == s->rcv_nxt && seg.plen == 0;  // a FIN with no window room
  else ok = (seq_ge(seg.seq, s->rcv_nxt) && seq_lt(seg.seq, s->rcv_nxt + wnd)) ||
            (seq_gt(seg.seq + seglen, s->rcv_nxt) && seq_le(seg.seq + seglen, s->rcv_nxt + wnd));
  if (!ok && late_ack && wnd) ok = true;
  if (!ok && seglen == 0 && seg.seq == s->rcv_nxt) ok = true;
  if (!ok && wnd == 0 && seg.seq == s->rcv_nxt && seg.has(kAck) && !seg.has(kRst)) {
    // zero window: still process the ACK field (a window probe carries a valid ACK)
    bool drop = false;
    process_ack(s, seg, &drop);
    if (s->dead || s->state == TcpState::Closed) return;
    s->ack_now = true;
    output(s);
    return;
  }
  if (!ok) {
    if (!seg.has(kRst)) {
      if (seglen == 0) {
        // an unacceptable pure ACK: answering every one can sustain an ACK loop between two
        // confused ends; answer at most one per 500 ms (as Linux's tcp_oow_rate_limited)
        if (s->last_oow_ack && now - s->last_oow_ack < 500000) return;
        s->last_oow_ack = now;
      }
      if (seg.plen && seq_le(seg.seq + uint32_t(seg.plen), s->rcv_nxt) && s->rcv_nxt - seg.seq <= (1u << 30))
        rcv_dsack(s, seg.seq, seg.seq + uint32_t(seg.plen));  // an old duplicate (RFC 2883)
      if (seg.plen && !s->sack_ok && s->state >= TcpState::Established) send_ack(s);  // a pure duplicate ACK (see conn_input's end)
      else s->ack_now = true;
      output(s);
    }
    return;
  }
  s->last_recv_time = now;
  s->probes = 0;
  // RST (RFC 5961 3.2)
  if (seg.has(kRst)) {
    if (seg.seq != s->rcv_nxt) {
      if (challenge_ack_allowed()) { st.challenge_acks++; send_ack(s); }
      return;
    }
    st.in_rsts++;
    switch (s->state) {
      case TcpState::SynReceived: conn_done(s, -ECONNREFUSED); break;
      case TcpState::Established: case TcpState::CloseWait:
        st.estab_resets++;
        conn_done(s, -ECONNRESET);
        break;
      case TcpState::FinWait1: case TcpState::FinWait2:
        conn_done(s, -ECONNRESET);
        break;
      default: conn_done(s, 0); break;
    }
    return;
  }
  // SYN in a synchronized state (RFC 5961 4)
  if (seg.has(kSyn)) {
    if (s->state == TcpState::SynReceived && seg.seq == s->irs) { send_segment(s, s->iss, 0, kSyn | kAck, true); return; }
    if (challenge_ack_allowed()) { st.challenge_acks++; send_ack(s); }
    return;
  }
  if (!seg.has(kAck)) return;
  if (s->state == TcpState::SynReceived) {
    if (seq_gt(seg.ack, s->snd_una) && seq_le(seg.ack, s->snd_max)) {
      s->state = TcpState::Established;
      s->ever_connected = true;
      s->snd_wnd = uint32_t(seg.wnd) << s->snd_wscale;
      s->max_snd_wnd = std::max(s->max_snd_wnd, s->snd_wnd);
      s->snd_wl1 = seg.seq; s->snd_wl2 = seg.ack;
      s->cwnd = (s->backoff ? 1 : cfg.initial_window_segments) * s->mss;
      s->backoff = 0;
      if (s->fin_queued) s->state = TcpState::FinWait1;
      keepalive_reset(s);
      queue_notify(s);
    } else {
      send_raw(s->local.addr, s->remote.addr, s->local.port, s->remote.port, seg.ack, 0, kRst, 0, nullptr, 0,
               s->route.csum_offload);
      return;
    }
  }
  bool drop = false;
  process_ack(s, seg, &drop);
  if (drop || s->dead || s->state == TcpState::Closed) return;
  // RFC 7323 4.3: remember the timestamp of the segment that covers the last ACK we sent
  if (s->ts_ok && seg.opt.has_ts && int32_t(seg.opt.tsval - s->ts_recent) >= 0 && seq_le(seg.seq, s->last_ack_sent)) {
    s->ts_recent = seg.opt.tsval;
    s->ts_recent_time = now;
  }
  if (seg.plen || seg.has(kFin)) {
    switch (s->state) {
      case TcpState::Established: case TcpState::FinWait1: case TcpState::FinWait2:
        if (s->orphan && seg.plen && seq_gt(seg.seq + uint32_t(seg.plen), s->rcv_nxt)) {
          // data for a socket nobody will read: reset, as Linux
          send_rst(s);
          conn_done(s, -ECONNRESET);
          return;
        }
        process_data(s, seg);
        break;
      default:
        // CLOSE-WAIT, CLOSING, LAST-ACK: the peer already sent FIN; ACK what is retransmitted
        if (seglen) s->ack_now = true;
        break;
    }
  }
  if (s->dead || s->state == TcpState::Closed) return;
  if (s->dupack_now) {
    // RFC 5681 4.2: an out-of-order segment draws an immediate duplicate ACK. Without SACK it
    // must be a pure ACK: one riding on data does not count as a duplicate at the sender
    // (RFC 5681 2), and a peer sending too would turn every duplicate ACK into data.
    s->dupack_now = false;
    send_ack(s);
  }
  output(s);
}

void TcpCore::rtt_sample(TcpSocket* s, uint32_t r) {
  if (r == 0) r = 1;
  if (!s->rtt_seeded) {
    s->srtt_us = r;
    s->rttvar_us = r / 2;
    s->rtt_seeded = true;
  } else {
    uint32_t diff = s->srtt_us > r ? s->srtt_us - r : r - s->srtt_us;
    s->rttvar_us = (3 * uint64_t(s->rttvar_us) + diff) / 4;
    s->srtt_us = (7 * uint64_t(s->srtt_us) + r) / 8;
  }
  uint64_t rto = uint64_t(s->srtt_us) + std::max<uint64_t>(1000, 4 * uint64_t(s->rttvar_us));
  rto = std::max<uint64_t>(rto, uint64_t(cfg.rto_min_ms) * 1000);
  rto = std::min<uint64_t>(rto, uint64_t(cfg.rto_max_ms) * 1000);
  s->rto_us = uint32_t(rto);
}

uint32_t TcpCore::sacked_in(const TcpSocket* s, uint32_t a, uint32_t b) const {
  uint32_t n = 0;
  for (const SeqRange& r : s->sacked) {
    if (seq_ge(r.start, b)) break;
    if (seq_le(r.end, a)) continue;
    n += seq_min(r.end, b) - seq_max(r.start, a);
  }
  return n;
}

void TcpCore::update_scoreboard(TcpSocket* s, const TcpSegment& seg, AckInfo* ai) {
  uint8_t first = 0;
  {
    // RFC 2883 4: a first block below the cumulative ACK, or inside the second block, is a D-SACK
    uint32_t a = seg.opt.sack[0][0], b = seg.opt.sack[0][1];
    bool dup = seq_lt(a, b) && (seq_lt(a, seg.ack) || (seg.opt.nsack >= 2 && seq_le(seg.opt.sack[1][0], a) &&
                                                        seq_ge(seg.opt.sack[1][1], b)));
    if (dup) {
      first = 1;
      // a late original may be reported long after SND.UNA passed it: only sequence-space
      // sanity here; the D-SACK acts only through the retransmissions it matches
      if (seq_le(b, s->snd_max) && s->snd_max - a <= (1u << 30)) dsack_received(s, a, b, ai);
    }
  }
  for (uint8_t i = first; i < seg.opt.nsack; i++) {
    uint32_t a = seg.opt.sack[i][0], b = seg.opt.sack[i][1];
    if (!seq_lt(a, b) || seq_le(b, s->snd_una) || seq_gt(b, s->snd_max)) continue;  // stale or bogus
    if (seq_lt(a, s->snd_una)) a = s->snd_una;
    auto& v = s->sacked;
    // find the first block that ends at or after a
    size_t lo = 0, hi = v.size();
    while (lo < hi) { size_t m = (lo + hi) / 2; if (seq_lt(v[m].end, a)) lo = m + 1; else hi = m; }
    size_t j = lo;
    uint32_t na = a, nb = b, removed = 0;
    while (j < v.size() && seq_le(v[j].start, nb)) {
      na = seq_min(na, v[j].start);
      nb = seq_max(nb, v[j].end);
      removed += v[j].end - v[j].start;
      j++;
    }
    if (j == lo && v.size() >= 1024) continue;  // bound: a new disjoint block beyond the limit is ignored
    // the parts of [a, b) not SACKed before are news for the retransmission queue
    uint32_t cur = a;
    for (size_t k = lo; k < j && seq_lt(cur, b); k++) {
      if (seq_lt(cur, v[k].start)) tx_sacked(s, cur, seq_min(v[k].start, b), ai);
      cur = seq_max(cur, v[k].end);
    }
    if (seq_lt(cur, b)) tx_sacked(s, cur, b, ai);
    v.erase(v.begin() + lo, v.begin() + j);
    v.insert(v.begin() + lo, SeqRange{na, nb});
    s->sacked_bytes += (nb - na) - removed;
  }
}

void TcpCore::enter_recovery(TcpSocket* s, bool sack) {
  st.fast_retrans++;
  if (sack) {
    undo_begin(s, false);
    s->tlp_active = false;
    s->t_tlp = kNever;
  }
  s->ssthresh = cc->on_loss(*s, now);
  s->recover = s->snd_max;
  s->in_recovery = true;
  s->sack_recovery = sack;
  s->rtt_timing = false;
  if (sack) {
    st.sack_recoveries++;
    s->cwnd = s->ssthresh;
    undo_post(s);
    // RFC 6675 step (4.3): the first retransmission goes out regardless of pipe
    uint32_t seq, len; uint8_t flags; bool rex;
    if (next_seg(s, &seq, &len, &flags, &rex) && rex) send_segment(s, seq, len, flags, true);
  } else {
    retransmit_first(s);
    s->cwnd = s->ssthresh + 3 * s->mss;
  }
}

void TcpCore::process_ack(TcpSocket* s, const TcpSegment& seg, bool* drop) {
  uint32_t ack = seg.ack;
  // RFC 5961 5.2: ACKs outside [SND.UNA - MAX.SND.WND, SND.NXT] are not believed
  if (seq_gt(ack, s->snd_max)) { s->ack_now = true; output(s); *drop = true; return; }
  if (seq_lt(ack, s->snd_una - std::max<uint32_t>(s->max_snd_wnd, 65535))) {
    if (challenge_ack_allowed()) { st.challenge_acks++; send_ack(s); }
    *drop = true;
    return;
  }
  uint32_t new_wnd = uint32_t(seg.wnd) << s->snd_wscale;
  uint32_t flight_before = s->snd_max - s->snd_una;
  AckInfo ai;
  ai.prior_fack = s->rack_fack;
  ai.has_ts = s->ts_ok && seg.opt.has_ts && seg.opt.tsecr != 0;
  ai.tsecr = seg.opt.tsecr;
  bool sack_news = false;
  if (s->sack_ok && seg.opt.nsack) {
    uint32_t before = s->sacked_bytes;
    update_scoreboard(s, seg, &ai);
    sack_news = s->sacked_bytes != before;
  }
  bool advanced = seq_gt(ack, s->snd_una);
  if (advanced) {
    uint32_t acked = ack - s->snd_una;
    // RTT: a timed segment (Karn: never a retransmitted one), else the echoed timestamp
    if (s->rtt_timing && seq_ge(ack, s->rtt_seq)) {
      rtt_sample(s, uint32_t(now - s->rtt_start));
      s->rtt_timing = false;
    } else if (s->ts_ok && seg.opt.has_ts && seg.opt.tsecr && (!s->rtt_seeded || s->backoff)) {
      uint32_t ms = ts_now(s->ts_offset) - seg.opt.tsecr;
      if (ms < 600000) rtt_sample(s, ms * 1000 + 500);
    }
    uint32_t dend = s->data_end();
    uint32_t upto = seq_min(ack, dend);
    if (seq_gt(upto, s->snd_buf_seq)) {
      uint32_t n = upto - s->snd_buf_seq;
      s->sbuf.consume(n);
      s->snd_buf_seq = upto;
      if (s->want_write) { sndbuf_expand(s); queue_notify(s); }
    }
    if (s->sack_ok) tx_acked(s, ack, &ai);
    s->snd_una = ack;
    if (seq_lt(s->snd_nxt, ack)) s->snd_nxt = ack;
    if (!s->sack_ok) {
      if (s->probe_on && seq_gt(ack, s->probe_una)) una_probe_acked(s, seg);
      // the new SND.UNA segment: retransmitted already (below the highest retransmission;
      // then before now, which is all late_dupack() needs), or not
      s->late_dupacks = 0;
      if (seq_lt(ack, s->rexmit_high)) {
        s->una_rexmit_at = now;
      } else {
        s->rexmit_high = ack;
        s->una_rexmit_at = kNever;
      }
    }
    // the scoreboard keeps only what is above SND.UNA
    auto& v = s->sacked;
    size_t k = 0;
    while (k < v.size() && seq_le(v[k].end, ack)) { s->sacked_bytes -= v[k].end - v[k].start; k++; }
    if (k) v.erase(v.begin(), v.begin() + long(k));
    if (!v.empty() && seq_lt(v[0].start, ack)) { s->sacked_bytes -= ack - v[0].start; v[0].start = ack; }
    if (s->backoff) {
      s->backoff = 0;
      if (s->rtt_seeded) rtt_sample(s, s->srtt_us);  // recompute the RTO without the backoff
      else s->rto_us = cfg.rto_initial_ms * 1000;
    }
    s->probes = 0;
    // congestion control
    if (s->in_recovery) {
      if (seq_ge(ack, s->recover)) {
        s->in_recovery = false;
        uint32_t flight = s->snd_max - s->snd_una;
        s->cwnd = s->sack_recovery ? s->ssthresh : std::min(s->ssthresh, flight + s->mss);
        if (s->cwnd < 2 * s->mss) s->cwnd = 2 * s->mss;
        s->dupacks = 0;
        if (s->sack_ok) rack_recovery_done(s, ai.dsack || ai.spurious);
      } else if (!s->sack_recovery) {
        // RFC 6582 partial ACK: retransmit the next hole, deflate by what was acked
        retransmit_first(s);
        s->cwnd = s->cwnd > acked ? s->cwnd - acked : 0;
        if (acked >= s->mss) s->cwnd += s->mss;
        if (s->cwnd < s->mss) s->cwnd = s->mss;
        s->t_rto = now + s->rto_us;
      }
    } else {
      s->dupacks = 0;
      if (s->loss_state && seq_ge(ack, s->loss_recover)) {
        s->loss_state = false;
        if (s->sack_ok) rack_recovery_done(s, ai.dsack || ai.spurious);
      }
      // grow only when the window was in use (RFC 7661 spirit)
      if (uint64_t(flight_before) * 2 >= s->cwnd || s->cwnd < s->ssthresh) cc->on_ack(*s, acked, now);
    }
    // FIN acknowledged?
    bool fin_acked = s->fin_sent && ack == dend + 1;
    set_rto_timer(s);
    if (fin_acked) {
      switch (s->state) {
        case TcpState::FinWait1:
          set_state(s, TcpState::FinWait2);
          if (s->orphan) s->t_misc = now + Micros(cfg.fin_wait2_ms) * 1000;
          break;
        case TcpState::Closing:
          enter_time_wait(s);
          break;
        case TcpState::LastAck:
          conn_done(s, 0);
          *drop = true;
          return;
        default: break;
      }
    }
  } else if (ack == s->snd_una) {
    if (seg.plen == 0 && !seg.has(kSyn) && !seg.has(kFin) && s->snd_una != s->snd_max &&
        (uint32_t(seg.wnd) == (s->snd_wnd >> s->snd_wscale) || sack_news)) {
      // (the same window field: the window from the SYN-ACK is unscaled, and the first scaled
      // one rounds it down)
      s->dupacks++;
      st.dup_acks_in++;
      if (s->in_recovery && !s->sack_recovery) s->cwnd += s->mss;  // NewReno window inflation
      if (!s->sack_ok) late_dupack(s);
    }
  }
  // window update (RFC 9293 3.10.7.4, SND.WL1/WL2), and also from any ACK that advances
  // SND.UNA, as Linux does: its window is the peer's newest, even when the segment's sequence
  // number is old (a retransmission sent while the peer's receive window was closing)
  if (advanced || seq_lt(s->snd_wl1, seg.seq) || (s->snd_wl1 == seg.seq && seq_le(s->snd_wl2, ack))) {
    if (new_wnd && s->snd_wnd == 0) s->persist_backoff = 0;
    s->snd_wnd = new_wnd;
    s->snd_wl1 = seg.seq;
    s->snd_wl2 = ack;
    if (new_wnd > s->max_snd_wnd) s->max_snd_wnd = new_wnd;
  }
  // loss detection: RACK-TLP with SACK (its "no reordering seen" rule stands in for the
  // DupThresh rule), else NewReno's three duplicate ACKs (RFC 6582)
  if (s->sack_ok) {
    rack_on_ack(s, seg, ai, advanced, sack_news);
  } else if (!s->in_recovery && !s->loss_state && s->snd_una != s->snd_max && s->dupacks >= dupthresh(s) &&
             seq_ge(s->snd_una, s->recover)) {
    // RFC 6582 3.2 step 1: only when the cumulative ACK covers more than "recover" (the
    // duplicate ACKs are not about data already being repaired)
    enter_recovery(s, false);
  }
  if (!s->sack_ok) una_probe_schedule(s);
}

uint32_t TcpCore::dupthresh(const TcpSocket* s) const {
  // RFC 5827 early retransmit: fewer than four segments outstanding and no new one allowed
  // out (nothing unsent, or the peer's window is full) cannot produce three duplicate ACKs;
  // one fewer than the segments outstanding will do
  uint32_t oseg = ((s->snd_max - s->snd_una) + s->mss - 1) / s->mss;
  if (oseg >= 4 || oseg < 2) return 3;  // (one segment alone cannot draw a duplicate ACK)
  uint32_t end = s->data_end(), wnd_end = s->send_window_end();
  bool more = seq_lt(s->snd_max, end) && seq_lt(s->snd_max, wnd_end);
  if (more) return 3;
  return oseg - 1;
}

// A lost retransmission without SACK. NewReno (RFC 6582) retransmits the segment at SND.UNA
// once per partial ACK, and the go-back-N resend after an RTO once; if that retransmission is
// lost, nothing but another timeout would send it again, while duplicate ACKs keep coming in
// for the data sent behind it. Segments arrive in the order they were sent (what reorders is
// the exception the threshold covers): duplicate ACKs still arriving a round trip (plus a
// quarter, or the RTT variation) after the retransmission were triggered by data sent after it,
// which got there while the retransmission did not. Three of them: send it again.
void TcpCore::late_dupack(TcpSocket* s) {
  if (s->una_rexmit_at == kNever || !s->rtt_seeded) return;
  Micros wait = Micros(s->srtt_us) + std::max<Micros>(s->srtt_us / 4, s->rttvar_us);
  if (now < s->una_rexmit_at + wait) return;
  if (++s->late_dupacks < 3) return;
  st.lost_rexmits++;
  retransmit_first(s);  // restarts the count and the clock
  s->t_rto = now + s->rto_us;
}

void TcpCore::rcv_dsack(TcpSocket* s, uint32_t a, uint32_t b) {
  // RFC 2883: the next ACK reports [a, b) as received twice, in its first SACK block
  if (!cfg.dsack || !s->sack_ok || !seq_lt(a, b)) return;
  s->dsack_pending = true;
  s->dsack_start = a;
  s->dsack_end = b;
}

void TcpCore::grow_rcvbuf(TcpSocket* s, uint32_t cap) {
  if (cap <= s->rcvbuf_cap) return;
  s->rcvbuf_cap = cap;  // the ring follows when data needs the room
}

void TcpCore::rcv_autotune(TcpSocket* s) {
  // dynamic right-sizing: if the application drained at least half the buffer within one
  // RTT, the window limits the transfer; double the buffer (up to the maximum)
  if (s->rcvbuf_locked || s->rcvbuf_cap >= s->rcvbuf_max) return;
  uint32_t rtt = s->rcv_rtt_us ? s->rcv_rtt_us : s->srtt_us;
  if (rtt < 200) rtt = 200;
  if (s->rcvq_time == 0) { s->rcvq_time = now; s->rcvq_copied = 0; return; }
  if (now - s->rcvq_time < rtt) return;
  if (s->rcvq_copied >= s->rcvbuf_cap / 2) {
    uint64_t nc = std::max<uint64_t>(uint64_t(s->rcvbuf_cap) * 2, uint64_t(s->rcvq_copied) * 2);
    grow_rcvbuf(s, uint32_t(std::min<uint64_t>(nc, s->rcvbuf_max)));
  }
  s->rcvq_copied = 0;
  s->rcvq_time = now;
}

void TcpCore::process_fin(TcpSocket* s) {
  s->rcv_nxt += 1;
  s->fin_rcvd = true;
  s->ofo_fin = false;
  s->ack_now = true;
  s->new_data = true;
  queue_notify(s);
  switch (s->state) {
    case TcpState::SynReceived:
    case TcpState::Established: set_state(s, TcpState::CloseWait); break;
    case TcpState::FinWait1:
      if (s->fin_sent && s->snd_una == s->snd_max) { send_ack(s); enter_time_wait(s); }
      else set_state(s, TcpState::Closing);
      break;
    case TcpState::FinWait2: send_ack(s); enter_time_wait(s); break;
    default: break;
  }
}

void TcpCore::process_data(TcpSocket* s, const TcpSegment& seg) {
  uint32_t seq = seg.seq;
  const uint8_t* data = seg.payload;
  uint32_t n = uint32_t(seg.plen);
  bool fin = seg.has(kFin);
  uint32_t fin_seq = seg.seq + n;
  if (n > s->rcv_mss) s->rcv_mss = std::min<uint32_t>(n, 65535);
  if (s->ts_ok && seg.opt.has_ts && seg.opt.tsecr && n) {
    uint32_t ms = ts_now(s->ts_offset) - seg.opt.tsecr;
    if (ms < 60000) {
      uint32_t us = ms * 1000 + 500;
      s->rcv_rtt_us = s->rcv_rtt_us ? (s->rcv_rtt_us * 7 + us) / 8 : us;
    }
  }
  if (seq_lt(seq, s->rcv_nxt)) {
    uint32_t d = s->rcv_nxt - seq;
    s->ack_now = true;  // duplicate data: ACK at once
    if (n) rcv_dsack(s, seq, seq + std::min(d, n));
    if (d >= n) { n = 0; seq = s->rcv_nxt; }
    else { data += d; n -= d; seq = s->rcv_nxt; }
  }
  uint32_t read_seq = s->rcv_nxt - s->rcv_unread;
  uint32_t limit = seq_min(s->rcv_adv, read_seq + s->rcvbuf_cap);
  if (seq_gt(seq + n, limit)) {
    n = seq_lt(seq, limit) ? limit - seq : 0;
    fin = false;
    s->ack_now = true;
  }
  if (n) {
    uint32_t off = (seq - s->rcv_nxt) + s->rcv_unread;
    if (!s->rbuf.allocated() || off + n > s->rbuf.capacity()) {
      // the ring grows on demand (doubling) up to the buffer size: idle connections stay small
      size_t ns = std::max<size_t>(std::min<size_t>(s->rcvbuf_cap, kFirstRecvRing), s->rbuf.capacity() * 2);
      while (ns < off + n) ns *= 2;
      ns = std::min<size_t>(ns, s->rcvbuf_cap);
      uint32_t keep = s->rcv_unread;
      if (!s->ofo.empty()) keep += s->ofo.back().end - s->rcv_nxt;
      s->rbuf.resize(ns, keep);
    }
    if (seq == s->rcv_nxt) {
      s->rbuf.write_at(off, data, n);
      s->rcv_nxt += n;
      s->rcv_unread += n;
      if (!s->ofo.empty()) {
        s->ack_now = true;  // filling a gap: ACK at once (RFC 5681 4.2)
        while (!s->ofo.empty() && seq_le(s->ofo.front().start, s->rcv_nxt)) {
          if (seq_gt(s->ofo.front().end, s->rcv_nxt)) {
            s->rcv_unread += s->ofo.front().end - s->rcv_nxt;
            s->rcv_nxt = s->ofo.front().end;
          }
          s->ofo.erase(s->ofo.begin());
        }
      }
      s->new_data = true;
      queue_notify(s);
      s->ack_pending += n;
      if (s->quickack) { s->quickack--; s->ack_now = true; }
      if (s->ack_pending >= 2 * s->rcv_mss || s->rd_shut) s->ack_now = true;
      else if (!s->ack_now) schedule_delack(s);
    } else {
      // out of order: into the ring at its place; remember the range for SACK
      auto& v = s->ofo;
      size_t lo = 0, hi = v.size();
      while (lo < hi) { size_t m = (lo + hi) / 2; if (seq_lt(v[m].end, seq)) lo = m + 1; else hi = m; }
      size_t j = lo;
      uint32_t na = seq, nb = seq + n;
      if (lo < v.size() && seq_lt(v[lo].start, nb) && seq_gt(v[lo].end, seq))  // already held: a duplicate
        rcv_dsack(s, seq_max(seq, v[lo].start), seq_min(nb, v[lo].end));
      while (j < v.size() && seq_le(v[j].start, nb)) { na = seq_min(na, v[j].start); nb = seq_max(nb, v[j].end); j++; }
      s->ack_now = true;
      if (!s->sack_ok) s->dupack_now = true;
      if (j == lo && v.size() >= cfg.ofo_max_blocks) {
        st.ofo_drops++;
      } else {
        s->rbuf.write_at(off, data, n);
        v.erase(v.begin() + long(lo), v.begin() + long(j));
        v.insert(v.begin() + long(lo), OfoBlock{na, nb, ++s->ofo_stamp});
        st.ofo_queued++;
      }
    }
  }
  if (fin) {
    if (fin_seq == s->rcv_nxt) process_fin(s);
    else if (seq_gt(fin_seq, s->rcv_nxt)) { s->ofo_fin = true; s->ofo_fin_seq = fin_seq; s->ack_now = true; }
  }
  if (s->ofo_fin && s->ofo_fin_seq == s->rcv_nxt && !s->fin_rcvd) process_fin(s);
}

// Send-buffer autotuning (the idea of Linux's tcp_sndbuf_expand): when ACKs free room while the
// application is held back by a full send buffer, and no loss is being repaired, the buffer
// grows to twice the congestion window (one window in flight, one queued behind it), up to
// sndbuf_max. Without it one stream could not go faster than sndbuf / RTT on long paths.
void TcpCore::sndbuf_expand(TcpSocket* s) {
  if (s->sndbuf_locked || s->sndbuf_cap >= s->sndbuf_max || s->in_recovery || s->loss_state) return;
  uint64_t want = uint64_t(s->cwnd) * 2;
  if (want <= s->sndbuf_cap) return;
  s->sndbuf_cap = uint32_t(std::min<uint64_t>(want, s->sndbuf_max));
}

}  // namespace ms
