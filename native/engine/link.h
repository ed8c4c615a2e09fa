// What an interface transmits through: a hub port, a VDE plug, a TAP device, a test sink.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ms {

class Link {
 public:
  virtual ~Link() = default;
  /** send one ethernet frame (without FCS); the link copies what it keeps */
  virtual void transmit(const uint8_t* frame, size_t len) = 0;
  /** frames on this link are never corrupted in transit (both ends in one process):
      checksums need not be filled on output nor verified on input */
  virtual bool csum_offload() const { return false; }
};

}  // namespace ms
