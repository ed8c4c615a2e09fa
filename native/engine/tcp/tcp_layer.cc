// TcpLayer: socket calls, tables (connections, ports, half-open connections), the timer
// heap, listeners with a bounded SYN queue and SYN cookies, ISNs (RFC 6528), ephemeral
// ports (RFC 6056 algorithm 3).
#include <algorithm>

#include "tcp_internal.h"

namespace ms {
using namespace tcpw;

const char* tcp_state_name(TcpState s) {
  switch (s) {
    case TcpState::Closed: return "CLOSED";
    case TcpState::Listen: return "LISTEN";
    case TcpState::SynSent: return "SYN-SENT";
    case TcpState::SynReceived: return "SYN-RECV";
    case TcpState::Established: return "ESTAB";
    case TcpState::FinWait1: return "FIN-WAIT-1";
    case TcpState::FinWait2: return "FIN-WAIT-2";
    case TcpState::CloseWait: return "CLOSE-WAIT";
    case TcpState::Closing: return "CLOSING";
    case TcpState::LastAck: return "LAST-ACK";
    case TcpState::TimeWait: return "TIME-WAIT";
  }
  return "?";
}

static constexpr uint16_t kEphLow = 32768, kEphHigh = 60999;
// MSS values a SYN cookie can encode (3 bits)
static const uint16_t kCookieMss[8] = {536, 1220, 1360, 1440, 1460, 4036, 8940, 65495};

TcpCore::TcpCore(TcpHost& h, const TcpConfig& c, const uint8_t sec[32])
    : host(h), cfg(c), conns(ConnKeyHash{siphash(sec, reinterpret_cast<const uint8_t*>("tcp-hash"), 8)}),
      reqs(64, ConnKeyHash{0}), tw_table(ConnKeyHash{siphash(sec, reinterpret_cast<const uint8_t*>("tcp-tw"), 6)}) {
  std::memcpy(secret, sec, 32);
  uint64_t seed = siphash(secret, reinterpret_cast<const uint8_t*>("tcp-hash"), 8);
  reqs = std::unordered_map<ConnKey, ReqSock*, ConnKeyHash>(64, ConnKeyHash{seed ^ 0x5555});
  cc = cfg.congestion == Congestion::NewReno ? newreno_ops() : cubic_ops();
  if (cfg.rto_min_ms == 0) cfg.rto_min_ms = 1;
  if (cfg.rto_max_ms < cfg.rto_min_ms) cfg.rto_max_ms = cfg.rto_min_ms;
  if (cfg.receive_buffer_max < cfg.receive_buffer) cfg.receive_buffer_max = cfg.receive_buffer;
  if (cfg.receive_buffer < 2048) cfg.receive_buffer = 2048;
  if (cfg.send_buffer < 2048) cfg.send_buffer = 2048;
  if (cfg.initial_window_segments == 0) cfg.initial_window_segments = 1;
  if (cfg.max_backlog == 0) cfg.max_backlog = 1;
  eph_counter = uint32_t(host.random64());
  now = host.now();
}

TcpCore::~TcpCore() {
  // free everything, without sending
  std::vector<TcpSocket*> all;
  for (auto& kv : ports) for (TcpSocket* s : kv.second) all.push_back(s);
  conns.for_each([&](TcpSocket* s) { all.push_back(s); });
  for (auto& e : heap) all.push_back(e.s);
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  for (auto& kv : reqs) delete kv.second;
  for (TwRecord* r = tw_head; r;) { TwRecord* n = r->next; delete r; r = n; }
  std::vector<TcpSocket*> extra;
  for (TcpSocket* s : all)
    s->accept_q.for_each([&](TcpSocket* c) {
      if (!std::binary_search(all.begin(), all.end(), c)) extra.push_back(c);
    });
  for (TcpSocket* s : all) delete s;
  for (TcpSocket* c : extra) delete c;
}

// ---------------------------------------------------------------- sockets and tables

TcpSocket* TcpCore::new_socket(int family, int user_id) {
  TcpSocket* s = new TcpSocket();
  s->core = this;
  s->family = uint8_t(family);
  s->user_id = user_id;
  s->sndbuf_cap = cfg.send_buffer;
  s->sndbuf_max = std::max(cfg.send_buffer_max, cfg.send_buffer);
  s->rcvbuf_cap = cfg.receive_buffer;
  s->rcvbuf_max = cfg.receive_buffer_max;
  s->rto_us = cfg.rto_initial_ms * 1000;
  s->keep_idle_ms = cfg.keepalive_idle_ms;
  s->keep_intvl_ms = cfg.keepalive_interval_ms;
  s->keep_cnt = cfg.keepalive_count;
  s->local.addr.family = uint8_t(family);
  nsockets++;
  return s;
}

void TcpCore::free_socket(TcpSocket* s) {
  if (s->dead) return;
  if (s->state == TcpState::Listen) { close_listener(s); listener_remove(s); }
  if (s->parent) {
    s->parent->accept_q.remove(s);
    s->parent = nullptr;
  }
  unhash_conn(s);
  port_remove(s);
  if (s->state == TcpState::TimeWait) tw_count--;
  s->state = TcpState::Closed;
  s->sbuf.clear();
  s->rbuf.release();
  s->dead = true;
  s->user_id = -1;
  nsockets--;
  if (s->heap_refs == 0) delete s;
}

void TcpCore::hash_conn(TcpSocket* s) {
  if (s->hashed) return;
  conns.put(s);
  s->hashed = true;
}
void TcpCore::unhash_conn(TcpSocket* s) {
  if (!s->hashed) return;
  conns.erase(s);
  s->hashed = false;
}
void TcpCore::port_add(TcpSocket* s) {
  auto& v = ports[s->local.port];
  s->port_idx = uint32_t(v.size());
  v.push_back(s);
  s->bound = true;
}
// O(1): the last socket of the port takes the removed one's place (a listener's port holds
// every accepted connection, TIME-WAIT ones included; the order does not matter)
void TcpCore::port_remove(TcpSocket* s) {
  if (!s->bound) return;
  auto it = ports.find(s->local.port);
  if (it != ports.end()) {
    auto& v = it->second;
    size_t i = s->port_idx;
    if (i < v.size() && v[i] == s) {
      v[i] = v.back();
      v[i]->port_idx = uint32_t(i);
      v.pop_back();
    }
    if (v.empty()) ports.erase(it);
  }
  s->bound = false;
}
void TcpCore::listener_add(TcpSocket* s) {
  listeners[s->local.port].push_back(s);
}
void TcpCore::listener_remove(TcpSocket* s) {
  auto it = listeners.find(s->local.port);
  if (it == listeners.end()) return;
  auto& v = it->second;
  v.erase(std::remove(v.begin(), v.end(), s), v.end());
  if (v.empty()) listeners.erase(it);
}

TcpSocket* TcpCore::find_conn(const IpAddr& l, uint16_t lp, const IpAddr& r, uint16_t rp) const {
  return conns.find(make_key(l, lp, r, rp));
}

TcpSocket* TcpCore::find_listener(const IpAddr& l, uint16_t lp) const {
  auto it = listeners.find(lp);
  if (it == listeners.end()) return nullptr;
  TcpSocket* wild = nullptr;
  for (TcpSocket* s : it->second) {
    if (s->state != TcpState::Listen || s->family != l.family) continue;
    if (s->v6only && is_v4_mapped(l)) continue;
    if (s->local.addr == l) return s;
    if (s->local.addr.is_unspecified()) wild = s;
  }
  return wild;
}

bool TcpCore::port_conflict(const TcpSocket* s, const IpAddr& a, uint16_t port, bool reuse) const {
  auto it = ports.find(port);
  if (it == ports.end()) return !reuse && tw_port_overlap(port, a);
  for (TcpSocket* o : it->second) {
    if (o == s || o->family != s->family) continue;
    bool overlap = o->local.addr.is_unspecified() || a.is_unspecified() || o->local.addr == a;
    if (!overlap) continue;
    if (o->state == TcpState::Listen) return true;
    if (o->state == TcpState::TimeWait) { if (!reuse) return true; continue; }
    if (reuse && o->reuseaddr) continue;
    return true;
  }
  return !reuse && tw_port_overlap(port, a);
}

int TcpCore::autobind(TcpSocket* s, const Endpoint* remote) {
  const uint32_t num = kEphHigh - kEphLow + 1;
  uint32_t offset;
  if (remote) {
    // RFC 6056 algorithm 3: offset = F(local, remote, secret); next_ephemeral advances
    uint8_t buf[48];
    size_t n = tuple_bytes(buf, s->local.addr, 0, remote->addr, remote->port);
    offset = uint32_t(siphash(secret + 16, buf, n));
  } else {
    offset = uint32_t(host.random64());
  }
  for (uint32_t i = 0; i < num; i++) {
    uint16_t port = uint16_t(kEphLow + (offset + eph_counter + i) % num);
    bool ok;
    if (remote) {
      ok = !find_conn(s->local.addr, port, remote->addr, remote->port) && !find_tw(s->local.addr, port, remote->addr, remote->port);
      if (ok) {  // must not collide with a listener or an explicitly bound socket
        auto it = ports.find(port);
        if (it != ports.end())
          for (TcpSocket* o : it->second) {
            if (o->family != s->family) continue;
            bool overlap = o->local.addr.is_unspecified() || s->local.addr.is_unspecified() || o->local.addr == s->local.addr;
            if (overlap && (o->bind_explicit || o->state == TcpState::Listen)) { ok = false; break; }
          }
      }
    } else {
      ok = ports.find(port) == ports.end() && tw_port_count(port) == 0;
    }
    if (ok) {
      eph_counter += i + 1 + uint32_t(host.random64() & 3);
      s->local.port = port;
      port_add(s);
      return 0;
    }
  }
  return -EADDRNOTAVAIL;
}

uint32_t TcpCore::make_isn(const IpAddr& l, uint16_t lp, const IpAddr& r, uint16_t rp) {
  // RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 us clock
  uint8_t buf[48];
  size_t n = tuple_bytes(buf, l, lp, r, rp);
  return uint32_t(now / 4) + uint32_t(siphash(secret, buf, n));
}

uint32_t TcpCore::cookie_make(const IpAddr& l, uint16_t lp, const IpAddr& r, uint16_t rp, uint32_t irs, uint16_t mss) {
  uint32_t t = uint32_t(now / 64000000ull);  // 64 s periods
  int idx = 0;
  for (int i = 7; i >= 0; i--) if (kCookieMss[i] <= mss) { idx = i; break; }
  uint8_t buf[56];
  size_t n = tuple_bytes(buf, l, lp, r, rp);
  put32(buf + n, irs); put32(buf + n + 4, t); buf[n + 8] = uint8_t(idx);
  uint32_t h = uint32_t(siphash(secret + 16, buf, n + 9));
  return ((t & 31) << 27) | (uint32_t(idx) << 24) | (h & 0xffffff);
}

int TcpCore::cookie_check(const IpAddr& l, uint16_t lp, const IpAddr& r, uint16_t rp, uint32_t irs, uint32_t cookie) {
  uint32_t t = uint32_t(now / 64000000ull);
  int idx = (cookie >> 24) & 7;
  for (uint32_t age = 0; age <= 2; age++) {
    uint32_t tx = t - age;
    if ((tx & 31) != (cookie >> 27)) continue;
    uint8_t buf[56];
    size_t n = tuple_bytes(buf, l, lp, r, rp);
    put32(buf + n, irs); put32(buf + n + 4, tx); buf[n + 8] = uint8_t(idx);
    uint32_t h = uint32_t(siphash(secret + 16, buf, n + 9));
    if ((h & 0xffffff) == (cookie & 0xffffff)) return kCookieMss[idx];
  }
  return -1;
}

// ---------------------------------------------------------------- timers

void TcpCore::arm(TcpSocket* s) {
  if (s->dead) return;
  if (s->t_rto == kNever && s->t_delack == kNever && s->t_persist == kNever && s->t_rack == kNever && s->t_tlp == kNever)
    trim_idle(s);
  Micros next = std::min(std::min(s->t_rto, s->t_delack), std::min(std::min(s->t_persist, s->t_keep), s->t_misc));
  next = std::min(next, std::min(s->t_rack, s->t_tlp));
  if (next < s->heap_deadline) {
    heap.push_back({next, s});
    std::push_heap(heap.begin(), heap.end(), std::greater<TimerEntry>());
    s->heap_refs++;
    s->heap_deadline = next;
    maybe_compact_heap();
  }
}

// nothing in flight, no transmission timer: keep no empty storage. A receive ring that grew past
// its first size stays (it would grow again, copying, under the next burst); bounded by the
// receive buffer like the data it holds.
void TcpCore::trim_idle(TcpSocket* s) {
  if (s->sbuf.size() == 0) s->sbuf.clear();  // its spare chunk
  if (s->txq.empty()) s->txq.shrink_to_fit();
  if (s->rtxq.empty()) s->rtxq.shrink_to_fit();
  if (s->sacked.empty()) s->sacked.shrink_to_fit();
  if (s->undo_eps.empty()) s->undo_eps.shrink_to_fit();
  if (s->undo_rx.empty()) s->undo_rx.shrink_to_fit();
  if (s->ofo.empty()) {
    s->ofo.shrink_to_fit();
    if (s->rcv_unread == 0 && s->rbuf.allocated() && s->rbuf.capacity() <= kFirstRecvRing) s->rbuf.release();
  }
}

void TcpCore::maybe_compact_heap() {
  if (heap.size() < 2 * nsockets + 256) return;
  std::vector<TimerEntry> keep;
  keep.reserve(nsockets + 16);
  std::vector<TcpSocket*> gone;
  for (auto& e : heap) {
    if (!e.s->dead && e.at == e.s->heap_deadline) { keep.push_back(e); continue; }
    if (--e.s->heap_refs == 0 && e.s->dead) gone.push_back(e.s);
  }
  heap.swap(keep);
  std::make_heap(heap.begin(), heap.end(), std::greater<TimerEntry>());
  for (TcpSocket* s : gone) delete s;
}

void TcpCore::run_timers(TcpSocket* s) {
  if (s->t_misc <= now) {
    s->t_misc = kNever;
    if (s->state == TcpState::Listen) listener_timer(s);
    else if (s->state == TcpState::TimeWait) { conn_done(s, 0); return; }
    else if (s->state == TcpState::FinWait2 && s->orphan) { conn_done(s, 0); return; }
  }
  if (s->dead) return;
  if (s->t_rack <= now) { s->t_rack = kNever; rack_timeout(s); if (s->dead) return; }
  if (s->t_tlp <= now) { s->t_tlp = kNever; tlp_fire(s); if (s->dead) return; }  // before the RTO it stands in for
  if (s->t_rto <= now) { s->t_rto = kNever; on_rto(s); if (s->dead) return; }
  if (s->t_persist <= now) { s->t_persist = kNever; persist_fire(s); if (s->dead) return; }
  if (s->t_keep <= now) {
    s->t_keep = kNever;
    if (s->keepalive && (s->state == TcpState::Established || s->state == TcpState::CloseWait ||
                         s->state == TcpState::FinWait2)) {
      Micros idle_end = s->last_recv_time + Micros(s->keep_idle_ms) * 1000;
      if (now < idle_end && s->probes == 0) {
        s->t_keep = idle_end;
      } else if (s->snd_una != s->snd_max) {
        // data in flight: the retransmission timer watches the peer
        s->t_keep = now + Micros(s->keep_idle_ms) * 1000;
      } else if (s->probes >= s->keep_cnt) {
        conn_done(s, s->soft_error ? s->soft_error : -ETIMEDOUT);
        return;
      } else {
        s->probes++;
        st.keepalive_probes++;
        send_probe(s);
        s->t_keep = now + Micros(s->keep_intvl_ms) * 1000;
      }
    }
  }
  if (s->t_delack <= now) {
    s->t_delack = kNever;
    if (s->ack_pending || s->ack_now) { s->ack_now = true; output(s); }
  }
}

void TcpCore::set_state(TcpSocket* s, TcpState ns) {
  if (s->state == TcpState::TimeWait) tw_count--;
  if (ns == TcpState::TimeWait) tw_count++;
  s->state = ns;
  queue_notify(s);
}

void TcpCore::enter_time_wait(TcpSocket* s) {
  if (tw_count >= cfg.max_time_wait) { conn_done(s, 0); return; }
  if (s->orphan) { tw_from(s, now + Micros(cfg.time_wait_ms) * 1000); return; }
  set_state(s, TcpState::TimeWait);
  s->t_rto = s->t_persist = s->t_keep = s->t_delack = kNever;
  s->tw_start = now;
  s->t_misc = now + Micros(cfg.time_wait_ms) * 1000;
  s->sbuf.clear();
  if (s->orphan) { s->rbuf.release(); s->rcv_unread = 0; }
  s->ofo.clear(); s->ofo.shrink_to_fit();
  s->sacked.clear(); s->sacked.shrink_to_fit();
  tx_clear(s);
  s->txq.shrink_to_fit(); s->rtxq.shrink_to_fit(); s->undo_rx.shrink_to_fit(); s->undo_eps.shrink_to_fit();
  arm(s);
}

void TcpCore::conn_done(TcpSocket* s, int err) {
  if (s->state == TcpState::TimeWait) tw_count--;
  s->state = TcpState::Closed;
  if (err) s->error = err;
  s->t_rto = s->t_delack = s->t_persist = s->t_keep = s->t_misc = kNever;
  unhash_conn(s);
  s->sbuf.clear();
  s->sacked.clear(); s->ofo.clear();
  tx_clear(s);
  if (s->orphan) { free_socket(s); return; }
  if (s->parent == nullptr) port_remove(s);
  queue_notify(s);
}

// ---------------------------------------------------------------- TIME-WAIT records

// tw_ports is sorted by port: where port's entry is, or would go
template <class V>
static auto tw_port_pos(V& ports, uint16_t port) {
  return std::lower_bound(ports.begin(), ports.end(), port, [](const TcpCore::TwPort& x, uint16_t v) { return x.port < v; });
}

void TcpCore::tw_from(TcpSocket* s, Micros deadline) {
  auto* r = new TwRecord();
  r->local = s->local; r->remote = s->remote;
  r->snd_nxt = s->snd_max; r->rcv_nxt = s->rcv_nxt;
  r->ts_ok = s->ts_ok; r->ts_recent = s->ts_recent; r->ts_offset = s->ts_offset;
  r->wnd = rcv_window(s, false);
  r->offload = s->route.csum_offload;
  r->start = s->state == TcpState::TimeWait ? s->tw_start : now;
  r->deadline = deadline;
  conn_done(s, 0);  // orphaned: freed
  if (TwRecord* old = tw_table.find(PtrTable<TwRecord>::key_of(r))) tw_free(old);
  tw_table.put(r);
  tw_link(r);
  st.tw_records++;
  TwPort* p = tw_port_pos(tw_ports, r->local.port);
  if (p != tw_ports.end() && p->port == r->local.port) p->n++;
  else tw_ports.insert(p, TwPort{r->local.port, 1});
  tw_count++;
}

void TcpCore::tw_free(TwRecord* r) {
  tw_table.erase(r);
  tw_unlink(r);
  TwPort* p = tw_port_pos(tw_ports, r->local.port);
  if (p != tw_ports.end() && p->port == r->local.port && --p->n == 0) tw_ports.erase(p);
  if (tw_ports.empty()) tw_ports.shrink_to_fit();
  tw_count--;
  delete r;
}

void TcpCore::tw_unlink(TwRecord* r) {
  (r->prev ? r->prev->next : tw_head) = r->next;
  (r->next ? r->next->prev : tw_tail) = r->prev;
  r->prev = r->next = nullptr;
}

// deadlines are mostly now + 2 MSL, the latest: the walk from the tail is short
void TcpCore::tw_link(TwRecord* r) {
  TwRecord* after = tw_tail;
  while (after && after->deadline > r->deadline) after = after->prev;
  r->prev = after;
  r->next = after ? after->next : tw_head;
  (r->next ? r->next->prev : tw_tail) = r;
  (after ? after->next : tw_head) = r;
}

void TcpCore::tw_expire() {
  while (tw_head && tw_head->deadline <= now) tw_free(tw_head);
}

uint32_t TcpCore::tw_port_count(uint16_t port) const {
  const TwPort* p = tw_port_pos(tw_ports, port);
  return p != tw_ports.end() && p->port == port ? p->n : 0;
}

bool TcpCore::tw_port_overlap(uint16_t port, const IpAddr& a) const {
  if (!tw_port_count(port)) return false;
  for (const TwRecord* r = tw_head; r; r = r->next)  // at most cfg.max_time_wait, and only at bind
    if (r->local.port == port && r->local.addr.family == a.family && (a.is_unspecified() || r->local.addr == a)) return true;
  return false;
}

void TcpCore::tw_send_ack(const TwRecord* r) {
  uint8_t opts[12];
  size_t n = 0;
  if (r->ts_ok) {
    opts[0] = kOptNop; opts[1] = kOptNop; opts[2] = kOptTs; opts[3] = 10;
    put32(opts + 4, ts_now(r->ts_offset)); put32(opts + 8, r->ts_recent);
    n = 12;
  }
  send_raw(r->local.addr, r->remote.addr, r->local.port, r->remote.port, r->snd_nxt, r->rcv_nxt, kAck, r->wnd, opts, n,
           r->offload);
}

// ---------------------------------------------------------------- notifications

void TcpCore::queue_notify(TcpSocket* s) {
  if (s->dead || s->user_id < 0 || s->orphan) return;
  for (TcpSocket* o : notify_list) if (o == s) return;  // lists are short: sockets touched by one input
  s->heap_refs++;  // pin while listed
  notify_list.push_back(s);
}

void TcpCore::flush_notify() {
  for (int round = 0; round < 8 && !notify_list.empty(); round++) {
    std::vector<TcpSocket*> list;
    list.swap(notify_list);
    for (TcpSocket* s : list) {
      if (!s->dead && s->user_id >= 0 && !s->orphan) {
        uint32_t ev = events(s);
        bool fire = ev != s->last_events || (s->new_data && (ev & kEvReadable)) || (s->want_write && (ev & kEvWritable));
        s->last_events = ev;
        s->new_data = false;
        if (ev & kEvWritable) s->want_write = false;
        if (fire) host.notify(s, ev);
      }
    }
    for (TcpSocket* s : list) if (--s->heap_refs == 0 && s->dead) delete s;
  }
}

uint32_t TcpCore::events(const TcpSocket* s) const {
  if (s->state == TcpState::Listen) return s->accept_q.empty() ? 0u : uint32_t(kEvReadable);
  uint32_t ev = 0;
  if (s->error) ev |= kEvError | kEvReadable | kEvWritable;
  if (s->rcv_unread || s->fin_rcvd || s->rd_shut) ev |= kEvReadable;
  switch (s->state) {
    case TcpState::Closed:
      ev |= kEvHangup;
      if (s->ever_connected || s->error) ev |= kEvReadable | kEvWritable;
      break;
    case TcpState::SynSent:
    case TcpState::SynReceived:
      break;
    default:
      if (s->fin_queued) ev |= kEvWritable;  // send() would fail with EPIPE right away
      else {
        size_t used = s->sbuf.size(), free = s->sndbuf_cap > used ? s->sndbuf_cap - used : 0;
        if (free && free * 2 >= used) ev |= kEvWritable;
      }
      if (s->fin_rcvd && s->fin_queued) ev |= kEvHangup;
      break;
  }
  return ev;
}

// ---------------------------------------------------------------- connection setup helpers

void TcpCore::setup_route(TcpSocket* s, int* err) {
  RouteInfo r;
  int e = host.route(s->remote.addr, &r);
  if (e) { *err = e; return; }
  s->route = r;
  s->pmtu = r.mtu ? r.mtu : 1500;
  if (s->pmtu < 576 && !ip6_wire(s->remote.addr)) s->pmtu = std::max<uint32_t>(s->pmtu, 68);
  *err = 0;
}

uint32_t TcpCore::compute_mss(const TcpSocket* s) const {
  uint32_t hdr = (ip6_wire(s->remote.addr) ? 40 : 20) + 20;  // a v4-mapped peer is IPv4 on the wire
  uint32_t m = s->pmtu > hdr + 8 ? s->pmtu - hdr : 8;
  m = std::min<uint32_t>(m, s->peer_mss ? s->peer_mss : 536);
  if (cfg.mss) m = std::min(m, cfg.mss);
  if (s->user_mss) m = std::min(m, s->user_mss);
  if (s->ts_ok && m > 12 + 64) m -= 12;
  return std::max<uint32_t>(m, 64);
}

void TcpCore::init_conn_params(TcpSocket* s) {
  uint32_t maxbuf = s->rcvbuf_locked ? s->rcvbuf_cap : std::max(s->rcvbuf_max, s->rcvbuf_cap);
  s->rcv_wscale = 0;
  if (cfg.window_scale)
    while (s->rcv_wscale < kMaxWscale && (maxbuf >> s->rcv_wscale) > 65535) s->rcv_wscale++;
  s->rto_us = cfg.rto_initial_ms * 1000;
  uint8_t buf[48];
  size_t n = tuple_bytes(buf, s->local.addr, s->local.port, s->remote.addr, s->remote.port);
  s->ts_offset = uint32_t(siphash(secret + 8, buf, n) >> 32);
  cc->init(*s);
}

bool TcpCore::challenge_ack_allowed() {
  // RFC 5961 section 7: a per-layer budget per second, randomised (as Linux after CVE-2016-5696)
  uint64_t sec = now / 1000000;
  if (sec != challenge_window) {
    challenge_window = sec;
    challenge_budget = 500 + uint32_t(host.random64() % 500);
  }
  if (challenge_budget == 0) return false;
  challenge_budget--;
  return true;
}

// ---------------------------------------------------------------- listeners

void TcpCore::send_synack(const ReqSock& r, bool cookie) {
  uint8_t opts[40];
  size_t n = 0;
  RouteInfo ri;
  uint32_t mtu = 1500;
  bool offload = false;
  if (host.route(r.raddr, &ri) == 0) { mtu = ri.mtu; offload = ri.csum_offload; }
  uint32_t hdr = (ip6_wire(r.raddr) ? 40 : 20) + 20;
  uint32_t adv = mtu > hdr ? mtu - hdr : 536;
  if (cfg.mss) adv = std::min(adv, cfg.mss);
  adv = std::min<uint32_t>(adv, 65535);
  opts[n++] = kOptMss; opts[n++] = 4; put16(opts + n, uint16_t(adv)); n += 2;
  if (r.ws_ok) { opts[n++] = kOptNop; opts[n++] = kOptWs; opts[n++] = 3; opts[n++] = r.rcv_wscale; }
  if (r.sack_ok && !r.ts_ok) { opts[n++] = kOptNop; opts[n++] = kOptNop; opts[n++] = kOptSackOk; opts[n++] = 2; }
  if (r.ts_ok) {
    if (r.sack_ok) { opts[n++] = kOptSackOk; opts[n++] = 2; }
    else { opts[n++] = kOptNop; opts[n++] = kOptNop; }
    uint32_t tsval = ts_now(r.ts_offset);
    if (cookie) tsval = (tsval & ~0x1fu) | (r.sack_ok ? 0x10u : 0) | (r.ws_ok ? r.rcv_wscale : 0xfu);
    opts[n++] = kOptTs; opts[n++] = 10; put32(opts + n, tsval); put32(opts + n + 4, r.ts_recent); n += 8;
  }
  // the window in a SYN-ACK is never scaled
  uint32_t w = std::min<uint32_t>(r.listener->rcvbuf_cap, 65535);
  send_raw(r.laddr, r.raddr, r.lport, r.rport, r.iss, r.irs + 1, kSyn | kAck, uint16_t(w), opts, n, offload);
}

void TcpCore::listen_input(TcpSocket* l, const IpAddr& src, const IpAddr& dst, const TcpSegment& seg) {
  if (seg.has(kRst)) return;
  if (seg.has(kAck)) {
    if (!seg.has(kSyn)) {
      // maybe the ACK completing a SYN-cookie handshake
      int mss = cookie_check(dst, seg.dport, src, seg.sport, seg.seq - 1, seg.ack - 1);
      if (mss < 0) {
        st.syn_cookies_failed++;
        send_rst_for(src, dst, seg);
        return;
      }
      if (l->accept_q.size() >= l->backlog) { st.listen_drops++; return; }
      ReqSock r{};
      r.listener = l; r.laddr = dst; r.raddr = src; r.lport = seg.dport; r.rport = seg.sport;
      r.iss = seg.ack - 1; r.irs = seg.seq - 1; r.peer_mss = uint16_t(mss);
      if (seg.opt.has_ts) {
        uint32_t bits = seg.opt.tsecr & 0x1f;
        r.ts_ok = true;
        r.ts_recent = seg.opt.tsval;
        r.sack_ok = (bits & 0x10) != 0 && cfg.sack;
        uint8_t ws = bits & 0xf;
        if (ws != 0xf && cfg.window_scale) {
          r.ws_ok = true;
          // our own scale is recomputed exactly as when the SYN-ACK was sent; the peer's was encoded
          r.snd_wscale = ws > kMaxWscale ? kMaxWscale : ws;
          uint32_t maxbuf = std::max(l->rcvbuf_max, l->rcvbuf_cap);
          r.rcv_wscale = 0;
          while (r.rcv_wscale < kMaxWscale && (maxbuf >> r.rcv_wscale) > 65535) r.rcv_wscale++;
        }
        uint8_t buf[48];
        size_t n = tuple_bytes(buf, dst, seg.dport, src, seg.sport);
        r.ts_offset = uint32_t(siphash(secret + 8, buf, n) >> 32);
      }
      st.syn_cookies_ok++;
      TcpSocket* c = child_from(l, r, seg);
      if (c) conn_input(c, seg);
      return;
    }
    send_rst_for(src, dst, seg);
    return;
  }
  if (!seg.has(kSyn)) return;
  if (l->accept_q.size() >= l->backlog) { st.listen_drops++; return; }
  if (dst.family == 4 && (dst.b[0] >= 224 || src.b[0] >= 224)) return;  // no multicast/broadcast peers
  ReqSock r{};
  r.listener = l; r.laddr = dst; r.raddr = src; r.lport = seg.dport; r.rport = seg.sport;
  r.irs = seg.seq;
  r.peer_mss = seg.opt.has_mss ? seg.opt.mss : (ip6_wire(src) ? 1220 : 536);
  r.peer_wnd = seg.wnd;
  if (seg.opt.has_ws && cfg.window_scale) {
    r.ws_ok = true;
    r.snd_wscale = seg.opt.ws;
    uint32_t maxbuf = std::max(l->rcvbuf_max, l->rcvbuf_cap);
    while (r.rcv_wscale < kMaxWscale && (maxbuf >> r.rcv_wscale) > 65535) r.rcv_wscale++;
  }
  r.sack_ok = seg.opt.sack_ok && cfg.sack;
  if (seg.opt.has_ts && cfg.timestamps) { r.ts_ok = true; r.ts_recent = seg.opt.tsval; }
  uint8_t buf[48];
  size_t n = tuple_bytes(buf, dst, seg.dport, src, seg.sport);
  r.ts_offset = uint32_t(siphash(secret + 8, buf, n) >> 32);
  uint32_t qmax = std::max<uint32_t>(1, std::min(cfg.syn_backlog, l->backlog));
  if (l->reqs.size() >= qmax || reqs.size() >= size_t(cfg.syn_backlog) * 64) {
    // SYN queue full: answer with a cookie and keep no state
    r.iss = cookie_make(dst, seg.dport, src, seg.sport, seg.seq, r.peer_mss);
    if (!r.ts_ok) { r.ws_ok = false; r.sack_ok = false; }  // without timestamps there is nowhere to keep them
    st.syn_cookies_sent++;
    send_synack(r, true);
    return;
  }
  r.iss = make_isn(dst, seg.dport, src, seg.sport);
  r.deadline = now + Micros(cfg.rto_initial_ms) * 1000;
  ReqSock* rp = new ReqSock(r);
  reqs[make_key(dst, seg.dport, src, seg.sport)] = rp;
  l->reqs.push_back(rp);
  send_synack(*rp, false);
  if (rp->deadline < l->t_misc) { l->t_misc = rp->deadline; arm(l); }
}

void TcpCore::req_free(ReqSock* r) {
  reqs.erase(make_key(r->laddr, r->lport, r->raddr, r->rport));
  auto& v = r->listener->reqs;
  v.erase(std::remove(v.begin(), v.end(), r), v.end());
  delete r;
}

void TcpCore::listener_timer(TcpSocket* l) {
  Micros next = kNever;
  std::vector<ReqSock*> expired;
  for (ReqSock* r : l->reqs) {
    if (r->deadline <= now) {
      if (r->retries >= cfg.syn_ack_retries) { expired.push_back(r); continue; }
      r->retries++;
      st.retrans_segs++;
      send_synack(*r, false);
      uint64_t iv = uint64_t(cfg.rto_initial_ms) * 1000 << r->retries;
      r->deadline = now + std::min<uint64_t>(iv, uint64_t(cfg.rto_max_ms) * 1000);
    }
    next = std::min(next, r->deadline);
  }
  for (ReqSock* r : expired) req_free(r);
  l->t_misc = next;
}

void TcpCore::req_input(ReqSock* r, const IpAddr& src, const IpAddr& dst, const TcpSegment& seg) {
  TcpSocket* l = r->listener;
  if (seg.has(kRst)) {
    // RFC 5961 3.2 for SYN-RECEIVED: exact match resets, in-window gets a challenge (here: ignored)
    if (seg.seq == r->irs + 1) req_free(r);
    return;
  }
  if (seg.has(kSyn)) {
    if (seg.seq == r->irs && !seg.has(kAck)) send_synack(*r, false);  // our SYN-ACK was lost
    return;
  }
  if (!seg.has(kAck)) return;
  if (seg.ack != r->iss + 1) { send_rst_for(src, dst, seg); return; }
  if (r->ts_ok && seg.opt.has_ts && int32_t(seg.opt.tsval - r->ts_recent) < 0) { st.paws_drops++; return; }
  if (seq_lt(seg.seq, r->irs + 1) || seq_gt(seg.seq, r->irs + 1 + 65535u)) return;
  if (l->accept_q.size() >= l->backlog) { st.listen_drops++; return; }  // the peer retransmits; so do we
  ReqSock copy = *r;
  req_free(r);
  TcpSocket* c = child_from(l, copy, seg);
  if (c) conn_input(c, seg);
}

TcpSocket* TcpCore::child_from(TcpSocket* l, const ReqSock& r, const TcpSegment& seg) {
  TcpSocket* c = new_socket(l->family, -1);
  c->local.addr = r.laddr; c->local.port = r.lport;
  c->remote.addr = r.raddr; c->remote.port = r.rport;
  c->nodelay = l->nodelay; c->keepalive = l->keepalive;
  c->keep_idle_ms = l->keep_idle_ms; c->keep_intvl_ms = l->keep_intvl_ms; c->keep_cnt = l->keep_cnt;
  c->sndbuf_cap = l->sndbuf_cap; c->rcvbuf_cap = l->rcvbuf_cap; c->rcvbuf_max = l->rcvbuf_max;
  c->rcvbuf_locked = l->rcvbuf_locked; c->user_mss = l->user_mss;
  c->sndbuf_max = l->sndbuf_max; c->sndbuf_locked = l->sndbuf_locked;
  int err = 0;
  setup_route(c, &err);
  if (err) { c->pmtu = 1500; }
  c->iss = r.iss; c->irs = r.irs;
  c->snd_una = c->snd_nxt = c->snd_max = c->snd_buf_seq = r.iss + 1;
  c->recover = c->loss_recover = c->rexmit_high = r.iss;  // RFC 6582 3.2: "recover" starts at the ISN
  c->rcv_nxt = r.irs + 1;
  c->ws_ok = r.ws_ok; c->snd_wscale = r.ws_ok ? r.snd_wscale : 0; c->rcv_wscale = r.ws_ok ? r.rcv_wscale : 0;
  c->sack_ok = r.sack_ok; c->ts_ok = r.ts_ok; c->ts_recent = r.ts_recent; c->ts_recent_time = now;
  c->ts_offset = r.ts_offset;
  c->peer_mss = r.peer_mss;
  c->mss = compute_mss(c);
  c->cwnd = cfg.initial_window_segments * c->mss;
  c->snd_wnd = uint32_t(seg.wnd) << c->snd_wscale;
  c->max_snd_wnd = c->snd_wnd;
  c->snd_wl1 = seg.seq; c->snd_wl2 = seg.ack;
  // the window we offered in the SYN-ACK (unscaled)
  c->rcv_adv = c->rcv_nxt + std::min<uint32_t>(l->rcvbuf_cap, 65535);
  c->last_ack_sent = c->rcv_nxt;
  c->rto_us = cfg.rto_initial_ms * 1000;
  c->last_recv_time = now;
  cc->init(*c);
  c->state = TcpState::Established;
  c->ever_connected = true;
  c->parent = l;
  c->quickack = 16;
  hash_conn(c);
  port_add(c);
  l->accept_q.push_back(c);
  l->new_data = true;  // a new connection to report even if the listener was readable before
  st.passive_opens++;
  keepalive_reset(c);
  queue_notify(l);
  return c;
}

void TcpCore::close_listener(TcpSocket* l) {
  while (!l->reqs.empty()) req_free(l->reqs.back());
  Ring<TcpSocket*, 16> q;
  q.swap(l->accept_q);
  for (size_t i = 0; i < q.size(); i++) {
    TcpSocket* c = q[i];
    c->parent = nullptr;
    if (c->synchronized() && c->state != TcpState::TimeWait) send_rst(c);
    c->orphan = true;
    free_socket(c);
  }
  l->t_misc = kNever;
}

// ---------------------------------------------------------------- TcpLayer: application calls

TcpLayer::TcpLayer(TcpHost& host, const TcpConfig& cfg, const uint8_t secret[32]) : core_(new TcpCore(host, cfg, secret)) {}
TcpLayer::~TcpLayer() = default;

TcpSocket* TcpLayer::open(int family, int user_id) {
  if (family != 4 && family != 6) return nullptr;
  return core_->new_socket(family, user_id);
}

int TcpLayer::bind(TcpSocket* s, const Endpoint& ep) {
  TcpCore& c = *core_;
  c.now = c.host.now();
  if (s->bound || s->state != TcpState::Closed) return -EINVAL;
  if (ep.addr.family != s->family && !(ep.addr.family == 0)) return -EINVAL;
  IpAddr a = ep.addr;
  if (a.family == 0) a.family = s->family;
  if (!a.is_unspecified() && !c.host.is_local_address(a)) return -EADDRNOTAVAIL;
  s->local.addr = a;
  if (ep.port == 0) {
    int e = c.autobind(s, nullptr);
    if (e) return -EADDRINUSE;
  } else {
    if (c.port_conflict(s, a, ep.port, s->reuseaddr)) return -EADDRINUSE;
    s->local.port = ep.port;
    c.port_add(s);
  }
  s->bind_explicit = true;
  return 0;
}

int TcpLayer::listen(TcpSocket* s, int backlog) {
  TcpCore& c = *core_;
  if (s->state != TcpState::Closed && s->state != TcpState::Listen) return -EINVAL;
  if (s->ever_connected) return -EINVAL;
  if (!s->bound) {
    if (c.autobind(s, nullptr)) return -EADDRINUSE;
  } else if (s->state == TcpState::Closed) {
    // another listener on an overlapping address
    auto it = c.listeners.find(s->local.port);
    if (it != c.listeners.end())
      for (TcpSocket* o : it->second) {
        if (o == s || o->family != s->family || o->state != TcpState::Listen) continue;
        if (o->local.addr.is_unspecified() || s->local.addr.is_unspecified() || o->local.addr == s->local.addr) return -EADDRINUSE;
      }
  }
  if (backlog < 1) backlog = 1;
  s->backlog = std::min<uint32_t>(uint32_t(backlog), c.cfg.max_backlog);
  if (s->state != TcpState::Listen) c.listener_add(s);
  s->state = TcpState::Listen;
  return 0;
}

TcpSocket* TcpLayer::accept(TcpSocket* l, int* err, int new_user_id) {
  if (l->state != TcpState::Listen) { if (err) *err = -EINVAL; return nullptr; }
  if (l->accept_q.empty()) { if (err) *err = -EAGAIN; return nullptr; }
  TcpSocket* c = l->accept_q.front();
  l->accept_q.pop_front();
  c->parent = nullptr;
  c->user_id = new_user_id;
  c->last_events = core_->events(c);
  if (c->state == TcpState::Closed) core_->port_remove(c);
  if (err) *err = 0;
  return c;
}

int TcpLayer::connect(TcpSocket* s, const Endpoint& remote) {
  TcpCore& c = *core_;
  c.now = c.host.now();
  switch (s->state) {
    case TcpState::Closed: break;
    case TcpState::SynSent: case TcpState::SynReceived: return -EALREADY;
    case TcpState::Listen: return -EINVAL;
    default: return -EISCONN;
  }
  if (s->ever_connected) return -EISCONN;
  if (remote.addr.family != s->family || remote.port == 0 || remote.addr.is_unspecified()) return -EINVAL;
  s->remote = remote;
  int err = 0;
  c.setup_route(s, &err);
  if (err) return err;
  if (s->local.addr.is_unspecified()) {
    IpAddr src = s->route.src;
    if (src.family != s->family) return -EADDRNOTAVAIL;
    if (s->bound) {
      // bound to the wildcard: the connection takes the route's source address
      TcpSocket* o = c.find_conn(src, s->local.port, remote.addr, remote.port);
      if (o || c.find_tw(src, s->local.port, remote.addr, remote.port)) return -EADDRNOTAVAIL;
    }
    s->local.addr = src;
  }
  if (!s->bound) {
    if (c.autobind(s, &remote)) return -EADDRNOTAVAIL;
  } else if (TcpSocket* o = c.find_conn(s->local.addr, s->local.port, remote.addr, remote.port)) {
    // RFC 6191-like reuse of a TIME-WAIT tuple when timestamps protect the new connection
    if (o->state == TcpState::TimeWait && o->ts_ok && c.cfg.timestamps && c.now - o->tw_start >= 1000000) {
      c.conn_done(o, 0);
      if (!o->dead) { o->orphan = true; c.free_socket(o); }
    } else {
      return -EADDRNOTAVAIL;
    }
  } else if (TwRecord* r = c.find_tw(s->local.addr, s->local.port, remote.addr, remote.port)) {
    // the same rule for a TIME-WAIT record
    if (r->ts_ok && c.cfg.timestamps && c.now - r->start >= 1000000) c.tw_free(r);
    else return -EADDRNOTAVAIL;
  }
  c.init_conn_params(s);
  s->iss = c.make_isn(s->local.addr, s->local.port, remote.addr, remote.port);
  s->snd_una = s->iss;
  s->snd_nxt = s->snd_max = s->iss;
  s->snd_buf_seq = s->iss + 1;
  s->recover = s->loss_recover = s->rexmit_high = s->iss;  // RFC 6582 3.2: "recover" starts at the ISN
  s->mss = c.compute_mss(s);
  s->state = TcpState::SynSent;
  s->last_recv_time = c.now;
  c.hash_conn(s);
  c.st.active_opens++;
  c.send_segment(s, s->iss, 0, kSyn, false);
  s->snd_nxt = s->snd_max = s->iss + 1;
  c.set_rto_timer(s);
  c.arm(s);
  return -EINPROGRESS;
}

long TcpLayer::send(TcpSocket* s, const uint8_t* data, size_t n) {
  TcpCore& c = *core_;
  if (s->error) { int e = s->error; s->error = 0; return e; }
  if (s->state == TcpState::Listen) return -ENOTCONN;
  if (s->fin_queued) return -EPIPE;
  if (s->state == TcpState::SynSent || s->state == TcpState::SynReceived) return -EAGAIN;
  if (s->state != TcpState::Established && s->state != TcpState::CloseWait) return s->ever_connected ? -EPIPE : -ENOTCONN;
  c.now = c.host.now();
  size_t used = s->sbuf.size();
  size_t space = s->sndbuf_cap > used ? s->sndbuf_cap - used : 0;
  if (space == 0) { s->want_write = true; return -EAGAIN; }
  size_t k = std::min(n, space);
  if (k < n) s->want_write = true;
  if (k) {
    s->sbuf.append(data, k);
    c.output(s);
    c.arm(s);
  }
  return long(k);
}

long TcpLayer::recv(TcpSocket* s, uint8_t* buf, size_t cap) {
  TcpCore& c = *core_;
  if (s->state == TcpState::Listen) return -ENOTCONN;
  if (s->rcv_unread && cap) {
    c.now = c.host.now();
    size_t k = std::min<size_t>(cap, s->rcv_unread);
    s->rbuf.copy_out(0, buf, k);
    s->rbuf.consume(k);
    s->rcv_unread -= uint32_t(k);
    s->rcvq_copied += uint32_t(k);
    if (s->state != TcpState::Closed && s->state != TcpState::TimeWait) {
      c.rcv_autotune(s);
      // window update when the window grew a lot (as Linux's tcp_cleanup_rbuf)
      uint32_t cur = s->rcv_adv - s->rcv_nxt;
      uint32_t freesp = s->rcvbuf_cap - s->rcv_unread;
      if (!s->fin_rcvd && 2 * uint64_t(cur) <= s->rcvbuf_cap && freesp >= 2 * uint64_t(cur) && freesp - cur >= s->mss) {
        s->ack_now = true;
        c.output(s);
        c.arm(s);
      }
    }
    if (s->rcv_unread == 0 && s->rbuf.allocated() && s->ofo.empty() && s->state != TcpState::Established &&
        s->state != TcpState::FinWait1 && s->state != TcpState::FinWait2)
      s->rbuf.release();
    else if (s->rcv_unread == 0)
      c.arm(s);  // drained: a connection with nothing in flight gives its empty buffers back (trim_idle)
    return long(k);
  }
  if (s->error) { int e = s->error; s->error = 0; return e; }
  if (s->fin_rcvd || s->rd_shut) return 0;
  if (s->state == TcpState::Closed) return s->ever_connected ? 0 : -ENOTCONN;
  if (cap == 0) return 0;
  return -EAGAIN;
}

size_t TcpLayer::recv_available(const TcpSocket* s) const { return s->rcv_unread; }
size_t TcpLayer::send_space(const TcpSocket* s) const {
  if (s->state != TcpState::Established && s->state != TcpState::CloseWait) return 0;
  return s->sndbuf_cap > s->sbuf.size() ? s->sndbuf_cap - s->sbuf.size() : 0;
}

int TcpLayer::shutdown(TcpSocket* s, int how) {
  TcpCore& c = *core_;
  if (how < kShutRd || how > kShutRdwr) return -EINVAL;
  if (s->state == TcpState::Closed || s->state == TcpState::Listen) return -ENOTCONN;
  c.now = c.host.now();
  if (how == kShutRd || how == kShutRdwr) s->rd_shut = true;
  if ((how == kShutWr || how == kShutRdwr) && !s->fin_queued) {
    s->fin_queued = true;
    if (s->state == TcpState::Established) s->state = TcpState::FinWait1;
    else if (s->state == TcpState::CloseWait) s->state = TcpState::LastAck;
    if (s->state != TcpState::SynSent && s->state != TcpState::SynReceived) { c.output(s); c.arm(s); }
  }
  return 0;
}

void TcpLayer::close(TcpSocket* s) {
  TcpCore& c = *core_;
  c.now = c.host.now();
  s->user_id = -1;
  switch (s->state) {
    case TcpState::Listen:
    case TcpState::Closed:
    case TcpState::SynSent:
      s->orphan = true;
      c.free_socket(s);
      return;
    default: break;
  }
  if ((s->rcv_unread > 0 && s->state != TcpState::TimeWait) || s->state == TcpState::SynReceived) {
    // unread data: abortive close, as Linux (RFC 9293 3.10.4 allows either)
    c.send_rst(s);
    c.st.estab_resets += (s->state == TcpState::Established || s->state == TcpState::CloseWait);
    s->orphan = true;
    c.free_socket(s);
    return;
  }
  s->orphan = true;
  s->rd_shut = true;
  s->rbuf.release();
  if (s->state == TcpState::TimeWait) {  // the rest of its wait as a record
    c.tw_from(s, s->t_misc);
    return;
  }
  if (!s->fin_queued) {
    s->fin_queued = true;
    if (s->state == TcpState::Established || s->state == TcpState::SynReceived) s->state = TcpState::FinWait1;
    else if (s->state == TcpState::CloseWait) s->state = TcpState::LastAck;
  }
  if (s->state == TcpState::FinWait2) {
    s->t_misc = c.now + Micros(c.cfg.fin_wait2_ms) * 1000;
  }
  c.output(s);
  c.arm(s);
}

void TcpLayer::abort(TcpSocket* s) {
  TcpCore& c = *core_;
  c.now = c.host.now();
  if (s->synchronized() && s->state != TcpState::TimeWait && s->state != TcpState::Closed) c.send_rst(s);
  s->orphan = true;
  c.free_socket(s);
}

int TcpLayer::local_endpoint(const TcpSocket* s, Endpoint* out) const {
  if (!s->bound && !s->hashed && s->state == TcpState::Closed && !s->ever_connected) return -EINVAL;
  *out = s->local;
  return 0;
}
int TcpLayer::remote_endpoint(const TcpSocket* s, Endpoint* out) const {
  if (s->state == TcpState::Closed || s->state == TcpState::Listen || s->state == TcpState::SynSent) return -ENOTCONN;
  *out = s->remote;
  return 0;
}

int TcpLayer::set_option(TcpSocket* s, int level, int opt, int v) {
  TcpCore& c = *core_;
  if (level == kSolSocket) {
    switch (opt) {
      case kSoReuseaddr: s->reuseaddr = v != 0; return 0;
      case kSoKeepalive:
        s->keepalive = v != 0;
        c.now = c.host.now();
        c.keepalive_reset(s);
        c.arm(s);
        return 0;
      case kSoSndbuf:
        if (v < 0) return -EINVAL;
        s->sndbuf_cap = std::max<uint32_t>(4608, std::min<uint32_t>(uint32_t(v) * 2u, 64u << 20));  // doubled, as Linux
        s->sndbuf_locked = true;
        return 0;
      case kSoRcvbuf: {
        if (v < 0) return -EINVAL;
        uint32_t nb = std::max<uint32_t>(2304, std::min<uint32_t>(uint32_t(v) * 2u, 64u << 20));
        if (s->rbuf.allocated() && nb < s->rcvbuf_cap) nb = s->rcvbuf_cap;  // never shrink a live window
        s->rcvbuf_locked = true;
        s->rcvbuf_cap = nb;
        s->rcvbuf_max = nb;
        return 0;
      }
      case kSoError: return -ENOPROTOOPT;
      default: return -ENOPROTOOPT;
    }
  }
  if (level == kIpprotoTcp) {
    switch (opt) {
      case kTcpNodelay:
        s->nodelay = v != 0;
        if (s->nodelay && s->state >= TcpState::Established) { c.now = c.host.now(); c.output(s); c.arm(s); }
        return 0;
      case kTcpMaxseg:
        if (v < 0 || v > 65535) return -EINVAL;
        s->user_mss = uint32_t(v);
        if (s->state >= TcpState::Established) s->mss = c.compute_mss(s);
        return 0;
      case kTcpKeepidle: if (v < 1 || v > 32767) return -EINVAL; s->keep_idle_ms = uint32_t(v) * 1000; c.now = c.host.now(); c.keepalive_reset(s); c.arm(s); return 0;
      case kTcpKeepintvl: if (v < 1 || v > 32767) return -EINVAL; s->keep_intvl_ms = uint32_t(v) * 1000; return 0;
      case kTcpKeepcnt: if (v < 1 || v > 127) return -EINVAL; s->keep_cnt = uint32_t(v); return 0;
      default: return -ENOPROTOOPT;
    }
  }
  if (level == kIpprotoIpv6 && opt == kIpv6V6only) {
    if (s->family != 6) return -ENOPROTOOPT;
    if (s->bound) return -EINVAL;
    s->v6only = v != 0;
    return 0;
  }
  return -ENOPROTOOPT;
}

int TcpLayer::get_option(TcpSocket* s, int level, int opt, int* v) {
  if (level == kSolSocket) {
    switch (opt) {
      case kSoReuseaddr: *v = s->reuseaddr; return 0;
      case kSoKeepalive: *v = s->keepalive; return 0;
      case kSoSndbuf: *v = int(s->sndbuf_cap); return 0;
      case kSoRcvbuf: *v = int(s->rcvbuf_cap); return 0;
      case kSoError: *v = -s->error; s->error = 0; return 0;
      default: return -ENOPROTOOPT;
    }
  }
  if (level == kIpprotoTcp) {
    switch (opt) {
      case kTcpNodelay: *v = s->nodelay; return 0;
      case kTcpMaxseg: *v = int(s->state >= TcpState::Established ? s->mss : (s->user_mss ? s->user_mss : 536)); return 0;
      case kTcpKeepidle: *v = int(s->keep_idle_ms / 1000); return 0;
      case kTcpKeepintvl: *v = int(s->keep_intvl_ms / 1000); return 0;
      case kTcpKeepcnt: *v = int(s->keep_cnt); return 0;
      default: return -ENOPROTOOPT;
    }
  }
  if (level == kIpprotoIpv6 && opt == kIpv6V6only && s->family == 6) { *v = s->v6only; return 0; }
  return -ENOPROTOOPT;
}

uint32_t TcpLayer::events(const TcpSocket* s) const { return core_->events(s); }
int TcpLayer::user_id(const TcpSocket* s) const { return s->user_id; }
int TcpLayer::family(const TcpSocket* s) const { return s->family; }
const char* TcpLayer::state_name(const TcpSocket* s) const { return tcp_state_name(s->state); }

void TcpLayer::input(const IpAddr& src, const IpAddr& dst, const uint8_t* segment, size_t len) {
  core_->now = core_->host.now();
  core_->input(src, dst, segment, len);
  core_->flush_notify();
}

void TcpLayer::icmp_error(const IpAddr& local, const IpAddr& remote, const uint8_t* p, size_t n, int err,
                          uint32_t next_hop_mtu) {
  TcpCore& c = *core_;
  if (!p || n < 8) return;
  c.now = c.host.now();
  uint16_t lport = get16(p), rport = get16(p + 2);
  uint32_t seq = get32(p + 4);
  TcpSocket* s = c.find_conn(local, lport, remote, rport);
  if (!s) return;
  // RFC 5927: only believe errors quoting a sequence number we have in flight
  if (seq_lt(seq, s->snd_una) || seq_gt(seq, s->snd_max)) return;
  if (err == -EMSGSIZE) {
    uint32_t floor = ip6_wire(s->remote.addr) ? 1280 : 552;
    if (next_hop_mtu == 0) next_hop_mtu = s->pmtu > floor + 100 ? s->pmtu - 100 : floor;  // RFC 1191 plateau-ish
    if (next_hop_mtu < floor) next_hop_mtu = floor;
    if (next_hop_mtu >= s->pmtu) return;
    s->pmtu = next_hop_mtu;
    uint32_t old = s->mss;
    s->mss = c.compute_mss(s);
    if (s->mss < old && s->state >= TcpState::Established && s->snd_una != s->snd_max) {
      // resend what is in flight at the new size, without a congestion response
      s->snd_nxt = s->snd_una;
      s->loss_state = true;
      s->loss_recover = s->snd_max;
      s->rtt_timing = false;
      if (s->sack_ok) {
        s->in_recovery = false;
        s->undo_cur_on = false;
        c.tx_mark_all_lost(s, false);
        s->t_tlp = s->t_rack = kNever;
        s->tlp_active = false;
      }
      c.output(s);
      c.arm(s);
    }
    c.flush_notify();
    return;
  }
  if (s->state == TcpState::SynSent || s->state == TcpState::SynReceived) {
    if (s->state == TcpState::SynSent) c.st.attempt_fails++;
    c.conn_done(s, err);
  } else if (s->state != TcpState::TimeWait && s->state != TcpState::Closed) {
    s->soft_error = err;
  }
  c.flush_notify();
}

void TcpLayer::neighbour_failed(const IpAddr& dst) {
  TcpCore& c = *core_;
  c.now = c.host.now();
  std::vector<TcpSocket*> hit;
  c.conns.for_each([&](TcpSocket* s) { if (s->remote.addr == dst) hit.push_back(s); });
  for (TcpSocket* s : hit) {
    if (s->state == TcpState::SynSent) { c.st.attempt_fails++; c.conn_done(s, -EHOSTUNREACH); }
    else if (s->state != TcpState::TimeWait) s->soft_error = -EHOSTUNREACH;
  }
  c.flush_notify();
}

void TcpLayer::poll(Micros now) {
  TcpCore& c = *core_;
  c.now = now;
  c.tw_expire();
  while (!c.heap.empty() && c.heap.front().at <= now) {
    std::pop_heap(c.heap.begin(), c.heap.end(), std::greater<TimerEntry>());
    TimerEntry e = c.heap.back();
    c.heap.pop_back();
    TcpSocket* s = e.s;
    s->heap_refs--;
    if (s->dead) { if (s->heap_refs == 0) delete s; continue; }
    if (e.at != s->heap_deadline) continue;  // superseded by an earlier entry
    s->heap_deadline = kNever;
    s->heap_refs++;  // keep s alive through its own timers
    c.run_timers(s);
    s->heap_refs--;
    if (s->dead) { if (s->heap_refs == 0) delete s; continue; }
    c.arm(s);
  }
  c.flush_notify();
}

Micros TcpLayer::poll_at() const {
  Micros t = core_->heap.empty() ? kNever : core_->heap.front().at;
  return core_->tw_head ? std::min(t, core_->tw_head->deadline) : t;
}

void TcpLayer::stats(TcpStats* out) const { *out = core_->st; }

void TcpLayer::list(std::vector<TcpSocketInfo>* out) const {
  std::vector<const TcpSocket*> all;
  for (auto& kv : core_->ports) for (TcpSocket* s : kv.second) all.push_back(s);
  core_->conns.for_each([&](TcpSocket* s) { all.push_back(s); });
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  for (const TcpSocket* s : all) {
    TcpSocketInfo i;
    i.user_id = s->user_id;
    i.state = tcp_state_name(s->state);
    i.local = s->local; i.remote = s->remote;
    i.send_queue = uint32_t(s->sbuf.size());
    i.recv_queue = s->state == TcpState::Listen ? uint32_t(s->accept_q.size()) : s->rcv_unread;
    i.cwnd = s->cwnd; i.ssthresh = s->ssthresh; i.srtt_us = s->srtt_us; i.rto_us = s->rto_us; i.mss = s->mss;
    i.retransmits = s->total_retrans;
    out->push_back(i);
  }
  for (const TwRecord* r = core_->tw_head; r; r = r->next) {
    TcpSocketInfo i{};
    i.user_id = -1;
    i.state = tcp_state_name(TcpState::TimeWait);
    i.local = r->local; i.remote = r->remote;
    out->push_back(i);
  }
}

size_t TcpLayer::socket_count() const { return core_->nsockets + core_->tw_table.size(); }

}  // namespace ms
