// vde:///DIR[port]: a port of a vde_switch (or a vdeplug4 hub:// / switch:// node), wire-
// compatible with libvdeplug_vde (see shared/reference/virtual-networks.md §3). Opening it
// connects to DIR/ctl, sends a version-3 request naming our datagram socket, reads back the
// switch's datagram socket for the port and connects to it; frames then travel one per
// datagram. The control connection stays open: closing it frees the port on the switch.
// A frame the switch cannot take now (its socket queue is full) waits in a bounded queue
// and goes when the socket turns writable, as a NIC's transmit ring would.
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "engine/ring.h"
#include "link/vnl.h"

namespace ms {
namespace {

constexpr uint32_t kMagic = 0xfeedface;
constexpr uint32_t kVersion = 3;
constexpr size_t kSunSize = sizeof(sockaddr_un);  // 110 on Linux
constexpr int kReplyTimeoutMs = 3000;
constexpr size_t kQueueBytes = 512 * 1024;  // frames waiting for the switch, at most
constexpr size_t kMaxDescr = 128;

class Vde final : public VdeLink {
 public:
  Vde(int ctl, int data, std::string sw) : ctl_(ctl), data_(data), sw_(std::move(sw)), q_(16384, kQueueBytes),
                                            buf_(vnl::kMaxFrame + 1) {
    // "/dir/005.8": the port number is the leading digits of the last path component
    size_t slash = sw_.rfind('/');
    const char* p = sw_.c_str() + (slash == std::string::npos ? 0 : slash + 1);
    int n = 0, digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 6) { n = n * 10 + (*p - '0'); p++; digits++; }
    port_ = digits && *p == '.' ? n : 0;
  }
  ~Vde() override { close(); }

  const char* kind() const override { return "vde"; }
  const std::string& switch_socket() const override { return sw_; }
  int port() const override { return port_; }
  size_t queued() const override { return q_.count(); }

  std::vector<int> fds() const override {
    std::vector<int> v;
    if (data_ >= 0) v.push_back(data_);
    if (ctl_ >= 0) v.push_back(ctl_);
    return v;
  }
  bool wants_write(int fd) const override { return fd >= 0 && fd == data_ && !q_.empty() && !down(); }

  void transmit(const uint8_t* f, size_t n) override {
    if (data_ < 0 || down() || n < vnl::kEthHeader || n > vnl::kMaxFrame) { stats_.tx_dropped++; return; }
    if (q_.empty()) {
      ssize_t r = send(data_, f, n, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r >= 0) { stats_.tx_frames++; stats_.tx_bytes += n; return; }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) { send_error(errno); return; }
    }
    if (!q_.push_copy(f, n)) stats_.tx_dropped++;
  }

  void on_writable(int fd) override {
    if (fd != data_ || data_ < 0 || down()) return;
    while (!q_.empty()) {
      size_t n;
      uint8_t* f = q_.front(&n);
      ssize_t r = send(data_, f, n, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return;
        q_.pop();
        send_error(errno);
        if (down()) return;
        continue;
      }
      stats_.tx_frames++;
      stats_.tx_bytes += n;
      q_.pop();
    }
  }

  size_t on_readable(int fd, size_t budget) override {
    if (fd < 0) return 0;
    if (fd == ctl_) {
      // the switch never writes here: EOF (or an error) means it is gone
      char b[256];
      ssize_t r = recv(ctl_, b, sizeof b, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        went_down("vde: the switch closed the control connection (" + sw_ + ")");
      return 0;
    }
    if (fd != data_ || down()) return 0;
    size_t done = 0;
    while (done < budget && !down()) {
      ssize_t r = recv(data_, buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_TRUNC);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) stats_.rx_malformed++;
        break;
      }
      done++;
      if (size_t(r) < vnl::kEthHeader || size_t(r) > vnl::kMaxFrame) { stats_.rx_malformed++; continue; }
      deliver(buf_.data(), size_t(r));
    }
    return done;
  }

  void close() override { shut(); }

 private:
  void send_error(int err) {
    stats_.tx_errors++;
    if (err == ECONNREFUSED || err == ENOTCONN || err == EPIPE)  // the switch's socket is gone
      went_down("vde: the switch port's socket is gone (" + sw_ + ": " + vnl::errno_name(err) + ")");
  }
  /** the switch is gone: no more I/O; the descriptors stay open until close() (the binding
      stops polling them first) */
  void went_down(std::string why) {
    set_down(std::move(why));
    q_.clear();
    q_.release();
  }
  void shut() {
    if (data_ >= 0) { ::close(data_); data_ = -1; }
    if (ctl_ >= 0) { ::close(ctl_); ctl_ = -1; }  // the switch frees the port on EOF
    q_.clear();
    q_.release();
  }

  int ctl_, data_;
  std::string sw_;
  int port_ = 0;
  RecordRing q_;
  std::vector<uint8_t> buf_;
};

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) ::close(fd); }
};

/** the path of our datagram socket, unlinked when it goes out of scope */
struct BoundPath {
  std::string path;
  ~BoundPath() { if (!path.empty()) unlink(path.c_str()); }
};

bool fill_sun(sockaddr_un* a, const std::string& path) {
  std::memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (path.size() >= sizeof a->sun_path) return false;
  std::memcpy(a->sun_path, path.data(), path.size());
  return true;
}

int connect_unix(int fd, const std::string& path) {
  sockaddr_un a;
  if (!fill_sun(&a, path)) return ENAMETOOLONG;
  return ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
}

/** bind fd to DIR/.PPPPP-SSSSS, else /var/run, /var/tmp, /tmp vde.PPPPP-SSSSS; 0 or errno */
int bind_data(int fd, const std::string& dir, std::string* out) {
  const std::string bases[] = {dir + "/.", "/var/run/vde.", "/var/tmp/vde.", "/tmp/vde."};
  int last = EADDRINUSE;
  for (const std::string& base : bases) {
    for (unsigned seq = 0; seq < 1000; seq++) {
      char suffix[32];
      std::snprintf(suffix, sizeof suffix, "%05d-%05u", int(getpid()) % 100000, seq);
      std::string p = base + suffix;
      sockaddr_un a;
      if (!fill_sun(&a, p)) { last = ENAMETOOLONG; break; }
      if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) { *out = p; return 0; }
      last = errno;
      if (last != EADDRINUSE) break;  // try the next directory
    }
  }
  return last;
}

FdLinkOpen sys_fail(const std::string& what, int err) {
  return vnl::fail(err, "vde: " + what + ": " + vnl::errno_name(err) + " (" + std::strerror(err) + ")");
}

}  // namespace

FdLinkOpen open_vde_link(const std::string& rest, const FdLinkParams& params) {
  (void)params;
  if (rest.size() > vnl::kMaxUrl) return vnl::fail(EINVAL, "vde: URL too long");
  // DIR[options]: the options run from the first '[' to the last ']'
  std::string dir = rest, opts;
  size_t lb = rest.find('[');
  if (lb != std::string::npos) {
    size_t rb = rest.rfind(']');
    if (rb == std::string::npos || rb < lb) return vnl::fail(EINVAL, "vde: '[' without ']' in '" + rest + "'");
    if (rb + 1 != rest.size()) return vnl::fail(EINVAL, "vde: text after ']' in '" + rest + "'");
    dir = rest.substr(0, lb);
    opts = rest.substr(lb + 1, rb - lb - 1);
  }
  dir = vnl::split_quoted(dir, "")[0];
  std::vector<vnl::Param> ps = {{"port"}, {"portgroup"}, {"group"}, {"mode"}};
  std::string err, unnamed;
  if (!opts.empty() && !vnl::apply_params(vnl::split_quoted(opts, "/"), ps, &err, &unnamed))
    return vnl::fail(EINVAL, "vde: " + err + " in '" + rest + "'");
  uint64_t v;
  long port = -1;  // -1: none asked for
  std::string portgroup;
  if (!unnamed.empty()) {
    if (vnl::parse_uint(unnamed, 0, 65535, &v)) port = long(v);
    else portgroup = unnamed;
  }
  if (vnl::param(ps, "port").set) {
    if (!vnl::parse_uint(vnl::param(ps, "port").value, 0, 65535, &v))
      return vnl::fail(EINVAL, "vde: bad port '" + vnl::param(ps, "port").value + "'");
    port = long(v);
  }
  if (vnl::param(ps, "portgroup").set) portgroup = vnl::param(ps, "portgroup").value;
  if (portgroup.find('/') != std::string::npos || portgroup == "." || portgroup == "..")
    return vnl::fail(EINVAL, "vde: bad port group '" + portgroup + "'");
  mode_t mode = 0700;
  if (vnl::param(ps, "mode").set) {
    const std::string& m = vnl::param(ps, "mode").value;
    char* end = nullptr;
    long mv = std::strtol(m.c_str(), &end, 8);
    if (m.empty() || *end || mv < 0 || mv > 07777) return vnl::fail(EINVAL, "vde: bad mode '" + m + "' (octal)");
    mode = mode_t(mv);
  }
  bool group_set = vnl::param(ps, "group").set;
  uint32_t gid = 0;
  if (group_set && !vnl::parse_gid(vnl::param(ps, "group").value, &gid))
    return vnl::fail(EINVAL, "vde: no group '" + vnl::param(ps, "group").value + "'");

  // the control directory, absolute (the switch needs absolute paths)
  std::vector<std::string> candidates;
  if (dir.empty()) candidates = {"/var/run/vde.ctl", "/tmp/vde.ctl"};
  else candidates = {dir};
  std::string real;
  int rerr = ENOENT;
  for (const std::string& c : candidates) {
    char* r = realpath(c.c_str(), nullptr);
    if (r) { real = r; std::free(r); break; }
    rerr = errno;
  }
  std::string shown = dir.empty() ? "/var/run/vde.ctl or /tmp/vde.ctl" : dir;
  if (real.empty())
    return vnl::fail(rerr, "vde: no switch at " + shown + " (" + vnl::errno_name(rerr) + ")");

  Fd ctl;
  ctl.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ctl.fd < 0) return sys_fail("socket", errno);
  int cerr = -1;
  if (!portgroup.empty() && port < 0) cerr = connect_unix(ctl.fd, real + "/" + portgroup);
  if (cerr != 0) {
    if (cerr > 0) {  // a failed connect leaves the socket unusable: a new one
      ::close(ctl.fd);
      ctl.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (ctl.fd < 0) return sys_fail("socket", errno);
    }
    cerr = connect_unix(ctl.fd, real + "/ctl");
  }
  if (cerr != 0) {
    const char* why = cerr == ECONNREFUSED ? ", a stale socket: is the switch running?" : "";
    return vnl::fail(cerr, "vde: no switch at " + shown + " (connect " + real + "/ctl: " + vnl::errno_name(cerr) + why + ")");
  }

  Fd data;
  data.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (data.fd < 0) return sys_fail("socket", errno);
  BoundPath own;
  if (int e = bind_data(data.fd, real, &own.path)) return sys_fail("cannot bind a datagram socket in " + real, e);
  // permissions: the switch checks that it may read and write our socket
  struct stat cst;
  if (group_set) {
    if (chown(own.path.c_str(), uid_t(-1), gid_t(gid)) < 0) return sys_fail("chgrp " + own.path, errno);
  } else if (!(mode & 077) && stat((real + "/ctl").c_str(), &cst) == 0 && cst.st_uid != 0 && cst.st_uid != geteuid()) {
    if (chown(own.path.c_str(), uid_t(-1), cst.st_gid) == 0) mode |= 070;
    else mode |= 077;
  }
  if (chmod(own.path.c_str(), mode) < 0) return sys_fail("chmod " + own.path, errno);

  // the request: magic, version, type, our sockaddr_un, description (no NUL)
  std::string user;
  {
    passwd pw, *res = nullptr;
    char pbuf[4096];
    if (getpwuid_r(geteuid(), &pw, pbuf, sizeof pbuf, &res) == 0 && res) user = res->pw_name;
    else user = std::to_string(geteuid());
  }
  std::string descr = "msockets: user=" + user + " pid=" + std::to_string(getpid());
  if (descr.size() > kMaxDescr) descr.resize(kMaxDescr);
  int32_t type = port < 0 ? 0 : port == 0 ? 1 : int32_t(port << 8);
  std::vector<uint8_t> req(12 + kSunSize + descr.size(), 0);
  std::memcpy(&req[0], &kMagic, 4);
  std::memcpy(&req[4], &kVersion, 4);
  std::memcpy(&req[8], &type, 4);
  sockaddr_un me;
  fill_sun(&me, own.path);
  std::memcpy(&req[12], &me, kSunSize);
  std::memcpy(&req[12 + kSunSize], descr.data(), descr.size());
  if (send(ctl.fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size()))
    return sys_fail("request to " + real + "/ctl", errno ? errno : EPROTO);

  // the answer: one sockaddr_un; a switch that refuses closes the connection (an old
  // vde_switch asked for a port beyond its last one says nothing: time out)
  sockaddr_un sw;
  size_t got = 0;
  while (got < kSunSize) {
    pollfd pf{ctl.fd, POLLIN, 0};
    int pr = poll(&pf, 1, kReplyTimeoutMs);
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0)
      return vnl::fail(ETIMEDOUT, "vde: the switch at " + shown + " did not answer" +
                                      (port > 0 ? " (port " + std::to_string(port) + " beyond its last?)" : ""));
    ssize_t r = recv(ctl.fd, reinterpret_cast<uint8_t*>(&sw) + got, kSunSize - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      std::string what = port > 0 ? "port " + std::to_string(port) : !portgroup.empty() ? "port group " + portgroup : "a port";
      return vnl::fail(ECONNREFUSED, "vde: the switch at " + shown + " refused " + what +
                                         (port > 0 ? " (in use, or beyond its last port)" : " (no free port?)"));
    }
    got += size_t(r);
  }
  if (sw.sun_family != AF_UNIX) return vnl::fail(EPROTO, "vde: the switch at " + shown + " answered nonsense");
  sw.sun_path[sizeof sw.sun_path - 1] = 0;
  std::string swpath(sw.sun_path);
  if (::connect(data.fd, reinterpret_cast<sockaddr*>(&sw), sizeof sw) < 0)
    return sys_fail("connect to the switch port " + swpath, errno);
  // our socket's name is no longer needed (the switch connected to it already)
  unlink(own.path.c_str());
  own.path.clear();
  int fl = fcntl(ctl.fd, F_GETFL);
  if (fl >= 0) fcntl(ctl.fd, F_SETFL, fl | O_NONBLOCK);
  FdLinkOpen out;
  out.link.reset(new Vde(ctl.fd, data.fd, swpath));
  ctl.fd = data.fd = -1;
  return out;
}

}  // namespace ms
