// The neighbour cache (ARP for IPv4, ready to hold IPv6 for NDP): bounded, least recently
// used entries evicted first, reachability that goes stale and is re-probed, a bounded
// queue of packets per unresolved destination, and failure after a number of probes.
// The cache only keeps state; the Stack sends the probes it asks for.
#pragma once
#include <list>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "packet.h"

namespace ms {

struct NeighbourConfig {
  uint32_t max_entries = 512;
  uint32_t probe_interval_ms = 1000;  // at most one request per second per target
  uint32_t max_probes = 3;            // then the destination has failed
  uint32_t reachable_ms = 30000;      // a confirmation is trusted this long, then stale
  uint32_t failed_hold_ms = 3000;     // sends to a failed destination fail at once meanwhile
  uint32_t queue_packets = 64;        // packets held per unresolved destination
  uint32_t queue_bytes = 212992;      // as Linux unres_qlen_bytes
  uint32_t delay_first_probe_ms = 5000;  // NDP: DELAY_FIRST_PROBE_TIME
};

struct NeighbourKey {
  IpAddr addr;
  int ifindex = 0;
  bool operator==(const NeighbourKey& o) const { return ifindex == o.ifindex && addr == o.addr; }
};
struct NeighbourKeyHash {
  size_t operator()(const NeighbourKey& k) const {
    uint64_t a, b;
    std::memcpy(&a, k.addr.b, 8);
    std::memcpy(&b, k.addr.b + 8, 8);
    uint64_t h = (a * 0x9e3779b97f4a7c15ull) ^ (b + 0x632be59bd9b4e019ull + (uint64_t(k.ifindex) << 8 | k.addr.family));
    h ^= h >> 29; h *= 0xbf58476d1ce4e5b9ull; h ^= h >> 32;
    return size_t(h);
  }
};

struct Neighbour {
  // ARP uses Incomplete, Reachable, Probe, Failed; NDP (RFC 4861 7.3.2) adds Stale and Delay
  enum State : uint8_t { Incomplete, Reachable, Probe, Failed, Stale, Delay };
  NeighbourKey key;
  State state = Incomplete;
  uint8_t probes = 0;
  MacAddr mac;
  Micros confirmed = 0;   // last reply seen (Reachable until confirmed + reachable_ms)
  Micros timer = kNever;  // next probe or failure (Incomplete, Probe); end of hold (Failed)
  Micros since = 0;       // Incomplete: when the first probe went out
  std::vector<PacketBuf> queue;  // IP packets awaiting resolution (Incomplete)
  size_t queue_bytes = 0;
};

class NeighbourCache {
 public:
  explicit NeighbourCache(const NeighbourConfig& c = {}) : cfg_(c) {}
  NeighbourConfig& config() { return cfg_; }

  /** lookup and mark recently used; nullptr if absent */
  Neighbour* find(const NeighbourKey& k) {
    if (last_ && last_->key == k) {  // the common case: the same next hop as the last packet
      if (last_it_ != lru_.begin()) lru_.splice(lru_.begin(), lru_, last_it_);
      return last_;
    }
    auto it = map_.find(k);
    if (it == map_.end()) return nullptr;
    if (it->second != lru_.begin()) lru_.splice(lru_.begin(), lru_, it->second);
    last_it_ = it->second;
    last_ = &*it->second;
    return last_;
  }
  /** existing or new entry (Incomplete, no probe yet); evicts the least recently used */
  Neighbour* get_or_create(const NeighbourKey& k, bool* created, uint64_t* evictions) {
    if (Neighbour* n = find(k)) { *created = false; return n; }
    *created = true;
    if (map_.size() >= cfg_.max_entries && !lru_.empty()) {
      if (last_ == &lru_.back()) last_ = nullptr;
      map_.erase(lru_.back().key);
      lru_.pop_back();
      ++*evictions;
    }
    lru_.emplace_front();
    lru_.front().key = k;
    map_.emplace(k, lru_.begin());
    return &lru_.front();
  }
  void erase(const NeighbourKey& k) {
    auto it = map_.find(k);
    if (it == map_.end()) return;
    if (last_ == &*it->second) last_ = nullptr;
    lru_.erase(it->second);
    map_.erase(it);
  }
  size_t size() const { return map_.size(); }
  std::list<Neighbour>& entries() { return lru_; }

  /** the earliest timer of any entry (kept up to date by the Stack through note_timer) */
  Micros next_timer() const { return next_timer_; }
  void note_timer(Micros t) { if (t < next_timer_) next_timer_ = t; }
  void set_next_timer(Micros t) { next_timer_ = t; }
  void clear() { map_.clear(); lru_.clear(); next_timer_ = kNever; last_ = nullptr; }

 private:
  NeighbourConfig cfg_;
  std::list<Neighbour> lru_;  // most recently used first
  std::unordered_map<NeighbourKey, std::list<Neighbour>::iterator, NeighbourKeyHash> map_;
  Micros next_timer_ = kNever;
  Neighbour* last_ = nullptr;  // one-entry lookup cache
  std::list<Neighbour>::iterator last_it_;
};

}  // namespace ms
