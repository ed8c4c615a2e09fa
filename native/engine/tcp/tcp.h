// The TCP module's public API, used by the Stack (and by the test harness). One TcpLayer per
// stack; it owns every TCP socket of that stack. Driven from outside: input() when a segment
// arrives, poll(now) when poll_at() is due, and the application calls below. It never calls
// back into the host from within an application call except through output() (and never
// through notify()); output() must not synchronously re-enter this layer.
//
// Sockets are opaque handles. A handle returned by open()/accept() stays valid until the
// host calls close() or abort() on it, whatever happens to the connection; after that the
// layer owns it (graceful close, TIME_WAIT) and frees it itself.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "tcp_host.h"

namespace ms {

// socket option levels and names, Linux values (<sys/socket.h>, <netinet/in.h>, <netinet/tcp.h>)
constexpr int kSolSocket = 1;     // SOL_SOCKET
constexpr int kIpprotoTcp = 6;    // IPPROTO_TCP
constexpr int kIpprotoIpv6 = 41, kIpv6V6only = 26;  // IPPROTO_IPV6, IPV6_V6ONLY
constexpr int kSoReuseaddr = 2, kSoError = 4, kSoSndbuf = 7, kSoRcvbuf = 8, kSoKeepalive = 9;
constexpr int kTcpNodelay = 1, kTcpMaxseg = 2, kTcpKeepidle = 4, kTcpKeepintvl = 5, kTcpKeepcnt = 6;
// shutdown(2) how
constexpr int kShutRd = 0, kShutWr = 1, kShutRdwr = 2;

/** IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, RFC 4291 2.5.5.2) of dual-stack sockets */
inline bool is_v4_mapped(const IpAddr& a) {
  static const uint8_t m[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return a.family == 6 && std::memcmp(a.b, m, 12) == 0;
}
/** the peer is reached over IPv6 on the wire (an IPv6 address that is not v4-mapped) */
inline bool ip6_wire(const IpAddr& a) { return a.family == 6 && !is_v4_mapped(a); }
inline IpAddr v4_mapped(const IpAddr& v4) {
  IpAddr a; a.family = 6; a.b[10] = a.b[11] = 0xff; std::memcpy(a.b + 12, v4.b, 4); return a;
}

class TcpCore;  // the implementation (tcp_internal.h)

class TcpLayer {
 public:
  /** secret: 32 bytes of key material (ISNs per RFC 6528, SYN cookies, ephemeral ports) */
  TcpLayer(TcpHost& host, const TcpConfig& cfg, const uint8_t secret[32]);
  ~TcpLayer();
  TcpLayer(const TcpLayer&) = delete;
  TcpLayer& operator=(const TcpLayer&) = delete;

  // ---- application calls (the BSD socket calls, errors as -errno)
  /** a new socket of family 4 or 6; user_id is given back by user_id() (nullptr on bad family) */
  TcpSocket* open(int family, int user_id);
  /** 0 | -EADDRINUSE | -EADDRNOTAVAIL | -EINVAL (already bound, wrong family). Port 0: ephemeral */
  int bind(TcpSocket* s, const Endpoint& local);
  /** 0 | -EINVAL (connected) | -EADDRINUSE (autobind failed). backlog capped by cfg.max_backlog */
  int listen(TcpSocket* s, int backlog);
  /** an established connection, or nullptr with *err = -EAGAIN (none yet) or -EINVAL (not listening) */
  TcpSocket* accept(TcpSocket* listener, int* err, int new_user_id);
  /** -EINPROGRESS (then kEvWritable on success, kEvError + SO_ERROR on failure), -EISCONN,
   *  -EALREADY, -ENETUNREACH/-EHOSTUNREACH (no route), -EADDRNOTAVAIL (no free port), -EINVAL */
  int connect(TcpSocket* s, const Endpoint& remote);
  /** bytes taken (may be partial), -EAGAIN (buffer full / not yet connected), -EPIPE, -ENOTCONN,
   *  or a pending error (-ECONNRESET, -ETIMEDOUT, ...) which is then cleared */
  long send(TcpSocket* s, const uint8_t* data, size_t n);
  /** bytes, 0 at EOF, -EAGAIN, -ENOTCONN, or a pending error (cleared) */
  long recv(TcpSocket* s, uint8_t* buf, size_t cap);
  /** bytes readable now */
  size_t recv_available(const TcpSocket* s) const;
  /** bytes of free space in the send buffer now */
  size_t send_space(const TcpSocket* s) const;
  /** kShutRd / kShutWr / kShutRdwr: 0 | -ENOTCONN | -EINVAL */
  int shutdown(TcpSocket* s, int how);
  /** graceful close; RST instead if unread data remains (as Linux). The handle is gone after. */
  void close(TcpSocket* s);
  /** RST now (if synchronized) and free. The handle is gone after. */
  void abort(TcpSocket* s);
  int local_endpoint(const TcpSocket* s, Endpoint* out) const;   // -EINVAL if unbound
  int remote_endpoint(const TcpSocket* s, Endpoint* out) const;  // -ENOTCONN
  /** level kSolSocket or kIpprotoTcp; 0 | -ENOPROTOOPT | -EINVAL */
  int set_option(TcpSocket* s, int level, int opt, int value);
  /** SO_ERROR reads and clears the pending error (as a positive errno, like getsockopt) */
  int get_option(TcpSocket* s, int level, int opt, int* value);
  /** kEv* readiness bits */
  uint32_t events(const TcpSocket* s) const;
  int user_id(const TcpSocket* s) const;
  /** 4 or 6: the socket's address family (AF_INET6 sockets may talk to ::ffff:a.b.c.d peers) */
  int family(const TcpSocket* s) const;
  /** a name for the state, like ss: "ESTAB", "SYN-SENT", ... */
  const char* state_name(const TcpSocket* s) const;

  // ---- from the IP layer
  /** one TCP segment (header + payload); the caller has verified the checksum (or the link
   *  is trusted), src/dst are the IP header's addresses */
  void input(const IpAddr& src, const IpAddr& dst, const uint8_t* segment, size_t len);
  /** an ICMP/ICMPv6 error quoting one of our segments: local/remote are the quoted packet's
   *  source/destination, orig_tcp its first bytes (at least 8). err: -ECONNREFUSED (port
   *  unreachable), -EHOSTUNREACH, -ENETUNREACH, -EMSGSIZE (frag needed / packet too big,
   *  with next_hop_mtu, 0 if unknown) */
  void icmp_error(const IpAddr& local, const IpAddr& remote, const uint8_t* orig_tcp, size_t orig_len, int err,
                  uint32_t next_hop_mtu);
  /** address resolution of dst failed: SYN-SENT connections to it fail with EHOSTUNREACH,
   *  others record a soft error (reported if they later time out) */
  void neighbour_failed(const IpAddr& dst);

  // ---- time
  /** run the timers due at `now` (a monotonic clock, the same one host.now() reads) */
  void poll(Micros now);
  /** the next time poll() has work, kNever if none; O(1) */
  Micros poll_at() const;

  // ---- introspection
  void stats(TcpStats* out) const;
  void list(std::vector<TcpSocketInfo>* out) const;
  /** number of sockets the layer holds (open, orphaned, time-wait), for leak tests */
  size_t socket_count() const;

 private:
  std::unique_ptr<TcpCore> core_;
};

}  // namespace ms
