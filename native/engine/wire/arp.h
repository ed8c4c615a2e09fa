// ARP for IPv4 over Ethernet (RFC 826).
#pragma once
#include "../common.h"
#include "checksum.h"

namespace ms::wire {

constexpr size_t kArpLen = 28;
enum : uint16_t { kArpRequest = 1, kArpReply = 2 };

struct ArpPacket {
  uint16_t op = 0;
  MacAddr sha, tha;
  uint8_t spa[4] = {}, tpa[4] = {};
};

/** only Ethernet/IPv4 ARP is accepted */
inline bool parse_arp(const uint8_t* p, size_t len, ArpPacket* out) {
  if (len < kArpLen) return false;
  if (ld16(p) != 1 || ld16(p + 2) != 0x0800 || p[4] != 6 || p[5] != 4) return false;
  out->op = ld16(p + 6);
  if (out->op != kArpRequest && out->op != kArpReply) return false;
  std::memcpy(out->sha.b, p + 8, 6);
  std::memcpy(out->spa, p + 14, 4);
  std::memcpy(out->tha.b, p + 18, 6);
  std::memcpy(out->tpa, p + 24, 4);
  return true;
}

inline void emit_arp(uint8_t* p, const ArpPacket& a) {
  st16(p, 1); st16(p + 2, 0x0800); p[4] = 6; p[5] = 4;
  st16(p + 6, a.op);
  std::memcpy(p + 8, a.sha.b, 6);
  std::memcpy(p + 14, a.spa, 4);
  std::memcpy(p + 18, a.tha.b, 6);
  std::memcpy(p + 24, a.tpa, 4);
}

}  // namespace ms::wire
