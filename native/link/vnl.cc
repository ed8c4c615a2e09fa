#include "link/vnl.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netdb.h>
#include <unistd.h>

#include <cstdlib>

namespace ms {
namespace vnl {

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::vector<std::string> split_quoted(const std::string& s, const char* delims) {
  std::vector<std::string> out;
  std::string cur;
  enum { kPlain, kSingle, kDouble } st = kPlain;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (c == '\\') {  // the next character, whatever it is, in any state but single quotes
      if (st == kSingle) { cur.push_back(c); continue; }
      if (i + 1 < s.size()) cur.push_back(s[++i]);
      continue;
    }
    if (st == kSingle) { if (c == '\'') st = kPlain; else cur.push_back(c); continue; }
    if (st == kDouble) { if (c == '"') st = kPlain; else cur.push_back(c); continue; }
    if (c == '\'') { st = kSingle; continue; }
    if (c == '"') { st = kDouble; continue; }
    if (c == '%' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      cur.push_back(char(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
      i += 2;
      continue;
    }
    if (c != '\0' && std::strchr(delims, c)) { out.push_back(cur); cur.clear(); continue; }
    cur.push_back(c);
  }
  out.push_back(cur);
  return out;
}

Param& param(std::vector<Param>& params, const char* key) {
  for (auto& p : params)
    if (std::strcmp(p.key, key) == 0) return p;
  std::abort();  // a driver asked for a key it did not declare
}

bool apply_params(const std::vector<std::string>& elems, std::vector<Param>& params, std::string* err,
                  std::string* unnamed) {
  for (const std::string& e : elems) {
    size_t eq = e.find('=');
    size_t klen = eq == std::string::npos ? e.size() : eq;
    if (klen == 0) continue;
    Param* hit = nullptr;
    for (auto& p : params)
      if (std::strlen(p.key) >= klen && std::strncmp(p.key, e.data(), klen) == 0) { hit = &p; break; }
    if (!hit) {
      if (unnamed && eq == std::string::npos) { *unnamed = e; continue; }
      *err = "unknown option '" + e.substr(0, klen) + "'";
      return false;
    }
    hit->value = eq == std::string::npos ? std::string() : e.substr(eq + 1);
    hit->set = true;
  }
  return true;
}

bool parse_uint(const std::string& s, uint64_t lo, uint64_t hi, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  size_t i = 0;
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) { base = 16; i = 2; }
  for (; i < s.size(); i++) {
    int d = base == 16 ? hexval(s[i]) : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
    if (d < 0) return false;
    if (v > (UINT64_MAX - uint64_t(d)) / uint64_t(base)) return false;
    v = v * uint64_t(base) + uint64_t(d);
  }
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool parse_size(const std::string& s, uint64_t hi, uint64_t* out) {
  if (s.empty()) return false;
  size_t n = s.size();
  uint64_t mul = 1;
  switch (s[n - 1]) {
    case 'k': case 'K': mul = 1ull << 10; n--; break;
    case 'm': case 'M': mul = 1ull << 20; n--; break;
    case 'g': case 'G': mul = 1ull << 30; n--; break;
    default: break;
  }
  uint64_t v;
  if (!parse_uint(s.substr(0, n), 0, hi, &v)) return false;
  if (v > hi / mul) return false;
  *out = v * mul;
  return true;
}

bool parse_gid(const std::string& s, uint32_t* out) {
  if (s.empty()) { *out = uint32_t(getegid()); return true; }
  uint64_t v;
  if (parse_uint(s, 0, 0xffffffffu, &v)) { *out = uint32_t(v); return true; }
  if (s.size() > 256) return false;
  long sz = sysconf(_SC_GETGR_R_SIZE_MAX);
  std::vector<char> buf(size_t(sz > 0 && sz < (1 << 20) ? sz : 16384));
  group g, *res = nullptr;
  if (getgrnam_r(s.c_str(), &g, buf.data(), buf.size(), &res) != 0 || !res) return false;
  *out = uint32_t(res->gr_gid);
  return true;
}

std::string errno_name(int err) {
  switch (err) {
#define E(x) case x: return #x;
    E(ENOENT) E(EACCES) E(EPERM) E(ECONNREFUSED) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETUNREACH)
    E(EHOSTUNREACH) E(ETIMEDOUT) E(EINVAL) E(ENODEV) E(ENOTDIR) E(ENAMETOOLONG) E(EPROTO)
    E(ENOTSOCK) E(EPROTOTYPE) E(ECONNRESET) E(EMFILE) E(ENFILE) E(ENOBUFS) E(ENOMEM) E(EAGAIN)
    E(ENOTCONN) E(EPIPE) E(ENXIO) E(EAFNOSUPPORT) E(ELOOP) E(ENOTSUP)
#undef E
    default: return "E" + std::to_string(err);
  }
}

uint16_t SockAddr::port() const {
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

void SockAddr::set_port(uint16_t p) {
  if (ss.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(p);
  if (ss.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(p);
}

bool SockAddr::same_ip(const SockAddr& o) const {
  if (ss.ss_family != o.ss.ss_family) return false;
  if (ss.ss_family == AF_INET)
    return reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr == reinterpret_cast<const sockaddr_in*>(&o.ss)->sin_addr.s_addr;
  if (ss.ss_family == AF_INET6)
    return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, &reinterpret_cast<const sockaddr_in6*>(&o.ss)->sin6_addr, 16) == 0;
  return false;
}

bool SockAddr::same(const SockAddr& o) const { return same_ip(o) && port() == o.port(); }

std::string SockAddr::str() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(port());
  }
  return "?";
}

const SockAddr* MacTable::lookup(const uint8_t* mac, Micros now) const {
  auto it = map_.find(key(mac));
  if (it == map_.end()) return nullptr;
  if (now > it->second.seen && now - it->second.seen > expire_) return nullptr;
  return &it->second.addr;
}

bool MacTable::learn(const uint8_t* mac, const SockAddr& addr, Micros now) {
  uint64_t k = key(mac);
  auto it = map_.find(k);
  if (it != map_.end()) {
    bool moved = !it->second.addr.same(addr);
    if (moved) it->second.addr = addr;
    it->second.seen = now;
    return moved;
  }
  if (map_.size() >= max_) {
    sweep(now);
    if (map_.size() >= max_) {
      auto oldest = map_.begin();
      for (auto i = map_.begin(); i != map_.end(); ++i)
        if (i->second.seen < oldest->second.seen) oldest = i;
      map_.erase(oldest);
      evictions_++;
    }
  }
  map_.emplace(k, Entry{addr, now});
  return true;
}

size_t MacTable::forget(const SockAddr& addr) {
  size_t n = 0;
  for (auto i = map_.begin(); i != map_.end();) {
    if (i->second.addr.same(addr)) { i = map_.erase(i); n++; } else ++i;
  }
  return n;
}

size_t MacTable::sweep(Micros now) {
  size_t n = 0;
  for (auto i = map_.begin(); i != map_.end();) {
    if (now > i->second.seen && now - i->second.seen > expire_) { i = map_.erase(i); n++; } else ++i;
  }
  return n;
}

FdLinkOpen fail(int err, std::string message) {
  FdLinkOpen r;
  r.err = err;
  r.message = std::move(message);
  return r;
}

int resolve(std::string host, uint16_t port, int family, SockAddr* out, std::string* err) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host.size() > 255) { *err = "bad address '" + host + "'"; return EINVAL; }
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc == EAI_NONAME) {  // a host name: vdeplug4 accepts those too
    hints.ai_flags = 0;
    rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  }
  if (rc != 0 || !res) {
    *err = "cannot resolve '" + host + "' (" + gai_strerror(rc) + ")";
    if (res) freeaddrinfo(res);
    return rc == EAI_NONAME || rc == EAI_ADDRFAMILY || rc == EAI_FAMILY ? EINVAL : ENOENT;
  }
  *out = SockAddr();
  std::memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
  out->len = res->ai_addrlen;
  out->set_port(port);
  freeaddrinfo(res);
  return 0;
}

bool is_multicast(const SockAddr& a) {
  if (a.family() == AF_INET)
    return (ntohl(reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr.s_addr) >> 28) == 14;
  if (a.family() == AF_INET6) return reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr.s6_addr[0] == 0xff;
  return false;
}

uint8_t* ip_bytes(SockAddr& a, size_t* len) {
  if (a.family() == AF_INET) { *len = 4; return reinterpret_cast<uint8_t*>(&reinterpret_cast<sockaddr_in*>(&a.ss)->sin_addr); }
  *len = 16;
  return reinterpret_cast<sockaddr_in6*>(&a.ss)->sin6_addr.s6_addr;
}

}  // namespace vnl
}  // namespace ms
