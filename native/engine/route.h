// The routing table of a host: connected routes (from addresses), static routes with
// gateways, longest-prefix match, source address selection.
#pragma once
#include <vector>

#include "common.h"

namespace ms {

struct Route {
  IpAddr dst;           // network (host bits zero)
  uint8_t prefix = 0;
  IpAddr gateway;       // unset: connected (on-link)
  int ifindex = 0;
  uint32_t metric = 0;
  IpAddr src;           // preferred source; unset: chosen from the interface
  bool connected = false;  // added with an address, removed with it
};

/** true if a and b share the first `prefix` bits */
inline bool prefix_match(const IpAddr& a, const IpAddr& b, uint8_t prefix) {
  if (a.family != b.family) return false;
  size_t full = prefix / 8;
  if (std::memcmp(a.b, b.b, full) != 0) return false;
  unsigned rem = prefix % 8;
  if (!rem) return true;
  uint8_t mask = uint8_t(0xff << (8 - rem));
  return (a.b[full] & mask) == (b.b[full] & mask);
}
inline IpAddr prefix_network(const IpAddr& a, uint8_t prefix) {
  IpAddr n = a;
  n.scope = 0;
  for (size_t i = 0; i < 16; i++) {
    int bits = int(prefix) - int(i * 8);
    if (bits >= 8) continue;
    n.b[i] &= bits <= 0 ? 0 : uint8_t(0xff << (8 - bits));
  }
  return n;
}

class RouteTable {
 public:
  /** insert keeping longest prefix first, then lowest metric; replaces an equal route */
  void add(const Route& r) {
    for (auto& e : routes_) {
      if (e.dst == r.dst && e.prefix == r.prefix && e.metric == r.metric && e.gateway == r.gateway && e.ifindex == r.ifindex) { e = r; gen_++; return; }
    }
    auto it = routes_.begin();
    while (it != routes_.end() && (it->prefix > r.prefix || (it->prefix == r.prefix && it->metric <= r.metric))) ++it;
    routes_.insert(it, r);
    gen_++;
  }
  /** remove the routes matching dst/prefix (and gateway when set); count removed */
  int remove(const IpAddr& dst, uint8_t prefix, const IpAddr* gateway) {
    int n = 0;
    for (size_t i = 0; i < routes_.size();) {
      auto& e = routes_[i];
      if (e.dst == dst && e.prefix == prefix && (!gateway || e.gateway == *gateway)) { routes_.erase(routes_.begin() + long(i)); n++; }
      else i++;
    }
    if (n) gen_++;
    return n;
  }
  void remove_if_interface(int ifindex) {
    for (size_t i = 0; i < routes_.size();) {
      if (routes_[i].ifindex == ifindex) routes_.erase(routes_.begin() + long(i)); else i++;
    }
    gen_++;
  }
  void remove_connected(int ifindex, const IpAddr& net, uint8_t prefix) {
    for (size_t i = 0; i < routes_.size();) {
      auto& e = routes_[i];
      if (e.connected && e.ifindex == ifindex && e.dst == net && e.prefix == prefix) routes_.erase(routes_.begin() + long(i)); else i++;
    }
    gen_++;
  }
  /** longest-prefix match, nullptr if none */
  const Route* lookup(const IpAddr& dst) const {
    for (auto& r : routes_) if (prefix_match(r.dst, dst, r.prefix)) return &r;
    return nullptr;
  }
  const std::vector<Route>& routes() const { return routes_; }
  uint64_t generation() const { return gen_; }
  void clear() { routes_.clear(); gen_++; }

 private:
  std::vector<Route> routes_;
  uint64_t gen_ = 1;
};

}  // namespace ms
