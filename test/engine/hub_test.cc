// The in-process hub: learning, flooding, bounded queues, no delivery inside transmit,
// drain budgets, detach (also from inside a delivery), MAC aging.
#include "check.h"
#include "world.h"

using namespace tw;

struct Rx {
  std::vector<std::vector<uint8_t>> got;
  Hub* hub = nullptr;
  Hub::Port* self = nullptr;
  bool detach_on_receive = false;
};

static void deliver(void* c, const uint8_t* f, size_t n) {
  Rx* r = static_cast<Rx*>(c);
  r->got.emplace_back(f, f + n);
  if (r->detach_on_receive) { r->hub->detach(r->self); r->self = nullptr; }
}

static std::vector<uint8_t> frame(uint8_t dst, uint8_t src, size_t len = 60) {
  std::vector<uint8_t> f(len, 0);
  if (dst == 0xff) std::memset(f.data(), 0xff, 6); else { f[0] = 2; f[5] = dst; }
  f[6] = 2; f[11] = src;
  f[12] = 0x08; f[13] = 0x00;
  return f;
}

TEST("hub: flood unknown and broadcast, learn, then unicast to one port; nothing inside transmit") {
  Hub hub("h");
  Rx r[3];
  Hub::Port* p[3];
  for (int i = 0; i < 3; i++) { r[i].hub = &hub; p[i] = r[i].self = hub.attach(deliver, &r[i]); }
  CHECK(p[0]->csum_offload());
  auto f = frame(2, 1);  // to MAC ..02 (unknown yet), from ..01
  p[0]->transmit(f.data(), f.size());
  CHECK(r[1].got.empty() && r[2].got.empty());  // queued, not delivered
  CHECK(hub.pending());
  CHECK_EQ(hub.drain(), 2u);
  CHECK(r[1].got.size() == 1 && r[2].got.size() == 1 && r[0].got.empty());
  auto back = frame(1, 2);  // ..02 answers ..01: learned, unicast
  p[1]->transmit(back.data(), back.size());
  CHECK_EQ(hub.drain(), 1u);
  CHECK(r[0].got.size() == 1 && r[2].got.size() == 1);
  p[0]->transmit(f.data(), f.size());  // now ..02 is known
  hub.drain();
  CHECK(r[1].got.size() == 2 && r[2].got.size() == 1);
  auto b = frame(0xff, 1);
  p[0]->transmit(b.data(), b.size());
  hub.drain();
  CHECK(r[1].got.size() == 3 && r[2].got.size() == 2);
  auto self = frame(1, 3);  // ..03 sends to ..01 via port 2; then port 0 sends to ..01 itself
  p[2]->transmit(self.data(), self.size());
  hub.drain();
  auto loop = frame(1, 1);
  p[0]->transmit(loop.data(), loop.size());  // destination on the sender's own port: filtered
  CHECK(!hub.pending());
  CHECK_EQ(hub.stats().filtered, 1u);
  CHECK(r[0].got.back() == self);
  uint8_t runt[10] = {};
  p[0]->transmit(runt, sizeof runt);
  CHECK_EQ(hub.stats().runts, 1u);
}

TEST("hub: bounded queues drop (counted), budgets, round robin, detach inside a delivery") {
  Hub::Config c;
  c.port_queue_bytes = 16384;
  Hub hub("h", c);
  Rx r[3];
  Hub::Port* p[3];
  for (int i = 0; i < 3; i++) { r[i].hub = &hub; p[i] = r[i].self = hub.attach(deliver, &r[i]); }
  auto f = frame(0xff, 1, 1000);
  for (int i = 0; i < 100; i++) p[0]->transmit(f.data(), f.size());
  CHECK(p[1]->queued() == 16 && p[2]->queued() == 16);  // 16 x (1000 + 8) bytes fit in 16 KiB
  CHECK_EQ(p[1]->stats().rx_queue_drops, 84u);
  CHECK_EQ(hub.drain(10), 10u);
  CHECK_EQ(hub.drain(), 22u);
  CHECK(r[1].got.size() == 16 && r[2].got.size() == 16);
  // a receiver that detaches itself while handling a frame
  r[1].detach_on_receive = true;
  for (int i = 0; i < 5; i++) p[0]->transmit(f.data(), f.size());
  hub.drain();
  CHECK_EQ(r[1].got.size(), 17u);  // the rest of its queue went with it
  CHECK_EQ(r[2].got.size(), 21u);
  CHECK_EQ(hub.port_count(), 2u);
  // a new port reuses the slot: learned MACs of the old port do not apply to it
  Rx r3;
  r3.hub = &hub;
  Hub::Port* p3 = hub.attach(deliver, &r3);
  auto to1 = frame(1, 9);
  p[2]->transmit(to1.data(), to1.size());  // ..01 is known on port 0 still
  hub.drain();
  CHECK(r3.got.empty() && r[0].got.size() == 1);
  hub.detach(p3);
}

TEST("hub: MAC aging with set_now; a moved MAC follows its new port") {
  Hub::Config c;
  c.mac_age_ms = 1000;
  Hub hub("h", c);
  Rx r[3];
  Hub::Port* p[3];
  for (int i = 0; i < 3; i++) { r[i].hub = &hub; p[i] = hub.attach(deliver, &r[i]); }
  hub.set_now(1000000);
  auto from1 = frame(0xff, 1);
  p[0]->transmit(from1.data(), from1.size());
  hub.drain();
  auto to1 = frame(1, 2);
  p[1]->transmit(to1.data(), to1.size());
  hub.drain();
  CHECK(r[0].got.size() == 1 && r[2].got.size() == 1);  // unicast: only port 0 (r2 got the broadcast)
  hub.set_now(2500000);  // aged out: flooded again
  p[1]->transmit(to1.data(), to1.size());
  hub.drain();
  CHECK(r[0].got.size() == 2 && r[2].got.size() == 2);
  p[2]->transmit(from1.data(), from1.size());  // ..01 moves to port 2
  hub.drain();
  p[1]->transmit(to1.data(), to1.size());
  hub.drain();
  CHECK(r[2].got.size() == 3 && r[0].got.size() == 3);  // port 0 saw only the broadcast
}

TEST("hub: two stacks exchange through drain only (no recursion), queues freed when idle") {
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24");
  a.st->ping(ip("10.0.0.2"), 8, nullptr);  // resolved first: ARP's pending queue is not the test
  w.settle();
  int sa = a.st->socket(AF_INET, SOCK_DGRAM, 0), sb = b.st->socket(AF_INET, SOCK_DGRAM, 0);
  b.st->bind(sb, ep("0.0.0.0", 1));
  Endpoint to = ep("10.0.0.2", 1);
  std::vector<char> d(1400, 'x');
  for (int i = 0; i < 100; i++) a.st->sendto(sa, d.data(), d.size(), 0, &to);
  w.settle();
  char buf[1500];
  int n = 0;
  while (b.st->recv(sb, buf, sizeof buf) > 0) n++;
  CHECK_EQ(n, 100);
  for (int i = 0; i < 100; i++) w.hub.drain();
  CHECK(b.port->queued() == 0);
}
TEST_MAIN()
