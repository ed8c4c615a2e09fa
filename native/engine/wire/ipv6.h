// IPv6 fixed header (RFC 8200). Extension headers, ICMPv6 and NDP are handled in
// stack_ip6.cc.
#pragma once
#include "../common.h"
#include "checksum.h"

namespace ms::wire {

constexpr size_t kIpv6Header = 40;
enum : uint8_t { kNextHopByHop = 0, kNextRouting = 43, kNextFragment = 44, kNextIcmpv6 = 58, kNextNone = 59, kNextDestOpts = 60 };

struct Ipv6Header {
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;
  uint16_t payload_len = 0;  // bytes after the fixed header (extension headers included)
  uint8_t next_header = 0;
  uint8_t hop_limit = 64;
  uint8_t src[16] = {}, dst[16] = {};
};

enum class Ipv6Error : uint8_t { None, Truncated, Version, PayloadLength };

/** validates version and that the payload length fits in the buffer (jumbograms unsupported) */
inline Ipv6Error parse_ipv6(const uint8_t* p, size_t len, Ipv6Header* h) {
  if (len < kIpv6Header) return Ipv6Error::Truncated;
  if ((p[0] >> 4) != 6) return Ipv6Error::Version;
  uint16_t pl = ld16(p + 4);
  if (size_t(pl) + kIpv6Header > len) return Ipv6Error::PayloadLength;
  h->traffic_class = uint8_t((p[0] << 4) | (p[1] >> 4));
  h->flow_label = (uint32_t(p[1] & 15) << 16) | uint32_t(p[2] << 8) | p[3];
  h->payload_len = pl;
  h->next_header = p[6];
  h->hop_limit = p[7];
  std::memcpy(h->src, p + 8, 16);
  std::memcpy(h->dst, p + 24, 16);
  return Ipv6Error::None;
}

inline void emit_ipv6(uint8_t* p, const Ipv6Header& h) {
  p[0] = uint8_t(0x60 | (h.traffic_class >> 4));
  p[1] = uint8_t((h.traffic_class << 4) | ((h.flow_label >> 16) & 15));
  p[2] = uint8_t(h.flow_label >> 8);
  p[3] = uint8_t(h.flow_label);
  st16(p + 4, h.payload_len);
  p[6] = h.next_header;
  p[7] = h.hop_limit;
  std::memcpy(p + 8, h.src, 16);
  std::memcpy(p + 24, h.dst, 16);
}

}  // namespace ms::wire
