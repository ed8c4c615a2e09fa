// Common engine types. The engine knows nothing of Node: no threads, no global state, no
// clock of its own. Time is given to it (Micros), every table lives in its Stack.
// Errors are negative errno values (-ECONNREFUSED ...), as Linux system calls return them.
#pragma once
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace ms {

/** microseconds on a monotonic clock chosen by whoever drives the engine */
using Micros = uint64_t;
constexpr Micros kNever = UINT64_MAX;

/** readiness bits, as poll(2) has them */
enum : uint32_t {
  kEvReadable = 1u << 0,  // recv/recvfrom/accept would not block (data, EOF, error, pending connection)
  kEvWritable = 1u << 1,  // send would not block
  kEvError = 1u << 2,     // an error is pending (SO_ERROR)
  kEvHangup = 1u << 3,    // both directions closed
};

/** An IPv4 or IPv6 address. IPv4 lives in b[0..3], the rest zero. */
struct IpAddr {
  uint8_t family = 0;  // 0 (none), 4 or 6
  uint8_t b[16] = {};
  uint32_t scope = 0;  // IPv6 zone (interface index) for link-local addresses, else 0

  static IpAddr v4(uint32_t host_order) {
    IpAddr a; a.family = 4;
    a.b[0] = host_order >> 24; a.b[1] = host_order >> 16; a.b[2] = host_order >> 8; a.b[3] = host_order;
    return a;
  }
  static IpAddr v4_bytes(const uint8_t* p) { IpAddr a; a.family = 4; std::memcpy(a.b, p, 4); return a; }
  static IpAddr v6_bytes(const uint8_t* p) { IpAddr a; a.family = 6; std::memcpy(a.b, p, 16); return a; }
  uint32_t v4_host() const { return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3]; }
  size_t size() const { return family == 6 ? 16 : family == 4 ? 4 : 0; }
  bool is_set() const { return family != 0; }
  bool is_unspecified() const { for (size_t i = 0; i < size(); i++) if (b[i]) return false; return true; }
  bool operator==(const IpAddr& o) const { return family == o.family && std::memcmp(b, o.b, 16) == 0; }
  bool operator!=(const IpAddr& o) const { return !(*this == o); }
  /** parse dotted quad or RFC 4291 text (optional %scope number); false on bad text */
  bool parse(const char* text);
  std::string str() const;
};

struct Endpoint {
  IpAddr addr;
  uint16_t port = 0;  // host order
};

struct MacAddr {
  uint8_t b[6] = {};
  bool is_multicast() const { return b[0] & 1; }
  bool is_broadcast() const { return (b[0] & b[1] & b[2] & b[3] & b[4] & b[5]) == 0xff; }
  bool operator==(const MacAddr& o) const { return std::memcmp(b, o.b, 6) == 0; }
  bool operator!=(const MacAddr& o) const { return !(*this == o); }
};

/** xoshiro256** seeded per stack: deterministic for tests; not for secrets */
class Rng {
 public:
  explicit Rng(uint64_t seed = 0x9e3779b97f4a7c15ull);
  uint64_t next();
  uint32_t below(uint32_t n) { return n ? uint32_t(next() % n) : 0; }
  double unit() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
 private:
  uint64_t s_[4];
};

}  // namespace ms
