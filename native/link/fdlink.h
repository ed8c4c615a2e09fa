// Links to networks outside the process: vde://, vxvde://, vxlan://, tap://, udp://, cmd://.
// Each driver owns one or more non-blocking descriptors. The binding polls fds() with uv_poll
// and calls on_readable()/on_writable(); the driver reads whole frames and hands each to the
// receiver set with set_receiver(). transmit() never blocks: a frame that cannot be written
// now is queued in a bounded buffer (stream links) or dropped and counted (datagram links),
// as a NIC's full transmit ring would. A link that fails for good (the switch hung up, the
// child exited, the device vanished) goes down(): it stops, keeps its reason, and the
// binding reports it. No threads, no global state; time is given (set_now) where a driver
// ages tables (vxvde, vxlan).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/common.h"
#include "engine/link.h"

namespace ms {

struct FdLinkStats {
  uint64_t rx_frames = 0, rx_bytes = 0, tx_frames = 0, tx_bytes = 0;
  uint64_t rx_malformed = 0;   // datagrams/records that are not a valid frame for this link
  uint64_t rx_filtered = 0;    // valid but not for us (other VNI, our own multicast echo, ...)
  uint64_t tx_dropped = 0;     // would block / buffer full / too big for the link
  uint64_t tx_errors = 0;      // a system call failed otherwise
};

/** what the binding knows when it opens a link (the interface that will use it) */
struct FdLinkParams {
  MacAddr mac;        // the interface's MAC (vxvde goodbye, tap device address, ...)
  uint32_t mtu = 1500;  // the interface's IP MTU: frames up to mtu + 14 (+4 for a VLAN tag)
};

class FdLink : public Link {
 public:
  using Deliver = void (*)(void* ctx, const uint8_t* frame, size_t len);

  ~FdLink() override = default;
  void set_receiver(Deliver fn, void* ctx) { deliver_ = fn; ctx_ = ctx; }

  /** the descriptors to poll for reading (and, when wants_write(fd), for writing) */
  virtual std::vector<int> fds() const = 0;
  /** fd is readable: read and deliver up to budget frames; returns how many were read
      (delivered or counted as malformed/filtered). May set down(). */
  virtual size_t on_readable(int fd, size_t budget) = 0;
  /** output is queued on fd and the binding should poll it for writing */
  virtual bool wants_write(int /*fd*/) const { return false; }
  /** fd is writable: flush queued output */
  virtual void on_writable(int /*fd*/) {}
  /** the clock, microseconds (monotonic, any origin); drivers with tables age them here */
  virtual void set_now(Micros /*now*/) {}
  /** leave politely (vxvde goodbye, vde hang-up), close the descriptors; idempotent */
  virtual void close() = 0;

  bool down() const { return down_; }
  const std::string& down_reason() const { return down_reason_; }
  const FdLinkStats& stats() const { return stats_; }
  /** 'vde', 'vxvde', 'vxlan', 'tap', 'udp', 'cmd' */
  virtual const char* kind() const = 0;

 protected:
  void deliver(const uint8_t* frame, size_t len) {
    stats_.rx_frames++;
    stats_.rx_bytes += len;
    if (deliver_) deliver_(ctx_, frame, len);
  }
  void set_down(std::string reason) {
    if (!down_) { down_ = true; down_reason_ = std::move(reason); }
  }
  FdLinkStats stats_;

 private:
  Deliver deliver_ = nullptr;
  void* ctx_ = nullptr;
  bool down_ = false;
  std::string down_reason_;
};

/** the outcome of opening a link: a link, or an errno (positive, e.g. ENOENT) and a message
    that says what failed and why ("vde: no switch at /tmp/x.ctl (connect: ENOENT)") */
struct FdLinkOpen {
  std::unique_ptr<FdLink> link;
  int err = 0;
  std::string message;
};

/** open by URL ('vde:///path[port]', 'vxvde://239.1.2.3/vni=1', 'tap://name', ...); the scheme
    selects the driver. Unknown scheme: EPROTONOSUPPORT. Malformed URL/options: EINVAL. */
FdLinkOpen open_fd_link(const std::string& url, const FdLinkParams& params);

// one function per driver, each in its own file (native/link/<kind>.cc); `rest` is the URL
// after "scheme://"
FdLinkOpen open_vde_link(const std::string& rest, const FdLinkParams& params);
FdLinkOpen open_vxvde_link(const std::string& rest, const FdLinkParams& params);
FdLinkOpen open_vxlan_link(const std::string& rest, const FdLinkParams& params);
FdLinkOpen open_tap_link(const std::string& rest, const FdLinkParams& params);
FdLinkOpen open_udp_link(const std::string& rest, const FdLinkParams& params);
FdLinkOpen open_cmd_link(const std::string& rest, const FdLinkParams& params);

}  // namespace ms
