// IPv4 headers (RFC 791).
#pragma once
#include "../common.h"
#include "checksum.h"

namespace ms::wire {

constexpr size_t kIpv4Header = 20;
enum : uint8_t { kProtoIcmp = 1, kProtoIgmp = 2, kProtoTcp = 6, kProtoUdp = 17 };

enum class Ipv4Error : uint8_t { None, Truncated, Version, HeaderLength, TotalLength, Checksum };

struct Ipv4Header {
  uint8_t src[4] = {}, dst[4] = {};
  uint8_t proto = 0, ttl = 64, tos = 0;
  uint8_t header_len = 20;   // bytes, including options
  uint16_t total_len = 0;    // bytes, header + payload
  uint16_t id = 0;
  uint16_t frag_offset = 0;  // bytes
  bool df = false, mf = false;
  bool is_fragment() const { return mf || frag_offset; }
};

/** validates version, IHL, total length against the buffer and (if asked) the header checksum */
inline Ipv4Error parse_ipv4(const uint8_t* p, size_t len, bool verify_csum, Ipv4Header* h) {
  if (len < kIpv4Header) return Ipv4Error::Truncated;
  if ((p[0] >> 4) != 4) return Ipv4Error::Version;
  size_t ihl = size_t(p[0] & 15) * 4;
  if (ihl < kIpv4Header || ihl > len) return Ipv4Error::HeaderLength;
  uint16_t total = ld16(p + 2);
  if (total < ihl || total > len) return Ipv4Error::TotalLength;
  if (verify_csum && !csum_ok(csum_add(0, p, ihl))) return Ipv4Error::Checksum;
  h->header_len = uint8_t(ihl);
  h->tos = p[1];
  h->total_len = total;
  h->id = ld16(p + 4);
  uint16_t ff = ld16(p + 6);
  h->df = ff & 0x4000;
  h->mf = ff & 0x2000;
  h->frag_offset = uint16_t((ff & 0x1fff) * 8);
  h->ttl = p[8];
  h->proto = p[9];
  std::memcpy(h->src, p + 12, 4);
  std::memcpy(h->dst, p + 16, 4);
  return Ipv4Error::None;
}

/** writes a 20-byte header (no options); checksum always computed (it is cheap and in-header) */
inline void emit_ipv4(uint8_t* p, const Ipv4Header& h) {
  p[0] = 0x45;
  p[1] = h.tos;
  st16(p + 2, h.total_len);
  st16(p + 4, h.id);
  st16(p + 6, uint16_t((h.df ? 0x4000 : 0) | (h.mf ? 0x2000 : 0) | ((h.frag_offset / 8) & 0x1fff)));
  p[8] = h.ttl;
  p[9] = h.proto;
  p[10] = p[11] = 0;
  std::memcpy(p + 12, h.src, 4);
  std::memcpy(p + 16, h.dst, 4);
  uint16_t c = internet_checksum(p, kIpv4Header);
  std::memcpy(p + 10, &c, 2);
}

}  // namespace ms::wire
