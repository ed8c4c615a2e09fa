// A packet buffer with headroom, so each layer prepends its header without copying.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace ms {

class PacketBuf {
 public:
  static constexpr size_t kDefaultHeadroom = 128;  // ethernet + IPv6 + extension headers + TCP options

  PacketBuf() = default;
  /** room for `payload` bytes after `headroom` bytes of future headers */
  explicit PacketBuf(size_t payload, size_t headroom = kDefaultHeadroom)
      : mem_(static_cast<uint8_t*>(std::malloc(headroom + payload))), cap_(headroom + payload), head_(headroom), tail_(headroom) {}
  PacketBuf(const PacketBuf&) = delete;
  PacketBuf& operator=(const PacketBuf&) = delete;
  PacketBuf(PacketBuf&& o) noexcept { *this = std::move(o); }
  PacketBuf& operator=(PacketBuf&& o) noexcept {
    if (this != &o) { std::free(mem_); mem_ = o.mem_; cap_ = o.cap_; head_ = o.head_; tail_ = o.tail_; o.mem_ = nullptr; o.cap_ = o.head_ = o.tail_ = 0; }
    return *this;
  }
  ~PacketBuf() { std::free(mem_); }

  uint8_t* data() { return mem_ + head_; }
  const uint8_t* data() const { return mem_ + head_; }
  size_t size() const { return tail_ - head_; }
  size_t headroom() const { return head_; }
  size_t tailroom() const { return cap_ - tail_; }
  bool valid() const { return mem_ != nullptr; }

  /** grow at the front by n bytes (needs headroom() >= n); returns the new start */
  uint8_t* prepend(size_t n) { head_ -= n; return mem_ + head_; }
  /** grow at the end by n bytes (needs tailroom() >= n); returns where the new bytes go */
  uint8_t* append(size_t n) { uint8_t* p = mem_ + tail_; tail_ += n; return p; }
  void append(const void* src, size_t n) { std::memcpy(append(n), src, n); }
  void trim_front(size_t n) { head_ += n; }
  void trim_back(size_t n) { tail_ -= n; }
  size_t capacity() const { return cap_; }
  /** empty again, with `headroom` bytes before the start (needs headroom <= capacity()) */
  void reset(size_t headroom = kDefaultHeadroom) { head_ = tail_ = headroom; }
  /** at least n bytes of headroom: moves the payload to a fresh buffer when it has fewer */
  void ensure_headroom(size_t n) {
    if (head_ >= n) return;
    PacketBuf c(size(), n > kDefaultHeadroom ? n : kDefaultHeadroom);
    c.append(data(), size());
    *this = std::move(c);
  }
  /** a copy with the same headroom */
  PacketBuf clone() const { PacketBuf c(size(), head_); c.append(data(), size()); return c; }

 private:
  uint8_t* mem_ = nullptr;
  size_t cap_ = 0, head_ = 0, tail_ = 0;
};

}  // namespace ms
