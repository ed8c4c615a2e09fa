// A network interface of a Stack: addresses, the link it transmits through, counters,
// egress fault injection (Impair) and an optional pcap capture.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "capture.h"
#include "common.h"
#include "link.h"
#include "packet.h"

namespace ms {

/** egress fault injection, applied to every frame an interface sends (as netem) */
struct Impair {
  double loss = 0, duplicate = 0, reorder = 0, corrupt = 0;  // probabilities 0..1
  uint32_t delay_ms = 0, jitter_ms = 0;  // jitter: uniform extra delay in [0, jitter_ms]
  uint32_t queue_limit = 4096;           // frames held in the delay queue, beyond: dropped
  bool active() const { return loss > 0 || duplicate > 0 || reorder > 0 || corrupt > 0 || delay_ms || jitter_ms; }
};

struct InterfaceConfig {
  std::string name;
  MacAddr mac;
  uint32_t mtu = 1500;       // IP packet size, 68..65535
  Link* link = nullptr;      // may be set later with Stack::set_link
  bool force_checksums = false;  // compute and verify checksums even if the link offloads them
  bool ipv6 = false;         // IPv6 from the start (link-local address, DAD); also enabled by a v6 address
  bool slaac = false;        // solicit router advertisements, form addresses from their prefixes (RFC 4862)
};

struct InterfaceStats {
  uint64_t rx_frames = 0, rx_bytes = 0, tx_frames = 0, tx_bytes = 0;
  uint64_t rx_malformed = 0;       // shorter than a header, 802.3/LLC
  uint64_t rx_not_for_us = 0;      // unicast to another MAC, multicast group not joined
  uint64_t rx_unknown_type = 0;    // ethertype neither IPv4, IPv6 nor ARP (IPv6 counted here while disabled)
  uint64_t tx_no_link = 0;         // no link attached
  uint64_t tx_too_big = 0;
  uint64_t impair_lost = 0, impair_duplicated = 0, impair_reordered = 0, impair_corrupted = 0;
  uint64_t impair_delayed = 0, impair_queue_drops = 0;
};

struct IfAddr {
  IpAddr addr;
  uint8_t prefix = 0;
  // IPv6 (RFC 4862): a tentative address is not used until duplicate address detection ends
  bool tentative = false;
  // draining (One-Time IP addresses that moved on): packets of existing connections are still
  // taken, new connections are refused, and it is never chosen as a source
  bool draining = false;
  bool autoconf = false;     // formed by SLAAC from a router advertisement
  uint8_t dad_left = 0;      // neighbour solicitations still to send
  Micros dad_timer = kNever; // next solicitation, or the end of detection
  Micros valid_until = kNever;
  uint8_t dad_counter = 0;   // RFC 7217: attempts for this prefix so far
};

/** internal to the engine; the binding uses Stack's methods */
struct Interface {
  int index = 0;
  std::string name;
  MacAddr mac;
  uint32_t mtu = 1500;
  Link* link = nullptr;
  bool force_checksums = false;
  std::vector<IfAddr> addrs;
  InterfaceStats stats;

  Impair impair;
  struct Delayed { Micros due; uint64_t seq; PacketBuf frame; };
  std::vector<Delayed> delayed;  // min-heap on (due, seq)
  uint64_t delay_seq = 0;

  std::unique_ptr<PcapWriter> pcap;

  struct Group { IpAddr group; uint32_t refs; };
  std::vector<Group> groups;  // multicast memberships (by socket count)

  /** checksums may be skipped on this interface */
  bool offload() const { return link && link->csum_offload() && !force_checksums && !(impair.corrupt > 0); }
  bool joined(const uint8_t* group4) const {
    for (auto& g : groups) if (g.group.family == 4 && std::memcmp(g.group.b, group4, 4) == 0) return true;
    return false;
  }
  bool accepts_mac(const MacAddr& m) const;

  // IPv6 (stack_ip6.cc)
  bool v6 = false;            // IPv6 enabled: link-local address, all-nodes group
  bool slaac = false;
  uint8_t hop_limit = 64;     // from router advertisements (cur hop limit)
  uint32_t link_mtu = 1500;   // the configured MTU (an RA's MTU option may lower mtu, never raise it beyond this)
  uint8_t rs_left = 0;        // router solicitations still to send
  Micros rs_timer = kNever;
  std::vector<IpAddr> dad_failed;  // SLAAC addresses given up after a conflict (bounded: 16), not formed again
  bool joined6(const uint8_t* group16) const {
    for (auto& g : groups) if (g.group.family == 6 && std::memcmp(g.group.b, group16, 16) == 0) return true;
    return false;
  }
};

}  // namespace ms
