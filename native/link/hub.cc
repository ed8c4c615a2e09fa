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
  auto it = macs_.find(k);
  if (it != macs_.end()) {
    it->second = {from->idx_, from->gen_, now_};
  } else {
    if (macs_.size() >= cfg_.mac_table_max) {
      // age out what we can; if still full, do not learn (unknown destinations are flooded)
      Micros age = Micros(cfg_.mac_age_ms) * 1000;
      for (auto i = macs_.begin(); i != macs_.end();) {
        bool stale = ports_.size() <= i->second.idx || gens_[i->second.idx] != i->second.gen || i->second.seen + age < now_;
        if (stale) i = macs_.erase(i); else ++i;
      }
      if (macs_.size() >= cfg_.mac_table_max) { stats_.table_full++; return; }
    }
    macs_.emplace(k, MacEntry{from->idx_, from->gen_, now_});
    stats_.learned++;
  }
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
    auto it = macs_.find(mac_key(frame));
    if (it != macs_.end()) {
      const MacEntry& e = it->second;
      Micros age = Micros(cfg_.mac_age_ms) * 1000;
      if (e.idx < ports_.size() && gens_[e.idx] == e.gen && ports_[e.idx] && (now_ == 0 || e.seen + age >= now_)) {
        Port* to = ports_[e.idx];
        if (to == from) { stats_.filtered++; return; }  // the destination is on the sender's side
        stats_.unicasts++;
        enqueue(to, frame, len);
        return;
      }
    }
  }
  stats_.floods++;
  for (Port* p : ports_)
    if (p && p != from) enqueue(p, frame, len);
}

size_t Hub::drain(size_t budget) {
  size_t done = 0;
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
    if (p && !p->q_.empty() && !p->ready_) {
      p->ready_ = true;
      ready_.push_back(idx);
    }
  }
  return done;
}

}  // namespace ms
