// vxlan://[GROUP][/options]: VXLAN (RFC 7348) as Linux vxlan devices and vdeplug4's
// libvdeplug_vxlan speak it (see shared/reference/virtual-networks.md §4.5): UDP port 4789 by
// default, an 8-byte header (flags 0x08, 24-bit VNI) before each ethernet frame. One socket
// bound to ANY:PORT receives unicast and multicast and sends everything, so there is one
// vxlan link per host (network namespace) and port. Learned peers are answered on the VXLAN
// port, not on the source port they sent from: that is what a kernel vxlan device listens on.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link/vnl.h"

namespace ms {
namespace {

constexpr const char* kDefV4 = "239.0.0.1";
constexpr const char* kDefV6 = "ff05:56de::1";
constexpr uint16_t kDefPort = 4789;
constexpr size_t kDefHash = 1024;
constexpr uint32_t kDefExpire = 128;  // seconds
constexpr size_t kHdr = 8;

class Vxlan final : public VxLink {
 public:
  Vxlan(int fd, const vnl::SockAddr& group, uint16_t port, uint32_t vni, size_t hash, uint32_t expire_s, const MacAddr& mac)
      : fd_(fd), group_(group), port_(port), vni_(vni), table_(hash, Micros(expire_s) * 1000000), mac_(mac),
        buf_(kHdr + vnl::kMaxFrame + 1) {
    hdr_[0] = 0x08;
    hdr_[4] = uint8_t(vni >> 16); hdr_[5] = uint8_t(vni >> 8); hdr_[6] = uint8_t(vni);
  }
  ~Vxlan() override { close(); }

  const char* kind() const override { return "vxlan"; }
  std::vector<int> fds() const override { return fd_ >= 0 ? std::vector<int>{fd_} : std::vector<int>{}; }
  size_t table_size() const override { return table_.size(); }
  std::string peer_of(const MacAddr& m) const override {
    const vnl::SockAddr* a = table_.lookup(m.b, now_);
    return a ? a->str() : std::string();
  }
  uint16_t local_port() const override { return port_; }
  std::string group() const override { return group_.str(); }
  uint32_t vni() const override { return vni_; }

  void set_now(Micros now) override {
    if (now <= now_) return;
    now_ = now;
    if (now_ - swept_ >= 1000000) { swept_ = now_; vx_.expired += table_.sweep(now_); }
  }

  void transmit(const uint8_t* f, size_t n) override {
    if (fd_ < 0 || n < vnl::kEthHeader || n > vnl::kMaxFrame) { stats_.tx_dropped++; return; }
    const vnl::SockAddr* to = (f[0] & 1) ? nullptr : table_.lookup(f, now_);
    bool uni = to != nullptr;
    if (!to) to = &group_;
    iovec iov[2] = {{hdr_, kHdr}, {const_cast<uint8_t*>(f), n}};
    msghdr m{};
    m.msg_name = const_cast<sockaddr*>(to->sa());
    m.msg_namelen = to->len;
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    if (sendmsg(fd_, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) stats_.tx_dropped++;
      else stats_.tx_errors++;
      return;
    }
    stats_.tx_frames++;
    stats_.tx_bytes += n;
    (uni ? vx_.tx_unicast : vx_.tx_multicast)++;
  }

  size_t on_readable(int fd, size_t budget) override {
    if (fd < 0 || fd != fd_) return 0;
    size_t done = 0;
    while (done < budget) {
      vnl::SockAddr from;
      iovec iov{buf_.data(), buf_.size()};
      msghdr m{};
      m.msg_name = from.sa();
      m.msg_namelen = sizeof from.ss;
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      ssize_t r = recvmsg(fd, &m, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) stats_.rx_malformed++;
        break;
      }
      from.len = m.msg_namelen;
      done++;
      size_t len = size_t(r);
      if ((m.msg_flags & MSG_TRUNC) || len <= kHdr + vnl::kEthHeader) { stats_.rx_malformed++; continue; }
      const uint8_t* h = buf_.data();
      // the I flag and our VNI; the reserved bytes are not checked (RFC 7348: ignored on receipt)
      if (h[0] != 0x08 || h[4] != hdr_[4] || h[5] != hdr_[5] || h[6] != hdr_[6]) {
        stats_.rx_filtered++;
        vx_.rx_wrong_header++;
        continue;
      }
      const uint8_t* frame = h + kHdr;
      if (std::memcmp(frame + 6, mac_.b, 6) == 0) {  // our own frame, reflected back to us
        stats_.rx_filtered++;
        vx_.rx_own++;
        continue;
      }
      from.set_port(port_);  // peers listen on the VXLAN port, whatever port they sent from
      if (!(frame[6] & 1) && table_.learn(frame + 6, from, now_)) vx_.learned++;
      deliver(frame, len - kHdr);
      if (fd_ < 0) break;
    }
    return done;
  }

  void close() override {
    if (fd_ >= 0) { ::close(fd_); fd_ = -1; }
  }

 private:
  int fd_;
  vnl::SockAddr group_;
  uint16_t port_;
  uint32_t vni_;
  uint8_t hdr_[kHdr] = {};
  vnl::MacTable table_;
  MacAddr mac_;
  Micros now_ = 0, swept_ = 0;
  std::vector<uint8_t> buf_;
};

FdLinkOpen sys_fail(const char* what, int err) {
  return vnl::fail(err, std::string("vxlan: ") + what + ": " + vnl::errno_name(err) + " (" + std::strerror(err) + ")");
}

}  // namespace

FdLinkOpen open_vxlan_link(const std::string& rest, const FdLinkParams& params) {
  if (rest.size() > vnl::kMaxUrl) return vnl::fail(EINVAL, "vxlan: URL too long");
  std::vector<std::string> elems = vnl::split_quoted(rest, "/");
  std::string host = elems[0];
  elems.erase(elems.begin());
  std::vector<vnl::Param> ps = {{"port"}, {"vni"}, {"ttl"}, {"rcvbuf"}, {"v6"}, {"v4"},
                                {"hashsize"}, {"expiretime"}, {"if"}};
  std::string err;
  if (!vnl::apply_params(elems, ps, &err)) return vnl::fail(EINVAL, "vxlan: " + err + " in '" + rest + "'");
  auto bad = [&](const char* key) {
    return vnl::fail(EINVAL, std::string("vxlan: bad ") + key + "= value '" + vnl::param(ps, key).value + "'");
  };
  uint64_t v;
  uint16_t port = kDefPort;
  if (vnl::param(ps, "port").set) {
    if (!vnl::parse_uint(vnl::param(ps, "port").value, 1, 65535, &v)) return bad("port");
    port = uint16_t(v);
  }
  uint32_t vni = 1;
  if (vnl::param(ps, "vni").set) {
    if (!vnl::parse_uint(vnl::param(ps, "vni").value, 0, 0xffffff, &v)) return bad("vni");
    vni = uint32_t(v);
  }
  int ttl = 1;
  if (vnl::param(ps, "ttl").set) {
    if (!vnl::parse_uint(vnl::param(ps, "ttl").value, 0, 255, &v)) return bad("ttl");
    ttl = int(v);
  }
  int rcvbuf = 0;
  if (vnl::param(ps, "rcvbuf").set) {
    if (!vnl::parse_size(vnl::param(ps, "rcvbuf").value, 1u << 30, &v)) return bad("rcvbuf");
    rcvbuf = int(v);
  }
  size_t hash = kDefHash;
  if (vnl::param(ps, "hashsize").set) {
    if (!vnl::parse_uint(vnl::param(ps, "hashsize").value, 1, 1u << 20, &v)) return bad("hashsize");
    hash = size_t(v);
  }
  uint32_t expire = kDefExpire;
  if (vnl::param(ps, "expiretime").set) {
    if (!vnl::parse_uint(vnl::param(ps, "expiretime").value, 0, 1u << 30, &v)) return bad("expiretime");
    expire = v ? uint32_t(v) : kDefExpire;
  }
  unsigned ifindex = 0;
  if (vnl::param(ps, "if").set) {
    const std::string& name = vnl::param(ps, "if").value;
    ifindex = name.size() < IF_NAMESIZE ? if_nametoindex(name.c_str()) : 0;
    if (!ifindex) return vnl::fail(ENODEV, "vxlan: no interface '" + name + "' (if=)");
  }
  bool v4 = vnl::param(ps, "v4").set, v6 = vnl::param(ps, "v6").set;
  int family = v4 == v6 ? AF_UNSPEC : v4 ? AF_INET : AF_INET6;
  if (host.empty()) host = v6 ? kDefV6 : kDefV4;
  vnl::SockAddr group;
  if (int e = vnl::resolve(host, port, family, &group, &err)) return vnl::fail(e, "vxlan: " + err);
  if (!vnl::is_multicast(group)) return vnl::fail(EINVAL, "vxlan: " + host + " is not a multicast address");

  int fam = group.family();
  int fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) return sys_fail("socket", errno);
  struct Closer { int fd; ~Closer() { if (fd >= 0) ::close(fd); } } guard{fd};
  int zero = 0;
  if (rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) return sys_fail("SO_RCVBUF", errno);
  vnl::SockAddr any;
  any.ss.ss_family = sa_family_t(fam);
  any.len = fam == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  any.set_port(port);
  if (fam == AF_INET) {
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof zero) < 0)
      return sys_fail("setsockopt", errno);
  } else {
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof ttl) < 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &zero, sizeof zero) < 0)
      return sys_fail("setsockopt", errno);
  }
  if (bind(fd, any.sa(), any.len) < 0) {
    int e = errno;
    return vnl::fail(e, "vxlan: cannot bind UDP port " + std::to_string(port) + ": " + vnl::errno_name(e) +
                            (e == EADDRINUSE ? " (one vxlan endpoint per host and port: a kernel vxlan device or another plug has it)" : ""));
  }
  if (fam == AF_INET) {
    ip_mreqn mr{};
    mr.imr_multiaddr = reinterpret_cast<const sockaddr_in*>(&group.ss)->sin_addr;
    mr.imr_ifindex = int(ifindex);
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
      return vnl::fail(errno, "vxlan: cannot join " + group.str() + " (IP_ADD_MEMBERSHIP: " + vnl::errno_name(errno) +
                                  "; is there a multicast route or an if= interface?)");
    if (ifindex) {
      ip_mreqn mi{};
      mi.imr_ifindex = int(ifindex);
      if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mi, sizeof mi) < 0) return sys_fail("IP_MULTICAST_IF", errno);
    }
  } else {
    ipv6_mreq mr{};
    mr.ipv6mr_multiaddr = reinterpret_cast<const sockaddr_in6*>(&group.ss)->sin6_addr;
    mr.ipv6mr_interface = ifindex;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
      return vnl::fail(errno, "vxlan: cannot join " + group.str() + " (IPV6_ADD_MEMBERSHIP: " + vnl::errno_name(errno) + ")");
    if (ifindex && setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0)
      return sys_fail("IPV6_MULTICAST_IF", errno);
  }
  FdLinkOpen r;
  r.link.reset(new Vxlan(fd, group, port, vni, hash, expire, params.mac));
  guard.fd = -1;
  return r;
}

}  // namespace ms
