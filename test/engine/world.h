// Test fixture: stacks on an in-process hub with a virtual clock.
// The hub's code is compiled into the test (test/engine/run.sh links the engine only).
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "engine/stack.h"
#include "link/hub.cc"
#include "link/hub.h"

namespace tw {
using namespace ms;

inline IpAddr ip(const char* s) { IpAddr a; if (!a.parse(s)) std::abort(); return a; }
inline Endpoint ep(const char* s, uint16_t port) { Endpoint e; e.addr = ip(s); e.port = port; return e; }

struct Node {
  std::unique_ptr<Stack> st;
  Hub::Port* port = nullptr;
  int ifindex = 0;
  std::vector<std::pair<int, uint32_t>> events;
  std::vector<PingResult> pings;
};

struct World {
  Hub hub;
  Micros now = 1000000;
  std::vector<std::unique_ptr<Node>> nodes;

  World() = default;
  explicit World(const Hub::Config& c) : hub("test", c) {}

  /** a stack with one interface on the hub and address cidr ("10.0.0.1/24") */
  Node& add(const char* cidr, StackConfig cfg = {}, uint32_t mtu = 1500) {
    auto n = std::make_unique<Node>();
    Node* np = n.get();
    cfg.seed += nodes.size() * 7919;
    n->st = std::make_unique<Stack>(cfg);
    n->st->set_now(now);
    n->port = hub.attach([](void* c, const uint8_t* f, size_t len) {
      Node* x = static_cast<Node*>(c);
      x->st->input(x->ifindex, f, len);
    }, np);
    InterfaceConfig ic;
    ic.mac.b[0] = 0x02; ic.mac.b[4] = uint8_t(nodes.size() >> 8); ic.mac.b[5] = uint8_t(nodes.size() + 1);
    ic.mtu = mtu;
    ic.link = n->port;
    n->ifindex = n->st->add_interface(ic);
    std::string s(cidr);
    auto slash = s.find('/');
    n->st->add_address(n->ifindex, ip(s.substr(0, slash).c_str()), uint8_t(std::atoi(s.c_str() + slash + 1)));
    n->st->set_event_sink([](void* c, int sd, uint32_t ev) { static_cast<Node*>(c)->events.push_back({sd, ev}); }, np);
    n->st->set_ping_handler([](void* c, const PingResult& r) { static_cast<Node*>(c)->pings.push_back(r); }, np);
    nodes.push_back(std::move(n));
    return *np;
  }

  /** deliver and run timers at the current time until nothing moves */
  void settle(int max_rounds = 1000000) {
    for (int i = 0; i < max_rounds; i++) {
      size_t moved = hub.drain(4096);
      bool polled = false;
      for (auto& n : nodes)
        if (n->st->poll_at() <= now) { n->st->poll(now); polled = true; }
      if (!moved && !polled) return;
    }
  }
  void set_time(Micros t) {
    now = t;
    hub.set_now(t);
    for (auto& n : nodes) n->st->set_now(t);
  }
  /** run the world for dt microseconds, jumping from timer to timer */
  void advance(Micros dt) {
    Micros end = now + dt;
    for (;;) {
      settle();
      Micros next = kNever;
      for (auto& n : nodes) next = std::min(next, n->st->poll_at());
      if (next > end) { set_time(end); settle(); return; }
      set_time(std::max(now, next));
    }
  }
  /** advance in steps until pred() holds or dt passes; true if it held */
  template <class F>
  bool until(Micros dt, F&& pred, Micros step = 1000) {
    Micros end = now + dt;
    while (now < end) {
      settle();
      if (pred()) return true;
      Micros next = kNever;
      for (auto& n : nodes) next = std::min(next, n->st->poll_at());
      set_time(std::min(end, std::max(now + 1, std::min(next, now + step))));
    }
    settle();
    return pred();
  }
};

/** a Link that keeps the frames it is given */
struct SinkLink : Link {
  std::vector<std::vector<uint8_t>> frames;
  bool offload = false;
  void transmit(const uint8_t* f, size_t n) override { frames.emplace_back(f, f + n); }
  bool csum_offload() const override { return offload; }
};

}  // namespace tw
