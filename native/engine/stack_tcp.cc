// TCP integration of the Stack: the TcpLayer (native/engine/tcp/) behind the descriptors,
// and the TcpHost side (route, output, notify).
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "stack.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"

namespace ms {

static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void Stack::output(const IpAddr& src, const IpAddr& dst, PacketBuf&& segment) {
  if (closed_) return;
  TxOpts o;
  o.ttl = cfg_.default_ttl;
  o.df = true;
  int e;
  if (dst.family == 6 && std::memcmp(dst.b, kMapped, 12) == 0) {
    // a dual-stack socket's IPv4 peer: the checksum over the mapped pseudo-header equals the
    // IPv4 one (the ::ffff words add one's-complement zero)
    e = ip_output(IpAddr::v4_bytes(src.b + 12), IpAddr::v4_bytes(dst.b + 12), wire::kProtoTcp, segment, o);
  } else if (dst.family == 6) {
    o.ttl = 0;
    e = ip6_output(src, dst, wire::kProtoTcp, segment, o);
  } else {
    e = ip_output(src, dst, wire::kProtoTcp, segment, o);
  }
  // the neighbour is known to have failed (ARP's hold): TCP hears of it on the way out
  if (e == -EHOSTUNREACH && std::find(tcp_failed_.begin(), tcp_failed_.end(), dst) == tcp_failed_.end()) tcp_failed_.push_back(dst);
}

#if !MS_HAVE_TCP
void Stack::tcp_input(const IpAddr&, const IpAddr&, const uint8_t*, size_t, bool) { stats_.ip.in_unknown_protos++; }
void Stack::tcp_icmp_error(const uint8_t*, size_t, uint8_t, uint8_t, uint32_t) {}
void Stack::tcp_neighbour_failed(const IpAddr&) {}
void Stack::notify(TcpSocket*, uint32_t) {}
#else

static TcpSocket* sock(void* p) { return static_cast<TcpSocket*>(p); }

TcpLayer* Stack::tcp() {
  if (!tcp_) {
    uint8_t secret[32];
    for (int i = 0; i < 4; i++) { uint64_t r = rng_.next(); std::memcpy(secret + 8 * i, &r, 8); }
    tcp_ = std::make_unique<TcpLayer>(*this, cfg_.tcp, secret);
  }
  return tcp_.get();
}

void Stack::notify(TcpSocket* s, uint32_t) {
  if (!tcp_) return;
  int sd = tcp_->user_id(s);
  Slot* sl = slot(sd);
  if (sl && sl->kind == kTcp && sl->p == s) mark(sd);
}

void Stack::tcp_input(const IpAddr& src, const IpAddr& dst, const uint8_t* p, size_t len, bool verify) {
  if (verify) {
    uint64_t acc = src.family == 6 ? wire::pseudo_v6(src.b, dst.b, wire::kProtoTcp, uint32_t(len))
                                   : wire::pseudo_v4(src.b, dst.b, wire::kProtoTcp, uint16_t(len));
    if (!wire::csum_ok(wire::csum_add(acc, p, len))) {
      tcp_bad_csum_++;
      return;
    }
  }
  tcp()->input(src, dst, p, len);
}

void Stack::tcp_icmp_error(const uint8_t* inner, size_t len, uint8_t type, uint8_t code, uint32_t info) {
  if (!tcp_) return;
  size_t ihl = size_t(inner[0] & 15) * 4;
  int err = -EHOSTUNREACH;
  uint32_t mtu = 0;
  if (type == wire::kIcmpDestUnreach) {
    switch (code) {
      case wire::kUnreachPort: err = -ECONNREFUSED; break;
      case wire::kUnreachFragNeeded: err = -EMSGSIZE; mtu = info & 0xffff; break;
      case wire::kUnreachNet: case wire::kUnreachNetUnknown: case wire::kUnreachNetProhib: case wire::kUnreachNetTos:
        err = -ENETUNREACH; break;
      case wire::kUnreachProto: err = -ENOPROTOOPT; break;
      default: err = -EHOSTUNREACH; break;
    }
  } else if (type != wire::kIcmpTimeExceeded) {
    return;  // parameter problem: ignored for TCP
  }
  IpAddr local = IpAddr::v4_bytes(inner + 12), remote = IpAddr::v4_bytes(inner + 16);
  tcp_->icmp_error(local, remote, inner + ihl, len - ihl, err, mtu);
  // or about a dual-stack socket's connection to an IPv4 peer (::ffff:a.b.c.d)
  tcp_->icmp_error(v4_mapped(local), v4_mapped(remote), inner + ihl, len - ihl, err, mtu);
}

void Stack::tcp_neighbour_failed(const IpAddr& dst) {
  if (!tcp_) return;
  tcp_->neighbour_failed(dst);
  if (dst.family == 4) tcp_->neighbour_failed(v4_mapped(dst));  // dual-stack sockets with IPv4 peers
}

int Stack::tcp_socket(uint8_t family) {
  int sd = alloc_sd(kTcp, nullptr);
  TcpSocket* s = tcp()->open(family, sd);
  if (!s) {
    slots_[size_t(sd)] = Slot{};
    free_sds_.push_back(sd);
    stats_.sockets_open--;
    return -ENOMEM;
  }
  slots_[size_t(sd)].p = s;
  return sd;
}

int Stack::tcp_bind(Slot* sl, const Endpoint& ep) {
  Endpoint e = ep;
  if (!e.addr.family) e.addr.family = uint8_t(tcp_->family(sock(sl->p)));
  if (e.addr.family != tcp_->family(sock(sl->p))) return e.addr.family == 4 ? -EINVAL : -EAFNOSUPPORT;
  return tcp_->bind(sock(sl->p), e);
}

int Stack::tcp_listen(Slot* sl, int backlog) { return tcp_->listen(sock(sl->p), backlog); }

int Stack::tcp_accept(Slot* sl, Endpoint* peer) {
  TcpSocket* l = sock(sl->p);
  int sd = alloc_sd(kTcp, nullptr);  // slots_ may move: sl is not used after this
  int err = 0;
  TcpSocket* c = tcp_->accept(l, &err, sd);
  if (!c) {
    slots_[size_t(sd)] = Slot{};
    free_sds_.push_back(sd);
    stats_.sockets_open--;
    return err ? err : -EAGAIN;
  }
  slots_[size_t(sd)].p = c;
  if (peer) tcp_->remote_endpoint(c, peer);
  mark(sd);  // it may already hold data or a FIN
  return sd;
}

int Stack::tcp_connect(Slot* sl, const Endpoint& ep) {
  if (ep.addr.family != tcp_->family(sock(sl->p))) return -EAFNOSUPPORT;
  return tcp_->connect(sock(sl->p), ep);
}

long Stack::tcp_send(Slot* sl, const void* buf, size_t len, int flags) {
  return tcp_->send(sock(sl->p), static_cast<const uint8_t*>(buf), len);
}

long Stack::tcp_recv(Slot* sl, void* buf, size_t len, int flags, Endpoint* from) {
  if (flags & MSG_PEEK) return -EOPNOTSUPP;
  long n = tcp_->recv(sock(sl->p), static_cast<uint8_t*>(buf), len);
  if (n >= 0 && from) tcp_->remote_endpoint(sock(sl->p), from);
  return n;
}

long Stack::tcp_available(Slot* sl) { return long(tcp_->recv_available(sock(sl->p))); }

int Stack::tcp_shutdown(Slot* sl, int how) { return tcp_->shutdown(sock(sl->p), how); }

void Stack::tcp_close(Slot* sl, bool abort) {
  if (abort) tcp_->abort(sock(sl->p));
  else tcp_->close(sock(sl->p));
}

int Stack::tcp_name(Slot* sl, Endpoint* ep, bool peer) {
  return peer ? tcp_->remote_endpoint(sock(sl->p), ep) : tcp_->local_endpoint(sock(sl->p), ep);
}

int Stack::tcp_setsockopt(Slot* sl, int level, int name, const void* val, size_t len) {
  int v;
  if (!val || len < sizeof(int)) return -EINVAL;
  std::memcpy(&v, val, sizeof v);
  if (level == SOL_SOCKET && name == SO_REUSEPORT) return 0;  // accepted, not implemented for TCP
  return tcp_->set_option(sock(sl->p), level, name, v);
}

int Stack::tcp_getsockopt(Slot* sl, int level, int name, void* val, size_t* len) {
  if (!val || !len || *len < sizeof(int)) return -EINVAL;
  int v = 0;
  if (level == SOL_SOCKET && name == SO_TYPE) v = SOCK_STREAM;
  else {
    int e = tcp_->get_option(sock(sl->p), level, name, &v);
    if (e < 0) return e;
  }
  std::memcpy(val, &v, sizeof v);
  *len = sizeof v;
  return 0;
}

uint32_t Stack::tcp_events(Slot* sl) { return tcp_->events(sock(sl->p)); }

void Stack::tcp_list(std::vector<SocketInfo>* out) {
  if (!tcp_) return;
  std::vector<TcpSocketInfo> v;
  tcp_->list(&v);
  for (auto& t : v) {
    SocketInfo i;
    Slot* sl = slot(t.user_id);
    i.sd = sl && sl->kind == kTcp ? t.user_id : -1;  // -1: closed by the application (FIN-WAIT, TIME-WAIT)
    i.type = SOCK_STREAM;
    i.state = t.state;
    i.local = t.local;
    i.remote = t.remote;
    i.send_queue = t.send_queue;
    i.recv_queue = t.recv_queue;
    i.has_tcp = true;
    i.tcp = t;
    out->push_back(i);
  }
}

#endif

}  // namespace ms
