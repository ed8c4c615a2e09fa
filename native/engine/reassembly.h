// IPv4 reassembly (RFC 791, RFC 815 hole tracking) with bounds: bytes per datagram
// (65535), total bytes held, datagrams in progress, and a timeout. Overlapping fragments
// that disagree drop the whole datagram (as Linux since 4.19); exact duplicates are ignored.
#pragma once
#include <cstdlib>
#include <vector>

#include "common.h"
#include "wire/ipv4.h"

namespace ms {

struct ReassemblyConfig {
  uint32_t max_datagrams = 64;
  uint32_t max_bytes = 4u << 20;  // across all datagrams in progress
  uint32_t timeout_ms = 30000;
};

struct ReassemblyStats {
  uint64_t reqds = 0, oks = 0, fails = 0, timeouts = 0, overlaps = 0, over_limit = 0, too_big = 0;
};

class Reassembler {
 public:
  explicit Reassembler(const ReassemblyConfig& c = {}) : cfg_(c) {}
  ~Reassembler() { clear(); }
  Reassembler(const Reassembler&) = delete;
  Reassembler& operator=(const Reassembler&) = delete;

  /** a complete datagram (header of the first fragment, then the whole payload) */
  struct Done {
    const uint8_t* packet = nullptr;  // valid until the next call
    size_t len = 0;
  };
  /** add one fragment (p: the IP packet, h: its parsed header); true when a datagram completed */
  bool add(const wire::Ipv4Header& h, const uint8_t* p, Micros now, Done* out);
  /** drop expired datagrams; for each one whose first fragment arrived, on_timeout(header bytes
      + 8 bytes of payload, len) so an ICMP time exceeded can be sent */
  template <class F>
  void expire(Micros now, F&& on_timeout) {
    if (now < next_deadline()) return;
    for (size_t i = 0; i < list_.size();) {
      Entry* e = list_[i];
      if (e->created + Micros(cfg_.timeout_ms) * 1000 <= now) {
        stats_.timeouts++;
        stats_.fails++;
        if (e->have_first) on_timeout(e->buf + kHead - e->hlen, size_t(e->hlen) + (e->first_len < 8 ? e->first_len : 8));
        drop(i);
      } else {
        i++;
      }
    }
  }
  Micros next_deadline() const {
    Micros t = kNever;
    for (auto* e : list_) { Micros d = e->created + Micros(cfg_.timeout_ms) * 1000; if (d < t) t = d; }
    return t;
  }
  size_t in_progress() const { return list_.size(); }
  size_t bytes() const { return bytes_; }
  const ReassemblyStats& stats() const { return stats_; }
  ReassemblyConfig& config() { return cfg_; }
  void clear() { while (!list_.empty()) drop(list_.size() - 1); release_done(); }

 private:
  static constexpr size_t kHead = 64;  // room for the largest header in front of the payload
  struct Entry {
    uint8_t src[4], dst[4];
    uint16_t id;
    uint8_t proto;
    uint8_t hlen = 0;        // header length of the first fragment
    bool have_first = false;
    bool have_last = false;
    uint32_t total = 0;      // payload length when the last fragment has arrived
    uint32_t received = 0;   // payload bytes in ranges
    uint32_t first_len = 0;
    Micros created = 0;
    uint8_t* buf = nullptr;  // kHead + payload
    size_t cap = 0;          // payload capacity
    std::vector<std::pair<uint32_t, uint32_t>> ranges;  // sorted, disjoint [start, end)
  };
  void drop(size_t i);
  void release_done() { std::free(done_); done_ = nullptr; }

  ReassemblyConfig cfg_;
  ReassemblyStats stats_;
  std::vector<Entry*> list_;
  size_t bytes_ = 0;
  uint8_t* done_ = nullptr;  // the last completed datagram, owned until the next call
};

}  // namespace ms
