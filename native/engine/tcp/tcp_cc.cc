// Congestion control: NewReno (RFC 5681 with appropriate byte counting, RFC 3465) and CUBIC
// (RFC 9438). Loss recovery itself (fast retransmit, SACK recovery, RTO) lives in the
// connection code; these only decide how cwnd grows and what ssthresh becomes on loss.
#include <algorithm>
#include <cmath>

#include "tcp_internal.h"

namespace ms {
namespace {

void slow_start(TcpSocket& s, uint32_t* acked) {
  // RFC 5681 with byte counting: grow by what was acknowledged, up to ssthresh
  uint32_t room = s.ssthresh > s.cwnd ? s.ssthresh - s.cwnd : 0;
  uint32_t inc = std::min(*acked, room);
  s.cwnd += inc;
  *acked -= inc;
}

class NewReno final : public CongestionOps {
 public:
  void init(TcpSocket& s) override { s.ca_acc = 0; }
  void on_ack(TcpSocket& s, uint32_t acked, Micros) override {
    if (s.cwnd < s.ssthresh) {
      slow_start(s, &acked);
      if (!acked) return;
    }
    // congestion avoidance: one MSS per cwnd of acknowledged bytes
    s.ca_acc += acked;
    while (s.ca_acc >= s.cwnd) {
      s.ca_acc -= s.cwnd;
      s.cwnd += s.mss;
    }
  }
  uint32_t on_loss(TcpSocket& s, Micros) override {
    // RFC 5681 (4): FlightSize / 2; bounded by cwnd, since with SACK the outstanding data
    // can be far above the window (a long-held hole) and the response must not raise cwnd
    uint32_t flight = s.snd_max - s.snd_una;
    s.ca_acc = 0;
    return std::max(std::min(flight, s.cwnd) / 2, 2 * s.mss);
  }
};

class Cubic final : public CongestionOps {
  static constexpr double kC = 0.4, kBeta = 0.7;
 public:
  void init(TcpSocket& s) override { s.cubic = CubicState(); }
  void on_ack(TcpSocket& s, uint32_t acked, Micros now) override {
    if (s.cwnd < s.ssthresh) {
      slow_start(s, &acked);
      if (!acked) return;
    }
    CubicState& c = s.cubic;
    double mss = s.mss;
    double cwnd = s.cwnd / mss;
    if (c.epoch_start == 0) {
      c.epoch_start = now ? now : 1;
      c.cwnd_epoch = cwnd;
      if (c.w_max <= cwnd) { c.k = 0; c.w_max = cwnd; }
      else c.k = std::cbrt((c.w_max - cwnd) / kC);
      c.w_est = cwnd;
    }
    double rtt = (s.srtt_us ? s.srtt_us : 100000) / 1e6;
    double t = (now - c.epoch_start) / 1e6;
    double tk = t + rtt - c.k;
    double target = kC * tk * tk * tk + c.w_max;
    target = std::max(cwnd, std::min(target, 1.5 * cwnd));
    // Reno-friendly estimate (RFC 9438 4.3)
    double alpha = c.w_est < c.w_max ? 3.0 * (1 - kBeta) / (1 + kBeta) : 1.0;
    c.w_est += alpha * (acked / mss) / cwnd;
    double tn = t - c.k;
    double w_cubic_now = kC * tn * tn * tn + c.w_max;
    double inc_bytes;
    if (w_cubic_now < c.w_est) inc_bytes = (c.w_est - cwnd) * mss;  // Reno-friendly region
    else inc_bytes = (target - cwnd) / cwnd * acked;                 // concave / convex region
    if (inc_bytes > 0) {
      c.acc += inc_bytes;
      if (c.acc >= 1) {
        double whole = std::floor(c.acc);
        uint64_t nc = uint64_t(s.cwnd) + uint64_t(whole);
        s.cwnd = uint32_t(std::min<uint64_t>(nc, 0x3fffffff));
        c.acc -= whole;
      }
    }
  }
  uint32_t on_loss(TcpSocket& s, Micros) override {
    CubicState& c = s.cubic;
    double cwnd = double(s.cwnd) / s.mss;
    // fast convergence
    if (cwnd < c.w_max) c.w_max = cwnd * (1 + kBeta) / 2;
    else c.w_max = cwnd;
    c.epoch_start = 0;
    c.acc = 0;
    uint32_t flight = s.snd_max - s.snd_una;
    uint32_t base = std::min(s.cwnd, std::max(flight, s.mss));
    return std::max(uint32_t(base * kBeta), 2 * s.mss);
  }
};

NewReno g_newreno;
Cubic g_cubic;

}  // namespace

CongestionOps* newreno_ops() { return &g_newreno; }
CongestionOps* cubic_ops() { return &g_cubic; }

}  // namespace ms
