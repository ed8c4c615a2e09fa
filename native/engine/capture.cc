#include "capture.h"

namespace ms {

int PcapWriter::open(const char* path) {
  close();
  f_ = std::fopen(path, "wb");
  if (!f_) return -errno;
  struct {
    uint32_t magic;
    uint16_t major, minor;
    int32_t thiszone;
    uint32_t sigfigs, snaplen, network;
  } hdr = {0xa1b2c3d4u, 2, 4, 0, 0, kSnaplen, 1 /* LINKTYPE_ETHERNET */};
  static_assert(sizeof hdr == 24, "pcap header");
  if (std::fwrite(&hdr, sizeof hdr, 1, f_) != 1) { int e = errno; close(); return -(e ? e : EIO); }
  records_ = 0;
  return 0;
}

void PcapWriter::write(Micros ts, const uint8_t* frame, size_t len) {
  if (!f_) return;
  uint32_t caplen = len > kSnaplen ? kSnaplen : uint32_t(len);
  uint32_t rec[4] = {uint32_t(ts / 1000000), uint32_t(ts % 1000000), caplen, uint32_t(len)};
  std::fwrite(rec, sizeof rec, 1, f_);
  std::fwrite(frame, 1, caplen, f_);
  records_++;
}

void PcapWriter::flush() { if (f_) std::fflush(f_); }

void PcapWriter::close() {
  if (f_) { std::fclose(f_); f_ = nullptr; }
}

}  // namespace ms
