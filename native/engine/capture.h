// Classic pcap writer (LINKTYPE_ETHERNET, microsecond timestamps): every frame in and out
// of an interface, readable by Wireshark/tshark/tcpdump.
#pragma once
#include <cstdio>
#include <string>

#include "common.h"

namespace ms {

class PcapWriter {
 public:
  static constexpr uint32_t kSnaplen = 262144;
  PcapWriter() = default;
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  ~PcapWriter() { close(); }

  /** create/truncate path and write the file header; 0 or -errno */
  int open(const char* path);
  /** one record; ts is the stack clock (microseconds) */
  void write(Micros ts, const uint8_t* frame, size_t len);
  void flush();
  void close();
  bool is_open() const { return f_ != nullptr; }
  uint64_t records() const { return records_; }

 private:
  std::FILE* f_ = nullptr;
  uint64_t records_ = 0;
};

}  // namespace ms
