// The in-process hub: a learning ethernet switch shared by the stacks of one thread.
// A port's transmit() copies the frame into the bounded queue of the destination port(s)
// (flooded when the destination is unknown, broadcast or multicast; sent to one port when
// its MAC has been learned). Nothing is delivered inside transmit(): drain() hands queued
// frames to each port's receiver; the binding calls it once per loop turn until it returns 0
// (or with a budget, then again on the next turn). No system calls, no threads.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/common.h"
#include "engine/link.h"
#include "engine/ring.h"

namespace ms {

class Hub {
 public:
  /** the receiver of a port: typically [](void* c, const uint8_t* f, size_t n) { stack->input(ifindex, f, n); } */
  using Deliver = void (*)(void* ctx, const uint8_t* frame, size_t len);

  struct Config {
    size_t port_queue_bytes = 4u << 20;  // per port, frames beyond are dropped (counted)
    size_t port_queue_initial = 2048;    // allocated on the first frame, grows by doubling; a queue
                                         // that drains empty is freed at once if small, after
                                         // idle_drains drain() calls without traffic if grown
    uint32_t idle_drains = 32;
    size_t mac_table_max = 65536;
    uint32_t mac_age_ms = 300000;        // as a switch's aging time (needs set_now)
    bool csum_offload = true;            // ports report csum_offload() (false: checksums on)
  };

  struct PortStats {
    uint64_t tx_frames = 0, tx_bytes = 0;   // sent by the port's owner into the hub
    uint64_t rx_frames = 0, rx_bytes = 0;   // delivered to the port's receiver
    uint64_t rx_queue_drops = 0;            // the port's queue was full
  };
  struct Stats {
    uint64_t frames = 0, floods = 0, unicasts = 0, queue_drops = 0, runts = 0, filtered = 0;
    uint64_t learned = 0, table_full = 0, delivered = 0;
  };

  class Port final : public Link {
   public:
    void transmit(const uint8_t* frame, size_t len) override { hub_->forward(this, frame, len); }
    bool csum_offload() const override { return hub_->cfg_.csum_offload; }
    const PortStats& stats() const { return stats_; }
    size_t queued() const { return q_.count(); }
    Hub* hub() const { return hub_; }

   private:
    friend class Hub;
    Port(Hub* h, uint32_t idx, uint32_t gen, Deliver fn, void* ctx, const Config& c)
        : hub_(h), idx_(idx), gen_(gen), fn_(fn), ctx_(ctx), q_(c.port_queue_initial, c.port_queue_bytes) {}
    Hub* hub_;
    uint32_t idx_, gen_;
    Deliver fn_;
    void* ctx_;
    RecordRing q_;
    bool ready_ = false, detached_ = false, listed_ = false;
    uint64_t active_ = 0;  // the drain() call that last delivered to it
    // caches valid while the hub's MAC table version is unchanged: the last source learned
    // (and when), the last destination looked up
    uint64_t src_key_ = ~0ull, dst_key_ = ~0ull, src_ver_ = 0, dst_ver_ = 0;
    Micros src_seen_ = 0;
    uint32_t dst_idx_ = 0, dst_gen_ = 0;
    PortStats stats_;
  };

  explicit Hub(std::string name = "");
  Hub(std::string name, const Config& cfg);
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  const std::string& name() const { return name_; }
  /** a new port whose frames go to fn(ctx, ...); the Port is the Link to give the interface */
  Port* attach(Deliver fn, void* ctx);
  /** remove the port (its queued frames are dropped); safe from inside a delivery */
  void detach(Port* p);
  /** deliver up to budget queued frames (round robin over ports); returns how many */
  size_t drain(size_t budget = SIZE_MAX);
  /** free the queue memory of every port with nothing queued (O(ports); drain() does this
      gradually by itself) */
  void trim();
  /** frames waiting in any port queue */
  bool pending() const { return !ready_.empty(); }
  size_t port_count() const { return nports_; }
  /** whether ports report csum_offload(): turn it off (before traffic starts) when an attached
      interface corrupts frames (Impair.corrupt), so that receivers verify checksums */
  void set_csum_offload(bool on) { cfg_.csum_offload = on; }
  bool csum_offload() const { return cfg_.csum_offload; }
  /** the clock for MAC aging (microseconds, any monotonic origin) */
  void set_now(Micros now) {
    now_ = now;
    if (now_ - aged_at_ >= 1000000) { aged_at_ = now_; mac_version_++; }  // caches re-check aging each second
  }
  const Stats& stats() const { return stats_; }

 private:
  struct MacEntry { uint32_t idx, gen; Micros seen; };
  static uint64_t mac_key(const uint8_t* m) {
    uint64_t k = 0;
    std::memcpy(&k, m, 6);
    return k;
  }
  void forward(Port* from, const uint8_t* frame, size_t len);
  void enqueue(Port* to, const uint8_t* frame, size_t len);
  void learn(Port* from, const uint8_t* src);
  void free_port(Port* p);

  std::string name_;
  Config cfg_;
  std::vector<Port*> ports_;        // by index; nullptr: free
  std::vector<uint32_t> gens_;      // generation per index (bumped when a port goes)
  std::vector<uint32_t> free_idx_;
  size_t nports_ = 0;
  std::deque<uint32_t> ready_;      // ports with frames queued
  std::unordered_map<uint64_t, MacEntry> macs_;
  std::vector<std::pair<uint32_t, uint32_t>> grown_;  // (index, gen) of ports keeping a grown queue
  size_t trim_cursor_ = 0;
  uint64_t drains_ = 0;
  uint64_t mac_version_ = 1;
  Micros aged_at_ = 0;  // bumped whenever a MAC changes port or leaves the table
  Port* delivering_ = nullptr;
  Micros now_ = 0;
  Stats stats_;
};

}  // namespace ms
