// The cmd:// and udp:// link drivers under AddressSanitizer: stream framing both ways through
// `cat` (every size, order kept), the bounded output buffer and poll-for-write, hostile byte
// streams, the child's exit reported with its status, close() reaping; udp datagrams, the
// peer filter and runts. The drivers are compiled into this test directly (run.sh links only
// the engine).
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "link/cmd.cc"
#include "link/udp.cc"

using namespace ms;

namespace {

struct Sink {
  std::vector<std::vector<uint8_t>> frames;
  static void put(void* c, const uint8_t* f, size_t n) { static_cast<Sink*>(c)->frames.emplace_back(f, f + n); }
};

std::vector<uint8_t> frame_of(size_t len, uint32_t tag) {
  std::vector<uint8_t> f(len);
  for (size_t i = 0; i < len; i++) f[i] = uint8_t((i * 7 + tag) & 0xff);
  if (len >= 4) std::memcpy(f.data(), &tag, 4);
  return f;
}

/** poll the link's descriptors and serve them until pred() or timeout_ms */
template <typename Pred>
bool pump(FdLink& l, int timeout_ms, Pred pred) {
  for (int waited = 0; waited < timeout_ms && !pred(); waited += 10) {
    std::vector<pollfd> p;
    for (int fd : l.fds()) p.push_back({fd, short(POLLIN | (l.wants_write(fd) ? POLLOUT : 0)), 0});
    if (p.empty()) return pred();
    ::poll(p.data(), p.size(), 10);
    for (auto& x : p) {
      if (x.revents & POLLOUT) l.on_writable(x.fd);
      if (x.revents & (POLLIN | POLLERR | POLLHUP)) l.on_readable(x.fd, 256);
    }
    if (l.down()) break;
  }
  return pred();
}

/** every child this process started has been reaped (none running, no zombie) */
bool no_child_left() {
  int st;
  return ::waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD;
}

}  // namespace

TEST("cmd: frames through cat come back whole and in order, 14 to 9234 bytes") {
  FdLinkOpen o = open_cmd_link("\"cat\"", FdLinkParams{});
  CHECK(o.link != nullptr);
  if (!o.link) return;
  FdLink& l = *o.link;
  Sink sink;
  l.set_receiver(&Sink::put, &sink);
  std::vector<std::vector<uint8_t>> sent;
  for (uint32_t i = 0; i < 400; i++) {
    size_t len = 14 + (size_t(i) * 977) % (9234 - 14 + 1);
    if (i == 1) len = 9234;
    sent.push_back(frame_of(len, i));
    l.transmit(sent.back().data(), sent.back().size());
    pump(l, 0, [] { return false; });  // serve what is readable/writable now
  }
  CHECK(pump(l, 5000, [&] { return sink.frames.size() == sent.size(); }));
  CHECK_EQ(sink.frames.size(), sent.size());
  bool same = sink.frames.size() == sent.size();
  for (size_t i = 0; same && i < sent.size(); i++) same = sink.frames[i] == sent[i];
  CHECK(same);
  CHECK_EQ(l.stats().rx_malformed, 0u);
  CHECK_EQ(l.stats().tx_dropped, 0u);
  CHECK(!l.down());
  l.close();
  CHECK(no_child_left());
}

TEST("cmd: frames over 9234 bytes are not sent; output beyond the bound is dropped, the rest arrives") {
  FdLinkOpen o = open_cmd_link("sleep 0.3; exec cat", FdLinkParams{});
  CHECK(o.link != nullptr);
  if (!o.link) return;
  FdLink& l = *o.link;
  Sink sink;
  l.set_receiver(&Sink::put, &sink);
  std::vector<uint8_t> big(9235, 1);
  l.transmit(big.data(), big.size());
  CHECK_EQ(l.stats().tx_dropped, 1u);
  // nobody reads for 0.3 s: the pipe fills, then the bounded buffer, then frames are dropped
  std::vector<uint8_t> f = frame_of(9000, 9);
  for (int i = 0; i < 2000; i++) l.transmit(f.data(), f.size());
  CHECK(l.stats().tx_dropped > 1);
  uint64_t accepted = l.stats().tx_frames;
  CHECK(accepted > 0 && accepted < 2000);
  bool wants = false;
  for (int fd : l.fds()) wants = wants || l.wants_write(fd);
  CHECK(wants);
  CHECK(pump(l, 10000, [&] { return sink.frames.size() == accepted; }));
  CHECK_EQ(sink.frames.size(), accepted);
  bool same = true;
  for (auto& x : sink.frames) same = same && x == f;
  CHECK(same);
  l.close();
}

TEST("cmd: hostile streams: runts and bad lengths counted, zero lengths skipped, nothing overflows") {
  // 200 KiB of random bytes, then a crafted tail: zero-length record, a runt, a good frame
  FdLinkOpen o = open_cmd_link("head -c 200000 /dev/urandom; printf '\\000\\000\\000\\003abc'; sleep 5", FdLinkParams{});
  CHECK(o.link != nullptr);
  if (!o.link) return;
  FdLink& l = *o.link;
  Sink sink;
  l.set_receiver(&Sink::put, &sink);
  pump(l, 1500, [&] { return false; });
  CHECK(l.stats().rx_malformed >= 1);
  for (auto& x : sink.frames) CHECK(x.size() >= 14 && x.size() <= 9236);
  CHECK(!l.down());
  l.close();
}

TEST("cmd: the command's exit takes the link down with its status; close() reaps") {
  FdLinkOpen o = open_cmd_link("'exit 3'", FdLinkParams{});
  CHECK(o.link != nullptr);
  if (!o.link) return;
  FdLink& l = *o.link;
  CHECK(pump(l, 5000, [&] { return l.down(); }));
  CHECK(l.down_reason().find("exited with status 3") != std::string::npos);
  uint8_t f[60] = {};
  l.transmit(f, sizeof f);
  CHECK_EQ(l.stats().tx_dropped, 1u);
  l.close();
  l.close();  // idempotent
  CHECK(no_child_left());
}

TEST("cmd: close() kills a command that does not stop on EOF") {
  FdLinkOpen o = open_cmd_link("trap '' TERM; sleep 30", FdLinkParams{});
  CHECK(o.link != nullptr);
  if (!o.link) return;
  ::usleep(100000);
  o.link->close();
  CHECK(no_child_left());
}

TEST("cmd: malformed URLs") {
  CHECK_EQ(open_cmd_link("", FdLinkParams{}).err, EINVAL);
  CHECK_EQ(open_cmd_link("\"\"", FdLinkParams{}).err, EINVAL);
  CHECK_EQ(open_cmd_link("'  '", FdLinkParams{}).err, EINVAL);
  CHECK_EQ(open_cmd_link(std::string("a\0b", 3), FdLinkParams{}).err, EINVAL);
}

static int free_udp_port() {
  int s = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(s);
  return ntohs(a.sin_port);
}

TEST("udp: one frame per datagram both ways; strangers filtered; runts malformed") {
  int pa = free_udp_port(), pb = free_udp_port();
  std::string A = "127.0.0.1:" + std::to_string(pa), B = "127.0.0.1:" + std::to_string(pb);
  FdLinkOpen a = open_udp_link(A + "->" + B, FdLinkParams{});
  FdLinkOpen b = open_udp_link(std::to_string(pb) + "->" + A, FdLinkParams{});
  CHECK(a.link && b.link);
  if (!a.link || !b.link) return;
  Sink sa, sb;
  a.link->set_receiver(&Sink::put, &sa);
  b.link->set_receiver(&Sink::put, &sb);
  std::vector<std::vector<uint8_t>> sent;
  for (uint32_t i = 0; i < 50; i++) {
    sent.push_back(frame_of(14 + i * 100, i));
    a.link->transmit(sent.back().data(), sent.back().size());
  }
  b.link->transmit(sent[3].data(), sent[3].size());
  CHECK(pump(*b.link, 2000, [&] { return sb.frames.size() == sent.size(); }));
  CHECK(sb.frames == sent);
  CHECK(pump(*a.link, 2000, [&] { return sa.frames.size() == 1; }));
  // a stranger and a runt from the peer's address
  int st = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(uint16_t(pa));
  ::sendto(st, sent[5].data(), sent[5].size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  ::close(st);
  uint8_t runt[5] = {1, 2, 3, 4, 5};
  b.link->transmit(runt, sizeof runt);
  CHECK(pump(*a.link, 2000, [&] { return a.link->stats().rx_filtered == 1 && a.link->stats().rx_malformed == 1; }));
  CHECK_EQ(sa.frames.size(), 1u);
  a.link->close();
  b.link->close();
}

TEST("udp: malformed URLs") {
  for (const char* u : {"", "5000", "5000->", "->127.0.0.1:9", "5000->127.0.0.1", "5000->127.0.0.1:", "5000->127.0.0.1:0",
                        "5000->127.0.0.1:65536", "x->127.0.0.1:9", "1:2:x->127.0.0.1:9", "5000->127.0.0.1:9x"}) {
    FdLinkOpen o = open_udp_link(u, FdLinkParams{});
    CHECK(!o.link);
    CHECK_EQ(o.err, EINVAL);
    CHECK(!o.message.empty());
  }
}

TEST_MAIN()
