// UDP socket state (RFC 768, Linux semantics for bind/reuse/connect/errors). The Stack
// owns the sockets and the port table; this header holds the per-socket state.
#pragma once
#include <vector>

#include "common.h"
#include "ring.h"

namespace ms {

struct UdpSocket {
  int sd = -1;
  uint8_t family = 4;    // AF_INET6 sockets: 6 (IPv4 peers appear as ::ffff:a.b.c.d unless v6only)
  bool v6only = false;   // IPV6_V6ONLY
  Endpoint local;   // addr unspecified (family 4, zeros) when bound to the wildcard
  Endpoint remote;  // valid when connected
  bool bound = false, connected = false;
  bool addr_locked = false, port_locked = false;  // chosen by bind() (kept by disconnect)
  bool reuseaddr = false, reuseport = false, broadcast = false;
  bool shut_rd = false, shut_wr = false;
  bool mcast_loop = true;
  bool no_check = false;  // SO_NO_CHECK: send without checksum
  uint8_t ttl = 64, tos = 0, mcast_ttl = 1;
  IpAddr mcast_if;
  int mcast_ifindex = 0;  // IPV6_MULTICAST_IF
  uint8_t hops6 = 0;      // IPV6_UNICAST_HOPS (0: the interface's hop limit)
  int so_error = 0;  // positive errno
  uint32_t rcvbuf = 212992, sndbuf = 212992;  // as getsockopt reports them (Linux doubles the set value)
  RecordRing rq{4096, 212992 + 65536 + 64};  // payload records; tag: port | family << 16; 16-byte address prefix
  uint64_t drops = 0;
  std::vector<IpAddr> groups;  // joined multicast groups (for the interface refcounts)
  std::vector<int> group_ifs;

  bool readable() const { return !rq.empty() || so_error || shut_rd; }
};

struct UdpStats {
  uint64_t in_datagrams = 0, no_ports = 0, in_errors = 0, in_csum_errors = 0, rcvbuf_errors = 0;
  uint64_t out_datagrams = 0, out_errors = 0, ignored_multi = 0;
};

}  // namespace ms
