// A queue of variable-length records in one contiguous buffer: no allocation per record.
// Each record is stored unsplit (so it can be read in place) behind an 8-byte header.
// The buffer grows by doubling up to a byte limit and is allocated on first use.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace ms {

class RecordRing {
 public:
  explicit RecordRing(size_t initial = 4096, size_t limit = 1 << 20) : initial_(initial), limit_(limit) {}
  RecordRing(const RecordRing&) = delete;
  RecordRing& operator=(const RecordRing&) = delete;
  ~RecordRing() { std::free(buf_); }

  size_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  size_t capacity() const { return cap_; }
  size_t limit() const { return limit_; }
  void set_limit(size_t l) { limit_ = l; }
  /** bytes held, headers and padding included */
  size_t used() const { return used_; }

  /** room for a record of n bytes, or nullptr when full (may grow; never while the front is
      borrowed: front pointers stay valid until pop) */
  uint8_t* push(size_t n, uint32_t tag = 0) {
    size_t need = rec_size(n);
    uint8_t* p = place(need);
    if (!p) {
      if (borrowed_ || !grow(need)) return nullptr;
      p = place(need);
      if (!p) return nullptr;
    }
    uint32_t hdr[2] = {uint32_t(n), tag};
    std::memcpy(p, hdr, 8);
    count_++;
    used_ += need;
    return p + 8;
  }
  bool push_copy(const void* data, size_t n, uint32_t tag = 0) {
    uint8_t* p = push(n, tag);
    if (!p) return false;
    if (n) std::memcpy(p, data, n);
    return true;
  }
  /** the oldest record; ring must not be empty */
  uint8_t* front(size_t* n, uint32_t* tag = nullptr) {
    uint32_t hdr[2];
    std::memcpy(hdr, buf_ + head_, 8);
    *n = hdr[0];
    if (tag) *tag = hdr[1];
    return buf_ + head_ + 8;
  }
  void pop() {
    size_t n;
    front(&n);
    size_t sz = rec_size(n);
    head_ += sz;
    used_ -= sz;
    count_--;
    if (count_ == 0) { head_ = tail_ = 0; wrapped_ = false; return; }
    if (wrapped_ && (head_ == wrap_at_)) { head_ = 0; wrapped_ = false; }
  }
  /** while set, the ring does not grow (a record is being read in place) */
  void set_borrowed(bool b) { borrowed_ = b; }
  void clear() { count_ = 0; used_ = 0; head_ = tail_ = 0; wrapped_ = false; }
  /** free the buffer if empty */
  void release() { if (!count_) { std::free(buf_); buf_ = nullptr; cap_ = 0; clear(); } }

 private:
  static size_t rec_size(size_t n) { return (8 + n + 7) & ~size_t(7); }

  uint8_t* place(size_t need) {
    if (!buf_) return nullptr;
    if (!wrapped_) {
      // data in [head, tail)
      if (cap_ - tail_ >= need) { uint8_t* p = buf_ + tail_; tail_ += need; return p; }
      if (head_ >= need && count_ > 0) {  // wrap: the end of the buffer after tail is unused
        wrap_at_ = tail_;
        wrapped_ = true;
        tail_ = need;
        return buf_;
      }
      if (count_ == 0 && cap_ >= need) { head_ = 0; tail_ = need; return buf_; }
      return nullptr;
    }
    // data in [head, wrap_at) and [0, tail)
    if (head_ - tail_ >= need) { uint8_t* p = buf_ + tail_; tail_ += need; return p; }
    return nullptr;
  }

  bool grow(size_t need) {
    size_t ncap = cap_ ? cap_ * 2 : initial_;
    while (ncap < used_ + need) ncap *= 2;
    if (ncap > limit_) ncap = limit_;
    if (ncap < used_ + need || ncap <= cap_) return false;
    uint8_t* nb = static_cast<uint8_t*>(std::malloc(ncap));
    if (!nb) return false;
    size_t off = 0;
    if (count_) {
      if (!wrapped_) { std::memcpy(nb, buf_ + head_, tail_ - head_); off = tail_ - head_; }
      else {
        std::memcpy(nb, buf_ + head_, wrap_at_ - head_); off = wrap_at_ - head_;
        std::memcpy(nb + off, buf_, tail_); off += tail_;
      }
    }
    std::free(buf_);
    buf_ = nb; cap_ = ncap; head_ = 0; tail_ = off; wrapped_ = false;
    return true;
  }

  uint8_t* buf_ = nullptr;
  size_t cap_ = 0, head_ = 0, tail_ = 0, wrap_at_ = 0, used_ = 0, count_ = 0;
  size_t initial_, limit_;
  bool wrapped_ = false, borrowed_ = false;
};

}  // namespace ms
