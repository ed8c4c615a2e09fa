// Ethernet II frames (802.1Q and 802.1ad tags skipped).
#pragma once
#include "../common.h"
#include "checksum.h"

namespace ms::wire {

constexpr size_t kEthHeader = 14;
enum : uint16_t { kEtherIpv4 = 0x0800, kEtherArp = 0x0806, kEtherIpv6 = 0x86dd, kEtherVlan = 0x8100, kEtherQinQ = 0x88a8 };

struct EthHeader {
  MacAddr dst, src;
  uint16_t ethertype = 0;
  uint16_t header_len = 0;  // 14, 18 or 22 with tags
};

/** false if the frame is too short or is not Ethernet II (an 802.3 length field) */
inline bool parse_ethernet(const uint8_t* p, size_t len, EthHeader* out) {
  if (len < kEthHeader) return false;
  std::memcpy(out->dst.b, p, 6);
  std::memcpy(out->src.b, p + 6, 6);
  size_t off = 12;
  uint16_t type = ld16(p + off);
  for (int tags = 0; (type == kEtherVlan || type == kEtherQinQ) && tags < 2; tags++) {
    off += 4;
    if (len < off + 2) return false;
    type = ld16(p + off);
  }
  if (type < 0x0600) return false;  // 802.3 length / LLC, not for us
  out->ethertype = type;
  out->header_len = uint16_t(off + 2);
  return true;
}

inline void emit_ethernet(uint8_t* p, const MacAddr& dst, const MacAddr& src, uint16_t type) {
  std::memcpy(p, dst.b, 6);
  std::memcpy(p + 6, src.b, 6);
  st16(p + 12, type);
}

inline MacAddr mac_broadcast() { MacAddr m; std::memset(m.b, 0xff, 6); return m; }
/** RFC 1112 6.4: 01:00:5e + low 23 bits of the group */
inline MacAddr mac_ipv4_multicast(const uint8_t* group4) {
  MacAddr m; m.b[0] = 0x01; m.b[1] = 0x00; m.b[2] = 0x5e;
  m.b[3] = group4[1] & 0x7f; m.b[4] = group4[2]; m.b[5] = group4[3];
  return m;
}
/** RFC 2464 7: 33:33 + low 32 bits */
inline MacAddr mac_ipv6_multicast(const uint8_t* group16) {
  MacAddr m; m.b[0] = 0x33; m.b[1] = 0x33; std::memcpy(m.b + 2, group16 + 12, 4);
  return m;
}

}  // namespace ms::wire
