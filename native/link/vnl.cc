#include "link/vnl.h"

#include <arpa/inet.h>
#include <grp.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
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

FdLinkOpen bad_value(const char* kind, std::vector<Param>& ps, const char* key) {
  return fail(EINVAL, std::string(kind) + ": bad " + key + "= value '" + param(ps, key).value + "'");
}

bool vx_parse(const char* kind, const std::string& rest, std::vector<Param> ps, uint16_t def_port, VxUrl* u,
              FdLinkOpen* failed) {
  std::string k(kind);
  if (rest.size() > kMaxUrl) { *failed = fail(EINVAL, k + ": URL too long"); return false; }
  std::vector<std::string> elems = split_quoted(rest, "/");
  u->host = elems[0];
  elems.erase(elems.begin());
  u->ps = std::move(ps);
  std::string err;
  if (!apply_params(elems, u->ps, &err)) { *failed = fail(EINVAL, k + ": " + err + " in '" + rest + "'"); return false; }
  const char* bad = nullptr;
  u->port = def_port;
  uint32_t expire = u->expire;
  if (!opt_uint(u->ps, "port", 1, 65535, &u->port)) bad = "port";
  else if (!opt_uint(u->ps, "ttl", 0, 255, &u->ttl)) bad = "ttl";
  else if (!opt_size(u->ps, "rcvbuf", 1u << 30, &u->rcvbuf)) bad = "rcvbuf";
  else if (!opt_uint(u->ps, "hashsize", 1, 1u << 20, &u->hash)) bad = "hashsize";
  else if (!opt_uint(u->ps, "expiretime", 0, 1u << 30, &u->expire)) bad = "expiretime";
  if (bad) { *failed = bad_value(kind, u->ps, bad); return false; }
  if (!u->expire) u->expire = expire;  // as vdeplug4: <= 0 means the default
  return true;
}

bool vx_group(const char* kind, VxUrl* u, SockAddr* group, FdLinkOpen* failed) {
  std::string k(kind);
  const Param& ifp = param(u->ps, "if");
  if (ifp.set) {
    u->ifindex = ifp.value.size() < IF_NAMESIZE ? if_nametoindex(ifp.value.c_str()) : 0;
    if (!u->ifindex) { *failed = fail(ENODEV, k + ": no interface '" + ifp.value + "' (if=)"); return false; }
  }
  bool v4 = param(u->ps, "v4").set, v6 = param(u->ps, "v6").set;
  int family = v4 == v6 ? AF_UNSPEC : v4 ? AF_INET : AF_INET6;
  if (u->host.empty()) u->host = v6 ? "ff05:56de::1" : "239.0.0.1";
  std::string err;
  if (int e = resolve(u->host, u->port, family, group, &err)) { *failed = fail(e, k + ": " + err); return false; }
  if (!is_multicast(*group)) { *failed = fail(EINVAL, k + ": " + u->host + " is not a multicast address"); return false; }
  return true;
}

bool join_group(int fd, const SockAddr& group, unsigned ifindex, const char* kind, FdLinkOpen* failed) {
  if (group.family() == AF_INET) {
    ip_mreqn mr{};
    mr.imr_multiaddr = reinterpret_cast<const sockaddr_in*>(&group.ss)->sin_addr;
    mr.imr_ifindex = int(ifindex);
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) == 0) return true;
    int e = errno;
    *failed = fail(e, std::string(kind) + ": cannot join " + group.str() + " (IP_ADD_MEMBERSHIP: " + errno_name(e) +
                          "; is there a multicast route or an if= interface?)");
    return false;
  }
  ipv6_mreq mr{};
  mr.ipv6mr_multiaddr = reinterpret_cast<const sockaddr_in6*>(&group.ss)->sin6_addr;
  mr.ipv6mr_interface = ifindex;
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof mr) == 0) return true;
  int e = errno;
  *failed = fail(e, std::string(kind) + ": cannot join " + group.str() + " (IPV6_ADD_MEMBERSHIP: " + errno_name(e) + ")");
  return false;
}

int set_multicast_if(int fd, int family, unsigned ifindex, const char** what) {
  if (family == AF_INET) {
    *what = "IP_MULTICAST_IF";
    ip_mreqn mr{};
    mr.imr_ifindex = int(ifindex);
    return setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr) < 0 ? errno : 0;
  }
  *what = "IPV6_MULTICAST_IF";
  return setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0 ? errno : 0;
}

}  // namespace vnl

VxBase::VxBase(const vnl::SockAddr& group, uint32_t vni, size_t hash, uint32_t expire_s)
    : group_(group), vni_(vni), table_(hash, Micros(expire_s) * 1000000), buf_(kHdr + vnl::kMaxFrame + 1) {
  hdr_[0] = 0x08;
  hdr_[4] = uint8_t(vni >> 16); hdr_[5] = uint8_t(vni >> 8); hdr_[6] = uint8_t(vni);
}

std::string VxBase::peer_of(const MacAddr& mac) const {
  const vnl::SockAddr* a = table_.lookup(mac.b, now_);
  return a ? a->str() : std::string();
}

void VxBase::set_now(Micros now) {
  if (now <= now_) return;
  now_ = now;
  if (now_ - swept_ >= 1000000) { swept_ = now_; vx_.expired += table_.sweep(now_); }
}

void VxBase::learn(const uint8_t* frame, const vnl::SockAddr& from) {
  if (!(frame[6] & 1) && table_.learn(frame + 6, from, now_)) vx_.learned++;
}

void VxBase::transmit(const uint8_t* f, size_t n) {
  int fd = send_fd();
  if (fd < 0 || n < vnl::kEthHeader || n > vnl::kMaxFrame) { stats_.tx_dropped++; return; }
  const vnl::SockAddr* to = (f[0] & 1) ? nullptr : table_.lookup(f, now_);
  bool uni = to != nullptr;
  if (!to) to = &group_;
  iovec iov[2] = {{hdr_, kHdr}, {const_cast<uint8_t*>(f), n}};
  msghdr m{};
  m.msg_name = const_cast<sockaddr*>(to->sa());
  m.msg_namelen = to->len;
  m.msg_iov = iov;
  m.msg_iovlen = 2;
  if (sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) stats_.tx_dropped++;
    else stats_.tx_errors++;
    return;
  }
  stats_.tx_frames++;
  stats_.tx_bytes += n;
  (uni ? vx_.tx_unicast : vx_.tx_multicast)++;
}

}  // namespace ms
