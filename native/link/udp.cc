// udp://[LOCAL:]PORT->HOST:PORT: a point-to-point ethernet over UDP, one frame per datagram
// with no header, as vdeplug4's udp plugin (so either end may be vde_plug). LOCAL and HOST are
// IPv4 or IPv6 addresses (IPv6 optionally in brackets: [fd00::1]:5000) or names, resolved
// once, synchronously, when the link opens. The socket is bound to LOCAL:PORT (LOCAL
// omitted: the wildcard address of HOST's family). Datagrams from any other sender than
// HOST:PORT are counted in rx_filtered and dropped.
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "link/fdlink.h"
#include "link/fdutil.h"

namespace ms {
namespace {

constexpr size_t kMaxDatagram = 65536;

bool same_peer(const sockaddr_storage& a, socklen_t alen, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    auto* x = reinterpret_cast<const sockaddr_in*>(&a);
    auto* y = reinterpret_cast<const sockaddr_in*>(&b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6 && alen >= socklen_t(sizeof(sockaddr_in6))) {
    auto* x = reinterpret_cast<const sockaddr_in6*>(&a);
    auto* y = reinterpret_cast<const sockaddr_in6*>(&b);
    return x->sin6_port == y->sin6_port && std::memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
  }
  return false;
}

class UdpLink final : public FdLink {
 public:
  UdpLink(int fd, const sockaddr_storage& peer, socklen_t peer_len)
      : fd_(fd), peer_(peer), peer_len_(peer_len), buf_(kMaxDatagram) {}
  ~UdpLink() override { close(); }

  std::vector<int> fds() const override { return fd_ >= 0 ? std::vector<int>{fd_} : std::vector<int>{}; }
  const char* kind() const override { return "udp"; }

  size_t on_readable(int, size_t budget) override {
    size_t n = 0;
    while (fd_ >= 0 && n < budget) {
      sockaddr_storage from;
      socklen_t flen = sizeof(from);
      ssize_t r = ::recvfrom(fd_, buf_.data(), buf_.size(), MSG_TRUNC, reinterpret_cast<sockaddr*>(&from), &flen);
      if (r < 0) {
        if (errno == EINTR) continue;
        // EAGAIN: drained; ECONNREFUSED and friends: an ICMP error about an earlier datagram
        if (errno == EAGAIN) break;
        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) continue;
        stats_.tx_errors++;
        break;
      }
      n++;
      if (!same_peer(from, flen, peer_)) { stats_.rx_filtered++; continue; }
      if (r < 14 || size_t(r) > buf_.size()) { stats_.rx_malformed++; continue; }
      deliver(buf_.data(), size_t(r));
    }
    return n;
  }

  void transmit(const uint8_t* frame, size_t len) override {
    if (fd_ < 0) { stats_.tx_dropped++; return; }
    for (;;) {
      ssize_t r = ::sendto(fd_, frame, len, 0, reinterpret_cast<const sockaddr*>(&peer_), peer_len_);
      if (r >= 0) { stats_.tx_frames++; stats_.tx_bytes += len; return; }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == ENOBUFS || errno == EMSGSIZE) stats_.tx_dropped++;
      else stats_.tx_errors++;  // ECONNREFUSED (the peer is not there yet), unreachable, ...
      return;
    }
  }

  void close() override {
    if (fd_ >= 0) { ::close(fd_); fd_ = -1; }
  }

 private:
  int fd_;
  sockaddr_storage peer_;
  socklen_t peer_len_;
  std::vector<uint8_t> buf_;
};

/** "HOST:PORT" (HOST may be empty, or [v6]); false when there is no port */
bool split_host_port(const std::string& s, std::string* host, std::string* port, bool port_only_ok) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) {
    if (!port_only_ok) return false;
    host->clear();
    *port = s;
  } else {
    *host = s.substr(0, colon);
    *port = s.substr(colon + 1);
  }
  if (host->size() >= 2 && (*host)[0] == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  if (port->empty() || port->size() > 5) return false;
  unsigned long v = 0;
  for (char c : *port) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + unsigned(c - '0');
  }
  return v <= 65535;
}

}  // namespace

FdLinkOpen open_udp_link(const std::string& rest, const FdLinkParams&) {
  const std::string usage = " (udp://[LOCAL:]PORT->HOST:PORT)";
  size_t arrow = rest.find("->");
  if (arrow == std::string::npos) return link_error(EINVAL, "udp: '" + rest + "' has no '->'" + usage);
  std::string lhost, lport, rhost, rport;
  if (!split_host_port(rest.substr(0, arrow), &lhost, &lport, true)) {
    return link_error(EINVAL, "udp: bad local part '" + rest.substr(0, arrow) + "'" + usage);
  }
  if (!split_host_port(rest.substr(arrow + 2), &rhost, &rport, false) || rhost.empty() || rport == "0") {
    return link_error(EINVAL, "udp: bad remote part '" + rest.substr(arrow + 2) + "'" + usage);
  }
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* dst = nullptr;
  int g = ::getaddrinfo(rhost.c_str(), rport.c_str(), &hints, &dst);
  if (g != 0 || !dst) {
    return link_error(EINVAL, "udp: cannot resolve '" + rhost + "' (" + gai_strerror(g) + ")");
  }
  sockaddr_storage peer;
  std::memset(&peer, 0, sizeof(peer));
  socklen_t peer_len = socklen_t(dst->ai_addrlen);
  std::memcpy(&peer, dst->ai_addr, dst->ai_addrlen);
  int family = dst->ai_family;
  ::freeaddrinfo(dst);

  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  hints.ai_family = family;
  addrinfo* src = nullptr;
  g = ::getaddrinfo(lhost.empty() ? nullptr : lhost.c_str(), lport.c_str(), &hints, &src);
  if (g != 0 || !src) {
    return link_error(EINVAL, "udp: cannot resolve local address '" + lhost + "' for the family of " + rhost + " (" + gai_strerror(g) + ")");
  }
  int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    ::freeaddrinfo(src);
    return link_error(e, "udp: socket: " + errno_text(e));
  }
  // room for bursts of full-size frames (the kernel caps these at net.core.*mem_max)
  int sz = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
  int br = ::bind(fd, src->ai_addr, src->ai_addrlen);
  int be = errno;
  ::freeaddrinfo(src);
  if (br < 0) {
    ::close(fd);
    return link_error(be, "udp: cannot bind " + (lhost.empty() ? std::string("port ") : lhost + ":") + lport + " (bind: " + errno_text(be) + ")");
  }
  FdLinkOpen r;
  r.link = std::make_unique<UdpLink>(fd, peer, peer_len);
  return r;
}

}  // namespace ms
