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

constexpr uint16_t kDefPort = 4789;

class Vxlan final : public VxBase {
 public:
  Vxlan(int fd, const vnl::SockAddr& group, uint16_t port, uint32_t vni, size_t hash, uint32_t expire_s, const MacAddr& mac)
      : VxBase(group, vni, hash, expire_s), fd_(fd), port_(port), mac_(mac) {}
  ~Vxlan() override { close(); }

  const char* kind() const override { return "vxlan"; }
  std::vector<int> fds() const override { return fd_ >= 0 ? std::vector<int>{fd_} : std::vector<int>{}; }
  uint16_t local_port() const override { return port_; }

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
      learn(frame, from);
      deliver(frame, len - kHdr);
      if (fd_ < 0) break;
    }
    return done;
  }

  void close() override {
    if (fd_ >= 0) { ::close(fd_); fd_ = -1; }
  }

 private:
  int send_fd() const override { return fd_; }

  int fd_;
  uint16_t port_;
  MacAddr mac_;
};

FdLinkOpen sys_fail(const char* what, int err) {
  return vnl::fail(err, std::string("vxlan: ") + what + ": " + vnl::errno_name(err) + " (" + std::strerror(err) + ")");
}

}  // namespace

FdLinkOpen open_vxlan_link(const std::string& rest, const FdLinkParams& params) {
  vnl::VxUrl u;
  FdLinkOpen failed;
  if (!vnl::vx_parse("vxlan", rest, {{"port"}, {"vni"}, {"ttl"}, {"rcvbuf"}, {"v6"}, {"v4"}, {"hashsize"}, {"expiretime"}, {"if"}},
                     kDefPort, &u, &failed))
    return failed;
  uint32_t vni = 1;
  if (!vnl::opt_uint(u.ps, "vni", 0, 0xffffff, &vni)) return vnl::bad_value("vxlan", u.ps, "vni");
  vnl::SockAddr group;
  if (!vnl::vx_group("vxlan", &u, &group, &failed)) return failed;
  uint16_t port = u.port;
  int ttl = u.ttl, rcvbuf = u.rcvbuf;
  unsigned ifindex = u.ifindex;

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
  if (!vnl::join_group(fd, group, ifindex, "vxlan", &failed)) return failed;
  const char* what;
  if (ifindex)
    if (int e = vnl::set_multicast_if(fd, fam, ifindex, &what)) return sys_fail(what, e);
  FdLinkOpen r;
  r.link.reset(new Vxlan(fd, group, port, vni, u.hash, u.expire, params.mac));
  guard.fd = -1;
  return r;
}

}  // namespace ms
