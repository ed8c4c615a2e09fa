#include "checksum.h"

namespace ms::wire {

uint64_t csum_add(uint64_t acc, const void* data, size_t len) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  // 64-bit words with end-around carry; four independent accumulators hide the carry chain
  uint64_t a0 = acc, a1 = 0, a2 = 0, a3 = 0;
  uint64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  while (len >= 32) {
    uint64_t w0, w1, w2, w3;
    std::memcpy(&w0, p, 8); std::memcpy(&w1, p + 8, 8); std::memcpy(&w2, p + 16, 8); std::memcpy(&w3, p + 24, 8);
    a0 += w0; c0 += a0 < w0;
    a1 += w1; c1 += a1 < w1;
    a2 += w2; c2 += a2 < w2;
    a3 += w3; c3 += a3 < w3;
    p += 32; len -= 32;
  }
  // fold the four lanes into one 64-bit sum with carries
  uint64_t s = a0, c = c0 + c1 + c2 + c3;
  s += a1; c += s < a1;
  s += a2; c += s < a2;
  s += a3; c += s < a3;
  while (len >= 8) {
    uint64_t w; std::memcpy(&w, p, 8);
    s += w; c += s < w;
    p += 8; len -= 8;
  }
  if (len >= 4) {
    uint32_t w; std::memcpy(&w, p, 4);
    s += w; c += s < w;
    p += 4; len -= 4;
  }
  if (len >= 2) {
    uint16_t w; std::memcpy(&w, p, 2);
    s += w; c += s < w;
    p += 2; len -= 2;
  }
  if (len) {
    uint16_t w = 0; std::memcpy(&w, p, 1);  // the odd byte, padded with a zero after it
    s += w; c += s < w;
  }
  // end-around carry: c counts overflows of 2^64, which is congruent to 1 mod 0xffff
  s += c; if (s < c) s++;
  return s;
}

}  // namespace ms::wire
