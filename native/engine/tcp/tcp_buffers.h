// Send and receive buffers of a TCP connection. Both are bounded and O(1) per operation in
// the byte count they move: the send buffer is a list of fixed chunks (ACKs free whole
// chunks, no memmove), the receive buffer a ring sized to the receive window, into which
// out-of-order data is written in place (the window guarantees it fits).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

namespace ms {

/** one heap block: a small header, then the elements. An empty container holds no block, so
 *  it costs one pointer (8 bytes) in its owner, which matters for the many containers of a
 *  connection that stay empty while it is idle (std::vector: 24 bytes, a ring with its indices
 *  beside: 40). */
struct BlockHeader { uint32_t cap, head, n, pad_; };
template <class T>
inline T* block_items(BlockHeader* b) { return reinterpret_cast<T*>(b + 1); }
template <class T>
inline BlockHeader* block_alloc(size_t cap) {
  static_assert(alignof(T) <= alignof(BlockHeader) || alignof(T) <= 16, "over-aligned element");
  auto* b = static_cast<BlockHeader*>(std::malloc(sizeof(BlockHeader) + cap * sizeof(T)));
  if (!b) std::abort();
  b->cap = uint32_t(cap); b->head = b->n = 0; b->pad_ = 0;
  return b;
}

/** a double-ended queue in one power-of-two ring (no per-block allocation as std::deque
 *  does while it slides, and nothing allocated while empty: an empty std::deque holds ~600
 *  bytes): push_back/pop_front O(1), random access, insert in the middle O(n) (rare).
 *  T must be trivially copyable. kInit: the capacity of the first allocation (a power of 2).
 *  One pointer in its owner; the capacity and indices live in the block. */
template <class T, size_t kInit = 64>
class Ring {
  static_assert(kInit && (kInit & (kInit - 1)) == 0, "kInit must be a power of two");
  static_assert(std::is_trivially_copyable<T>::value, "Ring holds trivially copyable elements");
 public:
  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring() { std::free(b_); }
  size_t size() const { return b_ ? b_->n : 0; }
  bool empty() const { return size() == 0; }
  T& operator[](size_t i) { return block_items<T>(b_)[(b_->head + i) & (b_->cap - 1)]; }
  const T& operator[](size_t i) const { return block_items<T>(b_)[(b_->head + i) & (b_->cap - 1)]; }
  T& front() { return (*this)[0]; }
  T& back() { return (*this)[b_->n - 1]; }
  const T& front() const { return (*this)[0]; }
  const T& back() const { return (*this)[b_->n - 1]; }
  void push_back(const T& x) {
    if (size() == capacity()) grow();
    (*this)[b_->n++] = x;
  }
  void pop_front() { b_->head = (b_->head + 1) & (b_->cap - 1); b_->n--; }
  /** insert x before position i (0 <= i <= size) */
  void insert(size_t i, const T& x) {
    if (size() == capacity()) grow();
    for (size_t k = b_->n; k > i; k--) (*this)[k] = (*this)[k - 1];
    (*this)[i] = x;
    b_->n++;
  }
  void clear() { if (b_) b_->head = b_->n = 0; }
  void swap(Ring& o) { std::swap(b_, o.b_); }
  /** remove every element equal to x, keeping the order of the others; O(n) */
  void remove(const T& x) {
    size_t k = 0, n = size();
    for (size_t i = 0; i < n; i++)
      if (!((*this)[i] == x)) (*this)[k++] = (*this)[i];
    if (b_) b_->n = uint32_t(k);
  }
  /** free the storage when empty */
  void shrink_to_fit() { if (b_ && b_->n == 0) { std::free(b_); b_ = nullptr; } }
  template <class F> void for_each(F f) { for (size_t i = 0, n = size(); i < n; i++) f((*this)[i]); }
  template <class F> void for_each(F f) const { for (size_t i = 0, n = size(); i < n; i++) f((*this)[i]); }

 private:
  size_t capacity() const { return b_ ? b_->cap : 0; }
  void grow() {
    size_t cap = b_ ? size_t(b_->cap) * 2 : kInit;
    BlockHeader* nb = block_alloc<T>(cap);
    size_t n = size();
    for (size_t i = 0; i < n; i++) block_items<T>(nb)[i] = (*this)[i];
    nb->n = uint32_t(n);
    std::free(b_);
    b_ = nb;
  }
  BlockHeader* b_ = nullptr;
};

/** the part of std::vector's interface the engine uses, for trivially copyable T, in one
 *  pointer (the size and capacity live in the heap block; nothing allocated while empty) */
template <class T>
class CompactVec {
  static_assert(std::is_trivially_copyable<T>::value, "CompactVec holds trivially copyable elements");
 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;
  CompactVec() = default;
  CompactVec(const CompactVec&) = delete;
  CompactVec& operator=(const CompactVec&) = delete;
  ~CompactVec() { std::free(b_); }
  size_t size() const { return b_ ? b_->n : 0; }
  bool empty() const { return size() == 0; }
  size_t capacity() const { return b_ ? b_->cap : 0; }
  T* begin() { return b_ ? block_items<T>(b_) : nullptr; }
  T* end() { return b_ ? block_items<T>(b_) + b_->n : nullptr; }
  const T* begin() const { return b_ ? block_items<T>(b_) : nullptr; }
  const T* end() const { return b_ ? block_items<T>(b_) + b_->n : nullptr; }
  T& operator[](size_t i) { return block_items<T>(b_)[i]; }
  const T& operator[](size_t i) const { return block_items<T>(b_)[i]; }
  T& front() { return *begin(); }
  T& back() { return end()[-1]; }
  const T& front() const { return *begin(); }
  const T& back() const { return end()[-1]; }
  void push_back(const T& x) {
    if (size() == capacity()) reserve(capacity() ? capacity() * 2 : 4);
    block_items<T>(b_)[b_->n++] = x;
  }
  template <class... A> T& emplace_back(A&&... a) { push_back(T{std::forward<A>(a)...}); return back(); }
  void pop_back() { b_->n--; }
  T* data() { return begin(); }
  const T* data() const { return begin(); }
  /** insert x before pos; returns the inserted element */
  T* insert(T* pos, const T& x) {
    size_t i = b_ ? size_t(pos - begin()) : 0;
    T v = x;  // x may live in this vector
    if (size() == capacity()) reserve(capacity() ? capacity() * 2 : 4);
    T* p = begin() + i;
    std::memmove(static_cast<void*>(p + 1), static_cast<const void*>(p), (b_->n - i) * sizeof(T));
    *p = v;
    b_->n++;
    return p;
  }
  /** remove [first, last); returns the element after them */
  T* erase(T* first, T* last) {
    if (first == last) return first;
    std::memmove(static_cast<void*>(first), static_cast<const void*>(last), size_t(end() - last) * sizeof(T));
    b_->n -= uint32_t(last - first);
    return first;
  }
  T* erase(T* pos) { return erase(pos, pos + 1); }
  void clear() { if (b_) b_->n = 0; }
  void reserve(size_t cap) {
    if (cap <= capacity()) return;
    BlockHeader* nb = block_alloc<T>(cap);
    size_t n = size();
    if (n) std::memcpy(static_cast<void*>(block_items<T>(nb)), static_cast<const void*>(block_items<T>(b_)), n * sizeof(T));
    nb->n = uint32_t(n);
    std::free(b_);
    b_ = nb;
  }
  /** free the storage when empty, else cut the capacity to the size */
  void shrink_to_fit() {
    if (!b_ || b_->n == b_->cap) return;
    if (b_->n == 0) { std::free(b_); b_ = nullptr; return; }
    BlockHeader* nb = block_alloc<T>(b_->n);
    std::memcpy(static_cast<void*>(block_items<T>(nb)), static_cast<const void*>(block_items<T>(b_)), b_->n * sizeof(T));
    nb->n = b_->n;
    std::free(b_);
    b_ = nb;
  }

 private:
  BlockHeader* b_ = nullptr;
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
  uint32_t head_ = 0, size_ = 0;  // a send buffer is far below 4 GiB (sndbuf_cap is 32-bit)
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
  uint32_t size_ = 0, head_ = 0;  // at most rcvbuf_cap (32-bit)
};

}  // namespace ms
