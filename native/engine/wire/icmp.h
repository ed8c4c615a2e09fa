// ICMPv4 (RFC 792).
#pragma once
#include "../common.h"
#include "checksum.h"

namespace ms::wire {

constexpr size_t kIcmpHeader = 8;
enum : uint8_t {
  kIcmpEchoReply = 0, kIcmpDestUnreach = 3, kIcmpSourceQuench = 4, kIcmpRedirect = 5, kIcmpEcho = 8,
  kIcmpTimeExceeded = 11, kIcmpParamProblem = 12,
};
enum : uint8_t {
  kUnreachNet = 0, kUnreachHost = 1, kUnreachProto = 2, kUnreachPort = 3, kUnreachFragNeeded = 4,
  kUnreachSrcRoute = 5, kUnreachNetUnknown = 6, kUnreachHostUnknown = 7, kUnreachIsolated = 8,
  kUnreachNetProhib = 9, kUnreachHostProhib = 10, kUnreachNetTos = 11, kUnreachHostTos = 12,
  kUnreachFiltered = 13, kUnreachPrecViolation = 14, kUnreachPrecCutoff = 15,
};

struct IcmpHeader {
  uint8_t type = 0, code = 0;
  uint8_t rest[4] = {};  // identifier+sequence for echo, next-hop MTU for frag needed
  uint16_t id() const { return ld16(rest); }
  uint16_t seq() const { return ld16(rest + 2); }
  uint16_t mtu() const { return ld16(rest + 2); }
};

inline bool parse_icmp(const uint8_t* p, size_t len, bool verify_csum, IcmpHeader* h) {
  if (len < kIcmpHeader) return false;
  if (verify_csum && !csum_ok(csum_add(0, p, len))) return false;
  h->type = p[0];
  h->code = p[1];
  std::memcpy(h->rest, p + 4, 4);
  return true;
}

/** header at p, payload already in place after it; checksum over all len bytes */
inline void emit_icmp(uint8_t* p, size_t len, const IcmpHeader& h) {
  p[0] = h.type; p[1] = h.code; p[2] = p[3] = 0;
  std::memcpy(p + 4, h.rest, 4);
  uint16_t c = internet_checksum(p, len);
  std::memcpy(p + 2, &c, 2);
}

/** errno for a received destination unreachable code, and whether it is a hard error (as Linux) */
inline int icmp_unreach_errno(uint8_t code, bool* fatal) {
  static const struct { int err; bool fatal; } t[16] = {
      {ENETUNREACH, false}, {EHOSTUNREACH, false}, {ENOPROTOOPT, true}, {ECONNREFUSED, true},
      {EMSGSIZE, false},    {EOPNOTSUPP, false},   {ENETUNREACH, true}, {EHOSTDOWN, true},
      {ENONET, true},       {ENETUNREACH, true},   {EHOSTUNREACH, true}, {ENETUNREACH, false},
      {EHOSTUNREACH, false}, {EHOSTUNREACH, true}, {EHOSTUNREACH, true}, {EHOSTUNREACH, true}};
  if (code > 15) { *fatal = false; return EHOSTUNREACH; }
  *fatal = t[code].fatal;
  return t[code].err;
}

}  // namespace ms::wire
