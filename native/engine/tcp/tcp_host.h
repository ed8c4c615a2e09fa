// The narrow contract between TCP and the rest of the engine. TCP (native/engine/tcp/) is
// written against TcpHost only, so it can be driven in isolation by a test harness that
// wires two TcpLayers back to back over a lossy, reordering channel, and by the Stack.
#pragma once
#include <cstdint>
#include <vector>

#include "../common.h"
#include "../packet.h"

namespace ms {

enum class Congestion : uint8_t { NewReno, Cubic };

/** per-stack TCP settings (newStack({ tcp: {...} })) */
struct TcpConfig {
  Congestion congestion = Congestion::Cubic;
  uint32_t send_buffer = 1u << 20;      // bytes: the send queue's initial bound per connection
  uint32_t send_buffer_max = 4u << 20;  // autotuning grows it up to this (unless SO_SNDBUF was set),
                                        // as Linux's tcp_wmem[2]: the hard bound per connection
  uint32_t receive_buffer = 128u << 10; // initial receive buffer; grows (auto-tuning) up to receive_buffer_max
  uint32_t receive_buffer_max = 6u << 20;
  uint32_t mss = 0;                     // 0: from the route MTU
  uint32_t rto_min_ms = 200;
  uint32_t rto_initial_ms = 1000;
  uint32_t rto_max_ms = 120000;
  bool sack = true;
  bool window_scale = true;
  bool timestamps = true;
  uint32_t initial_window_segments = 10;
  uint32_t delayed_ack_ms = 40;
  uint32_t syn_retries = 6;
  uint32_t retries2 = 15;               // data retransmissions before ETIMEDOUT
  uint32_t keepalive_idle_ms = 7200000; // when SO_KEEPALIVE is on
  uint32_t keepalive_interval_ms = 75000;
  uint32_t keepalive_count = 9;
  uint32_t time_wait_ms = 60000;
  uint32_t fin_wait2_ms = 60000;
  uint32_t syn_backlog = 256;           // half-open connections per listener before SYN cookies
  uint32_t max_backlog = 4096;          // cap on listen(backlog)
  // additions by the TCP module (defaulted, source-compatible)
  uint32_t syn_ack_retries = 5;         // SYN-ACK retransmissions of a half-open connection
  uint32_t max_time_wait = 4096;        // bound on TIME-WAIT sockets per layer (then closed at once)
  uint32_t ofo_max_blocks = 256;        // out-of-order ranges kept per connection (bytes are bounded by the window)
  bool dsack = true;                    // report duplicate segments in the first SACK block (RFC 2883)
  bool tlp = true;                      // tail loss probes (RFC 8985 section 7; SACK connections)
  uint32_t tlp_max_ack_delay_ms = 200;  // added to the probe timeout when one segment is in flight (peer's delayed ACK)
};

struct RouteInfo {
  IpAddr src;            // source address to use
  uint32_t mtu = 1500;   // path MTU towards the destination (IP packet size)
  bool csum_offload = false;  // the link does not need checksums (in-process hub): TCP may leave it 0
  int ifindex = 0;
};

class TcpSocket;  // defined by the TCP module; opaque to the host

class TcpHost {
 public:
  virtual ~TcpHost() = default;
  virtual Micros now() const = 0;
  virtual uint64_t random64() = 0;
  /** route towards dst: 0, or -ENETUNREACH / -EHOSTUNREACH */
  virtual int route(const IpAddr& dst, RouteInfo* out) = 0;
  /** is a an address of this stack (for bind: EADDRNOTAVAIL otherwise) */
  virtual bool is_local_address(const IpAddr& a) const = 0;
  /** may a new connection be made to local address a (false: a draining address, refused) */
  virtual bool accepts_new_connections(const IpAddr& /*a*/) const { return true; }
  /** send one TCP segment (TCP header + payload, checksum filled unless the route said offload) */
  virtual void output(const IpAddr& src, const IpAddr& dst, PacketBuf&& segment) = 0;
  /** readiness of s changed (see kEv* bits); the host looks up its socket through s's user id */
  virtual void notify(TcpSocket* s, uint32_t events) = 0;
};

/** one row of s.sockets(), like ss */
struct TcpSocketInfo {
  int user_id;
  const char* state;
  Endpoint local, remote;
  uint32_t send_queue, recv_queue;  // bytes
  uint32_t cwnd, ssthresh, srtt_us, rto_us, mss;
  uint32_t retransmits;
};

/** counters like netstat -s */
struct TcpStats {
  uint64_t in_segs = 0, out_segs = 0, retrans_segs = 0, in_errs = 0, bad_csum = 0, out_rsts = 0, in_rsts = 0;
  uint64_t active_opens = 0, passive_opens = 0, attempt_fails = 0, estab_resets = 0;
  uint64_t syn_cookies_sent = 0, syn_cookies_ok = 0, syn_cookies_failed = 0, listen_drops = 0;
  uint64_t fast_retrans = 0, timeouts = 0, sack_recoveries = 0, dup_acks_in = 0, ofo_queued = 0, ofo_drops = 0;
  uint64_t challenge_acks = 0, paws_drops = 0, zero_window_probes = 0, keepalive_probes = 0;
  // RACK-TLP (RFC 8985) and DSACK (RFC 2883)
  uint64_t tlp_probes = 0;          // loss probes sent (without SACK: probes of SND.UNA)
  uint64_t tlp_loss_repairs = 0;    // probes that repaired a tail loss (congestion response taken)
  uint64_t rack_timeouts = 0;       // reordering-timer expiries that marked segments lost
  uint64_t dsacks_in = 0, dsacks_out = 0;
  uint64_t spurious_undos = 0;      // congestion responses undone (all their retransmissions were spurious)
  uint64_t lost_rexmits = 0;        // without SACK: lost retransmissions resent on duplicate ACKs, not on an RTO
  uint64_t tw_records = 0;          // connections whose TIME-WAIT was kept as a compact record, not a socket
};

}  // namespace ms
