// TCP wire format: header view, option parsing/building, the internet checksum over the
// pseudo-header, sequence-number arithmetic and a keyed hash (SipHash-2-4) for ISNs,
// SYN cookies and ephemeral ports. Header-only; every parser is bounds-checked.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../common.h"

namespace ms {
namespace tcpw {

enum : uint8_t { kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20, kEce = 0x40, kCwr = 0x80 };
enum : uint8_t { kOptEnd = 0, kOptNop = 1, kOptMss = 2, kOptWs = 3, kOptSackOk = 4, kOptSack = 5, kOptTs = 8 };
constexpr size_t kHeaderLen = 20;
constexpr size_t kMaxHeaderLen = 60;
constexpr uint8_t kMaxWscale = 14;

inline uint16_t get16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }
inline uint32_t get32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
inline void put16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8); p[1] = uint8_t(v); }
inline void put32(uint8_t* p, uint32_t v) { p[0] = uint8_t(v >> 24); p[1] = uint8_t(v >> 16); p[2] = uint8_t(v >> 8); p[3] = uint8_t(v); }

// sequence space comparisons (RFC 9293 3.4), modulo 2^32
inline bool seq_lt(uint32_t a, uint32_t b) { return int32_t(a - b) < 0; }
inline bool seq_le(uint32_t a, uint32_t b) { return int32_t(a - b) <= 0; }
inline bool seq_gt(uint32_t a, uint32_t b) { return int32_t(a - b) > 0; }
inline bool seq_ge(uint32_t a, uint32_t b) { return int32_t(a - b) >= 0; }
inline uint32_t seq_max(uint32_t a, uint32_t b) { return seq_gt(a, b) ? a : b; }
inline uint32_t seq_min(uint32_t a, uint32_t b) { return seq_lt(a, b) ? a : b; }

/** options a segment carries; only the ones we understand */
struct TcpOptions {
  bool has_mss = false, has_ws = false, sack_ok = false, has_ts = false;
  uint16_t mss = 0;
  uint8_t ws = 0;
  uint32_t tsval = 0, tsecr = 0;
  uint8_t nsack = 0;
  uint32_t sack[4][2] = {};
};

/** parse options; malformed options end parsing (what came before is kept), never reads past n */
inline void parse_options(const uint8_t* p, size_t n, bool syn, TcpOptions* o) {
  size_t i = 0;
  while (i < n) {
    uint8_t kind = p[i];
    if (kind == kOptEnd) return;
    if (kind == kOptNop) { i++; continue; }
    if (i + 1 >= n) return;
    uint8_t len = p[i + 1];
    if (len < 2 || i + len > n) return;
    const uint8_t* v = p + i + 2;
    switch (kind) {
      case kOptMss:
        if (len == 4 && syn) { o->has_mss = true; o->mss = get16(v); }
        break;
      case kOptWs:
        if (len == 3 && syn) { o->has_ws = true; o->ws = v[0] > kMaxWscale ? kMaxWscale : v[0]; }
        break;
      case kOptSackOk:
        if (len == 2 && syn) o->sack_ok = true;
        break;
      case kOptTs:
        if (len == 10) { o->has_ts = true; o->tsval = get32(v); o->tsecr = get32(v + 4); }
        break;
      case kOptSack:
        if (len >= 10 && (len - 2) % 8 == 0) {
          size_t nb = (len - 2) / 8;
          o->nsack = 0;
          for (size_t b = 0; b < nb && b < 4; b++) {
            o->sack[b][0] = get32(v + 8 * b);
            o->sack[b][1] = get32(v + 8 * b + 4);
            o->nsack++;
          }
        }
        break;
      default: break;
    }
    i += len;
  }
}

/** a validated view of a TCP segment */
struct TcpSegment {
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  uint16_t wnd = 0;
  size_t hlen = 0;
  const uint8_t* payload = nullptr;
  size_t plen = 0;
  TcpOptions opt;
  bool has(uint8_t f) const { return (flags & f) != 0; }
  /** sequence space the segment occupies (data + SYN + FIN) */
  uint32_t seg_len() const { return uint32_t(plen) + (has(kSyn) ? 1 : 0) + (has(kFin) ? 1 : 0); }

  /** false if the bytes cannot be a TCP segment */
  bool parse(const uint8_t* p, size_t len) {
    if (!p || len < kHeaderLen) return false;
    hlen = size_t(p[12] >> 4) * 4;
    if (hlen < kHeaderLen || hlen > len) return false;
    sport = get16(p); dport = get16(p + 2);
    seq = get32(p + 4); ack = get32(p + 8);
    flags = p[13];
    wnd = get16(p + 14);
    payload = p + hlen;
    plen = len - hlen;
    opt = TcpOptions();
    if (hlen > kHeaderLen) parse_options(p + kHeaderLen, hlen - kHeaderLen, has(kSyn), &opt);
    return true;
  }
};

// ---- internet checksum (RFC 1071). Summed on native-order words; the one's-complement sum
// is byte-order independent, so the folded result is stored back with memcpy.
inline uint64_t csum_add(uint64_t sum, const uint8_t* p, size_t n) {
  while (n >= 32) {
    uint64_t a, b, c, d;
    std::memcpy(&a, p, 8); std::memcpy(&b, p + 8, 8); std::memcpy(&c, p + 16, 8); std::memcpy(&d, p + 24, 8);
    sum += a; sum += (sum < a);
    sum += b; sum += (sum < b);
    sum += c; sum += (sum < c);
    sum += d; sum += (sum < d);
    p += 32; n -= 32;
  }
  while (n >= 8) { uint64_t a; std::memcpy(&a, p, 8); sum += a; sum += (sum < a); p += 8; n -= 8; }
  if (n >= 4) { uint32_t a; std::memcpy(&a, p, 4); sum += a; sum += (sum < a); p += 4; n -= 4; }
  if (n >= 2) { uint16_t a; std::memcpy(&a, p, 2); sum += a; sum += (sum < a); p += 2; n -= 2; }
  if (n) { uint8_t t[2] = {p[0], 0}; uint16_t a; std::memcpy(&a, t, 2); sum += a; sum += (sum < a); }
  return sum;
}
inline uint16_t csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffull) + (sum >> 32);
  sum = (sum & 0xffffffffull) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}
/** one's complement sum of the pseudo-header (RFC 9293 3.1 / RFC 8200 8.1) */
inline uint64_t pseudo_sum(const IpAddr& src, const IpAddr& dst, size_t len) {
  uint8_t ph[40];
  size_t n;
  if (src.family == 6) {
    std::memcpy(ph, src.b, 16); std::memcpy(ph + 16, dst.b, 16);
    put32(ph + 32, uint32_t(len)); ph[36] = ph[37] = ph[38] = 0; ph[39] = 6;
    n = 40;
  } else {
    std::memcpy(ph, src.b, 4); std::memcpy(ph + 4, dst.b, 4);
    ph[8] = 0; ph[9] = 6; put16(ph + 10, uint16_t(len));
    n = 12;
  }
  return csum_add(0, ph, n);
}
/** fill the checksum field of a complete segment */
inline void set_checksum(const IpAddr& src, const IpAddr& dst, uint8_t* seg, size_t len) {
  seg[16] = seg[17] = 0;
  uint16_t c = uint16_t(~csum_fold(csum_add(pseudo_sum(src, dst, len), seg, len)));
  std::memcpy(seg + 16, &c, 2);
}
/** true if the segment's checksum is right */
inline bool verify_checksum(const IpAddr& src, const IpAddr& dst, const uint8_t* seg, size_t len) {
  return csum_fold(csum_add(pseudo_sum(src, dst, len), seg, len)) == 0xffff;
}

// ---- SipHash-2-4 (Aumasson & Bernstein), 128-bit key, 64-bit output
inline uint64_t rotl64(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
inline uint64_t siphash(const uint8_t key[16], const uint8_t* m, size_t n) {
  uint64_t k0, k1;
  std::memcpy(&k0, key, 8); std::memcpy(&k1, key + 8, 8);
  uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
  uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
  auto round = [&]() {
    v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32);
    v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32);
  };
  size_t full = n & ~size_t(7);
  for (size_t i = 0; i < full; i += 8) {
    uint64_t w = 0;
    for (int j = 0; j < 8; j++) w |= uint64_t(m[i + j]) << (8 * j);
    v3 ^= w; round(); round(); v0 ^= w;
  }
  uint64_t b = uint64_t(n) << 56;
  for (size_t j = 0; j < (n & 7); j++) b |= uint64_t(m[full + j]) << (8 * j);
  v3 ^= b; round(); round(); v0 ^= b;
  v2 ^= 0xff;
  round(); round(); round(); round();
  return v0 ^ v1 ^ v2 ^ v3;
}

/** serialise a 4-tuple (+ extra words) for hashing; returns the length */
inline size_t tuple_bytes(uint8_t* out, const IpAddr& a, uint16_t ap, const IpAddr& b, uint16_t bp) {
  size_t n = a.size();
  std::memcpy(out, a.b, n);
  std::memcpy(out + n, b.b, n);
  put16(out + 2 * n, ap);
  put16(out + 2 * n + 2, bp);
  return 2 * n + 4;
}

}  // namespace tcpw
}  // namespace ms
