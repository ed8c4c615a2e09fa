// tap://NAME: a kernel TAP device through /dev/net/tun (IFF_TAP | IFF_NO_PI), one frame per
// read()/write(). The device is created when absent (needs CAP_NET_ADMIN) and, when we
// created it, disappears when the link closes; an existing (persistent) device is attached
// to and left in place. The link does NOT bring the device up nor configure it: the kernel
// side of the device is another host (often moved into a network namespace), configured by
// whoever owns it (`ip link set NAME up`). Until it is up, the kernel drops what we write
// (counted in tx_dropped) and sends nothing.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "link/fdlink.h"
#include "link/fdutil.h"

namespace ms {
namespace {

class TapLink final : public FdLink {
 public:
  TapLink(int fd, std::string name) : fd_(fd), name_(std::move(name)), buf_(65536 + 64) {}
  ~TapLink() override { close(); }

  std::vector<int> fds() const override { return fd_ >= 0 ? std::vector<int>{fd_} : std::vector<int>{}; }
  const char* kind() const override { return "tap"; }

  size_t on_readable(int fd, size_t budget) override {
    size_t n = 0;
    while (fd_ >= 0 && n < budget) {
      ssize_t r = ::read(fd_, buf_.data(), buf_.size());
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        gone("read", errno);
        break;
      }
      if (r == 0) break;
      n++;
      if (r < 14 || size_t(r) >= buf_.size()) { stats_.rx_malformed++; continue; }
      deliver(buf_.data(), size_t(r));
    }
    return n;
  }

  void transmit(const uint8_t* frame, size_t len) override {
    if (fd_ < 0 || down()) { stats_.tx_dropped++; return; }
    for (;;) {
      ssize_t r = ::write(fd_, frame, len);
      if (r >= 0) { stats_.tx_frames++; stats_.tx_bytes += len; return; }
      if (errno == EINTR) continue;
      // EAGAIN: the device queue is full; EIO: the device is down
      if (errno == EAGAIN || errno == EIO || errno == EINVAL || errno == EMSGSIZE) { stats_.tx_dropped++; return; }
      stats_.tx_errors++;
      if (errno == EBADFD || errno == ENODEV || errno == ENXIO) gone("write", errno);
      return;
    }
  }

  void close() override {
    if (fd_ >= 0) { ::close(fd_); fd_ = -1; }
  }

 private:
  void gone(const char* call, int e) {
    set_down("tap: device " + name_ + " is gone (" + call + ": " + errno_text(e) + ")");
  }
  int fd_;
  std::string name_;
  std::vector<uint8_t> buf_;
};

bool valid_ifname(const std::string& n) {
  if (n.empty() || n.size() >= IFNAMSIZ || n == "." || n == "..") return false;
  for (unsigned char c : n) if (c <= ' ' || c == '/' || c == ':' || c >= 0x7f) return false;
  return true;
}

}  // namespace

FdLinkOpen open_tap_link(const std::string& rest, const FdLinkParams&) {
  if (!valid_ifname(rest)) {
    return link_error(EINVAL, "tap: '" + rest + "' is not a device name (1 to 15 characters, no '/', ':' or spaces)");
  }
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == EACCES || e == EPERM) {
      return link_error(EPERM, "tap: no permission to open /dev/net/tun (open: " + errno_text(e) +
                        "); TAP devices need CAP_NET_ADMIN, or read-write access to /dev/net/tun and a persistent device owned by this user");
    }
    return link_error(e, "tap: cannot open /dev/net/tun (open: " + errno_text(e) + ")");
  }
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::memcpy(ifr.ifr_name, rest.data(), rest.size());
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    ::close(fd);
    if (e == EPERM || e == EACCES) {
      return link_error(EPERM, "tap: creating or attaching to device " + rest +
                        " needs CAP_NET_ADMIN (or a persistent device owned by this user) (TUNSETIFF: " + errno_text(e) + ")");
    }
    if (e == EBUSY) return link_error(EBUSY, "tap: device " + rest + " is already in use by another program (TUNSETIFF: EBUSY)");
    return link_error(e, "tap: cannot attach to device " + rest + " (TUNSETIFF: " + errno_text(e) + ")");
  }
  FdLinkOpen r;
  r.link = std::make_unique<TapLink>(fd, rest);
  return r;
}

}  // namespace ms
