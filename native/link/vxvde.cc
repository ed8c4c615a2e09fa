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

constexpr uint16_t kDefPort = 14789;
constexpr uint32_t kDefVni = 1;

class Vxvde final : public VxBase {
 public:
  Vxvde(int mfd, int ufd, const vnl::SockAddr& group, uint16_t uniport, uint32_t vni, size_t hash, uint32_t expire_s)
      : VxBase(group, vni, hash, expire_s), mfd_(mfd), ufd_(ufd), uniport_(uniport) {}
  ~Vxvde() override { close(); }

  const char* kind() const override { return "vxvde"; }
  std::vector<int> fds() const override {
    std::vector<int> v;
    if (mfd_ >= 0) v.push_back(mfd_);
    if (ufd_ >= 0) v.push_back(ufd_);
    return v;
  }
  uint16_t local_port() const override { return uniport_; }

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
      learn(frame, from);
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

  int send_fd() const override { return ufd_; }

  int mfd_, ufd_;
  vnl::SockAddr own6_;
  uint16_t uniport_;
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
  vnl::VxUrl u;
  FdLinkOpen failed;
  // the order decides prefix matches, as in vdeplug4 ("v" is vni); bind= is upstream's
  if (!vnl::vx_parse("vxvde", rest, {{"port"}, {"vni"}, {"grp"}, {"ttl"}, {"rcvbuf"}, {"v6"}, {"v4"}, {"hashsize"}, {"expiretime"}, {"if"}, {"bind"}},
                     kDefPort, &u, &failed))
    return failed;
  std::vector<vnl::Param>& ps = u.ps;
  auto bad = [&](const char* key) { return vnl::bad_value("vxvde", ps, key); };
  bool grp_set = vnl::param(ps, "grp").set;
  uint32_t gid = 0;
  if (grp_set && !vnl::parse_gid(vnl::param(ps, "grp").value, &gid)) return bad("grp");
  uint32_t vni = grp_set ? (gid & 0xffffff) : kDefVni;
  if (vnl::param(ps, "vni").set) {
    uint32_t g;
    if (!vnl::parse_gid(vnl::param(ps, "vni").value, &g) || g > 0xffffff) return bad("vni");
    vni = g;
  }
  vnl::SockAddr group;
  if (!vnl::vx_group("vxvde", &u, &group, &failed)) return failed;
  if (grp_set) {  // the last three bytes of the group become the gid (the first, multicast, stays)
    size_t n;
    uint8_t* b = vnl::ip_bytes(group, &n);
    b[n - 3] = uint8_t(gid >> 16); b[n - 2] = uint8_t(gid >> 8); b[n - 1] = uint8_t(gid);
  }
  int ttl = u.ttl, rcvbuf = u.rcvbuf;
  unsigned ifindex = u.ifindex;
  vnl::SockAddr bindaddr;
  std::string err;
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
  if (!vnl::join_group(fd.m, group, ifindex, "vxvde", &failed)) return failed;
  if (bind(fd.u, bindaddr.sa(), bindaddr.len) < 0)
    return vnl::fail(errno, "vxvde: cannot bind the unicast socket to " + bindaddr.str() + ": " + vnl::errno_name(errno));
  const char* what;
  if (ifindex)
    if (int e = vnl::set_multicast_if(fd.u, fam, ifindex, &what)) return sys_fail(what, e);
  vnl::SockAddr local;
  local.len = sizeof local.ss;
  if (getsockname(fd.u, local.sa(), &local.len) < 0) return sys_fail("getsockname", errno);
  (void)params;
  FdLinkOpen r;
  r.link.reset(new Vxvde(fd.m, fd.u, group, local.port(), vni, u.hash, u.expire));
  fd.m = fd.u = -1;
  return r;
}

}  // namespace ms
