#include "hub.h"

namespace ms {

Hub::Hub(std::string name) : name_(std::move(name)) {}
Hub::Hub(std::string name, const Config& cfg) : name_(std::move(name)), cfg_(cfg) {}

Hub::~Hub() {
  for (Port* p : ports_) delete p;
}

Hub::Port* Hub::attach(Deliver fn, void* ctx) {
  uint32_t idx;
  if (!free_idx_.empty()) { idx = free_idx_.back(); free_idx_.pop_back(); }
  else { idx = uint32_t(ports_.size()); ports_.push_back(nullptr); gens_.push_back(0); }
  Port* p = new Port(this, idx, gens_[idx], fn, ctx, cfg_);
  ports_[idx] = p;
  nports_++;
  return p;
}

void Hub::detach(Port* p) {
  if (!p || p->hub_ != this || p->detached_) return;
  p->detached_ = true;
  ports_[p->idx_] = nullptr;
  gens_[p->idx_]++;  // learned MACs of this port are void
  free_idx_.push_back(p->idx_);
  nports_--;
  if (p != delivering_) free_port(p);
}

void Hub::free_port(Port* p) {
  // a ready_ entry may still name the index; drain skips indexes whose port is gone or new
  delete p;
}

void Hub::learn(Port* from, const uint8_t* src) {
  if (src[0] & 1) return;  // a multicast source is bogus
  uint64_t k = mac_key(src);
  // the same source as this port's last frame, the table unchanged since, refreshed < 1 s ago
  if (k == from->src_key_ && from->src_ver_ == mac_version_ && now_ - from->src_seen_ < 1000000) return;
  auto it = macs_.find(k);
  if (it != macs_.end()) {
    if (it->second.idx != from->idx_ || it->second.gen != from->gen_) mac_version_++;  // moved
    it->second = {from->idx_, from->gen_, now_};
  } else {
    if (macs_.size() >= cfg_.mac_table_max) {
      // age out what we can; if still full, do not learn (unknown destinations are flooded)
      Micros age = Micros(cfg_.mac_age_ms) * 1000;
      for (auto i = macs_.begin(); i != macs_.end();) {
        bool stale = ports_.size() <= i->second.idx || gens_[i->second.idx] != i->second.gen || i->second.seen + age < now_;
        if (stale) { i = macs_.erase(i); mac_version_++; } else ++i;
      }
      if (macs_.size() >= cfg_.mac_table_max) { stats_.table_full++; return; }
    }
    macs_.emplace(k, MacEntry{from->idx_, from->gen_, now_});
    stats_.learned++;
  }
  from->src_key_ = k;
  from->src_ver_ = mac_version_;
  from->src_seen_ = now_;
}

void Hub::enqueue(Port* to, const uint8_t* frame, size_t len) {
  if (!to->q_.push_copy(frame, len)) {
    to->stats_.rx_queue_drops++;
    stats_.queue_drops++;
    return;
  }
  if (!to->ready_) {
    to->ready_ = true;
    ready_.push_back(to->idx_);
  }
}

void Hub::forward(Port* from, const uint8_t* frame, size_t len) {
  if (from->detached_) return;
  from->stats_.tx_frames++;
  from->stats_.tx_bytes += len;
  stats_.frames++;
  if (len < 14) { stats_.runts++; return; }
  learn(from, frame + 6);
  if (!(frame[0] & 1)) {
    uint64_t k = mac_key(frame);
    const Micros age = Micros(cfg_.mac_age_ms) * 1000;
    Port* to = nullptr;
    if (k == from->dst_key_ && from->dst_ver_ == mac_version_ && gens_[from->dst_idx_] == from->dst_gen_) {
      to = ports_[from->dst_idx_];  // cached: the same destination as the last frame
    } else {
      auto it = macs_.find(k);
      if (it != macs_.end()) {
        const MacEntry& e = it->second;
        if (e.idx < ports_.size() && gens_[e.idx] == e.gen && ports_[e.idx] && (now_ == 0 || e.seen + age >= now_)) {
          to = ports_[e.idx];
          from->dst_key_ = k;
          from->dst_ver_ = mac_version_;
          from->dst_idx_ = e.idx;
          from->dst_gen_ = e.gen;
        }
      }
    }
    if (to) {
      if (to == from) { stats_.filtered++; return; }  // the destination is on the sender's side
      stats_.unicasts++;
      enqueue(to, frame, len);
      return;
    }
  }
  stats_.floods++;
  for (Port* p : ports_)
    if (p && p != from) enqueue(p, frame, len);
}

void Hub::trim() {
  for (Port* p : ports_)
    if (p && p->q_.empty() && p != delivering_) p->q_.release();
}

size_t Hub::drain(size_t budget) {
  size_t done = 0;
  drains_++;
  while (done < budget && !ready_.empty()) {
    uint32_t idx = ready_.front();
    ready_.pop_front();
    Port* p = idx < ports_.size() ? ports_[idx] : nullptr;
    if (!p || !p->ready_) continue;
    p->ready_ = false;
    size_t quota = 64;  // per port per round: fairness between busy ports
    while (quota-- && done < budget && !p->q_.empty()) {
      size_t n;
      uint8_t* f = p->q_.front(&n);
      p->q_.set_borrowed(true);  // the frame is read in place: the queue must not move
      delivering_ = p;
      p->stats_.rx_frames++;
      p->stats_.rx_bytes += n;
      p->fn_(p->ctx_, f, n);
      delivering_ = nullptr;
      done++;
      stats_.delivered++;
      if (p->detached_) { free_port(p); p = nullptr; break; }
      p->q_.set_borrowed(false);
      p->q_.pop();
    }
    if (!p) continue;
    p->active_ = drains_;
    if (!p->q_.empty()) {
      if (!p->ready_) { p->ready_ = true; ready_.push_back(idx); }
    } else if (p->q_.capacity() <= 4096) {
      p->q_.release();  // small and empty: give it back
    } else if (!p->listed_) {
      p->listed_ = true;  // grown: kept while busy, freed once idle (below)
      grown_.push_back({p->idx_, p->gen_});
    }
  }
  // a few of the grown queues are looked at per call: the idle ones are freed
  for (int k = 0; k < 4 && !grown_.empty(); k++) {
    if (trim_cursor_ >= grown_.size()) trim_cursor_ = 0;
    auto [idx, gen] = grown_[trim_cursor_];
    Port* p = idx < ports_.size() && gens_[idx] == gen ? ports_[idx] : nullptr;
    bool drop = !p;
    if (p && p->q_.empty() && drains_ - p->active_ > cfg_.idle_drains) { p->q_.release(); drop = true; }
    if (p && p->q_.capacity() == 0) drop = true;
    if (drop) {
      if (p) p->listed_ = false;
      grown_[trim_cursor_] = grown_.back();
      grown_.pop_back();
    } else {
      trim_cursor_++;
    }
  }
  return done;
}

}  // namespace ms
