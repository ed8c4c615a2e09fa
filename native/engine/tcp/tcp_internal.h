// Internals of the TCP module: the connection block (TcpSocket), congestion control, and
// TcpCore, which TcpLayer forwards to. Not for use outside native/engine/tcp/.
#pragma once
#include <unordered_map>
#include <vector>

#include "tcp.h"
#include "tcp_buffers.h"
#include "tcp_wire.h"

namespace ms {

enum class TcpState : uint8_t { Closed, Listen, SynSent, SynReceived, Established, FinWait1, FinWait2, CloseWait, Closing, LastAck, TimeWait };

/** state for CUBIC (RFC 9438); windows in segments */
struct CubicState {
  double w_max = 0, k = 0, w_est = 0, cwnd_epoch = 0;
  Micros epoch_start = 0;
  double acc = 0;
};

/** the first allocation of a receive ring (it doubles on demand up to the receive buffer) */
constexpr size_t kFirstRecvRing = 16384;

struct SeqRange { uint32_t start, end; };
struct OfoBlock { uint32_t start, end, stamp; };

/** one transmitted, not yet cumulatively acknowledged range (SACK connections only): the
 *  retransmission-queue entry RACK needs. Entries tile [SND.UNA, SND.MAX) in sequence order;
 *  a FIN occupies the last octet of the last entry. Split only when a SACK or retransmission
 *  boundary falls inside one. */
struct TxSeg {
  uint32_t start, end;
  Micros xmit;      // time of the latest (re)transmission
  uint32_t order;   // ... and its place in the connection's transmission order
  uint8_t flags;    // kTx*
};
enum : uint8_t {
  kTxSacked = 1,       // selectively acknowledged
  kTxLost = 2,         // marked lost (RACK, or everything unSACKed at an RTO)
  kTxRetrans = 4,      // a retransmission of it is in flight (not yet delivered or deemed lost)
  kTxEverRetrans = 8,  // retransmitted at least once (RTT samples ambiguous; not "reordering")
};
/** a retransmission, kept in transmission order so RACK can find lost retransmissions
 *  without a time-ordered walk of the whole queue */
struct RtxRec { uint32_t start, end, order; Micros xmit; };
/** a congestion response that can be undone if all its retransmissions turn out spurious */
struct UndoEp {
  uint32_t id = 0;
  uint32_t prior_cwnd = 0, prior_ssthresh = 0, prior_ca_acc = 0, post_cwnd = 0, post_ssthresh = 0;
  CubicState prior_cubic;
  uint32_t pending = 0;   // retransmissions not yet shown spurious
  uint32_t nrx = 0;       // retransmissions made
  Micros last_rx = 0;
  bool rto = false;
};
/** a retransmission of an undo episode awaiting DSACK or Eifel evidence */
struct UndoRx { uint32_t start, end, ep; };
/** what one ACK revealed, gathered while the scoreboard is updated (RFC 8985 6.2) */
struct AckInfo {
  bool delivered = false;   // a segment with a usable RTT sample was newly delivered
  Micros xmit = 0;          // ... the most recently sent of them
  uint32_t order = 0, rtt = 0;
  uint32_t prior_fack = 0;
  bool has_ts = false;
  uint32_t tsecr = 0;
  bool dsack = false;       // the ACK carried a D-SACK block
  bool dsack_tlp = false;   // ... covering the TLP retransmission
  bool spurious = false;    // a retransmission was shown spurious (D-SACK or timestamps)
};

/** a half-open connection of a listener (SYN received, SYN-ACK sent) */
struct ReqSock {
  TcpSocket* listener;
  IpAddr laddr, raddr;
  uint16_t lport, rport;
  uint32_t iss, irs;
  uint16_t peer_mss;
  uint8_t snd_wscale, rcv_wscale;
  bool ws_ok, sack_ok, ts_ok;
  uint32_t ts_recent, ts_offset;
  uint16_t peer_wnd;
  uint8_t retries;
  Micros deadline;
};

class TcpCore;


struct TcpSocket {
  TcpCore* core = nullptr;
  int user_id = -1;
  Endpoint local, remote;
  uint32_t port_idx = 0;     // position in core->ports[local.port] (O(1) removal)
  RouteInfo route;

  // application-visible flags
  uint32_t ofo_fin_seq = 0;
  int error = 0;             // pending (SO_ERROR), negative errno
  int soft_error = 0;
  uint32_t last_events = 0;

  // send sequence space
  uint32_t iss = 0, snd_una = 0, snd_nxt = 0, snd_max = 0;
  uint32_t snd_wnd = 0, snd_wl1 = 0, snd_wl2 = 0, max_snd_wnd = 0;
  uint32_t snd_buf_seq = 0;  // sequence number of sbuf's first byte
  SendBuffer sbuf;
  uint32_t sndbuf_cap = 0;
  uint32_t user_mss = 0;     // TCP_MAXSEG
  uint32_t mss = 536;        // payload bytes per segment (without options)
  uint32_t pmtu = 1500;

  // rtt / rto (RFC 6298)
  uint32_t srtt_us = 0, rttvar_us = 0, rto_us = 1000000;
  uint32_t rtt_seq = 0;
  Micros rtt_start = 0;
  uint32_t backoff = 0;      // consecutive RTO expiries
  uint32_t total_retrans = 0;
  uint32_t probes = 0;       // keepalive probes without answer
  uint32_t persist_backoff = 0;

  // congestion control
  uint32_t cwnd = 0, ssthresh = 0x7fffffff;
  uint32_t ca_acc = 0;       // NewReno byte counter
  CubicState cubic;
  uint32_t dupacks = 0;
  uint32_t recover = 0;      // HighData at entry (RFC 6582/6675)
  uint32_t loss_recover = 0;
  // without SACK: a lost retransmission of the segment at SND.UNA (tcp_input.cc, late_dupack)
  uint32_t rexmit_high = 0;  // end of the highest retransmission (kept within [SND.UNA, SND.MAX])
  Micros una_rexmit_at = kNever;  // latest (re)transmission of SND.UNA's segment, if it was retransmitted
  uint32_t late_dupacks = 0; // duplicate ACKs since a round trip after that
  uint32_t probe_una = 0, probe_tsval = 0;  // the probe of SND.UNA (no SACK; tcp_recovery.cc, una_probe_fire)
  CompactVec<SeqRange> sacked;   // scoreboard: sorted, disjoint, within (snd_una, snd_max]
  uint32_t sacked_bytes = 0;
  uint32_t last_sent_len = 0;

  // retransmission queue and RACK (RFC 8985), SACK connections only
  // small first allocations (a connection that sends a few segments stays in malloc's fast
  // per-size caches); both grow by doubling
  Ring<TxSeg, 16> txq;           // [snd_una, snd_max) in sequence order
  Ring<RtxRec, 16> rtxq;         // retransmissions in transmission order
  uint32_t lost_bytes = 0;       // unSACKed bytes marked lost
  uint32_t lost_pending = 0;     // ... of which no retransmission is in flight
  uint32_t retrans_bytes = 0;    // unSACKed bytes with a retransmission in flight
  uint32_t lost_hint = 0;        // no entry below this is lost and waiting for a retransmission
  uint32_t rack_scan = 0;        // never-retransmitted entries below this are SACKed or lost
  Micros rack_xmit = 0;          // RACK.xmit_ts
  uint32_t rack_order = 0;       // its transmission order (stands in for RACK.end_seq's tie-break)
  uint32_t tx_order = 0;         // transmissions so far (32-bit, compared modulo 2^32)
  uint32_t rack_rtt = 0;         // RACK.rtt (us)
  uint32_t rack_fack = 0;        // RACK.fack: highest delivered end
  uint32_t reo_wnd_mult = 1, reo_wnd_persist = 0;
  uint32_t dsack_round = 0;      // RACK.dsack_round
  uint32_t min_rtt_us = 0;       // RACK.min_RTT (windowed)
  Micros min_rtt_stamp = 0;
  // tail loss probe (RFC 8985 section 7)
  uint32_t tlp_end = 0, tlp_rx_start = 0, tlp_rx_end = 0;
  // undo of spurious congestion responses (D-SACK, RFC 2883 / timestamps, RFC 3522)
  CompactVec<UndoEp> undo_eps;   // oldest first, bounded
  CompactVec<UndoRx> undo_rx;    // their retransmissions not yet shown spurious, bounded
  uint32_t undo_next_id = 1, undo_cur_id = 0;

  // receive sequence space
  uint32_t irs = 0, rcv_nxt = 0, rcv_adv = 0, last_ack_sent = 0;
  uint32_t rcv_wnd_sent = 0;
  RecvRing rbuf;
  uint32_t rcv_unread = 0;   // bytes before rcv_nxt not yet read
  CompactVec<OfoBlock> ofo;
  uint32_t ofo_stamp = 0;
  uint32_t rcvbuf_cap = 0, rcvbuf_max = 0;
  uint32_t sndbuf_max = 0;     // autotuning ceiling of sndbuf_cap
  uint32_t rcvq_copied = 0;
  Micros rcvq_time = 0;
  uint32_t rcv_rtt_us = 0;
  uint32_t rcv_mss = 536;    // largest segment seen from the peer (for delayed ACKs)

  // D-SACK to report in the next ACK (RFC 2883)
  uint32_t dsack_start = 0, dsack_end = 0;

  // timestamps (RFC 7323)
  uint32_t ts_recent = 0, ts_offset = 0;
  Micros ts_recent_time = 0;

  // delayed ACK
  uint32_t ack_pending = 0;  // full-sized segments received and not acked
  uint32_t quickack = 0;

  // timers (absolute deadlines, kNever when off)
  Micros t_rto = kNever, t_delack = kNever, t_persist = kNever, t_keep = kNever, t_misc = kNever;
  Micros t_rack = kNever, t_tlp = kNever;  // RACK reordering timer, TLP probe timeout
  Micros heap_deadline = kNever;
  uint32_t heap_refs = 0;
  Micros last_recv_time = 0; // for keepalive idle
  Micros last_oow_ack = 0;   // last reply to an unacceptable pure ACK (ACK-loop damping)
  Micros tw_start = 0;
  uint32_t keep_idle_ms = 0, keep_intvl_ms = 0, keep_cnt = 0;

  // listener
  uint32_t backlog = 0;
  Ring<TcpSocket*, 16> accept_q;  // allocated on the first connection
  CompactVec<ReqSock*> reqs;
  TcpSocket* parent = nullptr;  // listener, while waiting in its accept queue

  // the small fields, together: no padding between them (an idle connection is mostly this struct)
  uint8_t family = 4;
  TcpState state = TcpState::Closed;
  bool bound = false, bind_explicit = false, hashed = false;
  bool nodelay = false, keepalive = false, reuseaddr = false;
  bool v6only = false;       // IPV6_V6ONLY: an AF_INET6 listener that refuses IPv4 (::ffff:a.b.c.d) peers
  bool orphan = false;       // closed by the application; the layer frees it
  bool rd_shut = false;      // shutdown(SHUT_RD)
  bool fin_queued = false;   // shutdown(SHUT_WR)/close: FIN after the data
  bool fin_sent = false;
  bool fin_rcvd = false;     // peer's FIN processed (EOF)
  bool ofo_fin = false;      // FIN seen beyond a gap
  bool ever_connected = false;
  bool force_send = false;   // persist timer: override sender SWS avoidance once
  bool want_write = false;   // send() came up short: notify when space appears
  bool new_data = false;     // data arrived since the last notify
  uint8_t snd_wscale = 0, rcv_wscale = 0;
  bool ws_ok = false, sack_ok = false, ts_ok = false;
  uint16_t peer_mss = 536;
  bool rtt_seeded = false;
  bool rtt_timing = false;
  bool in_recovery = false, sack_recovery = false;
  bool loss_state = false;   // after an RTO: resending from snd_nxt < snd_max
  bool dupack_now = false;   // receiver: an out-of-order or duplicate segment arrived (no SACK): a pure ACK now
  bool probe_on = false;     // a probe of SND.UNA is out (no SACK)
  bool rack_valid = false;       // RACK.xmit_ts/end_seq/rtt hold a delivered segment
  bool rack_fack_set = false;
  bool reordering_seen = false;  // RACK.reordering_seen
  bool dsack_round_on = false;
  bool tlp_active = false;       // TLP.end_seq is set
  bool tlp_is_retrans = false;
  bool undo_cur_on = false;      // the current recovery / RTO episode records its retransmissions
  bool rcvbuf_locked = false;
  bool sndbuf_locked = false;  // SO_SNDBUF set: no autotuning
  bool dsack_pending = false;
  bool ack_now = false;
  bool dead = false;         // freed; waiting for its heap entries to drain

  /** the right edge the peer advertised: SND.WL2 (the ACK that carried SND.WND) + SND.WND.
      Not SND.UNA + SND.WND: an ACK that advances SND.UNA without being allowed to update the
      window (an old retransmitted segment, SND.WL1 rule) would move the edge past what the
      peer offered, and Linux drops data beyond its window and ignores the ACKs riding on it. */
  uint32_t send_window_end() const { return snd_wl2 + snd_wnd; }
  uint32_t data_end() const { return snd_buf_seq + uint32_t(sbuf.size()); }
  bool synchronized() const { return state >= TcpState::Established || state == TcpState::SynReceived; }
  /** a state in which sent data may be outstanding and sent again */
  bool sends_data() const {
    return state == TcpState::Established || state == TcpState::CloseWait || state == TcpState::FinWait1 ||
           state == TcpState::Closing || state == TcpState::LastAck;
  }
};

/** congestion control behind a small interface; per-connection state lives in TcpSocket */
class CongestionOps {
 public:
  virtual ~CongestionOps() = default;
  virtual void init(TcpSocket& s) = 0;
  /** new data acknowledged while not in recovery */
  virtual void on_ack(TcpSocket& s, uint32_t acked, Micros now) = 0;
  /** a loss was detected (fast retransmit or RTO): the new ssthresh */
  virtual uint32_t on_loss(TcpSocket& s, Micros now) = 0;
};
CongestionOps* newreno_ops();
CongestionOps* cubic_ops();

struct ConnKey {
  uint8_t family;
  uint16_t lport, rport;
  uint8_t laddr[16], raddr[16];
  bool operator==(const ConnKey& o) const {
    return family == o.family && lport == o.lport && rport == o.rport && std::memcmp(laddr, o.laddr, 16) == 0 &&
           std::memcmp(raddr, o.raddr, 16) == 0;
  }
};
struct ConnKeyHash {
  uint64_t seed;
  size_t operator()(const ConnKey& k) const {
    uint64_t h = seed ^ (uint64_t(k.lport) << 16 | k.rport) ^ (uint64_t(k.family) << 40);
    uint64_t w;
    for (int i = 0; i < 16; i += 8) {
      std::memcpy(&w, k.laddr + i, 8); h = (h ^ w) * 0x9e3779b97f4a7c15ull; h ^= h >> 29;
      std::memcpy(&w, k.raddr + i, 8); h = (h ^ w) * 0xbf58476d1ce4e5b9ull; h ^= h >> 31;
    }
    return size_t(h);
  }
};
inline ConnKey make_key(const IpAddr& l, uint16_t lp, const IpAddr& r, uint16_t rp) {
  ConnKey k;
  k.family = l.family; k.lport = lp; k.rport = rp;
  std::memcpy(k.laddr, l.b, 16); std::memcpy(k.raddr, r.b, 16);
  return k;
}

/** A connection in TIME-WAIT after its socket is gone (the application closed it): what it
 *  takes to ACK a retransmitted FIN, to answer a SYN or yield the tuple to a provably newer
 *  one (RFC 6191), and to keep the tuple from reuse for 2 MSL (RFC 9293 3.6.1), as Linux's
 *  timewait sockets. 112 bytes instead of a TcpSocket (~780) and what hangs off it. */
struct TwRecord {
  Endpoint local, remote;
  uint32_t snd_nxt = 0, rcv_nxt = 0;   // our ACKs carry SEQ = snd_nxt, ACK = rcv_nxt
  uint32_t ts_recent = 0, ts_offset = 0;
  Micros start = 0, deadline = 0;     // entered TIME-WAIT; the end of the 2 MSL wait
  TwRecord *prev = nullptr, *next = nullptr;  // the expiry list, in deadline order
  uint16_t wnd = 0;                   // the window field of our ACKs (as last advertised)
  bool ts_ok = false, offload = false;
};

/** Connection tables: open addressing over pointers to T (TcpSocket or TwRecord; the key is
 *  read from the element's own endpoints, which do not change while it is in the table),
 *  linear probing, deletion by backward shift, at most half full. 8 bytes a slot, 16 to 32 a
 *  connection, where a node-based std::unordered_map costs about 90 (node, key copy, cached
 *  hash, bucket). */
template <class T>
class PtrTable {
 public:
  explicit PtrTable(ConnKeyHash h) : hash_(h) {}
  ~PtrTable() { std::free(slots_); }
  PtrTable(const PtrTable&) = delete;
  PtrTable& operator=(const PtrTable&) = delete;
  static ConnKey key_of(const T* s) { return make_key(s->local.addr, s->local.port, s->remote.addr, s->remote.port); }
  size_t size() const { return n_; }
  T* find(const ConnKey& k) const {
    if (!n_) return nullptr;
    for (size_t i = hash_(k) & mask_;; i = (i + 1) & mask_) {
      if (!slots_[i]) return nullptr;
      if (key_of(slots_[i]) == k) return slots_[i];
    }
  }
  /** s under its key, replacing the socket that had it */
  void put(T* s) {
    if (2 * (n_ + 1) > cap_) rehash(cap_ ? cap_ * 2 : 64);
    ConnKey k = key_of(s);
    size_t i = hash_(k) & mask_;
    for (; slots_[i]; i = (i + 1) & mask_)
      if (key_of(slots_[i]) == k) { slots_[i] = s; return; }
    slots_[i] = s;
    n_++;
  }
  /** remove s (if it is the socket stored under its key) */
  void erase(T* s) {
    if (!n_) return;
    ConnKey k = key_of(s);
    size_t i = hash_(k) & mask_;
    for (; slots_[i]; i = (i + 1) & mask_) {
      if (slots_[i] != s) continue;
      shift_out(i);
      n_--;
      if (cap_ > 64 && 8 * n_ < cap_) rehash(cap_ / 2);
      return;
    }
  }
  template <class F> void for_each(F f) const {
    for (size_t i = 0; i < cap_; i++) if (slots_[i]) f(slots_[i]);
  }

 private:
  size_t home(const T* s) const { return hash_(key_of(s)) & mask_; }
  // empty slot i, moving later members of its probe run back so that every one stays
  // reachable from its home slot
  void shift_out(size_t i) {
    size_t j = i;
    for (;;) {
      slots_[i] = nullptr;
      for (;;) {
        j = (j + 1) & mask_;
        if (!slots_[j]) return;
        size_t h = home(slots_[j]);
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);  // h cyclically in (i, j]
        if (!stays) break;
      }
      slots_[i] = slots_[j];
      i = j;
    }
  }
  void rehash(size_t cap) {
    T** old = slots_;
    size_t old_cap = cap_;
    slots_ = static_cast<T**>(std::calloc(cap, sizeof(T*)));
    if (!slots_) std::abort();
    cap_ = cap;
    mask_ = cap - 1;
    for (size_t i = 0; i < old_cap; i++) {
      if (!old[i]) continue;
      size_t j = home(old[i]);
      while (slots_[j]) j = (j + 1) & mask_;
      slots_[j] = old[i];
    }
    std::free(old);
  }
  ConnKeyHash hash_;
  T** slots_ = nullptr;
  size_t cap_ = 0, mask_ = 0, n_ = 0;
};

using ConnTable = PtrTable<TcpSocket>;

struct TimerEntry {
  Micros at;
  TcpSocket* s;
  bool operator>(const TimerEntry& o) const { return at > o.at; }
};

class TcpCore {
 public:
  TcpCore(TcpHost& host, const TcpConfig& cfg, const uint8_t secret[32]);
  ~TcpCore();

  TcpHost& host;
  TcpConfig cfg;
  uint8_t secret[32];
  TcpStats st;
  CongestionOps* cc;
  Micros now = 0;

  ConnTable conns;
  std::unordered_map<ConnKey, ReqSock*, ConnKeyHash> reqs;
  std::unordered_map<uint16_t, std::vector<TcpSocket*>> ports;  // every bound socket, by local port
  std::unordered_map<uint16_t, std::vector<TcpSocket*>> listeners;  // the LISTEN ones only (a SYN does
                                                                   // not scan a port's connections)
  std::vector<TimerEntry> heap;
  size_t nsockets = 0;
  uint32_t tw_count = 0;         // connections in TIME-WAIT: sockets and records (at most cfg.max_time_wait)
  PtrTable<TwRecord> tw_table;   // TIME-WAIT records by 4-tuple
  TwRecord* tw_head = nullptr;   // ... and in deadline order (earliest first)
  TwRecord* tw_tail = nullptr;
  struct TwPort { uint16_t port; uint32_t n; };
  CompactVec<TwPort> tw_ports;   // local ports of the records, sorted, with counts (bind checks)
  uint32_t eph_counter = 0;
  uint64_t challenge_window = 0;  // second of the current budget
  uint32_t challenge_budget = 0;
  std::vector<TcpSocket*> notify_list;

  // ---- tcp_layer.cc: sockets, tables, timers, listen, cookies
  TcpSocket* new_socket(int family, int user_id);
  void free_socket(TcpSocket* s);          // unhash, drop buffers; deleted when its heap entries drain
  void hash_conn(TcpSocket* s);
  void unhash_conn(TcpSocket* s);
  void port_add(TcpSocket* s);
  void port_remove(TcpSocket* s);
  void listener_add(TcpSocket* s);
  void sndbuf_expand(TcpSocket* s);
  void listener_remove(TcpSocket* s);
  bool port_conflict(const TcpSocket* s, const IpAddr& a, uint16_t port, bool reuse) const;
  int autobind(TcpSocket* s, const Endpoint* remote);
  TcpSocket* find_conn(const IpAddr& l, uint16_t lp, const IpAddr& r, uint16_t rp) const;
  TcpSocket* find_listener(const IpAddr& l, uint16_t lp) const;
  uint32_t make_isn(const IpAddr& l, uint16_t lp, const IpAddr& r, uint16_t rp);
  uint32_t cookie_make(const IpAddr& l, uint16_t lp, const IpAddr& r, uint16_t rp, uint32_t irs, uint16_t mss);
  int cookie_check(const IpAddr& l, uint16_t lp, const IpAddr& r, uint16_t rp, uint32_t irs, uint32_t cookie);
  void arm(TcpSocket* s);
  void trim_idle(TcpSocket* s);            // free the empty buffers of a connection with nothing in flight
  void run_timers(TcpSocket* s);
  void maybe_compact_heap();
  void set_state(TcpSocket* s, TcpState st);
  void enter_time_wait(TcpSocket* s);
  /** replace an orphaned connection in TIME-WAIT (or entering it) by a record, until deadline */
  void tw_from(TcpSocket* s, Micros deadline);
  void tw_input(TwRecord* r, const tcpw::TcpSegment& seg, bool* reopen);
  void tw_send_ack(const TwRecord* r);
  void tw_free(TwRecord* r);
  void tw_unlink(TwRecord* r);
  void tw_link(TwRecord* r);      // into the expiry list at its deadline
  void tw_expire();               // free the records whose deadline has passed
  TwRecord* find_tw(const IpAddr& l, uint16_t lp, const IpAddr& r, uint16_t rp) const {
    return tw_table.size() ? tw_table.find(make_key(l, lp, r, rp)) : nullptr;
  }
  uint32_t tw_port_count(uint16_t port) const;
  /** a record on port whose local address overlaps a (bind without SO_REUSEADDR refuses it) */
  bool tw_port_overlap(uint16_t port, const IpAddr& a) const;
  void conn_done(TcpSocket* s, int err);   // connection over: CLOSED, error recorded, freed if orphan
  void queue_notify(TcpSocket* s);
  void flush_notify();
  uint32_t events(const TcpSocket* s) const;
  void listen_input(TcpSocket* l, const IpAddr& src, const IpAddr& dst, const tcpw::TcpSegment& seg);
  void req_input(ReqSock* r, const IpAddr& src, const IpAddr& dst, const tcpw::TcpSegment& seg);
  TcpSocket* child_from(TcpSocket* l, const ReqSock& r, const tcpw::TcpSegment& seg);
  void req_free(ReqSock* r);
  void send_synack(const ReqSock& r, bool cookie);
  void listener_timer(TcpSocket* l);
  void close_listener(TcpSocket* l);
  bool challenge_ack_allowed();
  void init_conn_params(TcpSocket* s);
  void setup_route(TcpSocket* s, int* err);
  uint32_t compute_mss(const TcpSocket* s) const;
  uint32_t ts_now(uint32_t offset) const { return uint32_t(now / 1000) + offset; }

  // ---- tcp_input.cc
  void input(const IpAddr& src, const IpAddr& dst, const uint8_t* p, size_t len);
  void conn_input(TcpSocket* s, const tcpw::TcpSegment& seg);
  void syn_sent_input(TcpSocket* s, const tcpw::TcpSegment& seg);
  void time_wait_input(TcpSocket* s, const IpAddr& src, const IpAddr& dst, const tcpw::TcpSegment& seg, bool* reopen);
  void process_ack(TcpSocket* s, const tcpw::TcpSegment& seg, bool* drop);
  void process_data(TcpSocket* s, const tcpw::TcpSegment& seg);
  void process_fin(TcpSocket* s);
  void update_scoreboard(TcpSocket* s, const tcpw::TcpSegment& seg, AckInfo* ai);
  void rtt_sample(TcpSocket* s, uint32_t rtt_us);
  uint32_t sacked_in(const TcpSocket* s, uint32_t a, uint32_t b) const;
  void enter_recovery(TcpSocket* s, bool sack);
  uint32_t dupthresh(const TcpSocket* s) const;
  void late_dupack(TcpSocket* s);
  void rcv_dsack(TcpSocket* s, uint32_t a, uint32_t b);

  // ---- tcp_recovery.cc: retransmission queue, RACK-TLP (RFC 8985), D-SACK use, undo
  size_t tx_index(const TcpSocket* s, uint32_t seq) const;  // first entry ending after seq
  size_t tx_split(TcpSocket* s, size_t i, uint32_t at);     // entry i becomes [start,at) + [at,end)
  void tx_sent(TcpSocket* s, uint32_t seq, uint32_t seglen, bool rexmit);
  void tx_sacked(TcpSocket* s, uint32_t a, uint32_t b, AckInfo* ai);
  void tx_acked(TcpSocket* s, uint32_t ack, AckInfo* ai);
  void tx_mark_lost(TcpSocket* s, TxSeg& e);
  void tx_mark_all_lost(TcpSocket* s, bool reneg);
  void tx_unmark_lost(TcpSocket* s);
  void tx_clear(TcpSocket* s);
  uint32_t pipe(const TcpSocket* s) const;                  // RFC 6675 SetPipe(), O(1)
  bool next_lost(TcpSocket* s, size_t* idx);
  void rack_delivered(TcpSocket* s, const TxSeg& e, AckInfo* ai);
  Micros rack_reo_wnd(const TcpSocket* s) const;
  void rack_detect_loss(TcpSocket* s);
  void rack_on_ack(TcpSocket* s, const tcpw::TcpSegment& seg, AckInfo& ai, bool advanced, bool sack_news);
  void rack_recovery_done(TcpSocket* s, bool dsack);
  void rack_timeout(TcpSocket* s);
  void dsack_received(TcpSocket* s, uint32_t a, uint32_t b, AckInfo* ai);
  void tlp_schedule(TcpSocket* s);
  void tlp_fire(TcpSocket* s);
  void una_probe_schedule(TcpSocket* s);
  void una_probe_fire(TcpSocket* s);
  void una_probe_acked(TcpSocket* s, const tcpw::TcpSegment& seg);
  void undo_begin(TcpSocket* s, bool rto);
  void undo_post(TcpSocket* s);
  void undo_note_rexmit(TcpSocket* s, uint32_t a, uint32_t b, bool again);
  bool undo_spurious(TcpSocket* s, uint32_t a, uint32_t b);
  void undo_check(TcpSocket* s);
  void undo_apply(TcpSocket* s, size_t k);
  void undo_drop(TcpSocket* s, size_t k);
  void rcv_autotune(TcpSocket* s);
  void grow_rcvbuf(TcpSocket* s, uint32_t cap);

  // ---- tcp_output.cc
  void output(TcpSocket* s);                       // send what may be sent now, or a pending ACK
  bool send_segment(TcpSocket* s, uint32_t seq, uint32_t len, uint8_t flags, bool rexmit);
  /** a pure ACK carries SND.MAX, not SND.NXT: during a go-back-N resend SND.NXT is below what
   *  the peer already holds, and an ACK with that sequence number would be unacceptable there */
  void send_ack(TcpSocket* s) { send_segment(s, s->snd_max, 0, tcpw::kAck, false); }
  void send_probe(TcpSocket* s);                   // seq snd_una-1, no data: elicits an ACK
  void send_rst_for(const IpAddr& src, const IpAddr& dst, const tcpw::TcpSegment& seg);
  void send_rst(TcpSocket* s);
  void send_raw(const IpAddr& src, const IpAddr& dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                uint8_t flags, uint16_t wnd, const uint8_t* opts, size_t optlen, bool offload);
  uint16_t rcv_window(TcpSocket* s, bool update);
  bool next_seg(TcpSocket* s, uint32_t* seq, uint32_t* len, uint8_t* flags, bool* rexmit);
  void on_rto(TcpSocket* s);
  void schedule_delack(TcpSocket* s);
  void set_rto_timer(TcpSocket* s);
  void persist_check(TcpSocket* s);
  void persist_fire(TcpSocket* s);
  void retransmit_first(TcpSocket* s);
  void keepalive_reset(TcpSocket* s);
};

const char* tcp_state_name(TcpState s);

}  // namespace ms
