// Cheap stacks: 10,000 stacks created and destroyed; memory per idle stack (mallinfo2, or
// the sanitizer allocator's count under ASan); 1,000 stacks on one hub.
#include <chrono>

#include "check.h"
#include "heap.h"
#include "world.h"

using namespace tw;

#if defined(__SANITIZE_ADDRESS__)
static const char* kBuild = "ASan build";
static const size_t kSlack = 4096;  // the sanitizer counts exactly
#else
static const char* kBuild = "plain build";
static const size_t kSlack = 65536;  // glibc keeps some memory of its own (stdio, arenas)
#endif

TEST("scale: 10,000 idle stacks (interface, address, route): memory and time per stack, no leak") {
  const int N = 10000;
  size_t base = heap_in_use();
  std::vector<std::unique_ptr<Stack>> v;
  v.reserve(N);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < N; i++) v.push_back(std::make_unique<Stack>());
  auto t1 = std::chrono::steady_clock::now();
  size_t bare = heap_in_use();
  for (int i = 0; i < N; i++) {
    InterfaceConfig ic;
    ic.mac.b[0] = 2;
    ic.mac.b[4] = uint8_t(i >> 8);
    ic.mac.b[5] = uint8_t(i);
    int ifx = v[size_t(i)]->add_interface(ic);
    v[size_t(i)]->add_address(ifx, IpAddr::v4(0x0a000000u + uint32_t(i) + 1), 16);
    v[size_t(i)]->add_route(ip("0.0.0.0"), 0, ip("10.0.255.254"));
  }
  size_t configured = heap_in_use();
  for (int i = 0; i < N; i++) {
    int sd = v[size_t(i)]->socket(AF_INET, SOCK_DGRAM, 0);
    v[size_t(i)]->bind(sd, ep("0.0.0.0", 53));
  }
  size_t with_socket = heap_in_use();
  for (int i = 0; i < N; i++) {
    int sd = v[size_t(i)]->socket(AF_INET, SOCK_STREAM, 0);
    v[size_t(i)]->bind(sd, ep("0.0.0.0", 80));
    v[size_t(i)]->listen(sd, 128);
  }
  size_t with_listener = heap_in_use();
  auto t2 = std::chrono::steady_clock::now();
  v.clear();
  v.shrink_to_fit();
  auto t3 = std::chrono::steady_clock::now();
  size_t after = heap_in_use();
  double us_new = std::chrono::duration<double, std::micro>(t1 - t0).count() / N;
  double us_del = std::chrono::duration<double, std::micro>(t3 - t2).count() / N;
  std::printf("  sizeof(Stack) %zu B; per stack: bare %zu B, configured %zu B, + bound UDP socket %zu B, + TCP listener %zu B\n",
              sizeof(Stack), (bare - base) / N, (configured - base) / N, (with_socket - base) / N, (with_listener - base) / N);
  std::printf("  construct %.2f us, destroy %.2f us per stack (%s); heap after destroy vs before: %zd B\n", us_new, us_del,
              kBuild, ssize_t(after) - ssize_t(base));
  CHECK((configured - base) / N <= 16384);
  CHECK(after <= base + kSlack);
}

TEST("scale: 1,000 stacks on one hub: gratuitous ARP floods drained, then ping across") {
  const int N = 1000;
  size_t base = heap_in_use();
  {
    World w;
    for (int i = 0; i < N; i++) {
      char cidr[32];
      std::snprintf(cidr, sizeof cidr, "10.1.%d.%d/16", i / 250, i % 250 + 1);
      w.add(cidr);
    }
    w.settle();  // half a million frames delivered (each stack's announcement reaches those before it)
    w.hub.trim();  // what drain() does gradually: idle queues are freed
    size_t idle = heap_in_use();
    CHECK_EQ(w.hub.stats().delivered, uint64_t(N) * (N - 1) / 2);
    std::printf("  hub delivered %llu frames; per idle stack on the hub (stack + port + world): %zu B\n",
                (unsigned long long)w.hub.stats().delivered, (idle - base) / N);
    Node& a = *w.nodes[0];
    a.st->ping(ip("10.1.3.250"), 32, nullptr);
    w.advance(10000);
    CHECK(a.pings.size() == 1 && a.pings[0].status == 0);
    CHECK((idle - base) / N <= 32768);
  }
  CHECK(heap_in_use() <= base + kSlack);
}
TEST_MAIN()
