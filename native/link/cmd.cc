// cmd://"COMMAND ARGS": frames over the standard input and output of a command (run with
// /bin/sh -c), each preceded by its length as 2 bytes big-endian, as vde_plug speaks on its
// stdio (so `cmd://"ssh host vde_plug"` joins a remote switch). The command runs in its own
// process group; its stderr is ours. Its exit (seen through a pidfd when the kernel has
// them) or the end of its output takes the link down with the exit status; close() closes
// its input, signals the group (SIGTERM, then SIGKILL after 200 ms) and reaps it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "link/fdlink.h"
#include "link/fdutil.h"

extern char** environ;

namespace ms {
namespace {

constexpr size_t kMaxRecord = 9236;            // VDE_ETHBUFSIZE + 2, as libvdestream accepts
constexpr size_t kOutLimit = 1u << 20;         // queued output beyond: frames dropped
constexpr size_t kReadChunk = 64 * 1024;

std::string status_text(int st) {
  if (WIFEXITED(st)) return "exited with status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    const char* name = sigabbrev_np(WTERMSIG(st));
    return std::string("was killed by signal ") + (name ? std::string("SIG") + name : std::to_string(WTERMSIG(st)));
  }
  return "ended";
}

class CmdLink final : public FdLink {
 public:
  CmdLink(pid_t pid, int in_fd, int out_fd, int pidfd, std::string cmd)
      : pid_(pid), to_child_(in_fd), from_child_(out_fd), pidfd_(pidfd), cmd_(std::move(cmd)) {
    in_.reserve(kReadChunk);
  }
  ~CmdLink() override { close(); }

  std::vector<int> fds() const override {
    std::vector<int> v;
    if (from_child_ >= 0) v.push_back(from_child_);
    if (to_child_ >= 0) v.push_back(to_child_);
    if (pidfd_ >= 0) v.push_back(pidfd_);
    return v;
  }
  const char* kind() const override { return "cmd"; }
  bool wants_write(int fd) const override { return fd == to_child_ && to_child_ >= 0 && out_off_ < out_.size(); }

  size_t on_readable(int fd, size_t budget) override {
    if (fd == pidfd_) {
      // the command ended: take what it wrote before, then report how it ended
      size_t n = read_frames(SIZE_MAX);
      reap_and_down(false);
      return n;
    }
    if (fd == to_child_) {
      // the read end of its input closed (POLLERR/POLLHUP on a write pipe)
      if (!down()) reap_and_down(true);
      return 0;
    }
    if (fd != from_child_) return 0;
    return read_frames(budget);
  }

  void on_writable(int fd) override {
    if (fd == to_child_) flush();
  }

  void transmit(const uint8_t* frame, size_t len) override {
    if (to_child_ < 0 || down() || len > kMaxRecord - 2 || len == 0) { stats_.tx_dropped++; return; }
    uint8_t hdr[2] = {uint8_t(len >> 8), uint8_t(len)};
    size_t done = 0;
    if (out_off_ == out_.size()) {
      // nothing queued: straight to the pipe
      out_.clear();
      out_off_ = 0;
      iovec iov[2] = {{hdr, 2}, {const_cast<uint8_t*>(frame), len}};
      for (;;) {
        ssize_t r = ::writev(to_child_, iov, 2);
        if (r >= 0) { done = size_t(r); break; }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        write_failed(errno);
        return;
      }
      if (done == len + 2) { stats_.tx_frames++; stats_.tx_bytes += len; return; }
    }
    size_t left = len + 2 - done;
    if (out_.size() - out_off_ + left > kOutLimit) {
      if (done > 0) {
        // a record was begun on the pipe: it must be finished, whatever the limit says
      } else {
        stats_.tx_dropped++;
        return;
      }
    }
    if (done < 2) out_.insert(out_.end(), hdr + done, hdr + 2);
    size_t from = done > 2 ? done - 2 : 0;
    out_.insert(out_.end(), frame + from, frame + len);
    stats_.tx_frames++;
    stats_.tx_bytes += len;
  }

  void close() override {
    if (from_child_ >= 0) { ::close(from_child_); from_child_ = -1; }
    if (to_child_ >= 0) { ::close(to_child_); to_child_ = -1; }
    if (pid_ > 0) {
      // the whole group: sh and what it started
      ::kill(-pid_, SIGTERM);
      ::kill(pid_, SIGTERM);
      if (!wait_exit(200)) {
        ::kill(-pid_, SIGKILL);
        ::kill(pid_, SIGKILL);
        int st;
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {}
      }
      pid_ = -1;
    }
    if (pidfd_ >= 0) { ::close(pidfd_); pidfd_ = -1; }
    out_.clear();
    in_.clear();
  }

 private:
  size_t read_frames(size_t budget) {
    size_t n = 0;
    while (from_child_ >= 0 && n < budget) {
      size_t old = in_.size();
      in_.resize(old + kReadChunk);
      ssize_t r = ::read(from_child_, in_.data() + old, kReadChunk);
      in_.resize(old + (r > 0 ? size_t(r) : 0));
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) reap_and_down(true);
        break;
      }
      if (r == 0) { parse(&n); reap_and_down(true); break; }
      parse(&n);
    }
    return n;
  }

  // whole records out of in_; what is left is the start of the next one
  void parse(size_t* count) {
    size_t off = 0;
    while (in_.size() - off >= 2) {
      size_t len = (size_t(in_[off]) << 8) | in_[off + 1];
      if (len == 0) { off += 2; continue; }
      if (len > kMaxRecord) {
        // no way to find the next record boundary: drop what we hold, as libvdestream does
        stats_.rx_malformed++;
        (*count)++;
        off = in_.size();
        break;
      }
      if (in_.size() - off - 2 < len) break;
      (*count)++;
      if (len < 14) stats_.rx_malformed++;
      else deliver(in_.data() + off + 2, len);
      off += 2 + len;
    }
    if (off) in_.erase(in_.begin(), in_.begin() + long(off));
  }

  void flush() {
    while (to_child_ >= 0 && out_off_ < out_.size()) {
      ssize_t r = ::write(to_child_, out_.data() + out_off_, out_.size() - out_off_);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) write_failed(errno);
        return;
      }
      out_off_ += size_t(r);
    }
    if (out_off_ == out_.size()) { out_.clear(); out_off_ = 0; }
    else if (out_off_ > kOutLimit / 2) { out_.erase(out_.begin(), out_.begin() + long(out_off_)); out_off_ = 0; }
  }

  void write_failed(int e) {
    stats_.tx_errors++;
    if (e == EPIPE) reap_and_down(true);
    else set_down("cmd: writing to '" + cmd_ + "' failed (write: " + errno_text(e) + ")");
  }

  bool wait_exit(int ms) {
    if (pid_ <= 0) return true;
    for (int waited = 0;; waited += 5) {
      int st = 0;
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) { exit_status_ = st; exited_ = true; pid_ = -1; return true; }
      if (r < 0 && errno == ECHILD) { pid_ = -1; return true; }  // reaped by someone else
      if (waited >= ms) return false;
      if (pidfd_ >= 0) {
        pollfd p = {pidfd_, POLLIN, 0};
        ::poll(&p, 1, 5);
      } else {
        ::usleep(5000);
      }
    }
  }

  // the command ended, or closed its side of a pipe (then give it a moment to exit, to tell
  // how it ended)
  void reap_and_down(bool pipe_closed) {
    if (down()) return;
    wait_exit(pipe_closed ? 50 : 0);
    std::string how;
    if (exited_) how = status_text(exit_status_);
    else how = pipe_closed ? "closed its standard input or output" : "ended";
    set_down("cmd: '" + cmd_ + "' " + how);
    // the descriptors stay open until close(): the binding stops polling them first
  }

  pid_t pid_;
  int to_child_, from_child_, pidfd_;
  std::string cmd_;
  std::vector<uint8_t> in_;
  std::vector<uint8_t> out_;
  size_t out_off_ = 0;
  int exit_status_ = 0;
  bool exited_ = false;
};

std::string unquote(const std::string& s) {
  if (s.size() >= 2 && (s[0] == '"' || s[0] == '\'') && s.back() == s[0]) return s.substr(1, s.size() - 2);
  return s;
}

}  // namespace

FdLinkOpen open_cmd_link(const std::string& rest, const FdLinkParams&) {
  std::string cmd = unquote(rest);
  bool blank = true;
  for (char c : cmd) if (c != ' ' && c != '\t') blank = false;
  if (blank) return link_error(EINVAL, "cmd: no command (cmd://\"COMMAND ARGS\")");
  if (cmd.find('\0') != std::string::npos) return link_error(EINVAL, "cmd: the command holds a NUL byte");

  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) < 0) return link_error(errno, "cmd: pipe: " + errno_text(errno));
  if (::pipe2(out_pipe, O_CLOEXEC) < 0) {
    int e = errno;
    ::close(in_pipe[0]); ::close(in_pipe[1]);
    return link_error(e, "cmd: pipe: " + errno_text(e));
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawnattr_init(&at);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);  // cannot be caught or ignored anyway
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);  // Node ignores SIGPIPE; the command must not
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  const char* argv[] = {"sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = -1;
  int e = posix_spawn(&pid, "/bin/sh", &fa, &at, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (e != 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    return link_error(e, "cmd: cannot start /bin/sh (posix_spawn: " + errno_text(e) + ")");
  }
  ::fcntl(in_pipe[1], F_SETFL, ::fcntl(in_pipe[1], F_GETFL) | O_NONBLOCK);
  ::fcntl(out_pipe[0], F_SETFL, ::fcntl(out_pipe[0], F_GETFL) | O_NONBLOCK);
  // bigger pipes: fewer wake-ups per frame at full speed (best effort)
  ::fcntl(in_pipe[1], F_SETPIPE_SZ, 1 << 20);
  ::fcntl(out_pipe[0], F_SETPIPE_SZ, 1 << 20);
  int pidfd = -1;
#ifdef SYS_pidfd_open
  pidfd = int(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
#endif
  FdLinkOpen r;
  r.link = std::make_unique<CmdLink>(pid, in_pipe[1], out_pipe[0], pidfd, cmd);
  return r;
}

}  // namespace ms
