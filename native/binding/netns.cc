// Network namespaces as stacks: N-API glue over native/kernel/netns_helper (a helper process
// per namespace that creates sockets and TAP devices there), rtnetlink configuration over a
// NETLINK_ROUTE socket created inside the namespace, and TAP frame reads/writes.
//
// exports.netns = {
//   spawn(path | null, mode: 'join' | 'new' | 'user') -> NsHelper | [-errno, stage, nstype]
//   NsHelper: socket(domain, type, protocol) -> fd | -errno (batched in bursts); tap(name, flags) ->
//             [fd, name, ifindex] | -errno; close(); pid; userns
//   linkSet(nlfd, ifindex, up, mtu, mac | null) -> 0 | -errno
//   addrAdd(nlfd, ifindex, family, address, prefix) -> 0 | -errno
//   routeAdd(nlfd, family, dst, prefix, gateway, ifindex) -> 0 | -errno
//   tapRead(fd, maxFrames) -> Buffer[] | -errno;  tapWrite(fd, frame) -> bytes | -errno
// }
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>

#include "addon.h"
#include "kernel/netns_helper.h"

namespace msb {
namespace {

constexpr int kCallTimeoutMs = 10000;

Napi::Value Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }
int Int(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }

// Open a network-namespace file: 0 and *fd, or -errno with the stage (and the namespace type
// when it is a namespace of another kind).
int OpenNetns(const std::string& path, int* fd_out, int* stage, int* nstype) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) { *stage = msk::kStageOpen; return -errno; }
  // never open FIFOs or devices on a caller's say-so; namespace files are regular files
  if (!S_ISREG(st.st_mode)) { *stage = msk::kStageNsType; return -ENOTSUP; }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) { *stage = msk::kStageOpen; return -errno; }
  struct statfs sf;
  if (::fstatfs(fd, &sf) < 0 || sf.f_type != NSFS_MAGIC) {
    ::close(fd);
    *stage = msk::kStageNsType;
    return -ENOTSUP;
  }
  int type = ::ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    ::close(fd);
    *stage = msk::kStageNsType;
    *nstype = type < 0 ? 0 : type;
    return -ENOTSUP;
  }
  *fd_out = fd;
  return 0;
}

// The helper of one namespace stack, owned by a JS object
class NsHelperWrap : public Napi::ObjectWrap<NsHelperWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NsHelper", {
      InstanceMethod("socket", &NsHelperWrap::Socket),
      InstanceMethod("tap", &NsHelperWrap::Tap),
      InstanceMethod("close", &NsHelperWrap::Close),
      InstanceAccessor("pid", &NsHelperWrap::Pid, nullptr),
      InstanceAccessor("userns", &NsHelperWrap::UserNs, nullptr),
    });
  }

  // constructed by spawn() only: new NsHelper(External<msk::NsHelper>, userns)
  NsHelperWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NsHelperWrap>(info) {
    addon_ = Addon::Get(info.Env());
    if (!info[0].IsExternal()) {
      Napi::TypeError::New(info.Env(), "NsHelper is made by netns.spawn()").ThrowAsJavaScriptException();
      return;
    }
    h_ = *info[0].As<Napi::External<msk::NsHelper>>().Data();
    userns_ = info[1].ToBoolean().Value();
    closer_ = addon_->add_closer([this]() { Shutdown(); });
  }

  ~NsHelperWrap() override {
    if (closer_) addon_->remove_closer(closer_);
    Shutdown();
  }

 private:
  // Sockets of the plain kinds come in batches when they are asked for in bursts: a miss
  // within kBurstNs of the previous miss doubles the batch (up to kMaxCache), a lone request
  // gets one. The spares wait here, unbound, until asked for or the stack closes.
  static constexpr uint64_t kBurstNs = 10 * 1000 * 1000;
  static constexpr int kMaxCache = 32;
  struct Cache {
    std::vector<int> fds;
    int batch = 1;
    uint64_t last_miss = 0;
  };

  static int Kind(int domain, int type, int protocol) {
    if (protocol != 0 || (type != SOCK_STREAM && type != SOCK_DGRAM)) return -1;
    if (domain == AF_INET) return type == SOCK_STREAM ? 0 : 1;
    if (domain == AF_INET6) return type == SOCK_STREAM ? 2 : 3;
    return -1;
  }

  void Shutdown() {
    for (Cache& c : cache_) {
      for (int fd : c.fds) ::close(fd);
      c.fds.clear();
    }
    msk::NsStop(&h_);
  }

  Napi::Value Socket(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int domain = Int(info, 0), type = Int(info, 1), protocol = Int(info, 2);
    int kind = Kind(domain, type, protocol);
    if (kind >= 0 && h_.sock >= 0 && !cache_[kind].fds.empty()) {
      int fd = cache_[kind].fds.back();
      cache_[kind].fds.pop_back();
      addon_->own_fd(fd);
      return Num(env, fd);
    }
    msk::NsRequest req;
    std::memset(&req, 0, sizeof req);
    req.op = msk::kOpSocket;
    req.a = domain;
    req.b = type;
    req.c = protocol;
    req.count = 1;
    if (kind >= 0) {
      Cache& c = cache_[kind];
      uint64_t now = uv_hrtime();
      c.batch = c.last_miss && now - c.last_miss < kBurstNs ? std::min(c.batch * 2, kMaxCache) : 1;
      c.last_miss = now;
      req.count = c.batch;
    }
    msk::NsReply rep;
    int fds[msk::kMaxBatch];
    int n = msk::NsCall(&h_, &req, &rep, fds, msk::kMaxBatch, kCallTimeoutMs);
    if (n < 0) return Num(env, n);
    for (int i = 1; i < n; i++) {
      if (kind >= 0) cache_[kind].fds.push_back(fds[i]);
      else ::close(fds[i]);
    }
    addon_->own_fd(fds[0]);
    return Num(env, fds[0]);
  }

  Napi::Value Tap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    msk::NsRequest req;
    std::memset(&req, 0, sizeof req);
    req.op = msk::kOpTap;
    std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    if (name.size() >= IFNAMSIZ) return Num(env, -EINVAL);
    std::memcpy(req.name, name.data(), name.size());
    req.a = info[1].IsNumber() ? Int(info, 1) : 0;
    msk::NsReply rep;
    int fds[msk::kMaxBatch];
    int n = msk::NsCall(&h_, &req, &rep, fds, msk::kMaxBatch, kCallTimeoutMs);
    if (n < 0) return Num(env, n);
    for (int i = 1; i < n; i++) ::close(fds[i]);
    int fd = fds[0];
    addon_->own_fd(fd);
    rep.name[sizeof rep.name - 1] = 0;
    Napi::Array r = Napi::Array::New(env, 3);
    r.Set(uint32_t(0), Num(env, fd));
    r.Set(uint32_t(1), Napi::String::New(env, rep.name));
    r.Set(uint32_t(2), Num(env, rep.detail));
    return r;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (closer_) { addon_->remove_closer(closer_); closer_ = nullptr; }
    Shutdown();
    return info.Env().Undefined();
  }

  Napi::Value Pid(const Napi::CallbackInfo& info) { return Num(info.Env(), h_.pid); }
  Napi::Value UserNs(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), userns_); }

  Addon* addon_;
  msk::NsHelper h_;
  Cache cache_[4];
  bool userns_ = false;
  void* closer_ = nullptr;
};

// spawn(path | null, mode)
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
  std::string mode = info[1].As<Napi::String>().Utf8Value();
  msk::NsHelper h;
  int stage = 0, nstype = 0, r;
  bool userns = false;
  if (mode == "join") {
    int nsfd = -1;
    r = OpenNetns(info[0].As<Napi::String>().Utf8Value(), &nsfd, &stage, &nstype);
    if (r == 0) {
      r = msk::NsSpawn(msk::kModeJoin, nsfd, &h, &stage);
      ::close(nsfd);
    }
  } else if (mode == "new") {
    r = msk::NsSpawn(msk::kModeNew, -1, &h, &stage);
    // no CAP_SYS_ADMIN: a user namespace of our own gives us one
    if (r == -EPERM && stage == msk::kStageClone) {
      r = msk::NsSpawn(msk::kModeNewUser, -1, &h, &stage);
      userns = true;
    }
  } else if (mode == "user") {
    r = msk::NsSpawn(msk::kModeNewUser, -1, &h, &stage);
    userns = true;
  } else {
    r = -EINVAL;
  }
  if (r < 0) {
    Napi::Array e = Napi::Array::New(env, 3);
    e.Set(uint32_t(0), Num(env, r));
    e.Set(uint32_t(1), Napi::String::New(env, msk::NsStageName(stage)));
    e.Set(uint32_t(2), Num(env, nstype));
    return e;
  }
  return ctor->New({Napi::External<msk::NsHelper>::New(env, &h), Napi::Boolean::New(env, userns)});
}

// ---- rtnetlink

struct NlMsg {
  alignas(nlmsghdr) char data[1024];
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(data); }

  NlMsg(uint16_t type, uint16_t flags, const void* body, size_t len) {
    std::memset(data, 0, sizeof data);
    hdr()->nlmsg_len = uint32_t(NLMSG_LENGTH(len));
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = uint16_t(NLM_F_REQUEST | NLM_F_ACK | flags);
    std::memcpy(NLMSG_DATA(hdr()), body, len);
  }

  bool Attr(uint16_t type, const void* value, size_t len) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    if (at + RTA_SPACE(len) > sizeof data) return false;
    auto* rta = reinterpret_cast<rtattr*>(data + at);
    rta->rta_type = type;
    rta->rta_len = uint16_t(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(rta), value, len);
    hdr()->nlmsg_len = uint32_t(at + RTA_SPACE(len));
    return true;
  }
};

// send one request, wait for its acknowledgement: 0 or -errno
int NlTransact(int fd, NlMsg& m) {
  static std::atomic<uint32_t> seq{0};
  m.hdr()->nlmsg_seq = ++seq;
  sockaddr_nl kernel;
  std::memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do n = ::sendto(fd, m.data, m.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  alignas(nlmsghdr) char buf[8192];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, kCallTimeoutMs);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return -ETIMEDOUT;
    n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return -errno;
    }
    int len = int(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != m.hdr()->nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) return reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
    }
  }
}

bool ParseAddr(int family, const std::string& text, unsigned char* out, size_t* len) {
  if (family == AF_INET) { *len = 4; return inet_pton(AF_INET, text.c_str(), out) == 1; }
  if (family == AF_INET6) { *len = 16; return inet_pton(AF_INET6, text.c_str(), out) == 1; }
  return false;
}

// linkSet(nlfd, ifindex, up (-1 keep, 0, 1), mtu (0 keep), mac Buffer | null)
Napi::Value LinkSet(const Napi::CallbackInfo& info) {
  ifinfomsg ifi;
  std::memset(&ifi, 0, sizeof ifi);
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = Int(info, 1);
  int up = Int(info, 2);
  if (up >= 0) {
    ifi.ifi_change = IFF_UP;
    ifi.ifi_flags = up ? IFF_UP : 0;
  }
  NlMsg m(RTM_NEWLINK, 0, &ifi, sizeof ifi);
  uint32_t mtu = uint32_t(Int(info, 3));
  if (mtu) m.Attr(IFLA_MTU, &mtu, sizeof mtu);
  if (info[4].IsBuffer()) {
    auto mac = info[4].As<Napi::Buffer<uint8_t>>();
    if (mac.Length() != 6) return Num(info.Env(), -EINVAL);
    m.Attr(IFLA_ADDRESS, mac.Data(), 6);
  }
  return Num(info.Env(), NlTransact(Int(info, 0), m));
}

// addrAdd(nlfd, ifindex, family, address, prefix)
Napi::Value AddrAdd(const Napi::CallbackInfo& info) {
  int family = Int(info, 2);
  unsigned char addr[16];
  size_t alen;
  if (!ParseAddr(family, info[3].As<Napi::String>().Utf8Value(), addr, &alen)) return Num(info.Env(), -EINVAL);
  ifaddrmsg ifa;
  std::memset(&ifa, 0, sizeof ifa);
  ifa.ifa_family = uint8_t(family);
  ifa.ifa_prefixlen = uint8_t(Int(info, 4));
  ifa.ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;  // usable at once, no duplicate detection wait
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = uint32_t(Int(info, 1));
  NlMsg m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
  m.Attr(IFA_LOCAL, addr, alen);
  m.Attr(IFA_ADDRESS, addr, alen);
  return Num(info.Env(), NlTransact(Int(info, 0), m));
}

// routeAdd(nlfd, family, dst ('' for default), prefix, gateway ('' for none), ifindex (0 for none))
Napi::Value RouteAdd(const Napi::CallbackInfo& info) {
  int family = Int(info, 1);
  std::string dst = info[2].As<Napi::String>().Utf8Value();
  int prefix = Int(info, 3);
  std::string gw = info[4].As<Napi::String>().Utf8Value();
  int ifindex = Int(info, 5);
  rtmsg rtm;
  std::memset(&rtm, 0, sizeof rtm);
  rtm.rtm_family = uint8_t(family);
  rtm.rtm_dst_len = uint8_t(prefix);
  rtm.rtm_table = RT_TABLE_MAIN;
  rtm.rtm_protocol = RTPROT_BOOT;
  rtm.rtm_scope = gw.empty() ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  rtm.rtm_type = RTN_UNICAST;
  NlMsg m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rtm, sizeof rtm);
  unsigned char addr[16];
  size_t alen;
  if (prefix > 0) {
    if (!ParseAddr(family, dst, addr, &alen)) return Num(info.Env(), -EINVAL);
    m.Attr(RTA_DST, addr, alen);
  }
  if (!gw.empty()) {
    if (!ParseAddr(family, gw, addr, &alen)) return Num(info.Env(), -EINVAL);
    m.Attr(RTA_GATEWAY, addr, alen);
  }
  if (ifindex > 0) {
    uint32_t oif = uint32_t(ifindex);
    m.Attr(RTA_OIF, &oif, sizeof oif);
  }
  return Num(info.Env(), NlTransact(Int(info, 0), m));
}

// ---- TAP frames

// tapRead(fd, maxFrames): the frames readable now (maybe none), or -errno
Napi::Value TapRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Addon* a = Addon::Get(env);
  int fd = Int(info, 0);
  int max = Int(info, 1);
  Napi::Array out = Napi::Array::New(env);
  uint32_t count = 0;
  while (int(count) < max) {
    ssize_t n = ::read(fd, a->scratch(), Addon::kScratch);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || count > 0) break;
      return Num(env, -errno);
    }
    out.Set(count++, Napi::Buffer<uint8_t>::Copy(env, a->scratch(), size_t(n)));
  }
  return out;
}

// tapWrite(fd, frame): one frame, or -errno (-EAGAIN when the device queue is full)
Napi::Value TapWrite(const Napi::CallbackInfo& info) {
  auto buf = info[1].As<Napi::Uint8Array>();
  ssize_t n;
  do n = ::write(Int(info, 0), buf.Data(), buf.ByteLength()); while (n < 0 && errno == EINTR);
  return Num(info.Env(), n < 0 ? -errno : double(n));
}

}  // namespace

void InitNetns(Napi::Env env, Napi::Object exports) {
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(NsHelperWrap::Init(env)));
  env.AddCleanupHook([ctor]() { delete ctor; });
  Napi::Object n = Napi::Object::New(env);
  n.Set("spawn", Napi::Function::New(env, Spawn, "spawn", ctor));
  n.Set("linkSet", Napi::Function::New(env, LinkSet));
  n.Set("addrAdd", Napi::Function::New(env, AddrAdd));
  n.Set("routeAdd", Napi::Function::New(env, RouteAdd));
  n.Set("tapRead", Napi::Function::New(env, TapRead));
  n.Set("tapWrite", Napi::Function::New(env, TapWrite));
  exports.Set("netns", n);
}

}  // namespace msb
