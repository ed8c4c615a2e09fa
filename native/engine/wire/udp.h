// UDP headers (RFC 768).
#pragma once
#include "../common.h"
#include "checksum.h"

namespace ms::wire {

constexpr size_t kUdpHeader = 8;
constexpr size_t kUdpMaxPayloadV4 = 65535 - 20 - 8;  // 65507

struct UdpHeader {
  uint16_t src_port = 0, dst_port = 0;
  uint16_t length = 0;    // header + payload
  uint16_t checksum = 0;  // as on the wire (0: none)
};

/** len: bytes available (the IP payload); the UDP length must fit in it */
inline bool parse_udp(const uint8_t* p, size_t len, UdpHeader* h) {
  if (len < kUdpHeader) return false;
  h->src_port = ld16(p);
  h->dst_port = ld16(p + 2);
  h->length = ld16(p + 4);
  std::memcpy(&h->checksum, p + 6, 2);
  if (h->length < kUdpHeader || h->length > len) return false;
  return true;
}

inline void emit_udp(uint8_t* p, uint16_t sport, uint16_t dport, uint16_t length) {
  st16(p, sport); st16(p + 2, dport); st16(p + 4, length);
  p[6] = p[7] = 0;
}

/** fill the checksum of a UDP datagram at p of length len over IPv4 (0 becomes 0xffff) */
inline void udp_checksum_v4(uint8_t* p, size_t len, const uint8_t* src4, const uint8_t* dst4) {
  uint64_t acc = pseudo_v4(src4, dst4, 17, uint16_t(len));
  uint16_t c = csum_finish(csum_add(acc, p, len));
  if (c == 0) c = 0xffff;
  std::memcpy(p + 6, &c, 2);
}

}  // namespace ms::wire
