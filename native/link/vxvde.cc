// vxvde://[GROUP][/options]: vdeplug4's distributed ethernet over UDP multicast, wire- and
// behaviour-compatible with libvdeplug_vxvde (see shared/reference/virtual-networks.md §4).
// Every datagram is an 8-byte header (flags 0x08, 24-bit VNI) followed by one ethernet frame.
// Two sockets: the multicast socket bound to GROUP:PORT (shared with every plug of the host
// through SO_REUSEADDR) receives flooded frames; the unicast socket, bound to an ephemeral
// port, sends everything and receives frames unicast to us by peers that learned our MAC.
// Leaving sends a header-only "goodbye" to the group so peers forget our MACs at once.
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link/vnl.h"

namespace ms {
namespace {

constexpr const char* kDefV4 = "239.0.0.1";
constexpr const char* kDefV6 = "ff05:56de::1";
constexpr uint16_t kDefPort = 14789;
constexpr uint32_t kDefVni = 1;
constexpr size_t kDefHash = 1024;
constexpr uint32_t kDefExpire = 128;  // seconds
constexpr size_t kHdr = 8;

class Vxvde final : public VxLink {
 public:
  Vxvde(int mfd, int ufd, const vnl::SockAddr& group, uint16_t uniport, uint32_t vni, size_t hash, uint32_t expire_s)
      : mfd_(mfd), ufd_(ufd), group_(group), uniport_(uniport), vni_(vni),
        table_(hash, Micros(expire_s) * 1000000), buf_(kHdr + vnl::kMaxFrame + 1) {
    hdr_[0] = 0x08;
    hdr_[4] = uint8_t(vni >> 16); hdr_[5] = uint8_t(vni >> 8); hdr_[6] = uint8_t(vni);
  }
  ~Vxvde() override { close(); }

  const char* kind() const override { return "vxvde"; }
  std::vector<int> fds() const override {
    std::vector<int> v;
    if (mfd_ >= 0) v.push_back(mfd_);
    if (ufd_ >= 0) v.push_back(ufd_);
    return v;
  }
  size_t table_size() const override { return table_.size(); }
  std::string peer_of(const MacAddr& m) const override {
    const vnl::SockAddr* a = table_.lookup(m.b, now_);
    return a ? a->str() : std::string();
  }
  uint16_t local_port() const override { return uniport_; }
  std::string group() const override { return group_.str(); }
  uint32_t vni() const override { return vni_; }

  void set_now(Micros now) override {
    if (now <= now_) return;
    now_ = now;
    if (now_ - swept_ >= 1000000) { swept_ = now_; vx_.expired += table_.sweep(now_); }
  }

  void transmit(const uint8_t* f, size_t n) override {
    if (ufd_ < 0 || n < vnl::kEthHeader || n > vnl::kMaxFrame) { stats_.tx_dropped++; return; }
    const vnl::SockAddr* to = (f[0] & 1) ? nullptr : table_.lookup(f, now_);
    bool uni = to != nullptr;
    if (!to) to = &group_;
    iovec iov[2] = {{hdr_, kHdr}, {const_cast<uint8_t*>(f), n}};
    msghdr m{};
    m.msg_name = const_cast<sockaddr*>(to->sa());
    m.msg_namelen = to->len;
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    if (sendmsg(ufd_, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) stats_.tx_dropped++;
      else stats_.tx_errors++;
      return;
    }
    stats_.tx_frames++;
    stats_.tx_bytes += n;
    (uni ? vx_.tx_unicast : vx_.tx_multicast)++;
  }

  size_t on_readable(int fd, size_t budget) override {
    if (fd < 0 || (fd != mfd_ && fd != ufd_)) return 0;
    bool multi = fd == mfd_;
    size_t done = 0;
    while (done < budget) {
      vnl::SockAddr from;
      iovec iov{buf_.data(), buf_.size()};
      alignas(cmsghdr) uint8_t cbuf[CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo))];
      msghdr m{};
      m.msg_name = from.sa();
      m.msg_namelen = sizeof from.ss;
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = cbuf;
      m.msg_controllen = sizeof cbuf;
      ssize_t r = recvmsg(fd, &m, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) stats_.rx_malformed++;  // e.g. a queued ICMP error
        break;
      }
      from.len = m.msg_namelen;
      done++;
      size_t len = size_t(r);
      if ((m.msg_flags & MSG_TRUNC) || len < kHdr) { stats_.rx_malformed++; continue; }
      bool header_ok = std::memcmp(buf_.data(), hdr_, kHdr) == 0;
      if (len == kHdr) {  // goodbye
        if (!header_ok) { stats_.rx_filtered++; vx_.rx_wrong_header++; continue; }
        if (multi && is_own(from, m)) { stats_.rx_filtered++; vx_.rx_own++; continue; }
        vx_.goodbyes_rx++;
        vx_.forgotten += table_.forget(from);
        continue;
      }
      if (len <= kHdr + vnl::kEthHeader) { stats_.rx_malformed++; continue; }
      if (!header_ok) { stats_.rx_filtered++; vx_.rx_wrong_header++; continue; }
      if (multi && is_own(from, m)) { stats_.rx_filtered++; vx_.rx_own++; continue; }
      const uint8_t* frame = buf_.data() + kHdr;
      if (!(frame[6] & 1) && table_.learn(frame + 6, from, now_)) vx_.learned++;
      deliver(frame, len - kHdr);
      if (mfd_ < 0) break;  // closed from inside the delivery
    }
    return done;
  }

  void close() override {
    if (ufd_ >= 0) {
      // goodbye: a header-only datagram to the group
      sendto(ufd_, hdr_, kHdr, MSG_DONTWAIT | MSG_NOSIGNAL, group_.sa(), group_.len);
      ::close(ufd_);
      ufd_ = -1;
    }
    if (mfd_ >= 0) { ::close(mfd_); mfd_ = -1; }
  }

 private:
  /** our own datagram, looped back by multicast: sent from our unicast port by an address
      of this host (IPv4: the local address it arrived on) */
  bool is_own(const vnl::SockAddr& from, msghdr& m) {
    if (from.port() != uniport_) return false;
    if (from.family() == AF_INET) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          in_pktinfo pi;
          std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
          return pi.ipi_spec_dst.s_addr == reinterpret_cast<const sockaddr_in*>(&from.ss)->sin_addr.s_addr;
        }
      }
      return false;
    }
    if (from.family() == AF_INET6) {  // no ipi_spec_dst for IPv6: any address of this host
      if (own6_.len && own6_.same_ip(from)) return true;
      bool local = false;
      ifaddrs* ifs = nullptr;
      if (getifaddrs(&ifs) == 0) {
        for (ifaddrs* i = ifs; i && !local; i = i->ifa_next)
          if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET6 &&
              std::memcmp(&reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr,
                          &reinterpret_cast<const sockaddr_in6*>(&from.ss)->sin6_addr, 16) == 0)
            local = true;
        freeifaddrs(ifs);
      }
      if (local) own6_ = from;
      return local;
    }
    return false;
  }

  int mfd_, ufd_;
  vnl::SockAddr group_, own6_;
  uint16_t uniport_;
  uint32_t vni_;
  uint8_t hdr_[kHdr] = {};
  vnl::MacTable table_;
  Micros now_ = 0, swept_ = 0;
  std::vector<uint8_t> buf_;
};

struct Fds {
  int m = -1, u = -1;
  ~Fds() { if (m >= 0) ::close(m); if (u >= 0) ::close(u); }
};

FdLinkOpen sys_fail(const char* what, int err) {
  return vnl::fail(err, std::string("vxvde: ") + what + ": " + vnl::errno_name(err) + " (" + std::strerror(err) + ")");
}

}  // namespace

FdLinkOpen open_vxvde_link(const std::string& rest, const FdLinkParams& params) {
  if (rest.size() > vnl::kMaxUrl) return vnl::fail(EINVAL, "vxvde: URL too long");
  std::vector<std::string> elems = vnl::split_quoted(rest, "/");
  std::string host = elems[0];
  elems.erase(elems.begin());
  // the order decides prefix matches, as in vdeplug4 ("v" is vni); bind= is upstream's
  std::vector<vnl::Param> ps = {{"port"}, {"vni"}, {"grp"}, {"ttl"}, {"rcvbuf"}, {"v6"}, {"v4"},
                                {"hashsize"}, {"expiretime"}, {"if"}, {"bind"}};
  std::string err;
  if (!vnl::apply_params(elems, ps, &err)) return vnl::fail(EINVAL, "vxvde: " + err + " in '" + rest + "'");
  auto bad = [&](const char* key) {
    return vnl::fail(EINVAL, std::string("vxvde: bad ") + key + "= value '" + vnl::param(ps, key).value + "'");
  };
  uint64_t v;
  uint16_t port = kDefPort;
  if (vnl::param(ps, "port").set) {
    if (!vnl::parse_uint(vnl::param(ps, "port").value, 1, 65535, &v)) return bad("port");
    port = uint16_t(v);
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
    expire = v ? uint32_t(v) : kDefExpire;  // as vdeplug4: <= 0 means the default
  }
  bool grp_set = vnl::param(ps, "grp").set;
  uint32_t gid = 0;
  if (grp_set && !vnl::parse_gid(vnl::param(ps, "grp").value, &gid)) return bad("grp");
  uint32_t vni = grp_set ? (gid & 0xffffff) : kDefVni;
  if (vnl::param(ps, "vni").set) {
    uint32_t g;
    if (!vnl::parse_gid(vnl::param(ps, "vni").value, &g) || g > 0xffffff) return bad("vni");
    vni = g;
  }
  unsigned ifindex = 0;
  if (vnl::param(ps, "if").set) {
    const std::string& name = vnl::param(ps, "if").value;
    ifindex = name.size() < IF_NAMESIZE ? if_nametoindex(name.c_str()) : 0;
    if (!ifindex) return vnl::fail(ENODEV, "vxvde: no interface '" + name + "' (if=)");
  }
  bool v4 = vnl::param(ps, "v4").set, v6 = vnl::param(ps, "v6").set;
  int family = v4 == v6 ? AF_UNSPEC : v4 ? AF_INET : AF_INET6;
  if (host.empty()) host = v6 ? kDefV6 : kDefV4;
  vnl::SockAddr group;
  if (int e = vnl::resolve(host, port, family, &group, &err)) return vnl::fail(e, "vxvde: " + err);
  if (grp_set) {  // the last three bytes of the group become the gid
    size_t n;
    uint8_t* b = vnl::ip_bytes(group, &n);
    b[n - 3] = uint8_t(gid >> 16); b[n - 2] = uint8_t(gid >> 8); b[n - 1] = uint8_t(gid);
  }
  if (!vnl::is_multicast(group)) return vnl::fail(EINVAL, "vxvde: " + host + " is not a multicast address");
  vnl::SockAddr bindaddr;
  if (vnl::param(ps, "bind").set) {
    if (int e = vnl::resolve(vnl::param(ps, "bind").value, 0, group.family(), &bindaddr, &err))
      return vnl::fail(e, "vxvde: bind=: " + err);
  } else {
    bindaddr.ss.ss_family = sa_family_t(group.family());
    bindaddr.len = group.family() == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  }

  Fds fd;
  int fam = group.family();
  int one = 1;
  fd.m = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd.m < 0) return sys_fail("socket", errno);
  fd.u = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd.u < 0) return sys_fail("socket", errno);
  if (rcvbuf && setsockopt(fd.u, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) return sys_fail("SO_RCVBUF", errno);
  setsockopt(fd.m, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fam == AF_INET) {
    if (setsockopt(fd.u, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) < 0 ||
        setsockopt(fd.u, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) < 0 ||
        setsockopt(fd.u, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof one) < 0 ||
        setsockopt(fd.m, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0)
      return sys_fail("setsockopt", errno);
  } else {
    if (setsockopt(fd.u, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof ttl) < 0 ||
        setsockopt(fd.u, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &one, sizeof one) < 0 ||
        setsockopt(fd.m, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) < 0)
      return sys_fail("setsockopt", errno);
  }
  if (bind(fd.m, group.sa(), group.len) < 0)
    return vnl::fail(errno, "vxvde: cannot bind the group " + group.str() + ": " + vnl::errno_name(errno));
  if (fam == AF_INET) {
    ip_mreqn mr{};
    mr.imr_multiaddr = reinterpret_cast<const sockaddr_in*>(&group.ss)->sin_addr;
    mr.imr_ifindex = int(ifindex);
    if (setsockopt(fd.m, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
      return vnl::fail(errno, "vxvde: cannot join " + group.str() + " (IP_ADD_MEMBERSHIP: " + vnl::errno_name(errno) +
                                  "; is there a multicast route or an if= interface?)");
  } else {
    ipv6_mreq mr{};
    mr.ipv6mr_multiaddr = reinterpret_cast<const sockaddr_in6*>(&group.ss)->sin6_addr;
    mr.ipv6mr_interface = ifindex;
    if (setsockopt(fd.m, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
      return vnl::fail(errno, "vxvde: cannot join " + group.str() + " (IPV6_ADD_MEMBERSHIP: " + vnl::errno_name(errno) + ")");
  }
  if (bind(fd.u, bindaddr.sa(), bindaddr.len) < 0)
    return vnl::fail(errno, "vxvde: cannot bind the unicast socket to " + bindaddr.str() + ": " + vnl::errno_name(errno));
  if (ifindex) {
    if (fam == AF_INET) {
      ip_mreqn mr{};
      mr.imr_ifindex = int(ifindex);
      if (setsockopt(fd.u, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr) < 0) return sys_fail("IP_MULTICAST_IF", errno);
    } else if (setsockopt(fd.u, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0) {
      return sys_fail("IPV6_MULTICAST_IF", errno);
    }
  }
  vnl::SockAddr local;
  local.len = sizeof local.ss;
  if (getsockname(fd.u, local.sa(), &local.len) < 0) return sys_fail("getsockname", errno);
  (void)params;
  FdLinkOpen r;
  r.link.reset(new Vxvde(fd.m, fd.u, group, local.port(), vni, hash, expire));
  fd.m = fd.u = -1;
  return r;
}

}  // namespace ms
