// Shared by the vde, vxvde and vxlan drivers: VNL option parsing in vdeplug4's syntax, the
// bounded MAC learning table of vxvde/vxlan, socket address helpers, and the small classes
// through which tests and the binding read a driver's own counters.
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "link/fdlink.h"

namespace ms {
namespace vnl {

/** longest VNL we parse; longer is EINVAL */
constexpr size_t kMaxUrl = 4096;
/** the largest frame a VDE link carries: VDE_ETHBUFSIZE (9216 + 14 + 4) */
constexpr size_t kMaxFrame = 9234;
constexpr size_t kEthHeader = 14;

/** one option of a module: name, and where its value goes (set: given at all) */
struct Param {
  Param(const char* k) : key(k) {}  // NOLINT: implicit, for {"port", "vni", ...} lists
  const char* key;
  std::string value;
  bool set = false;
};

/** Split `s` at any character of `delims` outside quotes, as vdeplug4 does: '...' and "..."
    quote, a backslash takes the next character literally; quotes and backslashes are
    removed. %XX (two hex digits) becomes that byte. Never fails: unterminated quotes run to
    the end. */
std::vector<std::string> split_quoted(const std::string& s, const char* delims);

/** Apply `elems` (key=value or flag) to params: a key matches the first param whose name
    begins with it (vdeplug4's prefix rule), a flag gets the empty value. Elements with an
    empty key are ignored. An unknown key: returns false and names it in *err. When
    `unnamed` is not null, an unknown bare element (no '=') goes there instead. */
bool apply_params(const std::vector<std::string>& elems, std::vector<Param>& params, std::string* err,
                  std::string* unnamed = nullptr);

/** the param named key (must exist) */
Param& param(std::vector<Param>& params, const char* key);

/** decimal (or 0x hex) unsigned number in [lo, hi], whole string; false otherwise */
bool parse_uint(const std::string& s, uint64_t lo, uint64_t hi, uint64_t* out);
/** a number with an optional k/M/G suffix (vdeplug4's rcvbuf=), at most `hi` */
bool parse_size(const std::string& s, uint64_t hi, uint64_t* out);
/** a group name or number (vdeplug4's grp= and vni=); "" is the effective gid; false if
    there is no such group */
bool parse_gid(const std::string& s, uint32_t* out);

/** "ENOENT" for ENOENT, ... ("E?" plus the number for the rare ones) */
std::string errno_name(int err);

/** a failed open: errno and message */
FdLinkOpen fail(int err, std::string message);

struct SockAddr;
/** host (numeric, [v6], or a name) and port into *out; family AF_INET, AF_INET6 or AF_UNSPEC.
    0, or an errno with *err saying why */
int resolve(std::string host, uint16_t port, int family, SockAddr* out, std::string* err);

/** a socket address small enough to keep in a table, compared by family, address and port */
struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
  sockaddr* sa() { return reinterpret_cast<sockaddr*>(&ss); }
  uint16_t port() const;  // host order
  void set_port(uint16_t p);
  bool same(const SockAddr& o) const;  // family, address and port
  bool same_ip(const SockAddr& o) const;
  std::string str() const;
};

/** MAC -> where to send frames for it, learned from received datagrams; entries older than
    `expire` are ignored and swept; at most `max` entries (when full: expired entries are
    swept, then the oldest is replaced) */
class MacTable {
 public:
  MacTable(size_t max, Micros expire) : max_(max ? max : 1), expire_(expire) {}
  /** the learned address of mac, or nullptr (unknown or expired) */
  const SockAddr* lookup(const uint8_t* mac, Micros now) const;
  /** record that mac was seen at addr; returns true if the entry is new or moved */
  bool learn(const uint8_t* mac, const SockAddr& addr, Micros now);
  /** forget every MAC whose address is addr; returns how many */
  size_t forget(const SockAddr& addr);
  /** drop entries that have expired */
  size_t sweep(Micros now);
  size_t size() const { return map_.size(); }
  size_t max() const { return max_; }
  uint64_t evictions() const { return evictions_; }

 private:
  struct Entry { SockAddr addr; Micros seen; };
  static uint64_t key(const uint8_t* m) { uint64_t k = 0; std::memcpy(&k, m, 6); return k; }
  std::unordered_map<uint64_t, Entry> map_;
  size_t max_;
  Micros expire_;
  uint64_t evictions_ = 0;
};

bool is_multicast(const SockAddr& a);
/** the address bytes (4 or 16) of an AF_INET/AF_INET6 address */
uint8_t* ip_bytes(SockAddr& a, size_t* len);

}  // namespace vnl

/** counters of the vxvde and vxlan drivers beyond FdLinkStats */
struct VxStats {
  uint64_t tx_multicast = 0;   // frames sent to the group (broadcast/multicast/unknown destination)
  uint64_t tx_unicast = 0;     // frames sent to a learned peer
  uint64_t rx_wrong_header = 0;  // other VNI or flags (also in rx_filtered)
  uint64_t rx_own = 0;         // our own datagrams looped back by multicast (also in rx_filtered)
  uint64_t learned = 0;        // new or moved table entries
  uint64_t goodbyes_rx = 0;    // vxvde goodbye datagrams accepted
  uint64_t forgotten = 0;      // entries removed by goodbyes
  uint64_t expired = 0;        // entries removed by aging
};

/** what vxvde and vxlan links show besides FdLink's */
class VxLink : public FdLink {
 public:
  const VxStats& vx_stats() const { return vx_; }
  virtual size_t table_size() const = 0;
  /** the learned peer of mac ("ip:port"), or "" */
  virtual std::string peer_of(const MacAddr& mac) const = 0;
  /** the local unicast port (vxvde: the ephemeral sending port; vxlan: the VXLAN port) */
  virtual uint16_t local_port() const = 0;
  /** the multicast group and port ("239.0.0.1:14789") */
  virtual std::string group() const = 0;
  virtual uint32_t vni() const = 0;

 protected:
  VxStats vx_;
};

/** what a vde link shows besides FdLink's */
class VdeLink : public FdLink {
 public:
  /** the switch's data socket for our port ("/tmp/sw/003.8"), as the switch answered */
  virtual const std::string& switch_socket() const = 0;
  /** the port number the switch gave us (from its answer), 0 if it did not say */
  virtual int port() const = 0;
  /** frames waiting for the switch to accept them */
  virtual size_t queued() const = 0;
};

}  // namespace ms
