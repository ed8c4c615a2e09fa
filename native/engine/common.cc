// Rng and IpAddr text conversion.
#include "common.h"

#include <cstdio>

namespace ms {

static uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

// dotted quad, four decimal parts 0..255, no leading zeros (as inet_pton)
static bool parse_v4(const char* s, const char* end, uint8_t* out) {
  int part = 0;
  while (true) {
    if (s >= end || *s < '0' || *s > '9') return false;
    unsigned v = 0;
    const char* start = s;
    while (s < end && *s >= '0' && *s <= '9') {
      v = v * 10 + unsigned(*s - '0');
      if (v > 255) return false;
      s++;
    }
    if (s - start > 1 && *start == '0') return false;
    out[part++] = uint8_t(v);
    if (part == 4) return s == end;
    if (s >= end || *s != '.') return false;
    s++;
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool parse_v6(const char* s, const char* end, uint8_t* out) {
  uint16_t groups[8] = {};
  int n = 0, gap = -1;
  if (s < end && *s == ':') {
    if (end - s < 2 || s[1] != ':') return false;
    gap = 0;
    s += 2;
    if (s == end) { std::memset(out, 0, 16); return true; }
  }
  while (s < end) {
    if (n >= 8) return false;
    // embedded IPv4 in the last 32 bits
    const char* q = s;
    while (q < end && *q != ':' && *q != '.') q++;
    if (q < end && *q == '.') {
      if (n > 6) return false;
      uint8_t v4[4];
      if (!parse_v4(s, end, v4)) return false;
      groups[n++] = uint16_t(v4[0] << 8 | v4[1]);
      groups[n++] = uint16_t(v4[2] << 8 | v4[3]);
      s = end;
      break;
    }
    unsigned v = 0;
    int digits = 0;
    while (s < end && hexval(*s) >= 0) {
      v = v * 16 + unsigned(hexval(*s));
      if (++digits > 4) return false;
      s++;
    }
    if (digits == 0) return false;
    groups[n++] = uint16_t(v);
    if (s == end) break;
    if (*s != ':') return false;
    s++;
    if (s < end && *s == ':') {
      if (gap >= 0) return false;
      gap = n;
      s++;
      if (s == end) break;
    } else if (s == end) {
      return false;  // trailing single colon
    }
  }
  if (gap >= 0) {
    if (n > 7) return false;
    int tail = n - gap;
    uint16_t full[8] = {};
    for (int i = 0; i < gap; i++) full[i] = groups[i];
    for (int i = 0; i < tail; i++) full[8 - tail + i] = groups[gap + i];
    std::memcpy(groups, full, sizeof groups);
  } else if (n != 8) {
    return false;
  }
  for (int i = 0; i < 8; i++) { out[2 * i] = uint8_t(groups[i] >> 8); out[2 * i + 1] = uint8_t(groups[i]); }
  return true;
}

bool IpAddr::parse(const char* text) {
  if (!text) return false;
  const char* end = text + std::strlen(text);
  IpAddr a;
  if (std::memchr(text, ':', size_t(end - text))) {
    const char* pct = static_cast<const char*>(std::memchr(text, '%', size_t(end - text)));
    uint32_t scope = 0;
    if (pct) {
      if (pct + 1 >= end) return false;
      for (const char* p = pct + 1; p < end; p++) {
        if (*p < '0' || *p > '9') return false;
        scope = scope * 10 + uint32_t(*p - '0');
        if (scope > 0xffffff) return false;
      }
    }
    if (!parse_v6(text, pct ? pct : end, a.b)) return false;
    a.family = 6;
    a.scope = scope;
  } else {
    if (!parse_v4(text, end, a.b)) return false;
    a.family = 4;
  }
  *this = a;
  return true;
}

std::string IpAddr::str() const {
  char buf[64];
  if (family == 4) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    return buf;
  }
  if (family != 6) return "";
  uint16_t g[8];
  for (int i = 0; i < 8; i++) g[i] = uint16_t(b[2 * i] << 8 | b[2 * i + 1]);
  // v4-mapped ::ffff:a.b.c.d
  if (!g[0] && !g[1] && !g[2] && !g[3] && !g[4] && g[5] == 0xffff) {
    std::snprintf(buf, sizeof buf, "::ffff:%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
  } else {
    // RFC 5952: compress the longest run (>= 2) of zero groups, the first on ties
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
      if (g[i]) { i++; continue; }
      int j = i;
      while (j < 8 && !g[j]) j++;
      if (j - i > best_len && j - i >= 2) { best = i; best_len = j - i; }
      i = j;
    }
    char* p = buf;
    for (int i = 0; i < 8; i++) {
      if (i == best) {
        *p++ = ':';
        if (i == 0) *p++ = ':';
        i += best_len - 1;
        continue;
      }
      p += std::snprintf(p, 8, "%x", g[i]);
      if (i < 7) *p++ = ':';
    }
    *p = 0;
  }
  std::string s(buf);
  if (scope) s += "%" + std::to_string(scope);
  return s;
}

}  // namespace ms
