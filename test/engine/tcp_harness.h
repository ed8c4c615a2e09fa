// Test harness for the TCP module: two TcpLayers (hosts 10.0.0.1 and 10.0.0.2) wired through a
// simulated channel with a virtual clock and a seeded RNG. The channel can lose, duplicate,
// reorder, corrupt (the receiving side drops bad checksums, as the IP layer would), delay
// with jitter, and limit bandwidth with a bounded queue.
#pragma once
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "check.h"
#include "engine/tcp/tcp.h"
#include "engine/tcp/tcp_internal.h"
#include "engine/tcp/tcp_wire.h"

namespace th {
using namespace ms;

struct SplitMix {
  uint64_t s;
  explicit SplitMix(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double unit() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  uint32_t below(uint32_t n) { return n ? uint32_t(next() % n) : 0; }
};

struct LinkParams {
  double loss = 0, dup = 0, reorder = 0, corrupt = 0;
  Micros delay = 50;          // one way
  Micros jitter = 0;          // +- uniformly; order is kept unless jitter_reorders
  bool jitter_reorders = false;
  Micros reorder_extra = 3000;  // a reordered packet is held this much longer (randomised up to 2x)
  uint64_t bandwidth = 0;     // bytes per second, 0: unlimited
  size_t queue_limit = 0;     // bytes waiting for the wire before drops, 0: unlimited
  bool blackhole = false;     // everything dropped
};

class Net;

class Host final : public TcpHost {
 public:
  Net* net = nullptr;
  int id = 0;
  IpAddr addr;
  uint32_t mtu = 1500;
  bool offload = false;
  std::unique_ptr<TcpLayer> layer;
  std::vector<std::pair<int, uint32_t>> notes;  // (user_id, events) per notify
  Micros now() const override;
  uint64_t random64() override;
  int route(const IpAddr& dst, RouteInfo* out) override {
    if (dst.family != addr.family) return -ENETUNREACH;
    out->src = addr;
    out->mtu = mtu;
    out->csum_offload = offload;
    out->ifindex = 1;
    return 0;
  }
  bool is_local_address(const IpAddr& a) const override { return a == addr; }
  void output(const IpAddr& src, const IpAddr& dst, PacketBuf&& seg) override;
  void notify(TcpSocket* s, uint32_t ev) override { notes.push_back({layer->user_id(s), ev}); }
};

struct InFlight {
  Micros at;
  uint64_t order;
  int to;
  IpAddr src, dst;
  mutable PacketBuf data;
  bool operator>(const InFlight& o) const { return at != o.at ? at > o.at : order > o.order; }
};

class Net {
 public:
  Micros now = 1000000;  // start at 1 s
  SplitMix rng;
  Host hosts[2];
  LinkParams link[2];     // link[i]: packets sent by host i
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<InFlight>> q;
  uint64_t order = 0;
  Micros busy_until[2] = {0, 0};
  Micros last_arrival[2] = {0, 0};
  uint64_t sent = 0, dropped = 0, corrupted = 0, bad_csum_drops = 0, oversize = 0, unroutable = 0;
  std::function<void(int from, const IpAddr& src, const IpAddr& dst, const uint8_t* p, size_t n)> tap;
  /** per-packet impairments for targeted tests: drop this packet / hold it this much longer
   *  (a held packet is overtaken by later ones) */
  std::function<bool(int from, const uint8_t* p, size_t n)> drop_if;
  std::function<Micros(int from, const uint8_t* p, size_t n)> extra_delay;

  int fam = 4;
  explicit Net(const TcpConfig& a, const TcpConfig& b, uint64_t seed = 1, uint32_t mtu = 1500, bool offload = false, bool v6 = false)
      : rng(seed) {
    fam = v6 ? 6 : 4;
    const TcpConfig* cfgs[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
      Host& h = hosts[i];
      h.net = this;
      h.id = i;
      if (v6) {
        uint8_t b6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, uint8_t(1 + i)};
        h.addr = IpAddr::v6_bytes(b6);
      } else {
        h.addr = IpAddr::v4(0x0a000001u + uint32_t(i));
      }
      h.mtu = mtu;
      h.offload = offload;
      uint8_t secret[32];
      for (int k = 0; k < 32; k++) secret[k] = uint8_t(rng.next());
      h.layer.reset(new TcpLayer(h, *cfgs[i], secret));
    }
  }
  TcpLayer& A() { return *hosts[0].layer; }
  TcpLayer& B() { return *hosts[1].layer; }
  Endpoint ep(int host, uint16_t port) { Endpoint e; e.addr = hosts[host].addr; e.port = port; return e; }

  void send(int from, const IpAddr& src, const IpAddr& dst, PacketBuf&& pb) {
    sent++;
    if (tap) tap(from, src, dst, pb.data(), pb.size());
    if (pb.size() + (fam == 6 ? 40 : 20) > hosts[from].mtu) oversize++;
    int to = -1;
    for (int i = 0; i < 2; i++) if (hosts[i].addr == dst) to = i;
    if (to < 0) { unroutable++; return; }
    LinkParams& L = link[from];
    if (L.blackhole || (L.loss > 0 && rng.unit() < L.loss)) { dropped++; return; }
    if (drop_if && drop_if(from, pb.data(), pb.size())) { dropped++; return; }
    Micros hold = extra_delay ? extra_delay(from, pb.data(), pb.size()) : 0;
    int copies = (L.dup > 0 && rng.unit() < L.dup) ? 2 : 1;
    for (int c = 0; c < copies; c++) {
      PacketBuf d = c + 1 < copies ? pb.clone() : std::move(pb);
      if (L.corrupt > 0 && rng.unit() < L.corrupt && d.size()) {
        d.data()[rng.below(uint32_t(d.size()))] ^= uint8_t(1u << rng.below(8));
        corrupted++;
      }
      Micros depart = now;
      if (L.bandwidth) {
        Micros start = std::max(now, busy_until[from]);
        if (L.queue_limit && (start - now) * L.bandwidth / 1000000 > L.queue_limit) { dropped++; continue; }
        depart = start + (d.size() + 40) * 1000000 / L.bandwidth;
        busy_until[from] = depart;
      }
      Micros t = depart + L.delay;
      if (L.jitter) {
        int64_t j = int64_t(rng.below(uint32_t(2 * L.jitter + 1))) - int64_t(L.jitter);
        t = Micros(std::max<int64_t>(int64_t(depart), int64_t(t) + j));
      }
      if (hold) {
        t += hold;
      } else if (L.reorder > 0 && rng.unit() < L.reorder) {
        t += L.reorder_extra + rng.below(uint32_t(L.reorder_extra + 1));
      } else if (!L.jitter_reorders) {
        t = std::max(t, last_arrival[from]);
        last_arrival[from] = t;
      }
      q.push(InFlight{t, order++, to, src, dst, std::move(d)});
    }
  }

  /** deliver what is due and run due timers; false when nothing is left to happen */
  void deliver_due() {
    while (!q.empty() && q.top().at <= now) {
      const InFlight& f = q.top();
      PacketBuf d = std::move(f.data);
      int to = f.to;
      IpAddr src = f.src, dst = f.dst;
      q.pop();
      if (!hosts[to].offload && !tcpw::verify_checksum(src, dst, d.data(), d.size())) { bad_csum_drops++; continue; }
      hosts[to].layer->input(src, dst, d.data(), d.size());
    }
    for (int i = 0; i < 2; i++)
      if (hosts[i].layer->poll_at() <= now) hosts[i].layer->poll(now);
  }
  Micros next_event() const {
    Micros n = q.empty() ? kNever : q.top().at;
    for (int i = 0; i < 2; i++) n = std::min(n, hosts[i].layer->poll_at());
    return n;
  }
  /** run until pred() holds (true) or virtual time passes `until` / nothing is left (false) */
  bool run(const std::function<bool()>& pred, Micros duration, const std::function<void()>& app = nullptr) {
    Micros until = now + duration;
    for (;;) {
      deliver_due();
      if (app) app();
      if (pred()) return true;
      Micros n = next_event();
      if (app) {
        // the app may have produced packets
        n = next_event();
      }
      if (n == kNever || n > until) { if (n != kNever || until != kNever) now = std::max(now, until); return pred(); }
      now = std::max(now, n);
    }
  }
  void advance(Micros d) { run([] { return false; }, d); }
};

inline Micros Host::now() const { return net->now; }
inline uint64_t Host::random64() { return net->rng.next(); }
inline void Host::output(const IpAddr& src, const IpAddr& dst, PacketBuf&& seg) { net->send(id, src, dst, std::move(seg)); }

/** wall clock for reports */
inline double real_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

/** A connects to B:port (B listening). Returns false if it did not complete. */
inline bool connect_pair(Net& n, TcpSocket** a, TcpSocket** b, uint16_t port = 80, TcpSocket** listener = nullptr) {
  TcpSocket* l = n.B().open(n.fam, 100);
  if (n.B().bind(l, n.ep(1, port)) != 0 || n.B().listen(l, 128) != 0) return false;
  TcpSocket* c = n.A().open(n.fam, 1);
  if (n.A().connect(c, n.ep(1, port)) != -EINPROGRESS) return false;
  TcpSocket* acc = nullptr;
  bool ok = n.run([&] {
    if (!acc) { int e; acc = n.B().accept(l, &e, 2); }
    return acc && (n.A().events(c) & kEvWritable);
  }, 30000000);
  if (!ok) return false;
  *a = c; *b = acc;
  if (listener) *listener = l; else n.B().close(l);
  return true;
}

/** build a raw TCP segment (for injection tests) */
inline std::vector<uint8_t> build_segment(const IpAddr& src, const IpAddr& dst, uint16_t sport, uint16_t dport, uint32_t seq,
                                          uint32_t ack, uint8_t flags, uint16_t wnd, const std::vector<uint8_t>& opts,
                                          const std::vector<uint8_t>& payload) {
  size_t ol = (opts.size() + 3) & ~size_t(3);
  std::vector<uint8_t> s(20 + ol + payload.size(), 0);
  tcpw::put16(&s[0], sport); tcpw::put16(&s[2], dport);
  tcpw::put32(&s[4], seq); tcpw::put32(&s[8], ack);
  s[12] = uint8_t(((20 + ol) / 4) << 4);
  s[13] = flags;
  tcpw::put16(&s[14], wnd);
  for (size_t i = 0; i < opts.size(); i++) s[20 + i] = opts[i];
  for (size_t i = 0; i < payload.size(); i++) s[20 + ol + i] = payload[i];
  tcpw::set_checksum(src, dst, s.data(), s.size());
  return s;
}

/** the sender's retransmission-queue invariants (SACK connections): the queue tiles
 *  [SND.UNA, SND.MAX), its flags agree with the SACK scoreboard and the counters that pipe()
 *  uses. Empty if they hold, else what is wrong. O(n): for tests. */
inline std::string tx_invariants(const TcpSocket* s) {
  if (!s->sack_ok || s->state < TcpState::Established || s->state == TcpState::TimeWait) return "";
  char buf[200];
  uint32_t lost = 0, pending = 0, retrans = 0, sacked = 0;
  uint32_t at = s->snd_una;
  for (size_t i = 0; i < s->txq.size(); i++) {
    const TxSeg& e = s->txq[i];
    if (e.start != at || !tcpw::seq_lt(e.start, e.end)) {
      std::snprintf(buf, sizeof buf, "txq gap/overlap at %u (entry %u-%u, una %u)", at, e.start, e.end, s->snd_una);
      return buf;
    }
    uint32_t n = e.end - e.start;
    at = e.end;
    if (e.flags & kTxSacked) {
      if (e.flags & (kTxLost | kTxRetrans)) return "sacked entry still lost/retrans";
      sacked += n;
      continue;
    }
    if (e.flags & kTxLost) lost += n;
    if ((e.flags & (kTxLost | kTxRetrans)) == kTxLost) pending += n;
    if (e.flags & kTxRetrans) retrans += n;
  }
  if (!s->txq.empty() && at != s->snd_max) {
    std::snprintf(buf, sizeof buf, "txq ends at %u, snd_max %u", at, s->snd_max);
    return buf;
  }
  if (s->txq.empty() && s->snd_una != s->snd_max) return "txq empty with data in flight";
  if (lost != s->lost_bytes || pending != s->lost_pending || retrans != s->retrans_bytes || sacked != s->sacked_bytes) {
    std::snprintf(buf, sizeof buf, "counters lost %u/%u pending %u/%u retrans %u/%u sacked %u/%u", lost, s->lost_bytes,
                  pending, s->lost_pending, retrans, s->retrans_bytes, sacked, s->sacked_bytes);
    return buf;
  }
  return "";
}

/** parsed view of a captured segment */
struct Captured {
  int from;
  IpAddr src, dst;
  std::vector<uint8_t> bytes;
  tcpw::TcpSegment seg() const { tcpw::TcpSegment s; s.parse(bytes.data(), bytes.size()); return s; }
};

}  // namespace th
