// Kernel sockets for the raw-socket interface: thin, stateless wrappers over the system
// calls (every call returns a result or -errno, JS makes the error), plus a Poller that
// watches a descriptor on the environment's libuv loop.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "addon.h"

namespace msb {
namespace {

int Fd(const Napi::CallbackInfo& info, size_t i = 0) { return info[i].As<Napi::Number>().Int32Value(); }
Napi::Value Ret(Napi::Env env, long r) { return Napi::Number::New(env, double(r < 0 ? -errno : r)); }
Napi::Value Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

// text address + port -> sockaddr; '' is the family's wildcard. false: not an address.
bool ToSockaddr(int family, const std::string& text, int port, sockaddr_storage* ss, socklen_t* len) {
  std::memset(ss, 0, sizeof(*ss));
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(uint16_t(port));
    if (!text.empty() && inet_pton(AF_INET, text.c_str(), &sin->sin_addr) != 1) return false;
    *len = sizeof(sockaddr_in);
    return true;
  }
  if (family == AF_INET6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(uint16_t(port));
    std::string addr = text;
    auto pct = addr.find('%');
    if (pct != std::string::npos) {
      std::string zone = addr.substr(pct + 1);
      addr = addr.substr(0, pct);
      char* end = nullptr;
      unsigned long idx = std::strtoul(zone.c_str(), &end, 10);
      if (zone.empty() || *end) idx = if_nametoindex(zone.c_str());
      if (idx == 0) return false;
      sin6->sin6_scope_id = uint32_t(idx);
    }
    if (!addr.empty() && inet_pton(AF_INET6, addr.c_str(), &sin6->sin6_addr) != 1) return false;
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// sockaddr -> [address, port, family]
Napi::Value FromSockaddr(Napi::Env env, const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {0};
  int port = 0;
  int family = ss.ss_family;
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    port = ntohs(sin->sin_port);
  } else if (family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    if (sin6->sin6_scope_id) {
      size_t n = std::strlen(buf);
      char name[IF_NAMESIZE];
      if (if_indextoname(sin6->sin6_scope_id, name)) std::snprintf(buf + n, sizeof(buf) - n, "%%%s", name);
      else std::snprintf(buf + n, sizeof(buf) - n, "%%%u", sin6->sin6_scope_id);
    }
    port = ntohs(sin6->sin6_port);
  } else {
    return Num(env, -EAFNOSUPPORT);
  }
  Napi::Array a = Napi::Array::New(env, 3);
  a.Set(uint32_t(0), Napi::String::New(env, buf));
  a.Set(uint32_t(1), Num(env, port));
  a.Set(uint32_t(2), Num(env, family));
  return a;
}

Napi::Value Socket(const Napi::CallbackInfo& info) {
  int domain = Fd(info, 0), type = Fd(info, 1), proto = Fd(info, 2);
  int fd = ::socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) return Num(info.Env(), -errno);
  Addon::Get(info.Env())->own_fd(fd);
  return Num(info.Env(), fd);
}

Napi::Value Bind(const Napi::CallbackInfo& info) {
  sockaddr_storage ss; socklen_t len;
  if (!ToSockaddr(Fd(info, 1), info[2].As<Napi::String>().Utf8Value(), Fd(info, 3), &ss, &len)) return Num(info.Env(), -EINVAL);
  return Ret(info.Env(), ::bind(Fd(info), reinterpret_cast<sockaddr*>(&ss), len));
}

Napi::Value Listen(const Napi::CallbackInfo& info) { return Ret(info.Env(), ::listen(Fd(info), Fd(info, 1))); }

Napi::Value Accept(const Napi::CallbackInfo& info) {
  int fd = ::accept4(Fd(info), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return Num(info.Env(), -errno);
  Addon::Get(info.Env())->own_fd(fd);
  return Num(info.Env(), fd);
}

Napi::Value Connect(const Napi::CallbackInfo& info) {
  sockaddr_storage ss; socklen_t len;
  int family = Fd(info, 1);
  if (family == AF_UNSPEC) {
    sockaddr sa; std::memset(&sa, 0, sizeof(sa)); sa.sa_family = AF_UNSPEC;
    return Ret(info.Env(), ::connect(Fd(info), &sa, sizeof(sa)));
  }
  if (!ToSockaddr(family, info[2].As<Napi::String>().Utf8Value(), Fd(info, 3), &ss, &len)) return Num(info.Env(), -EINVAL);
  return Ret(info.Env(), ::connect(Fd(info), reinterpret_cast<sockaddr*>(&ss), len));
}

Napi::Value SockName(const Napi::CallbackInfo& info, bool peer) {
  sockaddr_storage ss; socklen_t len = sizeof(ss);
  std::memset(&ss, 0, sizeof(ss));
  int r = peer ? ::getpeername(Fd(info), reinterpret_cast<sockaddr*>(&ss), &len)
               : ::getsockname(Fd(info), reinterpret_cast<sockaddr*>(&ss), &len);
  if (r < 0) return Num(info.Env(), -errno);
  return FromSockaddr(info.Env(), ss);
}
Napi::Value GetSockName(const Napi::CallbackInfo& info) { return SockName(info, false); }
Napi::Value GetPeerName(const Napi::CallbackInfo& info) { return SockName(info, true); }

Napi::Value Send(const Napi::CallbackInfo& info) {
  auto buf = info[1].As<Napi::Uint8Array>();
  ssize_t n = ::send(Fd(info), buf.Data(), buf.ByteLength(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return Ret(info.Env(), n);
}

// writev of an array of Uint8Arrays: one system call for a batch of writes
Napi::Value Sendv(const Napi::CallbackInfo& info) {
  auto arr = info[1].As<Napi::Array>();
  uint32_t n = arr.Length();
  if (n > 1024) n = 1024;
  iovec iov[1024];
  for (uint32_t i = 0; i < n; i++) {
    auto b = arr.Get(i).As<Napi::Uint8Array>();
    iov[i].iov_base = b.Data();
    iov[i].iov_len = b.ByteLength();
  }
  msghdr msg; std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = iov; msg.msg_iovlen = n;
  return Ret(info.Env(), ::sendmsg(Fd(info), &msg, MSG_NOSIGNAL | MSG_DONTWAIT));
}

Napi::Value SendTo(const Napi::CallbackInfo& info) {
  auto buf = info[1].As<Napi::Uint8Array>();
  sockaddr_storage ss; socklen_t len;
  if (!ToSockaddr(Fd(info, 2), info[3].As<Napi::String>().Utf8Value(), Fd(info, 4), &ss, &len)) return Num(info.Env(), -EINVAL);
  ssize_t n = ::sendto(Fd(info), buf.Data(), buf.ByteLength(), MSG_NOSIGNAL | MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&ss), len);
  return Ret(info.Env(), n);
}

// stream read: a new Buffer with what is there (up to the scratch size), an empty Buffer at
// EOF, or -errno (-EAGAIN when nothing is there)
Napi::Value Recv(const Napi::CallbackInfo& info) {
  Addon* a = Addon::Get(info.Env());
  ssize_t n = ::recv(Fd(info), a->scratch(), Addon::kScratch, MSG_DONTWAIT);
  if (n < 0) return Num(info.Env(), -errno);
  return Napi::Buffer<uint8_t>::Copy(info.Env(), a->scratch(), size_t(n));
}

// datagram read: [Buffer, address, port, family, truncated] or -errno
Napi::Value RecvFrom(const Napi::CallbackInfo& info) {
  Addon* a = Addon::Get(info.Env());
  sockaddr_storage ss; std::memset(&ss, 0, sizeof(ss));
  iovec iov{a->scratch(), Addon::kScratch};
  msghdr msg; std::memset(&msg, 0, sizeof(msg));
  msg.msg_name = &ss; msg.msg_namelen = sizeof(ss);
  msg.msg_iov = &iov; msg.msg_iovlen = 1;
  ssize_t n = ::recvmsg(Fd(info), &msg, MSG_DONTWAIT | MSG_TRUNC);
  if (n < 0) return Num(info.Env(), -errno);
  bool truncated = size_t(n) > Addon::kScratch;
  size_t len = truncated ? Addon::kScratch : size_t(n);
  Napi::Value from = FromSockaddr(info.Env(), ss);
  if (!from.IsArray()) return from;
  auto fa = from.As<Napi::Array>();
  Napi::Array r = Napi::Array::New(info.Env(), 5);
  r.Set(uint32_t(0), Napi::Buffer<uint8_t>::Copy(info.Env(), a->scratch(), len));
  r.Set(uint32_t(1), fa.Get(uint32_t(0)));
  r.Set(uint32_t(2), fa.Get(uint32_t(1)));
  r.Set(uint32_t(3), fa.Get(uint32_t(2)));
  r.Set(uint32_t(4), Napi::Boolean::New(info.Env(), truncated));
  return r;
}

Napi::Value Shutdown(const Napi::CallbackInfo& info) { return Ret(info.Env(), ::shutdown(Fd(info), Fd(info, 1))); }

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = Fd(info);
  Addon::Get(info.Env())->disown_fd(fd);
  return Ret(info.Env(), ::close(fd));
}

// the fd now belongs to something else (Node's own handles): don't close it at teardown
Napi::Value Release(const Napi::CallbackInfo& info) {
  Addon::Get(info.Env())->disown_fd(Fd(info));
  return info.Env().Undefined();
}

Napi::Value SetSockOpt(const Napi::CallbackInfo& info) {
  if (info[3].IsString()) {
    // a text option (TCP_CONGESTION): its bytes, without a terminator
    std::string text = info[3].As<Napi::String>().Utf8Value();
    return Ret(info.Env(), ::setsockopt(Fd(info), Fd(info, 1), Fd(info, 2), text.data(), socklen_t(text.size())));
  }
  int v = info[3].As<Napi::Number>().Int32Value();
  return Ret(info.Env(), ::setsockopt(Fd(info), Fd(info, 1), Fd(info, 2), &v, sizeof(v)));
}

Napi::Value GetSockOpt(const Napi::CallbackInfo& info) {
  int v = 0; socklen_t len = sizeof(v);
  if (::getsockopt(Fd(info), Fd(info, 1), Fd(info, 2), &v, &len) < 0) return Num(info.Env(), -errno);
  // negative option values are not expected; errors are told apart by an array
  Napi::Array r = Napi::Array::New(info.Env(), 1);
  r.Set(uint32_t(0), Num(info.Env(), v));
  return r;
}

// abort: SO_LINGER {1, 0} then close, which sends RST
Napi::Value Abort(const Napi::CallbackInfo& info) {
  int fd = Fd(info);
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  Addon::Get(info.Env())->disown_fd(fd);
  return Ret(info.Env(), ::close(fd));
}

// membership(fd, family, add, group, iface)
Napi::Value Membership(const Napi::CallbackInfo& info) {
  int fd = Fd(info), family = Fd(info, 1);
  bool add = info[2].As<Napi::Boolean>().Value();
  std::string group = info[3].As<Napi::String>().Utf8Value();
  std::string iface = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
  if (family == AF_INET) {
    ip_mreqn m; std::memset(&m, 0, sizeof(m));
    if (inet_pton(AF_INET, group.c_str(), &m.imr_multiaddr) != 1) return Num(info.Env(), -EINVAL);
    if (!iface.empty() && inet_pton(AF_INET, iface.c_str(), &m.imr_address) != 1) return Num(info.Env(), -EINVAL);
    return Ret(info.Env(), ::setsockopt(fd, IPPROTO_IP, add ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m, sizeof(m)));
  }
  ipv6_mreq m; std::memset(&m, 0, sizeof(m));
  if (inet_pton(AF_INET6, group.c_str(), &m.ipv6mr_multiaddr) != 1) return Num(info.Env(), -EINVAL);
  if (!iface.empty()) {
    m.ipv6mr_interface = if_nametoindex(iface.c_str());
    if (!m.ipv6mr_interface) return Num(info.Env(), -ENODEV);
  }
  return Ret(info.Env(), ::setsockopt(fd, IPPROTO_IPV6, add ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, &m, sizeof(m)));
}

// multicastInterface(fd, family, iface): an IPv4 address, or an IPv6 interface name/index
Napi::Value MulticastInterface(const Napi::CallbackInfo& info) {
  int fd = Fd(info), family = Fd(info, 1);
  std::string iface = info[2].As<Napi::String>().Utf8Value();
  if (family == AF_INET) {
    in_addr a;
    if (inet_pton(AF_INET, iface.c_str(), &a) != 1) return Num(info.Env(), -EINVAL);
    return Ret(info.Env(), ::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof(a)));
  }
  unsigned idx = 0;
  auto pct = iface.find('%');
  std::string zone = pct == std::string::npos ? iface : iface.substr(pct + 1);
  if (!zone.empty()) {
    char* end = nullptr;
    idx = unsigned(std::strtoul(zone.c_str(), &end, 10));
    if (*end) idx = if_nametoindex(zone.c_str());
    if (!idx) return Num(info.Env(), -EADDRNOTAVAIL);
  }
  return Ret(info.Env(), ::setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof(idx)));
}

// Poller: uv_poll_t over an fd. new Poller(fd, cb(status, events)); start(events); stop(); close()
class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Poller", {
      InstanceMethod("start", &Poller::Start),
      InstanceMethod("stop", &Poller::Stop),
      InstanceMethod("close", &Poller::Close),
      InstanceMethod("ref", &Poller::Ref_),
      InstanceMethod("unref", &Poller::Unref_),
    });
  }

  Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    addon_ = Addon::Get(env);
    fd_ = Fd(info);
    cb_ = Napi::Persistent(info[1].As<Napi::Function>());
    handle_ = new Handle;
    handle_->owner = this;
    int r = uv_poll_init_socket(addon_->loop(), &handle_->poll, fd_);
    if (r != 0) {
      delete handle_;
      handle_ = nullptr;
      Napi::Error e = Napi::Error::New(env, uv_strerror(r));
      e.Set("errno", Napi::Number::New(env, r));
      throw e;
    }
    handle_->poll.data = handle_;
    closer_ = addon_->add_closer([this]() { closer_ = nullptr; CloseHandle(); });
  }

  ~Poller() override {
    if (closer_) addon_->remove_closer(closer_);
    CloseHandle();
  }

 private:
  struct Handle { uv_poll_t poll; Poller* owner; };

  static void OnPoll(uv_poll_t* p, int status, int events) {
    auto* h = static_cast<Handle*>(p->data);
    Poller* self = h->owner;
    if (!self) return;
    int ev = 0;
    if (events & UV_READABLE) ev |= 1;
    if (events & UV_WRITABLE) ev |= 2;
    if (events & UV_DISCONNECT) ev |= 1;
    napi_env env = self->Env();
    // scope for the argument values
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value argv[2] = { NumberValue(env, status), NumberValue(env, ev) };
    CallFromLoop(env, self->cb_, 2, argv);
    napi_close_handle_scope(env, scope);
  }

  void CloseHandle() {
    if (!handle_) return;
    handle_->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_->poll), [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
    handle_ = nullptr;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!handle_) return Num(info.Env(), -EBADF);
    int want = info[0].As<Napi::Number>().Int32Value();
    int ev = ((want & 1) ? UV_READABLE : 0) | ((want & 2) ? UV_WRITABLE : 0);
    if (ev == 0) return Num(info.Env(), uv_poll_stop(&handle_->poll));
    return Num(info.Env(), uv_poll_start(&handle_->poll, ev, OnPoll));
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_) uv_poll_stop(&handle_->poll);
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (closer_) { addon_->remove_closer(closer_); closer_ = nullptr; }
    CloseHandle();
    return info.Env().Undefined();
  }
  Napi::Value Ref_(const Napi::CallbackInfo& info) {
    if (handle_) uv_ref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
    return info.Env().Undefined();
  }
  Napi::Value Unref_(const Napi::CallbackInfo& info) {
    if (handle_) uv_unref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
    return info.Env().Undefined();
  }

  Addon* addon_;
  int fd_;
  Napi::FunctionReference cb_;
  Handle* handle_ = nullptr;
  void* closer_ = nullptr;
};

}  // namespace

void InitKernel(Napi::Env env, Napi::Object exports) {
  Napi::Object k = Napi::Object::New(env);
  k.Set("socket", Napi::Function::New(env, Socket));
  k.Set("bind", Napi::Function::New(env, Bind));
  k.Set("listen", Napi::Function::New(env, Listen));
  k.Set("accept", Napi::Function::New(env, Accept));
  k.Set("connect", Napi::Function::New(env, Connect));
  k.Set("getsockname", Napi::Function::New(env, GetSockName));
  k.Set("getpeername", Napi::Function::New(env, GetPeerName));
  k.Set("send", Napi::Function::New(env, Send));
  k.Set("sendv", Napi::Function::New(env, Sendv));
  k.Set("sendto", Napi::Function::New(env, SendTo));
  k.Set("recv", Napi::Function::New(env, Recv));
  k.Set("recvfrom", Napi::Function::New(env, RecvFrom));
  k.Set("shutdown", Napi::Function::New(env, Shutdown));
  k.Set("close", Napi::Function::New(env, Close));
  k.Set("release", Napi::Function::New(env, Release));
  k.Set("abort", Napi::Function::New(env, Abort));
  k.Set("setsockopt", Napi::Function::New(env, SetSockOpt));
  k.Set("getsockopt", Napi::Function::New(env, GetSockOpt));
  k.Set("membership", Napi::Function::New(env, Membership));
  k.Set("multicastInterface", Napi::Function::New(env, MulticastInterface));
  k.Set("Poller", Poller::Init(env));
  exports.Set("kernel", k);
}

}  // namespace msb
