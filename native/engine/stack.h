// A user-space TCP/IP host stack. Driven from outside: frames arrive through input(),
// time advances through set_now()/poll(), the application calls the socket API; it
// produces frames (through each interface's Link) and readiness events (the event sink).
// No threads, no global state: any number of Stacks coexist in one process.
//
// Calls are not reentrant from inside a Link::transmit. The event sink is called at the end
// of the outermost call (input, poll, a socket call) with the sockets whose readiness
// changed; it may call back into the stack.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "interface.h"
#include "link.h"
#include "neighbour.h"
#include "packet.h"
#include "reassembly.h"
#include "route.h"
#include "tcp/tcp_host.h"
#include "udp.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"

#if __has_include("tcp/tcp.h") && !defined(MS_NO_TCP)
#define MS_HAVE_TCP 1
#include "tcp/tcp.h"
#else
#define MS_HAVE_TCP 0
#endif

namespace ms {

struct StackConfig {
  uint64_t seed = 0x243f6a8885a308d3ull;  // the stack's Rng (ports, IDs, impairment)
  TcpConfig tcp;
  NeighbourConfig neighbour;
  ReassemblyConfig reassembly;
  uint8_t default_ttl = 64;
  uint32_t icmp_rate = 1000;   // ICMP errors per second (token bucket)
  uint32_t icmp_burst = 50;
  uint32_t ping_timeout_ms = 3000;
  uint16_t ephemeral_low = 32768, ephemeral_high = 60999;  // as Linux ip_local_port_range
  uint32_t loopback_queue = 4096;  // packets to local addresses waiting for delivery
  uint32_t loopback_budget = 1024; // delivered per call before returning (the rest: poll_at() == now)
  // IPv6
  bool dad = true;                 // duplicate address detection (RFC 4862 5.4); tests may turn it off
  uint8_t dad_transmits = 1;       // DupAddrDetectTransmits
  uint32_t retrans_timer_ms = 1000;  // RetransTimer: between solicitations
  uint32_t pmtu_entries = 64;      // path MTU cache (per destination, RFC 8201)
  uint32_t pmtu_expire_ms = 600000;
  uint32_t max_autoconf = 16;      // SLAAC addresses per interface
  // SLAAC interface identifiers: false, modified EUI-64 from the MAC; true, RFC 7217 stable
  // opaque identifiers F(prefix, interface, DAD counter, secret) (SipHash-2-4 as F)
  bool stable_iids = false;
  uint8_t stable_secret[16] = {};  // all zero: drawn from the stack's Rng (stable per seed only)
  uint32_t max_routers = 8;        // default routers learnt from advertisements
  uint32_t reasm6_datagrams = 32;  // IPv6 datagrams being reassembled
  uint32_t reasm6_timeout_ms = 60000;
};

struct EthStats { uint64_t in_frames = 0, malformed = 0, not_for_us = 0, unknown_type = 0, out_frames = 0, out_no_link = 0; };
struct ArpStats {
  uint64_t in_requests = 0, in_replies = 0, in_malformed = 0, in_other_target = 0;
  uint64_t out_requests = 0, out_replies = 0, out_gratuitous = 0;
  uint64_t resolve_failures = 0, queue_drops = 0, failed_drops = 0, evictions = 0, duplicate_address = 0;
};
struct IpStats {
  uint64_t in_receives = 0, in_hdr_errors = 0, in_csum_errors = 0, in_truncated = 0, in_addr_errors = 0;
  uint64_t in_martians = 0, in_unknown_protos = 0, in_delivers = 0, in_discards = 0, in_broadcasts = 0, in_multicasts = 0;
  uint64_t out_requests = 0, out_no_routes = 0, out_discards = 0, out_loopback = 0, loopback_drops = 0;
  uint64_t frag_oks = 0, frag_creates = 0, frag_fails = 0;
  uint64_t reasm_reqds = 0, reasm_oks = 0, reasm_fails = 0, reasm_timeouts = 0, reasm_overlaps = 0, reasm_over_limit = 0;
};
struct IcmpStats {
  uint64_t in_msgs = 0, in_errors = 0, in_csum_errors = 0, in_echos = 0, in_echo_reps = 0, in_dest_unreachs = 0;
  uint64_t in_time_excds = 0, in_other = 0;
  uint64_t out_msgs = 0, out_echos = 0, out_echo_reps = 0, out_dest_unreachs = 0, out_time_excds = 0, out_rate_limited = 0;
};
struct Ip6Stats {
  uint64_t in_receives = 0, in_hdr_errors = 0, in_truncated = 0, in_addr_errors = 0, in_unknown_protos = 0;
  uint64_t in_delivers = 0, in_discards = 0, in_multicasts = 0, in_hop_limit_exceeded = 0;
  uint64_t out_requests = 0, out_no_routes = 0, out_discards = 0, out_loopback = 0;
  uint64_t frag_oks = 0, frag_fails = 0, frag_creates = 0;
  uint64_t reasm_reqds = 0, reasm_oks = 0, reasm_fails = 0, reasm_timeouts = 0, reasm_overlaps = 0;
};
struct Icmp6Stats {
  uint64_t in_msgs = 0, in_errors = 0, in_csum_errors = 0, in_echos = 0, in_echo_reps = 0;
  uint64_t in_dest_unreachs = 0, in_pkt_too_bigs = 0, in_time_excds = 0, in_parm_problems = 0;
  uint64_t in_router_adverts = 0, in_neighbor_solicits = 0, in_neighbor_adverts = 0, in_mld_queries = 0, in_other = 0;
  uint64_t out_msgs = 0, out_echos = 0, out_echo_reps = 0, out_dest_unreachs = 0, out_time_excds = 0;
  uint64_t out_parm_problems = 0, out_rate_limited = 0;
  uint64_t out_router_solicits = 0, out_neighbor_solicits = 0, out_neighbor_adverts = 0, out_mld_reports = 0;
  uint64_t nd_malformed = 0, dad_failures = 0, slaac_addresses = 0;
};
/** counters per protocol, like netstat -s */
struct StackStats {
  EthStats eth;
  ArpStats arp;
  IpStats ip;
  IcmpStats icmp;
  Ip6Stats ip6;
  Icmp6Stats icmp6;
  UdpStats udp;
  TcpStats tcp;
  uint64_t sockets_open = 0;
};

/** one row of sockets(), like ss */
struct SocketInfo {
  int sd = 0;
  int type = 0;  // SOCK_STREAM or SOCK_DGRAM
  const char* state = "";
  Endpoint local, remote;
  uint32_t send_queue = 0, recv_queue = 0;
  uint64_t drops = 0;
  bool has_tcp = false;
  TcpSocketInfo tcp{};
};

/** result of a ping() (echo reply, error or timeout) */
struct PingResult {
  uint16_t id = 0, seq = 0;
  int status = 0;      // 0: reply; -ETIMEDOUT; -EHOSTUNREACH, -ENETUNREACH... from an ICMP error or ARP
  Micros rtt = 0;      // microseconds, when status is 0
  IpAddr from;
  uint8_t ttl = 0;
  size_t bytes = 0;    // ICMP payload bytes of the reply
};

class Stack final : public TcpHost {
 public:
  using EventSink = void (*)(void* ctx, int sd, uint32_t events);
  using PingHandler = void (*)(void* ctx, const PingResult& r);

  explicit Stack(const StackConfig& cfg = {});
  ~Stack() override;
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  // ---- configuration ----
  /** returns the ifindex (>= 1) or -EINVAL (bad MTU) */
  int add_interface(const InterfaceConfig& c);
  /** attach/detach (nullptr) the link of an interface */
  int set_link(int ifindex, Link* link);
  int set_mtu(int ifindex, uint32_t mtu);
  /** adds the connected route and announces the address (gratuitous ARP); -EEXIST, -EINVAL, -ENODEV */
  int add_address(int ifindex, const IpAddr& addr, uint8_t prefix);
  int remove_address(int ifindex, const IpAddr& addr);
  /** a static route: dst/prefix via gateway (unset: on-link through ifindex); ifindex 0: the
      interface whose subnet holds the gateway. -ENETUNREACH if the gateway is not on-link */
  int add_route(const IpAddr& dst, uint8_t prefix, const IpAddr& gateway, int ifindex = 0, uint32_t metric = 0);
  int remove_route(const IpAddr& dst, uint8_t prefix);
  /** IPv6 on the interface: link-local address from the MAC (EUI-64), all-nodes group, DAD,
      router solicitations when slaac. Idempotent; add_address of a v6 address calls it */
  int enable_ipv6(int ifindex, bool slaac);
  /** the address is usable (IPv4, or IPv6 past duplicate address detection) */
  bool address_ready(const IpAddr& addr) const;
  /** the path MTU known for dst (0: none cached) */
  uint32_t path_mtu(const IpAddr& dst) const;
  int set_impair(int ifindex, const Impair& im);
  /** capture every frame in and out of the interface to a pcap file; nullptr stops */
  int set_capture(int ifindex, const char* path);
  /** push buffered capture records to their files (the binding may call it now and then) */
  void flush_captures();
  const Interface* interface(int ifindex) const;
  int interface_count() const { return int(ifs_.size()); }
  const std::vector<Route>& routes() const { return routes_.routes(); }

  // ---- driving ----
  void set_now(Micros now) { if (now > now_) now_ = now; }
  Micros now() const override { return now_; }
  /** a frame arrived on interface ifindex (the stack copies what it keeps) */
  void input(int ifindex, const uint8_t* frame, size_t len);
  /** run timers due at `now` (and deliver queued local packets) */
  void poll(Micros now);
  /** when poll() should next be called (kNever: nothing scheduled; <= now: at once) */
  Micros poll_at() const;
  void set_event_sink(EventSink fn, void* ctx) { sink_ = fn; sink_ctx_ = ctx; }

  // ---- sockets: integer descriptors, errors as negative errno ----
  int socket(int domain, int type, int protocol = 0);
  int bind(int sd, const Endpoint& ep);
  int listen(int sd, int backlog);
  /** a pending connection's descriptor, or -EAGAIN */
  int accept(int sd, Endpoint* peer = nullptr);
  /** UDP: family 0 disconnects (AF_UNSPEC). TCP: -EINPROGRESS, then writable or error */
  int connect(int sd, const Endpoint& ep);
  long send(int sd, const void* buf, size_t len, int flags = 0);
  long sendto(int sd, const void* buf, size_t len, int flags, const Endpoint* to);
  long recv(int sd, void* buf, size_t len, int flags = 0);
  long recvfrom(int sd, void* buf, size_t len, int flags, Endpoint* from);
  /** bytes readable: TCP the receive queue, UDP the next datagram's size (as FIONREAD) */
  long recv_available(int sd);
  /** one datagram taken by recvmany(): `len` bytes at its place in the buffer; `size` is the
   * datagram's whole length (larger than len when it did not fit: truncated, as MSG_TRUNC) */
  struct Dgram { uint32_t len = 0, size = 0; Endpoint from; };
  /** UDP: up to `max` queued datagrams in one call (recvmmsg), copied back to back into buf.
   * The number taken; 0 when none is queued; -errno (a pending error) when none was taken.
   * Stops before a datagram that does not fit the rest of buf, unless it is the first. */
  long recvmany(int sd, uint8_t* buf, size_t cap, Dgram* out, size_t max);
  int shutdown(int sd, int how);
  int close(int sd);
  /** close with RST (SO_LINGER 0) for TCP; same as close for UDP */
  int abort(int sd);
  int getsockname(int sd, Endpoint* ep);
  int getpeername(int sd, Endpoint* ep);
  /** Linux levels/names: SOL_SOCKET (SO_REUSEADDR, SO_REUSEPORT, SO_BROADCAST, SO_RCVBUF,
      SO_SNDBUF, SO_KEEPALIVE, SO_ERROR, SO_TYPE, SO_NO_CHECK), IPPROTO_IP (IP_TTL, IP_TOS,
      IP_MULTICAST_TTL, IP_MULTICAST_LOOP, IP_MULTICAST_IF, IP_ADD_MEMBERSHIP,
      IP_DROP_MEMBERSHIP with struct ip_mreq), IPPROTO_TCP (passed to TCP). int values. */
  int setsockopt(int sd, int level, int name, const void* val, size_t len);
  int getsockopt(int sd, int level, int name, void* val, size_t* len);
  /** current readiness (kEv* bits); 0 for a bad descriptor */
  uint32_t events(int sd);

  // ---- ICMP echo ----
  /** send an echo request with `payload` bytes; id_seq_out[0] = id, [1] = seq. The result
      comes later through the ping handler (reply with RTT, ICMP error, or timeout) */
  int ping(const IpAddr& dst, size_t payload, uint16_t* id_seq_out);
  void set_ping_handler(PingHandler fn, void* ctx) { ping_fn_ = fn; ping_ctx_ = ctx; }

  // ---- introspection ----
  const StackStats& stats();
  std::vector<SocketInfo> sockets();
  size_t neighbour_count() const { return neigh_.size(); }
  /** the MAC cached for addr on ifindex (true once resolved: reachable, stale, delay or probing) */
  bool neighbour_lookup(int ifindex, const IpAddr& addr, MacAddr* mac);

  /** end every socket: TCP connections are reset (RST to the peer), the sink hears of every
      descriptor (error | hangup), and from then on every call on them fails with
      -ECONNABORTED until close(sd). Everything else is freed; new sockets: -ENETDOWN */
  void close();
  bool closed() const { return closed_; }

  // ---- TcpHost ----
  uint64_t random64() override { return rng_.next(); }
  int route(const IpAddr& dst, RouteInfo* out) override;
  bool is_local_address(const IpAddr& a) const override;
  bool accepts_new_connections(const IpAddr& a) const override;
  /** mark an address draining (true) or usable again: see IfAddr::draining */
  int set_address_draining(int ifindex, const IpAddr& addr, bool draining);
  /** after an address went: its on-link route, unless another address keeps it */
  void remove_connected_route(Interface* ifp, const IpAddr& addr, uint8_t prefix);
  void output(const IpAddr& src, const IpAddr& dst, PacketBuf&& segment) override;
  void notify(TcpSocket* s, uint32_t events) override;

  Rng& rng() { return rng_; }

 private:
  struct Slot {
    uint8_t kind = 0;  // kFree, kUdp, kTcp, kDead
    bool dirty = false;
    void* p = nullptr;
  };
  enum : uint8_t { kFree = 0, kUdp = 1, kTcp = 2, kDead = 3 };  // dead: its stack was closed

  struct RouteResult {
    Interface* ifp = nullptr;  // nullptr: local delivery (loopback)
    IpAddr next_hop;
    IpAddr src;
    uint32_t mtu = 65535;
    bool broadcast = false;
  };
  struct TxOpts {
    uint8_t ttl = 64, tos = 0;
    bool df = false;
    bool mcast_loop = true;
    int ifindex = 0;  // for multicast / limited broadcast
  };
  struct PendingPing { uint16_t seq; Micros sent; IpAddr dst; };

  // entry guard: the outermost call delivers local packets and flushes events on the way out
  struct Entry {
    explicit Entry(Stack* s) : s_(s) { s_->depth_++; }
    ~Entry() { if (--s_->depth_ == 0) s_->finish(); }
    Stack* s_;
  };
  void finish();
  void mark(int sd);

  Interface* iface(int ifindex) { return ifindex >= 1 && size_t(ifindex) <= ifs_.size() ? ifs_[size_t(ifindex) - 1].get() : nullptr; }

  // link layer
  void eth_output(Interface* ifp, const MacAddr& dst, uint16_t type, PacketBuf& pkt);
  void link_transmit(Interface* ifp, const uint8_t* frame, size_t len);
  void impair_transmit(Interface* ifp, const uint8_t* frame, size_t len);
  void impair_poll(Interface* ifp);
  void arp_input(Interface* ifp, const uint8_t* p, size_t len);
  void arp_send(Interface* ifp, uint16_t op, const MacAddr& eth_dst, const MacAddr& tha, const uint8_t* spa, const uint8_t* tpa);
  void arp_probe(Interface* ifp, Neighbour* n, bool unicast);
  void arp_poll();
  void neighbour_failed(Neighbour* n);
  /** send an IP packet to next_hop on ifp, resolving it; returns 0 or -EHOSTUNREACH */
  int neigh_output(Interface* ifp, const IpAddr& next_hop, PacketBuf& pkt);

  // IP
  void ip_input(Interface* ifp, const uint8_t* p, size_t len, bool verify);
  void ip_deliver(Interface* ifp, const wire::Ipv4Header& h, const uint8_t* p, bool verify, bool bcast_or_mcast);
  int route_v4(const IpAddr& dst, int ifindex_hint, RouteResult* out);
  /** payload already in pkt (upper header included); prepends IP; consumes pkt */
  int ip_output(const IpAddr& src, const IpAddr& dst, uint8_t proto, PacketBuf& pkt, const TxOpts& o);
  int ip_fragment(Interface* ifp, const IpAddr& next_hop, PacketBuf& pkt, uint32_t mtu);
  bool is_local_v4(const uint8_t* a) const;
  bool is_broadcast_v4(const uint8_t* a) const;
  void loopback_deliver(size_t budget);

  // ICMP
  void icmp_input(Interface* ifp, const wire::Ipv4Header& h, const uint8_t* p, size_t len, bool verify, bool bcast);
  void icmp_error_input(const wire::IcmpHeader& ih, const uint8_t* inner, size_t len);
  /** an ICMP error about the packet `orig` (IP header first) */
  void icmp_send_error(uint8_t type, uint8_t code, const uint8_t* orig, size_t orig_len, uint32_t extra = 0);
  bool icmp_rate_allow();
  void ping_poll();
  int ping6(const IpAddr& dst, size_t payload, uint16_t* id_seq_out);
  /** report the pending ping p as failed (status -err); the caller forgets it */
  void ping_failed(const PendingPing& p, int err);
  /** the pending ping with sequence number seq, if there is one, fails with err */
  void ping_fail(uint16_t seq, int err);

  // IPv6 (stack_ip6.cc)
  void ip6_input(Interface* ifp, const uint8_t* p, size_t len, bool verify);
  void ip6_upper(Interface* ifp, const uint8_t* p, size_t len, size_t off, uint8_t nh, size_t nh_field, bool verify, bool mcast);
  int route_v6(const IpAddr& dst, int ifindex_hint, RouteResult* out);
  int ip6_output(const IpAddr& src, const IpAddr& dst, uint8_t nh, PacketBuf& pkt, const TxOpts& o);
  int ip6_fragment(Interface* ifp, const IpAddr& next_hop, bool mcast, PacketBuf& pkt, uint32_t mtu);
  void ip6_deliver_reassembled(Interface* ifp, const uint8_t* p, size_t len, size_t frag_off, bool verify, bool mcast);
  void reasm6_poll();
  bool is_local_v6(const uint8_t* a, bool include_tentative = false) const;
  const IfAddr* v6_source(const Interface* ifp, const IpAddr& dst) const;
  void icmp6_input(Interface* ifp, const uint8_t* ip, const uint8_t* p, size_t len, bool verify, bool mcast);
  void icmp6_error_input(uint8_t type, uint8_t code, uint32_t info, const uint8_t* inner, size_t len);
  void icmp6_send_error(uint8_t type, uint8_t code, uint32_t info, const uint8_t* orig, size_t orig_len, bool even_mcast = false);
  void icmp6_send(Interface* ifp, const IpAddr& src, const IpAddr& dst, PacketBuf& b, uint8_t hop_limit, bool router_alert = false);
  void ndp_input(Interface* ifp, const uint8_t* ip, const uint8_t* p, size_t len);
  void ndp_send_ns(Interface* ifp, const IpAddr& target, bool unicast, const MacAddr* mac, bool dad);
  void ndp_send_na(Interface* ifp, const IpAddr& target, const IpAddr& dst, bool solicited);
  void ndp_send_rs(Interface* ifp);
  void ndp_ra_input(Interface* ifp, const uint8_t* ip, const uint8_t* p, size_t len);
  void ndp_neighbour_update(Interface* ifp, const IpAddr& addr, const MacAddr& mac, bool solicited, bool override, bool is_na);
  void ndp_probe(Interface* ifp, Neighbour* n, bool unicast);
  void ndp_poll();
  /** take address i off ifp (its connected route, its solicited-node group); the entry */
  IfAddr remove_address6(Interface* ifp, size_t i);
  void dad_failed(Interface* ifp, IpAddr addr);
  int add_address6(Interface* ifp, const IpAddr& addr, uint8_t prefix, bool autoconf, Micros valid_until, uint8_t dad_counter = 0);
  void slaac_iid(const Interface* ifp, const IpAddr& prefix, uint8_t dad_counter, uint8_t* out8) const;
  void mld_join(Interface* ifp, const IpAddr& group);
  void mld_leave(Interface* ifp, const IpAddr& group);
  void mld_report(Interface* ifp, const IpAddr* groups, size_t n, uint8_t record_type);
  void pmtu_update(const IpAddr& dst, uint32_t mtu);
  void v6_neigh_failed_packet(const PacketBuf& pkt);
  void neigh_probe(Interface* ifp, Neighbour* n, bool unicast);

  // IGMP
  void igmp_send(Interface* ifp, uint8_t type, const uint8_t* group4);
  void igmp_input(Interface* ifp, const uint8_t* p, size_t len, bool verify);

  // UDP
  /** ip/ip_len: the whole IP packet (quoted in a port unreachable) */
  void udp_input(Interface* ifp, const IpAddr& src, const IpAddr& dst, const uint8_t* ip, size_t ip_len, const uint8_t* p, size_t len, bool verify, bool bcast_or_mcast);
  void udp_error_addr(const IpAddr& local, uint16_t sport, const IpAddr& remote, uint16_t dport, int err);
  bool udp_local_match(const UdpSocket* s, const IpAddr& dst) const;
  bool udp_enqueue(UdpSocket* s, const IpAddr& src, uint16_t sport, const uint8_t* data, size_t len);
  int udp_bind(UdpSocket* s, const IpAddr& addr, uint16_t port);
  int udp_autobind(UdpSocket* s);
  int udp_connect(UdpSocket* s, const Endpoint& ep);
  bool udp_conflict(const UdpSocket* s, const IpAddr& addr, uint16_t port, bool reuseaddr, bool reuseport) const;
  void udp_unhash(UdpSocket* s);
  void udp_error(const uint8_t* inner_ip, size_t len, int err, bool fatal);
  /** the datagram s sends to dport (UDP header with a zero checksum, then buf) built in tx_,
      the reusable transmit buffer; its first byte */
  uint8_t* udp_build(const UdpSocket* s, uint16_t dport, const void* buf, size_t len);
  /** hand the datagram built in tx_ to IP (v4 or v6, by dst): len, or the error */
  long udp_output(const UdpSocket* s, const IpAddr& src, const IpAddr& dst, uint8_t ttl, int ifindex, size_t len);
  long udp_sendto(UdpSocket* s, const void* buf, size_t len, int flags, const Endpoint* to);
  long udp_sendto6(UdpSocket* s, const void* buf, size_t len, const Endpoint& dst);
  long udp_recvfrom(UdpSocket* s, void* buf, size_t len, int flags, Endpoint* from);
  long udp_recvmany(UdpSocket* s, uint8_t* buf, size_t cap, Dgram* out, size_t max);
  int udp_setsockopt(UdpSocket* s, int level, int name, const void* val, size_t len);
  int udp_getsockopt(UdpSocket* s, int level, int name, void* val, size_t* len);
  void udp_close(UdpSocket* s);
  int mcast_join(UdpSocket* s, const IpAddr& group, const IpAddr& ifaddr, bool join);

  // TCP
  void tcp_input(const IpAddr& src, const IpAddr& dst, const uint8_t* p, size_t len, bool verify);
  void tcp_icmp_error(const uint8_t* inner, size_t len, uint8_t type, uint8_t code, uint32_t info);
  void tcp_neighbour_failed(const IpAddr& dst);
#if MS_HAVE_TCP
  TcpLayer* tcp();  // created on first use
  int tcp_socket(uint8_t family);
  int tcp_bind(Slot* sl, const Endpoint& ep);
  int tcp_listen(Slot* sl, int backlog);
  int tcp_accept(Slot* sl, Endpoint* peer);
  int tcp_connect(Slot* sl, const Endpoint& ep);
  long tcp_send(Slot* sl, const void* buf, size_t len, int flags);
  long tcp_recv(Slot* sl, void* buf, size_t len, int flags, Endpoint* from);
  long tcp_available(Slot* sl);
  int tcp_shutdown(Slot* sl, int how);
  void tcp_close(Slot* sl, bool abort);
  int tcp_name(Slot* sl, Endpoint* ep, bool peer);
  int tcp_setsockopt(Slot* sl, int level, int name, const void* val, size_t len);
  int tcp_getsockopt(Slot* sl, int level, int name, void* val, size_t* len);
  uint32_t tcp_events(Slot* sl);
  void tcp_list(std::vector<SocketInfo>* out);
  std::unique_ptr<TcpLayer> tcp_;
#endif
  uint64_t tcp_bad_csum_ = 0;

  int alloc_sd(uint8_t kind, void* p);
  Slot* slot(int sd) { return sd > 0 && size_t(sd) < slots_.size() && slots_[size_t(sd)].kind ? &slots_[size_t(sd)] : nullptr; }
  UdpSocket* udp_of(int sd) { Slot* s = slot(sd); return s && s->kind == kUdp ? static_cast<UdpSocket*>(s->p) : nullptr; }

  StackConfig cfg_;
  Micros now_ = 0;
  Rng rng_;
  bool closed_ = false;
  int depth_ = 0;
  bool flushing_ = false;

  std::vector<std::unique_ptr<Interface>> ifs_;
  RouteTable routes_;
  // one-entry route cache
  IpAddr rc_dst_;
  uint64_t rc_gen_ = 0;
  RouteResult rc_res_;
  NeighbourCache neigh_;
  Reassembler reasm_;
  std::vector<PacketBuf> loopback_;  // FIFO from loopback_head_ (a std::deque costs memory even empty)
  size_t loopback_head_ = 0;
  uint16_t ip_id_ = 0;

  std::vector<Slot> slots_;
  std::vector<int> free_sds_;
  std::vector<int> dirty_, spare_dirty_;
  EventSink sink_ = nullptr;
  void* sink_ctx_ = nullptr;

  std::unordered_map<uint16_t, std::vector<UdpSocket*>> udp_ports_;
  size_t udp_count_ = 0;
  PacketBuf tx_;  // reused buffer for UDP/ICMP output

  double icmp_tokens_ = 0;
  Micros icmp_last_ = 0;
  uint16_t ping_id_ = 0;
  uint16_t ping_seq_ = 0;
  std::vector<PendingPing> pings_;  // in send order
  std::vector<PingResult> ping_done_;  // reported on the way out
  PingHandler ping_fn_ = nullptr;
  void* ping_ctx_ = nullptr;

  std::vector<IpAddr> tcp_failed_;  // neighbour failures to report to TCP on the way out

  // IPv6 state
  struct PmtuEntry { IpAddr dst; uint32_t mtu; Micros expires; };
  std::vector<PmtuEntry> pmtu_;  // bounded by cfg_.pmtu_entries, oldest replaced
  struct Router { IpAddr addr; int ifindex; Micros expires; };
  std::vector<Router> routers_;  // bounded by cfg_.max_routers
  struct Frag6 {
    IpAddr src, dst;
    uint32_t id = 0;
    int ifindex = 0;
    Micros created = 0;
    std::vector<uint8_t> head;       // unfragmentable part of the first fragment (IPv6 header + extension headers)
    uint8_t nh = 0;                  // next header after the fragment header (from the first fragment)
    bool have_first = false, have_last = false;
    uint32_t total = 0;              // fragmentable part length once the last fragment arrived
    std::vector<uint8_t> data;       // fragmentable part, grown as fragments arrive (<= 65535)
    std::vector<std::pair<uint32_t, uint32_t>> ranges;  // sorted, disjoint [start, end), at most 64
  };
  std::vector<Frag6> reasm6_;
  size_t reasm6_bytes_ = 0;
  uint32_t frag6_id_ = 0;
  Micros nd_next_ = kNever;  // the next DAD / router solicitation / router expiry timer
  StackStats stats_;
};

}  // namespace ms
