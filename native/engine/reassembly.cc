#include "reassembly.h"

#include <algorithm>

namespace ms {

void Reassembler::drop(size_t i) {
  Entry* e = list_[i];
  bytes_ -= e->cap;
  std::free(e->buf);
  delete e;
  list_.erase(list_.begin() + long(i));
}

bool Reassembler::add(const wire::Ipv4Header& h, const uint8_t* p, Micros now, Done* out) {
  release_done();
  stats_.reqds++;
  const uint32_t start = h.frag_offset;
  const uint32_t len = uint32_t(h.total_len - h.header_len);
  const uint32_t end = start + len;
  // find the datagram in progress (few entries: a short linear search)
  size_t idx = list_.size();
  for (size_t i = 0; i < list_.size(); i++) {
    Entry* e = list_[i];
    if (e->id == h.id && e->proto == h.proto && std::memcmp(e->src, h.src, 4) == 0 && std::memcmp(e->dst, h.dst, 4) == 0) { idx = i; break; }
  }
  if (end + h.header_len > 65535 || (h.mf && (len == 0 || (len & 7)))) {
    // too big for any datagram (ping of death), or a middle fragment not a multiple of 8
    stats_.too_big++;
    stats_.fails++;
    if (idx < list_.size()) drop(idx);
    return false;
  }
  if (idx == list_.size()) {
    if (list_.size() >= cfg_.max_datagrams) {
      // make room: the oldest datagram goes
      stats_.over_limit++;
      stats_.fails++;
      drop(0);
    }
    Entry* e = new Entry;
    std::memcpy(e->src, h.src, 4);
    std::memcpy(e->dst, h.dst, 4);
    e->id = h.id;
    e->proto = h.proto;
    e->created = now;
    list_.push_back(e);
    idx = list_.size() - 1;
  }
  Entry* e = list_[idx];
  if (!h.mf) {
    if (e->have_last ? e->total != end : end < (e->ranges.empty() ? 0 : e->ranges.back().second)) {
      stats_.overlaps++; stats_.fails++; drop(idx); return false;
    }
    e->have_last = true;
    e->total = end;
  } else if (e->have_last && end > e->total) {
    stats_.overlaps++; stats_.fails++; drop(idx); return false;
  }
  // overlap check against received ranges
  auto& r = e->ranges;
  auto it = std::lower_bound(r.begin(), r.end(), std::make_pair(start, uint32_t(0)));
  bool dup = false;
  if (it != r.end() && it->first == start && it->second == end) dup = true;
  else if (len) {
    if (it != r.end() && it->first < end) { stats_.overlaps++; stats_.fails++; drop(idx); return false; }
    if (it != r.begin() && std::prev(it)->second > start) { stats_.overlaps++; stats_.fails++; drop(idx); return false; }
  }
  if (!dup && len) {
    // grow the buffer to hold [0, end)
    if (end > e->cap) {
      size_t ncap = std::max<size_t>(end, std::min<size_t>(65536, e->cap ? e->cap * 2 : 2048));
      if (e->have_last) ncap = std::max<size_t>(e->total, end);
      if (bytes_ - e->cap + ncap > cfg_.max_bytes) {
        stats_.over_limit++; stats_.fails++; drop(idx); return false;
      }
      uint8_t* nb = static_cast<uint8_t*>(std::realloc(e->buf, kHead + ncap));
      if (!nb) { stats_.fails++; drop(idx); return false; }
      bytes_ += ncap - e->cap;
      e->buf = nb;
      e->cap = ncap;
    }
    std::memcpy(e->buf + kHead + start, p + h.header_len, len);
    // insert and merge with neighbours
    it = r.insert(it, {start, end});
    if (it != r.begin() && std::prev(it)->second == start) { std::prev(it)->second = end; it = r.erase(it) - 1; }
    if (std::next(it) != r.end() && std::next(it)->first == it->second) { it->second = std::next(it)->second; r.erase(std::next(it)); }
    e->received += len;
  }
  if (start == 0 && !e->have_first) {
    e->have_first = true;
    e->hlen = h.header_len;
    e->first_len = len;
    if (!e->buf) {  // zero-length first fragment: still need room for the header
      e->buf = static_cast<uint8_t*>(std::malloc(kHead + 8));
      e->cap = 0;
    }
    std::memcpy(e->buf + kHead - e->hlen, p, e->hlen);
  }
  if (!(e->have_first && e->have_last && e->received == e->total && (r.empty() ? e->total == 0 : (r.size() == 1 && r[0].first == 0)))) return false;
  // complete: fix up the first fragment's header and hand the buffer over
  uint8_t* pkt = e->buf + kHead - e->hlen;
  size_t total = size_t(e->hlen) + e->total;
  wire::st16(pkt + 2, uint16_t(total));
  pkt[6] &= 0x40;  // keep DF, clear MF and offset
  pkt[7] = 0;
  pkt[10] = pkt[11] = 0;
  uint16_t c = wire::internet_checksum(pkt, e->hlen);
  std::memcpy(pkt + 10, &c, 2);
  done_ = e->buf;
  e->buf = nullptr;
  bytes_ -= e->cap;
  e->cap = 0;
  delete e;
  list_.erase(list_.begin() + long(idx));
  stats_.oks++;
  out->packet = pkt;
  out->len = total;
  return true;
}

}  // namespace ms
