// Send and receive buffers of a TCP connection. Both are bounded and O(1) per operation in
// the byte count they move: the send buffer is a list of fixed chunks (ACKs free whole
// chunks, no memmove), the receive buffer a ring sized to the receive window, into which
// out-of-order data is written in place (the window guarantees it fits).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace ms {

/** a double-ended queue in one power-of-two ring (no per-block allocation as std::deque
 *  does while it slides, and nothing allocated while empty: an empty std::deque holds ~600
 *  bytes): push_back/pop_front O(1), random access, insert in the middle O(n) (rare).
 *  T must be trivially copyable. kInit: the capacity of the first allocation (a power of 2). */
template <class T, size_t kInit = 64>
class Ring {
  static_assert(kInit && (kInit & (kInit - 1)) == 0, "kInit must be a power of two");
 public:
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  T& operator[](size_t i) { return v_[(h_ + i) & (v_.size() - 1)]; }
  const T& operator[](size_t i) const { return v_[(h_ + i) & (v_.size() - 1)]; }
  T& front() { return (*this)[0]; }
  T& back() { return (*this)[n_ - 1]; }
  const T& front() const { return (*this)[0]; }
  const T& back() const { return (*this)[n_ - 1]; }
  void push_back(const T& x) {
    if (n_ == v_.size()) grow();
    (*this)[n_++] = x;
  }
  void pop_front() { h_ = (h_ + 1) & (v_.size() - 1); n_--; }
  /** insert x before position i (0 <= i <= size) */
  void insert(size_t i, const T& x) {
    if (n_ == v_.size()) grow();
    for (size_t k = n_; k > i; k--) (*this)[k] = (*this)[k - 1];
    (*this)[i] = x;
    n_++;
  }
  void clear() { h_ = n_ = 0; }
  void swap(Ring& o) { v_.swap(o.v_); std::swap(h_, o.h_); std::swap(n_, o.n_); }
  /** remove every element equal to x, keeping the order of the others; O(n) */
  void remove(const T& x) {
    size_t k = 0;
    for (size_t i = 0; i < n_; i++)
      if (!((*this)[i] == x)) (*this)[k++] = (*this)[i];
    n_ = k;
  }
  void shrink_to_fit() { if (n_ == 0) { std::vector<T>().swap(v_); h_ = 0; } }
  template <class F> void for_each(F f) { for (size_t i = 0; i < n_; i++) f((*this)[i]); }
  template <class F> void for_each(F f) const { for (size_t i = 0; i < n_; i++) f((*this)[i]); }

 private:
  void grow() {
    std::vector<T> nv(v_.empty() ? kInit : v_.size() * 2);
    for (size_t i = 0; i < n_; i++) nv[i] = (*this)[i];
    v_.swap(nv);
    h_ = 0;
  }
  std::vector<T> v_;
  size_t h_ = 0, n_ = 0;
};

class SendBuffer {
 public:
  static constexpr size_t kChunk = 16384;
  SendBuffer() = default;
  SendBuffer(const SendBuffer&) = delete;
  SendBuffer& operator=(const SendBuffer&) = delete;
  ~SendBuffer() { clear(); }

  size_t size() const { return size_; }
  /** append n bytes */
  void append(const uint8_t* p, size_t n) {
    while (n) {
      size_t tail = (head_ + size_) % kChunk;
      if (tail == 0 && (head_ + size_) / kChunk >= chunks_.size()) {
        uint8_t* c = spare_ ? spare_ : static_cast<uint8_t*>(std::malloc(kChunk));
        spare_ = nullptr;
        chunks_.push_back(c);
      }
      size_t idx = (head_ + size_) / kChunk;
      size_t k = std::min(n, kChunk - tail);
      std::memcpy(chunks_[idx] + tail, p, k);
      p += k; n -= k; size_ += k;
    }
  }
  /** drop n bytes from the front (acknowledged) */
  void consume(size_t n) {
    if (n > size_) n = size_;
    head_ += n; size_ -= n;
    while (head_ >= kChunk) {
      if (!spare_) spare_ = chunks_.front(); else std::free(chunks_.front());
      chunks_.pop_front();
      head_ -= kChunk;
    }
    if (size_ == 0 && !chunks_.empty()) {  // keep at most one chunk around
      head_ = 0;
      while (!chunks_.empty()) {
        if (!spare_) spare_ = chunks_.front(); else std::free(chunks_.front());
        chunks_.pop_front();
      }
    }
  }
  /** copy n bytes starting at offset off */
  void copy_out(size_t off, uint8_t* dst, size_t n) const {
    size_t pos = head_ + off;
    while (n) {
      size_t idx = pos / kChunk, o = pos % kChunk;
      size_t k = std::min(n, kChunk - o);
      std::memcpy(dst, chunks_[idx] + o, k);
      dst += k; n -= k; pos += k;
    }
  }
  void clear() {
    chunks_.for_each([](uint8_t* c) { std::free(c); });
    chunks_.clear();
    chunks_.shrink_to_fit();
    std::free(spare_);
    spare_ = nullptr;
    head_ = size_ = 0;
  }

 private:
  Ring<uint8_t*, 8> chunks_;  // 8 chunks (128 KiB) before the first growth
  uint8_t* spare_ = nullptr;
  size_t head_ = 0, size_ = 0;
};

/** ring of bytes addressed by offset from the read position */
class RecvRing {
 public:
  RecvRing() = default;
  RecvRing(const RecvRing&) = delete;
  RecvRing& operator=(const RecvRing&) = delete;
  ~RecvRing() { std::free(mem_); }

  bool allocated() const { return mem_ != nullptr; }
  size_t capacity() const { return size_; }
  /** (re)allocate to `size` bytes keeping the first `keep` bytes from the read position */
  void resize(size_t size, size_t keep) {
    uint8_t* m = static_cast<uint8_t*>(std::malloc(size));
    if (mem_) { copy_out(0, m, std::min(keep, size)); std::free(mem_); }
    mem_ = m; size_ = size; head_ = 0;
  }
  void release() { std::free(mem_); mem_ = nullptr; size_ = head_ = 0; }
  /** write n bytes at offset off from the read position (off + n <= capacity) */
  void write_at(size_t off, const uint8_t* p, size_t n) {
    size_t pos = head_ + off;
    if (pos >= size_) pos -= size_;
    size_t k = std::min(n, size_ - pos);
    std::memcpy(mem_ + pos, p, k);
    if (n > k) std::memcpy(mem_, p + k, n - k);
  }
  void copy_out(size_t off, uint8_t* dst, size_t n) const {
    size_t pos = head_ + off;
    if (pos >= size_) pos -= size_;
    size_t k = std::min(n, size_ - pos);
    std::memcpy(dst, mem_ + pos, k);
    if (n > k) std::memcpy(dst + k, mem_, n - k);
  }
  /** advance the read position by n */
  void consume(size_t n) { head_ += n; if (head_ >= size_) head_ -= size_; }

 private:
  uint8_t* mem_ = nullptr;
  size_t size_ = 0, head_ = 0;
};

}  // namespace ms
