// Shared by the vde, vxvde and vxlan drivers: VNL option parsing in vdeplug4's syntax, the
// bounded MAC learning table of vxvde/vxlan, socket address helpers, the small classes
// through which tests and the binding read a driver's own counters, and VxBase, what vxvde
// and vxlan have in common (their URL's group and options, learning, transmit).
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

/** option key, when given, as a number in [lo, hi] into *out (left alone when not given);
    false if it is given and is not such a number */
template <typename T>
bool opt_uint(std::vector<Param>& params, const char* key, uint64_t lo, uint64_t hi, T* out) {
  const Param& p = param(params, key);
  uint64_t v;
  if (!p.set) return true;
  if (!parse_uint(p.value, lo, hi, &v)) return false;
  *out = T(v);
  return true;
}
/** the same for a size with an optional k/M/G suffix (parse_size), at most hi */
template <typename T>
bool opt_size(std::vector<Param>& params, const char* key, uint64_t hi, T* out) {
  const Param& p = param(params, key);
  uint64_t v;
  if (!p.set) return true;
  if (!parse_size(p.value, hi, &v)) return false;
  *out = T(v);
  return true;
}
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

/** what vxvde:// and vxlan:// URLs ([GROUP][/options]) share: the group and the options
    port=, ttl=, rcvbuf=, hashsize=, expiretime=, if=, v4 and v6 */
struct VxUrl {
  std::string host;       // GROUP as written ("": the default group)
  std::vector<Param> ps;  // every option of the module, as given
  uint16_t port = 0;
  int ttl = 1, rcvbuf = 0;
  size_t hash = 1024;     // hashsize=: at most so many learned MACs
  uint32_t expire = 128;  // expiretime=: seconds a learned MAC is kept (0 given: this default)
  unsigned ifindex = 0;   // if=
};
/** split rest and check the common options but if=, v4 and v6 (messages begin "kind: ");
    ps: every option of the module, in the order prefixes match them. False with *failed set. */
bool vx_parse(const char* kind, const std::string& rest, std::vector<Param> ps, uint16_t def_port, VxUrl* u,
              FdLinkOpen* failed);
/** u's group (the default one of the family v4/v6 ask for when none is written), resolved
    and multicast, and u->ifindex from if=. False with *failed set. */
bool vx_group(const char* kind, VxUrl* u, SockAddr* group, FdLinkOpen* failed);
/** EINVAL, "kind: bad key= value '...'" */
FdLinkOpen bad_value(const char* kind, std::vector<Param>& ps, const char* key);
/** join the multicast group on fd, on interface ifindex (0: where the route says); false with
    *failed set (its message begins with `kind`) if it cannot */
bool join_group(int fd, const SockAddr& group, unsigned ifindex, const char* kind, FdLinkOpen* failed);
/** send fd's multicast through interface ifindex: 0, or an errno with *what naming the option */
int set_multicast_if(int fd, int family, unsigned ifindex, const char** what);
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

/** what vxvde and vxlan have in common: the 8-byte header before each frame (flags 0x08, the
    24-bit VNI), the group, and the bounded table of MACs learned from received datagrams,
    aged as time goes on. A frame goes to the learned address of its destination, or to the
    group when that is unknown, broadcast or multicast. */
class VxBase : public VxLink {
 public:
  size_t table_size() const override { return table_.size(); }
  std::string peer_of(const MacAddr& mac) const override;
  std::string group() const override { return group_.str(); }
  uint32_t vni() const override { return vni_; }
  void set_now(Micros now) override;
  void transmit(const uint8_t* frame, size_t len) override;

 protected:
  static constexpr size_t kHdr = 8;
  /** expire_s: seconds a learned MAC is kept; hash: at most that many in the table */
  VxBase(const vnl::SockAddr& group, uint32_t vni, size_t hash, uint32_t expire_s);
  /** the socket frames are sent from; -1 once closed */
  virtual int send_fd() const = 0;
  /** a received frame (ethernet header first) came from `from`: learn its source MAC there */
  void learn(const uint8_t* frame, const vnl::SockAddr& from);

  vnl::SockAddr group_;
  uint32_t vni_;
  uint8_t hdr_[kHdr] = {};
  vnl::MacTable table_;
  Micros now_ = 0, swept_ = 0;
  std::vector<uint8_t> buf_;  // one received datagram (and a byte more, to see truncation)
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
