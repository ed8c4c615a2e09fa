// The namespace helper process: see netns_helper.h.
#include "kernel/netns_helper.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

namespace msk {

const char* NsStageName(int stage) {
  switch (stage) {
    case kStageOpen: return "open";
    case kStageNsType: return "nstype";
    case kStageSocketpair: return "socketpair";
    case kStageClone: return "clone";
    case kStageSetns: return "setns";
    case kStageSetgroups: return "setgroups";
    case kStageUidMap: return "uid_map";
    case kStageGidMap: return "gid_map";
    case kStageLoopback: return "loopback";
    case kStageHandshake: return "handshake";
    default: return "none";
  }
}

namespace {

constexpr size_t kChildStack = 256 * 1024;
constexpr int kHandshakeTimeoutMs = 10000;

// What the child needs, at the bottom of its own stack mapping
struct ChildArgs {
  int sock;      // the helper's end of the socketpair
  int nsfd;      // kModeJoin: the namespace to enter; else -1
  int mode;
  int shed;      // drop the inherited memory
  uid_t uid;     // the caller's, for the user-namespace maps
  gid_t gid;
  pid_t parent;  // to notice a parent that died before PR_SET_PDEATHSIG took effect
};

// ---------------------------------------------------------------------------------------
// From here to NsSpawn: code that runs in the cloned child. System calls only.

[[noreturn]] void Fail(int sock, int stage, int err) {
  NsReply rep;
  memset(&rep, 0, sizeof rep);
  rep.result = -err;
  rep.detail = stage;
  send(sock, &rep, sizeof rep, MSG_NOSIGNAL);
  _exit(1);
}

size_t Utoa(unsigned long v, char* out) {
  char tmp[24];
  size_t n = 0;
  do { tmp[n++] = char('0' + v % 10); v /= 10; } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

// 0 or errno
int WriteFile(const char* path, const char* data, size_t len) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t w = write(fd, data, len);
  int err = w < 0 ? errno : (size_t(w) == len ? 0 : EIO);
  close(fd);
  return err;
}

// "0 <outside> 1": root inside is the caller outside
int WriteIdMap(const char* path, unsigned long outside) {
  char line[48];
  size_t n = 0;
  line[n++] = '0';
  line[n++] = ' ';
  n += Utoa(outside, line + n);
  line[n++] = ' ';
  line[n++] = '1';
  line[n++] = '\n';
  return WriteFile(path, line, n);
}

// 0 or errno
int LoopbackUp() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  int r = ioctl(s, SIOCGIFFLAGS, &ifr);
  if (r == 0) {
    ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
    r = ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  int err = r < 0 ? errno : 0;
  close(s);
  return err;
}

void CloseRange(unsigned lo, unsigned hi) {
  if (lo > hi) return;
  if (syscall(SYS_close_range, lo, hi, 0) == 0) return;
  unsigned limit = 65536;
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < limit) limit = unsigned(rl.rlim_cur);
  for (unsigned fd = lo; fd <= hi && fd < limit; fd++) close(int(fd));
}

// close every inherited descriptor but a and b (b may be -1)
void CloseAllBut(int a, int b) {
  int lo = a, hi = b;
  if (hi < 0) { hi = lo; }
  if (lo > hi) { int t = lo; lo = hi; hi = t; }
  if (lo > 0) CloseRange(0, unsigned(lo - 1));
  if (hi > lo + 1) CloseRange(unsigned(lo + 1), unsigned(hi - 1));
  CloseRange(unsigned(hi + 1), ~0U);
}

uintptr_t ParseHex(const char*& p, const char* end) {
  uintptr_t v = 0;
  while (p < end) {
    char c = *p;
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else break;
    v = (v << 4) | uintptr_t(d);
    p++;
  }
  return v;
}

const char* SkipField(const char* p, const char* end) {
  while (p < end && *p != ' ') p++;
  while (p < end && *p == ' ') p++;
  return p;
}

bool Starts(const char* p, const char* end, const char* lit) {
  for (; *lit; lit++, p++) if (p >= end || *p != *lit) return false;
  return true;
}

struct Range { uintptr_t lo, hi; };

// The child is a copy-on-write image of the whole Node process; every page the parent
// writes later would stay behind in the child for good. Unmap the anonymous memory it
// inherited (JS heap, malloc arenas, other threads' stacks), keeping: file mappings (the
// code and data of node, libc and this addon) with the anonymous .bss right after them,
// the kernel's special mappings, this thread's TLS and the child's own stack.
void ShedMemory(const uintptr_t* keep, int nkeep) {
  const size_t kBuf = 64 * 1024;
  const size_t kMaxRanges = 16384;
  const size_t bytes = kBuf + kMaxRanges * sizeof(Range);
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;
  char* buf = static_cast<char*>(mem);
  Range* drop = reinterpret_cast<Range*>(buf + kBuf);
  size_t ndrop = 0;
  const uintptr_t self_lo = uintptr_t(mem), self_hi = self_lo + bytes;

  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) { munmap(mem, bytes); return; }
  size_t have = 0;
  bool eof = false;
  uintptr_t file_end = 0;  // end of the last file mapping, for the .bss after it
  for (;;) {
    char* nl = static_cast<char*>(memchr(buf, '\n', have));
    if (!nl) {
      if (eof || have == kBuf) break;
      ssize_t n = read(fd, buf + have, kBuf - have);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) eof = true;
      else have += size_t(n);
      continue;
    }
    const char* p = buf;
    const char* end = nl;
    uintptr_t lo = ParseHex(p, end);
    if (p < end && *p == '-') p++;
    uintptr_t hi = ParseHex(p, end);
    while (p < end && *p == ' ') p++;
    p = SkipField(p, end);  // perms
    p = SkipField(p, end);  // offset
    p = SkipField(p, end);  // device
    p = SkipField(p, end);  // inode
    const char* path = p;
    bool anon = path == end;
    bool named_anon = !anon && (Starts(path, end, "[heap]") || Starts(path, end, "[stack") || Starts(path, end, "[anon"));
    bool special = !anon && !named_anon && *path == '[';
    bool candidate;
    if (anon) {
      candidate = lo != file_end;  // anonymous right after a file mapping: its .bss
      file_end = 0;
    } else if (named_anon) {
      candidate = true;
      file_end = 0;
    } else if (special) {
      candidate = false;
      file_end = 0;
    } else {
      candidate = false;
      file_end = hi;
    }
    if (candidate && hi > lo && !(lo < self_hi && hi > self_lo)) {
      for (int i = 0; i < nkeep; i++) if (keep[i] >= lo && keep[i] < hi) candidate = false;
      if (candidate && ndrop < kMaxRanges) drop[ndrop++] = Range{lo, hi};
    }
    size_t used = size_t(nl + 1 - buf);
    memmove(buf, nl + 1, have - used);
    have -= used;
  }
  close(fd);
  for (size_t i = 0; i < ndrop; i++) munmap(reinterpret_cast<void*>(drop[i].lo), drop[i].hi - drop[i].lo);
  munmap(mem, bytes);
}

// kOpTap: a TAP device in this namespace; its descriptor, name and ifindex
int OpenTap(const NsRequest& req, NsReply* rep) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = short(req.a ? req.a : (IFF_TAP | IFF_NO_PI));
  size_t n = 0;
  while (n < IFNAMSIZ - 1 && n < sizeof req.name && req.name[n]) { ifr.ifr_name[n] = req.name[n]; n++; }
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  memcpy(rep->name, ifr.ifr_name, sizeof rep->name);
  rep->name[sizeof rep->name - 1] = 0;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s >= 0) {
    if (ioctl(s, SIOCGIFINDEX, &ifr) == 0) rep->detail = ifr.ifr_ifindex;
    close(s);
  }
  return fd;
}

void Reply(int sock, const NsReply* rep, const int* fds, int nfds) {
  iovec iov;
  iov.iov_base = const_cast<NsReply*>(rep);
  iov.iov_len = sizeof *rep;
  msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  union { char buf[CMSG_SPACE(kMaxBatch * sizeof(int))]; cmsghdr align; } ctl;
  if (nfds > 0) {
    memset(&ctl, 0, sizeof ctl);
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE(size_t(nfds) * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(size_t(nfds) * sizeof(int));
    memcpy(CMSG_DATA(c), fds, size_t(nfds) * sizeof(int));
  }
  while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {}
}

[[noreturn]] void Serve(int sock) {
  for (;;) {
    NsRequest req;
    ssize_t n = recv(sock, &req, sizeof req, 0);
    if (n == 0) _exit(0);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(0);
    }
    NsReply rep;
    memset(&rep, 0, sizeof rep);
    rep.seq = req.seq;
    int fds[kMaxBatch];
    int nfds = 0;
    int err = EINVAL;
    if (size_t(n) != sizeof req) {
      err = EINVAL;
    } else if (req.op == kOpSocket) {
      int want = req.count < 1 ? 1 : req.count > kMaxBatch ? kMaxBatch : req.count;
      while (nfds < want) {
        int fd = socket(req.a, req.b | SOCK_NONBLOCK | SOCK_CLOEXEC, req.c);
        if (fd < 0) { err = errno; break; }
        fds[nfds++] = fd;
      }
    } else if (req.op == kOpTap) {
      int fd = OpenTap(req, &rep);
      if (fd < 0) err = errno;
      else fds[nfds++] = fd;
    }
    rep.result = nfds > 0 ? nfds : -err;
    Reply(sock, &rep, fds, nfds);
    for (int i = 0; i < nfds; i++) close(fds[i]);
  }
}

void DieWithParent(const ChildArgs* a) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != a->parent) _exit(1);
}

int ChildMain(void* arg) {
  const ChildArgs* a = static_cast<const ChildArgs*>(arg);
  // Node's signal handlers are not ours to run; SIGKILL still ends us
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  // inherited descriptors (listening sockets, connections) would otherwise stay open here
  CloseAllBut(a->sock, a->nsfd);
  DieWithParent(a);

  if (a->mode == kModeNewUser) {
    int err = WriteFile("/proc/self/setgroups", "deny", 4);
    if (err && err != ENOENT) Fail(a->sock, kStageSetgroups, err);
    if ((err = WriteIdMap("/proc/self/uid_map", a->uid))) Fail(a->sock, kStageUidMap, err);
    if ((err = WriteIdMap("/proc/self/gid_map", a->gid))) Fail(a->sock, kStageGidMap, err);
  }
  if (a->mode == kModeJoin) {
    if (setns(a->nsfd, CLONE_NEWNET) < 0) {
      int err = errno;
      bool joined = false;
      // a namespace under a user namespace we own: enter that user namespace first
      // (allowed here, we are single-threaded; refused to Node itself)
      if (err == EPERM) {
        int user = ioctl(a->nsfd, NS_GET_USERNS);
        if (user >= 0) {
          joined = setns(user, CLONE_NEWUSER) == 0 && setns(a->nsfd, CLONE_NEWNET) == 0;
          close(user);
        }
      }
      if (!joined) Fail(a->sock, kStageSetns, err);
      DieWithParent(a);  // new credentials cleared the parent-death signal
    }
    close(a->nsfd);
  } else {
    int err = LoopbackUp();
    if (err) Fail(a->sock, kStageLoopback, err);
  }

  if (a->shed) {
    int probe;
    uintptr_t keep[3] = {uintptr_t(&probe), uintptr_t(&errno), uintptr_t(__builtin_thread_pointer())};
    ShedMemory(keep, 3);
  }

  NsReply ready;
  memset(&ready, 0, sizeof ready);
  Reply(a->sock, &ready, nullptr, 0);
  Serve(a->sock);
}

// End of child code.
// ---------------------------------------------------------------------------------------

// one reply, with the descriptors it carries (up to max kept in fds, *nfds of them; any
// beyond are closed). 0 or -errno.
int RecvReply(int sock, NsReply* rep, int* fds, int max, int* nfds, int timeout_ms) {
  *nfds = 0;
  pollfd p;
  p.fd = sock;
  p.events = POLLIN;
  for (;;) {
    p.revents = 0;
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return -ETIMEDOUT;
    break;
  }
  iovec iov;
  iov.iov_base = rep;
  iov.iov_len = sizeof *rep;
  union { char buf[CMSG_SPACE(kMaxBatch * sizeof(int))]; cmsghdr align; } ctl;
  msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = sizeof ctl.buf;
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? -ETIMEDOUT : -errno;
  if (n == 0) return -ECONNRESET;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      if (*nfds < max) fds[(*nfds)++] = got;
      else close(got);
    }
  }
  if (size_t(n) != sizeof *rep || (msg.msg_flags & MSG_CTRUNC)) {
    for (int i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
    return -EPROTO;
  }
  return 0;
}

}  // namespace

int NsSpawn(NsMode mode, int nsfd, NsHelper* out, int* stage) {
  *stage = kStageNone;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    *stage = kStageSocketpair;
    return -errno;
  }
  void* stk = mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stk == MAP_FAILED) {
    int err = errno;
    close(sv[0]);
    close(sv[1]);
    *stage = kStageClone;
    return -err;
  }
  auto* args = static_cast<ChildArgs*>(stk);
  args->sock = sv[1];
  args->nsfd = mode == kModeJoin ? nsfd : -1;
  args->mode = mode;
  args->shed = std::getenv("MSOCKETS_NETNS_KEEP_MEMORY") ? 0 : 1;
  args->uid = geteuid();
  args->gid = getegid();
  args->parent = getpid();
  // no exit signal: nothing (libuv's SIGCHLD handling included) hears of it; reaped with __WALL
  int flags = 0;
  if (mode == kModeNew) flags |= CLONE_NEWNET;
  if (mode == kModeNewUser) flags |= CLONE_NEWUSER | CLONE_NEWNET;
  pid_t pid = clone(ChildMain, static_cast<char*>(stk) + kChildStack, flags, args);
  int err = errno;
  munmap(stk, kChildStack);  // the child has its own copy
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    *stage = kStageClone;
    return -err;
  }
  NsHelper h;
  h.pid = pid;
  h.sock = sv[0];
  NsReply rep;
  int fds[kMaxBatch];
  int nfds = 0;
  int r = RecvReply(h.sock, &rep, fds, kMaxBatch, &nfds, kHandshakeTimeoutMs);
  for (int i = 0; i < nfds; i++) close(fds[i]);
  if (r < 0 || rep.result < 0) {
    *stage = r < 0 ? kStageHandshake : rep.detail;
    NsStop(&h);
    return r < 0 ? r : rep.result;
  }
  *out = h;
  return 0;
}

int NsCall(NsHelper* h, NsRequest* req, NsReply* rep, int* fds, int max, int timeout_ms) {
  if (h->sock < 0) return -ECONNRESET;
  if (++h->seq == 0) ++h->seq;  // 0 is the handshake's
  req->seq = h->seq;
  ssize_t n;
  do n = send(h->sock, req, sizeof *req, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EPIPE ? -ECONNRESET : -errno;
  for (;;) {
    int nfds = 0;
    int r = RecvReply(h->sock, rep, fds, max, &nfds, timeout_ms);
    if (r < 0) return r;
    if (rep->seq != req->seq || rep->result < 0 || nfds == 0) {
      for (int i = 0; i < nfds; i++) close(fds[i]);
      if (rep->seq != req->seq) continue;  // the late answer to a call that timed out
      return rep->result < 0 ? rep->result : -EPROTO;
    }
    return nfds;
  }
}

void NsStop(NsHelper* h) {
  if (h->sock >= 0) {
    close(h->sock);
    h->sock = -1;
  }
  if (h->pid > 0) {
    kill(h->pid, SIGKILL);
    int status;
    while (waitpid(h->pid, &status, __WALL) < 0 && errno == EINTR) {}
    h->pid = -1;
  }
}

}  // namespace msk
