// The internet checksum (RFC 1071) with 64-bit accumulation.
// Sums are kept in native byte order: the folded, complemented result is stored with
// memcpy (never htons), which gives the right bytes on either endianness.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ms::wire {

/** add len bytes at p (p starting at an even offset of the checksummed data) to acc */
uint64_t csum_add(uint64_t acc, const void* p, size_t len);

/** fold a 64-bit accumulator to 16 bits (not complemented) */
inline uint16_t csum_fold16(uint64_t acc) {
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  return uint16_t(acc);
}
/** the checksum field value (native order, store with memcpy) */
inline uint16_t csum_finish(uint64_t acc) { return uint16_t(~csum_fold16(acc)); }
/** true when data that includes its checksum field sums correctly */
inline bool csum_ok(uint64_t acc) { return csum_fold16(acc) == 0xffff; }

inline uint16_t internet_checksum(const void* p, size_t len) { return csum_finish(csum_add(0, p, len)); }

/** pseudo header of TCP/UDP over IPv4; len in host order */
inline uint64_t pseudo_v4(const uint8_t* src4, const uint8_t* dst4, uint8_t proto, uint16_t len) {
  uint8_t ph[12];
  std::memcpy(ph, src4, 4);
  std::memcpy(ph + 4, dst4, 4);
  ph[8] = 0; ph[9] = proto; ph[10] = uint8_t(len >> 8); ph[11] = uint8_t(len);
  return csum_add(0, ph, 12);
}

/** pseudo header of upper layers over IPv6 (RFC 8200 8.1); len in host order */
inline uint64_t pseudo_v6(const uint8_t* src16, const uint8_t* dst16, uint8_t next_header, uint32_t len) {
  uint8_t ph[40];
  std::memcpy(ph, src16, 16);
  std::memcpy(ph + 16, dst16, 16);
  ph[32] = uint8_t(len >> 24); ph[33] = uint8_t(len >> 16); ph[34] = uint8_t(len >> 8); ph[35] = uint8_t(len);
  ph[36] = ph[37] = ph[38] = 0; ph[39] = next_header;
  return csum_add(0, ph, 40);
}

// big-endian loads and stores
inline uint16_t ld16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t ld32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
inline void st16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8); p[1] = uint8_t(v); }
inline void st32(uint8_t* p, uint32_t v) { p[0] = uint8_t(v >> 24); p[1] = uint8_t(v >> 16); p[2] = uint8_t(v >> 8); p[3] = uint8_t(v); }

}  // namespace ms::wire
