// Loss detection and its undo, for SACK connections: the retransmission queue (one entry per
// transmitted range, with its last transmission time and scoreboard flags), RACK-TLP (RFC 8985:
// time-based loss marking, the reordering window and its D-SACK adaptation, the reordering
// timer, tail loss probes), the sender's use of D-SACK (RFC 2883) and timestamps (RFC 3522
// Eifel detection) to find spurious retransmissions, and the undo of congestion responses
// whose retransmissions were all spurious. What to send next stays RFC 6675 (pipe, NextSeg),
// with RACK's lost marks in place of IsLost().
//
// Cost per ACK is O(log n) plus the entries the ACK newly delivers: the queue is in sequence
// order, which for original transmissions is also transmission order, so RACK walks those from
// a resume point and stops at the first one not yet overdue; retransmissions are walked in a
// second queue kept in transmission order.
#include <algorithm>

#include "tcp_internal.h"

namespace ms {
using namespace tcpw;

namespace {
constexpr Micros kMinRttWindow = 300ull * 1000000;  // RACK.min_RTT: windowed minimum, as Linux's 300 s
constexpr Micros kTlpMinPto = 1000;                 // floor of the probe timeout (timer wakeups on tiny RTTs)
constexpr size_t kRtxqMax = 1u << 16;
constexpr size_t kUndoEps = 64;                     // undo episodes tracked at once (D-SACKs may lag many RTTs)
constexpr size_t kUndoRxMax = 1024;                 // retransmissions tracked for undo

/** RACK_sent_after(). The RFC orders by transmit time and breaks ties by end sequence, which
 *  misorders a retransmission sent after new data within one clock tick; a per-connection
 *  transmission counter orders every send exactly (times are monotonic, so it agrees with
 *  them otherwise). */
inline bool sent_after(uint32_t order1, uint32_t order2) { return int32_t(order1 - order2) > 0; }
inline uint32_t len_of(const TxSeg& e) { return e.end - e.start; }
}  // namespace

// ---------------------------------------------------------------- the queue

size_t TcpCore::tx_index(const TcpSocket* s, uint32_t seq) const {
  const auto& q = s->txq;
  size_t lo = 0, hi = q.size();
  while (lo < hi) {
    size_t m = (lo + hi) / 2;
    if (seq_le(q[m].end, seq)) lo = m + 1; else hi = m;
  }
  return lo;
}

size_t TcpCore::tx_split(TcpSocket* s, size_t i, uint32_t at) {
  TxSeg tail = s->txq[i];
  tail.start = at;
  s->txq[i].end = at;
  s->txq.insert(i + 1, tail);
  return i + 1;
}

void TcpCore::tx_sent(TcpSocket* s, uint32_t seq, uint32_t seglen, bool rexmit) {
  auto& q = s->txq;
  if (!rexmit) {
    if (seq != s->snd_max) return;  // not new data (cannot happen; keeps the tiling safe)
    if (!s->rack_fack_set) { s->rack_fack = seq; s->rack_fack_set = true; }
    q.push_back(TxSeg{seq, seq + seglen, now, ++s->tx_order, 0});
    return;
  }
  uint32_t end = seq + seglen;
  if (seq_lt(seq, s->snd_una)) seq = s->snd_una;
  if (!seq_lt(seq, end)) return;
  size_t i = tx_index(s, seq);
  if (i < q.size() && seq_lt(q[i].start, seq)) i = tx_split(s, i, seq);
  bool again = false, any = false;
  uint32_t order = ++s->tx_order;
  for (; i < q.size() && seq_lt(q[i].start, end); i++) {
    if (seq_gt(q[i].end, end)) tx_split(s, i, end);
    TxSeg& e = q[i];
    if (e.flags & kTxSacked) continue;
    any = true;
    if (e.flags & kTxEverRetrans) again = true;
    if (!(e.flags & kTxRetrans)) {
      s->retrans_bytes += len_of(e);
      if (e.flags & kTxLost) s->lost_pending -= len_of(e);
    }
    e.flags |= kTxRetrans | kTxEverRetrans;
    e.xmit = now;
    e.order = order;
  }
  if (!any) return;
  s->rtxq.push_back(RtxRec{seq, end, order, now});
  if (s->rtxq.size() > kRtxqMax) s->rtxq.pop_front();
  if (s->in_recovery || s->loss_state) undo_note_rexmit(s, seq, end, again);
}

void TcpCore::tx_mark_lost(TcpSocket* s, TxSeg& e) {
  if (e.flags & kTxSacked) return;
  bool was_pending = (e.flags & (kTxLost | kTxRetrans)) == kTxLost;
  if (e.flags & kTxRetrans) { e.flags &= uint8_t(~kTxRetrans); s->retrans_bytes -= len_of(e); }
  if (!(e.flags & kTxLost)) { e.flags |= kTxLost; s->lost_bytes += len_of(e); }
  if (!was_pending) s->lost_pending += len_of(e);
  if (seq_lt(s->lost_hint, s->snd_una)) s->lost_hint = s->snd_una;
  if (seq_lt(e.start, s->lost_hint)) s->lost_hint = e.start;
}

/** an entry leaves the unSACKed set (SACKed or cumulatively acked): drop its share of the counters */
static inline void tx_unaccount(TcpSocket* s, const TxSeg& e, uint32_t n) {
  if (e.flags & kTxSacked) return;
  if (e.flags & kTxLost) { s->lost_bytes -= n; if (!(e.flags & kTxRetrans)) s->lost_pending -= n; }
  if (e.flags & kTxRetrans) s->retrans_bytes -= n;
}

void TcpCore::tx_sacked(TcpSocket* s, uint32_t a, uint32_t b, AckInfo* ai) {
  auto& q = s->txq;
  size_t i = tx_index(s, a);
  if (i < q.size() && seq_lt(q[i].start, a)) i = tx_split(s, i, a);
  for (; i < q.size() && seq_lt(q[i].start, b); i++) {
    if (seq_gt(q[i].end, b)) tx_split(s, i, b);
    TxSeg& e = q[i];
    if (e.flags & kTxSacked) continue;
    rack_delivered(s, e, ai);
    tx_unaccount(s, e, len_of(e));
    e.flags = uint8_t((e.flags & kTxEverRetrans) | kTxSacked);
  }
}

void TcpCore::tx_acked(TcpSocket* s, uint32_t ack, AckInfo* ai) {
  auto& q = s->txq;
  while (!q.empty() && seq_le(q.front().end, ack)) {
    TxSeg& e = q.front();
    if (!(e.flags & kTxSacked)) {
      rack_delivered(s, e, ai);
      // Eifel (RFC 3522): the ACK echoes a timestamp older than the retransmission, so the
      // original filled the hole and the retransmission was not needed
      if ((e.flags & kTxEverRetrans) && ai->has_ts && !s->undo_rx.empty() &&
          int32_t(ai->tsecr - (uint32_t(e.xmit / 1000) + s->ts_offset)) < 0 && undo_spurious(s, e.start, e.end))
        ai->spurious = true;
      tx_unaccount(s, e, len_of(e));
    }
    q.pop_front();
  }
  if (!q.empty() && seq_lt(q.front().start, ack)) {  // partly acknowledged (segment boundaries moved)
    tx_unaccount(s, q.front(), ack - q.front().start);
    q.front().start = ack;
  }
  if (s->rack_fack_set && seq_lt(s->rack_fack, ack)) s->rack_fack = ack;
  // resume points below SND.UNA mean "from the front"; keep them within reach of seq arithmetic
  if (seq_lt(s->lost_hint, ack)) s->lost_hint = ack;
  if (seq_lt(s->rack_scan, ack)) s->rack_scan = ack;
}

void TcpCore::tx_mark_all_lost(TcpSocket* s, bool reneg) {
  // RTO: everything not SACKed is lost (RFC 8985 6.3 marks all but the recently sent; the
  // go-back-N resend that follows treats them all alike). After a second RTO the SACK
  // information is discarded as possibly reneged.
  uint32_t lost = 0;
  s->txq.for_each([&](TxSeg& e) {
    if (reneg) e.flags &= uint8_t(~kTxSacked);
    if (e.flags & kTxSacked) return;
    e.flags = uint8_t((e.flags & kTxEverRetrans) | kTxLost);
    lost += len_of(e);
  });
  s->lost_bytes = s->lost_pending = lost;
  s->retrans_bytes = 0;
  s->rtxq.clear();
  s->lost_hint = s->snd_una;
  s->rack_scan = s->snd_max;
}

void TcpCore::tx_unmark_lost(TcpSocket* s) {
  s->txq.for_each([](TxSeg& e) { e.flags &= uint8_t(~kTxLost); });
  s->lost_bytes = s->lost_pending = 0;
  s->lost_hint = s->snd_max;
  s->rack_scan = s->snd_una;
}

void TcpCore::tx_clear(TcpSocket* s) {
  s->txq.clear(); s->rtxq.clear();
  s->lost_bytes = s->lost_pending = s->retrans_bytes = 0;
  s->undo_eps.clear(); s->undo_rx.clear(); s->undo_cur_on = false;
  s->t_rack = s->t_tlp = kNever;
  s->tlp_active = false;
}

uint32_t TcpCore::pipe(const TcpSocket* s) const {
  // RFC 6675 SetPipe(): unSACKed octets not deemed lost, plus retransmissions in flight
  int64_t p = int64_t(s->snd_max - s->snd_una) - s->sacked_bytes - s->lost_bytes + s->retrans_bytes;
  return p > 0 ? uint32_t(p) : 0;
}

bool TcpCore::next_lost(TcpSocket* s, size_t* idx) {
  if (!s->lost_pending) return false;
  auto& q = s->txq;
  size_t i = seq_le(s->lost_hint, s->snd_una) ? 0 : tx_index(s, s->lost_hint);
  for (; i < q.size(); i++) {
    if ((q[i].flags & (kTxLost | kTxRetrans | kTxSacked)) == kTxLost) {
      s->lost_hint = q[i].start;
      *idx = i;
      return true;
    }
  }
  s->lost_hint = s->snd_max;
  return false;
}

// ---------------------------------------------------------------- RACK (RFC 8985 section 6)

void TcpCore::rack_delivered(TcpSocket* s, const TxSeg& e, AckInfo* ai) {
  bool rx = e.flags & kTxEverRetrans;
  // step 3: reordering, a never-retransmitted segment delivered below an earlier-seen fack
  if (!rx && s->rack_fack_set && seq_lt(e.end, ai->prior_fack)) s->reordering_seen = true;
  if (!s->rack_fack_set || seq_gt(e.end, s->rack_fack)) { s->rack_fack = e.end; s->rack_fack_set = true; }
  // step 2: an RTT sample, unless it may belong to an earlier transmission. (The RFC's
  // timestamp test is not used: an out-of-order arrival does not update TS.Recent (RFC 7323),
  // so a SACK for a retransmission echoes an older timestamp even when the retransmission got
  // there, e.g. a TLP probe. A retransmission delivered sooner than min_RTT is the ambiguous case.)
  uint32_t rtt = uint32_t(std::min<Micros>(now - e.xmit, 0xffffffffu));
  if (rx) {
    if (rtt < s->min_rtt_us) return;
  } else if (!s->min_rtt_us || rtt <= s->min_rtt_us || now - s->min_rtt_stamp > kMinRttWindow) {
    s->min_rtt_us = std::max<uint32_t>(rtt, 1);
    s->min_rtt_stamp = now;
  }
  if (!ai->delivered || sent_after(e.order, ai->order)) {
    ai->delivered = true;
    ai->xmit = e.xmit;
    ai->order = e.order;
    ai->rtt = rtt;
  }
}

Micros TcpCore::rack_reo_wnd(const TcpSocket* s) const {
  // RFC 8985 6.2 step 4: no reordering seen yet, the classic DupThresh rule decides
  if (!s->reordering_seen) {
    if (s->in_recovery || s->loss_state) return 0;
    if (s->sacked_bytes > 2 * s->mss) return 0;  // DupThresh segments SACKed
  }
  uint32_t base = s->min_rtt_us ? s->min_rtt_us : s->srtt_us;
  return std::min<Micros>(Micros(base / 4) * s->reo_wnd_mult, s->srtt_us ? s->srtt_us : base);
}

void TcpCore::rack_detect_loss(TcpSocket* s) {
  s->t_rack = kNever;
  if (!s->rack_valid || s->txq.empty()) return;
  auto& q = s->txq;
  Micros wait = Micros(s->rack_rtt) + rack_reo_wnd(s);
  Micros next = kNever;
  // original transmissions: sequence order is transmission order
  size_t i = seq_le(s->rack_scan, s->snd_una) ? 0 : tx_index(s, s->rack_scan);
  for (; i < q.size(); i++) {
    TxSeg& e = q[i];
    if (e.flags & (kTxSacked | kTxLost | kTxEverRetrans)) continue;
    if (!sent_after(s->rack_order, e.order)) break;
    Micros due = e.xmit + wait;
    if (due > now) { next = due; break; }
    tx_mark_lost(s, e);
  }
  s->rack_scan = i < q.size() ? q[i].start : s->snd_max;
  // retransmissions, in transmission order: a lost retransmission is lost again
  while (!s->rtxq.empty()) {
    RtxRec r = s->rtxq.front();
    if (seq_le(r.end, s->snd_una)) { s->rtxq.pop_front(); continue; }
    if (!sent_after(s->rack_order, r.order)) break;
    Micros due = r.xmit + wait;
    if (due > now) { next = std::min(next, due); break; }
    for (size_t k = tx_index(s, r.start); k < q.size() && seq_lt(q[k].start, r.end); k++) {
      TxSeg& e = q[k];
      if ((e.flags & (kTxRetrans | kTxSacked)) == kTxRetrans && e.order == r.order) tx_mark_lost(s, e);
    }
    s->rtxq.pop_front();
  }
  s->t_rack = next;
}

void TcpCore::rack_recovery_done(TcpSocket* s, bool dsack) {
  // RFC 8985 6.2 step 4: the reordering window falls back after 16 recoveries without D-SACK
  s->undo_cur_on = false;
  if (dsack) return;
  if (s->reo_wnd_persist) s->reo_wnd_persist--;
  if (s->reo_wnd_persist == 0) s->reo_wnd_mult = 1;
}

void TcpCore::dsack_received(TcpSocket* s, uint32_t a, uint32_t b, AckInfo* ai) {
  st.dsacks_in++;
  ai->dsack = true;
  if (!s->undo_rx.empty() && undo_spurious(s, a, b)) ai->spurious = true;
  if (s->tlp_active && s->tlp_is_retrans && seq_lt(a, s->tlp_rx_end) && seq_gt(b, s->tlp_rx_start)) ai->dsack_tlp = true;
}

void TcpCore::rack_on_ack(TcpSocket* s, const TcpSegment& seg, AckInfo& ai, bool advanced, bool sack_news) {
  if (ai.delivered) {
    if (!s->rack_valid || sent_after(ai.order, s->rack_order)) {
      s->rack_xmit = ai.xmit;
      s->rack_order = ai.order;
    }
    s->rack_rtt = ai.rtt;
    s->rack_valid = true;
  }
  // reordering window: one step per round trip that sees D-SACKs (RFC 8985 6.2 step 4)
  if (s->dsack_round_on && seq_ge(s->snd_una, s->dsack_round)) s->dsack_round_on = false;
  if ((ai.dsack || ai.spurious) && !s->dsack_round_on) {
    s->dsack_round_on = true;
    s->dsack_round = s->snd_max;
    if (s->reo_wnd_mult < 255) s->reo_wnd_mult++;
    s->reo_wnd_persist = 16;
  }
  if (ai.spurious) {
    s->reordering_seen = true;
    undo_check(s);
  } else if (s->undo_cur_on && !s->undo_eps.empty()) {
    // only the current episode can be waiting on something other than new evidence
    const UndoEp& ep = s->undo_eps.back();
    if (ep.id == s->undo_cur_id && ep.nrx && !ep.pending) undo_check(s);
  }
  // TLP episode (RFC 8985 7.4): did the probe repair a loss?
  if (s->tlp_active && seq_ge(seg.ack, s->tlp_end)) {
    if (!s->tlp_is_retrans || ai.dsack_tlp) {
      s->tlp_active = false;  // new data probed, or original and probe both arrived
    } else if (seq_gt(seg.ack, s->tlp_end)) {
      s->tlp_active = false;  // the probe repaired a single loss: respond to it
      st.tlp_loss_repairs++;
      s->ssthresh = cc->on_loss(*s, now);
      s->cwnd = std::max(std::min(s->cwnd, s->ssthresh), 2 * s->mss);
    } else if (!advanced && seg.plen == 0 && !sack_news) {
      s->tlp_active = false;  // a plain duplicate ACK: both copies arrived
    }
  }
  // loss detection, then recovery if anything is lost (RFC 8985 6.2 step 5, RFC 6675)
  if (!s->loss_state && s->snd_una != s->snd_max) rack_detect_loss(s);
  else s->t_rack = kNever;
  if (s->lost_pending && !s->in_recovery && !s->loss_state) enter_recovery(s, true);
  if (advanced) tlp_schedule(s);
  else if (s->t_tlp != kNever && (s->sacked_bytes || s->in_recovery)) s->t_tlp = kNever;
}

void TcpCore::rack_timeout(TcpSocket* s) {
  if (!s->sack_ok || s->loss_state || s->snd_una == s->snd_max) return;
  if (!s->sends_data()) return;
  uint32_t before = s->lost_pending;
  rack_detect_loss(s);
  if (s->lost_pending != before) st.rack_timeouts++;
  if (s->lost_pending && !s->in_recovery) enter_recovery(s, true);
  output(s);
}

// ---------------------------------------------------------------- TLP (RFC 8985 section 7)

void TcpCore::tlp_schedule(TcpSocket* s) {
  s->t_tlp = kNever;
  if (!s->sack_ok || !cfg.tlp || s->tlp_active || s->in_recovery || s->loss_state || s->sacked_bytes ||
      s->snd_una == s->snd_max)
    return;
  if (!s->sends_data()) return;
  Micros pto = 1000000;
  if (s->rtt_seeded) {
    pto = 2 * Micros(s->srtt_us);
    if (s->snd_max - s->snd_una <= s->mss + 1) pto += Micros(cfg.tlp_max_ack_delay_ms) * 1000;
    pto = std::max(pto, kTlpMinPto);
  }
  Micros at = now + pto;
  if (s->t_rto != kNever && at > s->t_rto) at = s->t_rto;  // the probe goes out instead of the RTO
  s->t_tlp = at;
}

void TcpCore::tlp_fire(TcpSocket* s) {
  if (!s->sack_ok) { una_probe_fire(s); return; }
  if (!cfg.tlp || s->tlp_active || s->in_recovery || s->loss_state || s->sacked_bytes ||
      s->snd_una == s->snd_max || s->txq.empty())
    return;
  if (!s->sends_data()) return;
  uint32_t end = s->data_end(), wnd_end = s->send_window_end();
  bool sent = false;
  if (s->snd_nxt == s->snd_max && seq_lt(s->snd_max, end) && seq_lt(s->snd_max, wnd_end)) {
    // new data if the peer's window allows, whatever cwnd says
    uint32_t seq = s->snd_max;
    uint32_t len = std::min(std::min(s->mss, end - seq), wnd_end - seq);
    uint8_t flags = uint8_t(kAck | ((s->fin_queued && seq + len == end) ? kFin : 0));
    send_segment(s, seq, len, flags, false);
    len = s->last_sent_len;
    if (len) {
      if (seq + len != end) flags &= uint8_t(~kFin);
      s->snd_nxt = s->snd_max = seq + len + ((flags & kFin) ? 1 : 0);
      if (flags & kFin) s->fin_sent = true;
      s->tlp_is_retrans = false;
      sent = true;
    }
  }
  if (!sent) {
    // else the last segment again
    TxSeg last = s->txq.back();
    uint32_t dend = s->data_end();
    bool fin = s->fin_sent && seq_gt(last.end, dend);
    uint32_t b = fin ? last.end - 1 : last.end;
    uint32_t a = last.start;
    if (b - a > s->mss) a = b - s->mss;
    s->tlp_rx_start = a;
    s->tlp_rx_end = last.end;
    send_segment(s, a, b - a, uint8_t(kAck | (fin ? kFin : 0)), true);
    s->tlp_is_retrans = true;
  }
  st.tlp_probes++;
  s->tlp_active = true;
  s->tlp_end = s->snd_max;
  s->t_rto = now + s->rto_us;
}

// ------------------------------------------- probe of SND.UNA (connections without SACK)
//
// Without SACK a loss is seen only through duplicate ACKs, and they stop when no new data
// goes out: the send buffer is full of unacknowledged data during a long recovery, the
// window deflated at its end below what is still in flight, the application has nothing more
// to say. A hole then waits for the RTO (200 ms at least, then backed off, with cwnd reset
// to one segment). The probe stands in for it sooner, as RFC 8985's TLP does for SACK
// connections, but sends the segment at SND.UNA: without SACK blocks, repairing the first
// hole is the only thing an ACK can report. It goes out after two smoothed RTTs without any
// ACK while data is outstanding, once per SND.UNA; cwnd is untouched until an ACK shows
// whether it repaired a loss (una_probe_acked).

void TcpCore::una_probe_schedule(TcpSocket* s) {
  s->t_tlp = kNever;
  if (s->sack_ok || !cfg.tlp || s->loss_state || s->snd_una == s->snd_max || !s->rtt_seeded ||
      (s->probe_on && s->probe_una == s->snd_una))
    return;
  if (!s->sends_data()) return;
  Micros pto = 2 * Micros(s->srtt_us);
  if (s->snd_max - s->snd_una <= s->mss + 1) pto += Micros(cfg.tlp_max_ack_delay_ms) * 1000;
  pto = std::max(pto, kTlpMinPto);
  Micros at = now + pto;
  if (s->t_rto != kNever && at >= s->t_rto) return;  // the RTO comes first anyway
  s->t_tlp = at;
}

void TcpCore::una_probe_fire(TcpSocket* s) {
  if (!cfg.tlp || s->loss_state || s->snd_una == s->snd_max || (s->probe_on && s->probe_una == s->snd_una))
    return;
  if (!s->sends_data()) return;
  st.tlp_probes++;
  s->probe_on = true;
  s->probe_una = s->snd_una;
  s->probe_tsval = ts_now(s->ts_offset);
  retransmit_first(s);
  s->t_rto = now + s->rto_us;
}

void TcpCore::una_probe_acked(TcpSocket* s, const TcpSegment& seg) {
  // called when an ACK moves SND.UNA past the probed segment
  s->probe_on = false;
  // Eifel (RFC 3522): an ACK echoing a timestamp older than the probe's was sent for the
  // original transmission, which was only late
  if (s->ts_ok && seg.opt.has_ts && seg.opt.tsecr && int32_t(seg.opt.tsecr - s->probe_tsval) < 0) return;
  // a repaired loss: the congestion response the RTO would have made, without its collapse
  // to one segment (a recovery in progress has already responded)
  if (s->in_recovery || s->loss_state) return;
  st.tlp_loss_repairs++;
  s->ssthresh = cc->on_loss(*s, now);
  s->cwnd = std::max(std::min(s->cwnd, s->ssthresh), 2 * s->mss);
  s->ca_acc = 0;
}

// ---------------------------------------------------------------- undo

void TcpCore::undo_drop(TcpSocket* s, size_t k) {
  uint32_t id = s->undo_eps[k].id;
  auto& v = s->undo_rx;
  for (size_t i = 0; i < v.size();) {
    if (v[i].ep == id) { v[i] = v.back(); v.pop_back(); } else i++;
  }
  if (s->undo_cur_on && s->undo_cur_id == id) s->undo_cur_on = false;
  s->undo_eps.erase(s->undo_eps.begin() + long(k));
}

void TcpCore::undo_begin(TcpSocket* s, bool rto) {
  // episodes whose D-SACKs can no longer be expected are forgotten; so is one a new
  // response supersedes (an RTO during recovery: its retransmissions were lost)
  Micros horizon = std::max<Micros>(4 * Micros(s->srtt_us), 1000000);
  for (size_t k = 0; k < s->undo_eps.size();) {
    const UndoEp& ep = s->undo_eps[k];
    if (now - ep.last_rx > horizon || (s->undo_cur_on && ep.id == s->undo_cur_id)) undo_drop(s, k);
    else k++;
  }
  if (s->undo_eps.size() >= kUndoEps) undo_drop(s, 0);
  UndoEp ep;
  ep.id = s->undo_next_id++;
  ep.prior_cwnd = s->cwnd;
  ep.prior_ssthresh = s->ssthresh;
  ep.prior_ca_acc = s->ca_acc;
  ep.prior_cubic = s->cubic;
  ep.last_rx = now;
  ep.rto = rto;
  s->undo_eps.push_back(ep);
  s->undo_cur_id = ep.id;
  s->undo_cur_on = true;
}

void TcpCore::undo_post(TcpSocket* s) {
  if (!s->undo_cur_on || s->undo_eps.empty() || s->undo_eps.back().id != s->undo_cur_id) return;
  s->undo_eps.back().post_cwnd = s->cwnd;
  s->undo_eps.back().post_ssthresh = s->ssthresh;
}

void TcpCore::undo_note_rexmit(TcpSocket* s, uint32_t a, uint32_t b, bool again) {
  if (!s->undo_cur_on) return;
  size_t k = s->undo_eps.size();
  while (k-- > 0 && s->undo_eps[k].id != s->undo_cur_id) {}
  if (k >= s->undo_eps.size()) { s->undo_cur_on = false; return; }
  // a range sent again means a retransmission was lost: a real loss, nothing to undo
  if (again || s->undo_rx.size() >= kUndoRxMax) { undo_drop(s, k); return; }
  UndoEp& ep = s->undo_eps[k];
  s->undo_rx.push_back(UndoRx{a, b, ep.id});
  ep.pending++;
  ep.nrx++;
  ep.last_rx = now;
}

bool TcpCore::undo_spurious(TcpSocket* s, uint32_t a, uint32_t b) {
  bool hit = false;
  auto& v = s->undo_rx;
  for (size_t i = 0; i < v.size();) {
    if (seq_lt(v[i].start, b) && seq_gt(v[i].end, a)) {
      for (UndoEp& ep : s->undo_eps)
        if (ep.id == v[i].ep) { ep.pending--; break; }
      v[i] = v.back();
      v.pop_back();
      hit = true;
    } else {
      i++;
    }
  }
  return hit;
}

void TcpCore::undo_check(TcpSocket* s) {
  for (size_t k = 0; k < s->undo_eps.size();) {
    const UndoEp& ep = s->undo_eps[k];
    bool cur = s->undo_cur_on && ep.id == s->undo_cur_id;
    // the current fast recovery is judged once it has nothing more to retransmit
    if (ep.nrx && !ep.pending && !(cur && s->in_recovery && s->lost_pending)) { undo_apply(s, k); continue; }
    k++;
  }
}

void TcpCore::undo_apply(TcpSocket* s, size_t k) {
  UndoEp ep = s->undo_eps[k];
  bool latest = k + 1 == s->undo_eps.size();
  bool cur = s->undo_cur_on && ep.id == s->undo_cur_id;
  st.spurious_undos++;
  if (latest) {
    // nothing reduced the window since: back to where it was (as Linux's undo)
    s->cwnd = std::max(s->cwnd, ep.prior_cwnd);
    s->ssthresh = std::max(s->ssthresh, ep.prior_ssthresh);
    if (cur) {
      s->cubic = ep.prior_cubic;
      s->ca_acc = ep.prior_ca_acc;
    } else {
      s->cubic.w_max = std::max(s->cubic.w_max, double(s->cwnd) / s->mss);
      s->cubic.epoch_start = 0;
    }
  } else {
    // later responses stand: take out this one's multiplicative decrease only
    uint32_t post = ep.rto ? ep.post_ssthresh : ep.post_cwnd;
    double f = ep.prior_cwnd && post && post < ep.prior_cwnd ? double(post) / ep.prior_cwnd : 1.0;
    if (f < 1.0) {
      s->cwnd = uint32_t(std::min<double>(s->cwnd / f, 0x3fffffff));
      s->ssthresh = uint32_t(std::min<double>(s->ssthresh / f, 0x7fffffff));
      for (size_t j = k + 1; j < s->undo_eps.size(); j++) {
        UndoEp& o = s->undo_eps[j];
        o.prior_cwnd = uint32_t(std::min<double>(o.prior_cwnd / f, 0x3fffffff));
        o.prior_ssthresh = uint32_t(std::min<double>(o.prior_ssthresh / f, 0x7fffffff));
        o.post_cwnd = uint32_t(std::min<double>(o.post_cwnd / f, 0x3fffffff));
        o.post_ssthresh = uint32_t(std::min<double>(o.post_ssthresh / f, 0x7fffffff));
        o.prior_cubic.w_max /= f;
      }
    }
    s->cubic.w_max = std::max(s->cubic.w_max, double(s->cwnd) / s->mss);
    s->cubic.epoch_start = 0;
  }
  if (cur) {
    if (s->in_recovery) { s->in_recovery = false; s->dupacks = 0; }
    if (s->loss_state) { s->loss_state = false; s->snd_nxt = s->snd_max; }
    tx_unmark_lost(s);
    s->undo_cur_on = false;
  }
  s->reordering_seen = true;
  s->undo_eps.erase(s->undo_eps.begin() + long(k));
}

}  // namespace ms
