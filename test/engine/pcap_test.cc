// Capture: the pcap file is well-formed (header, records, timestamps) and, when tshark is
// installed, decodes with no malformed frames and no expert errors.
#include <cstdio>
#include <cstdlib>

#include "check.h"
#include "world.h"

using namespace tw;

static std::vector<uint8_t> slurp(const char* path) {
  std::vector<uint8_t> v;
  FILE* f = std::fopen(path, "rb");
  if (!f) return v;
  uint8_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) v.insert(v.end(), buf, buf + n);
  std::fclose(f);
  return v;
}

static std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

TEST("pcap: ARP, ICMP, UDP (fragmented too), TCP captured; file well-formed; tshark clean") {
  const char* path = "/tmp/ms_engine_capture_test.pcap";
  World w;
  Node& a = w.add("10.0.0.1/24");
  Node& b = w.add("10.0.0.2/24", {}, 9000);
  CHECK_EQ(a.st->set_capture(a.ifindex, path), 0);
  CHECK_EQ(b.st->set_capture(b.ifindex, "/nonexistent-dir/x.pcap"), -ENOENT);
  a.st->ping(ip("10.0.0.2"), 56, nullptr);
  w.advance(10000);
  int ua = a.st->socket(AF_INET, SOCK_DGRAM, 0), ub = b.st->socket(AF_INET, SOCK_DGRAM, 0);
  b.st->bind(ub, ep("0.0.0.0", 40053));  // no dissector: plain UDP
  Endpoint to = ep("10.0.0.2", 40053), closed = ep("10.0.0.2", 40054);
  std::vector<char> big(4000, 'q');
  a.st->sendto(ua, "query", 5, 0, &to);
  a.st->sendto(ua, big.data(), big.size(), 0, &to);  // fragmented on a's 1500 MTU
  a.st->sendto(ua, "x", 1, 0, &closed);              // port unreachable comes back
  uint8_t mreq[8] = {239, 1, 1, 1, 0, 0, 0, 0};
  a.st->setsockopt(ua, IPPROTO_IP, IP_ADD_MEMBERSHIP, mreq, 8);   // IGMP report
  a.st->setsockopt(ua, IPPROTO_IP, IP_DROP_MEMBERSHIP, mreq, 8);  // IGMP leave
  w.advance(10000);
  int l = b.st->socket(AF_INET, SOCK_STREAM, 0);
  b.st->bind(l, ep("0.0.0.0", 80));
  b.st->listen(l, 4);
  int c = a.st->socket(AF_INET, SOCK_STREAM, 0);
  a.st->connect(c, ep("10.0.0.2", 80));
  w.advance(10000);
  int s = b.st->accept(l, nullptr);
  CHECK(s > 0);
  std::vector<char> data(100000, 'd');
  a.st->send(c, data.data(), data.size());
  w.advance(100000);
  char buf[65536];
  while (b.st->recv(s, buf, sizeof buf) > 0) {}
  a.st->close(c);
  b.st->close(s);
  w.advance(1000000);
  CHECK_EQ(a.st->set_capture(a.ifindex, nullptr), 0);  // closes the file

  auto f = slurp(path);
  CHECK(f.size() > 24);
  uint32_t magic, snaplen, linktype;
  uint16_t major, minor;
  std::memcpy(&magic, &f[0], 4);
  std::memcpy(&major, &f[4], 2);
  std::memcpy(&minor, &f[6], 2);
  std::memcpy(&snaplen, &f[16], 4);
  std::memcpy(&linktype, &f[20], 4);
  CHECK(magic == 0xa1b2c3d4u && major == 2 && minor == 4 && snaplen >= 65535 && linktype == 1);
  size_t off = 24, records = 0;
  uint64_t last_ts = 0;
  bool ok = true;
  while (off + 16 <= f.size()) {
    uint32_t r[4];
    std::memcpy(r, &f[off], 16);
    uint64_t ts = uint64_t(r[0]) * 1000000 + r[1];
    if (r[1] >= 1000000 || r[2] != r[3] || r[2] < 14 || off + 16 + r[2] > f.size() || ts < last_ts) { ok = false; break; }
    last_ts = ts;
    off += 16 + r[2];
    records++;
  }
  CHECK(ok);
  CHECK_EQ(off, f.size());
  CHECK(records > 50);
  if (std::system("command -v tshark >/dev/null 2>&1") != 0) {
    std::printf("  tshark not installed: decode check skipped\n");
    return;
  }
  std::string expert = run(std::string("tshark -r ") + path + " -z expert -q 2>&1");
  std::string summary = run(std::string("tshark -r ") + path + " -q -z io,phs 2>&1");
  bool malformed = expert.find("Malformed") != std::string::npos || summary.find("malformed") != std::string::npos;
  bool errors = expert.find("Errors (") != std::string::npos;
  if (malformed || errors) std::printf("%s\n", expert.c_str());
  CHECK(!malformed);
  CHECK(!errors);
  std::string counts = run(std::string("tshark -r ") + path + " -T fields -e _ws.col.Protocol 2>/dev/null | sort | uniq -c");
  std::printf("  %zu records; protocols:\n%s", records, counts.c_str());
  CHECK(counts.find("ARP") != std::string::npos && counts.find("ICMP") != std::string::npos && counts.find("TCP") != std::string::npos &&
        counts.find("UDP") != std::string::npos && counts.find("IGMP") != std::string::npos);
}
TEST_MAIN()
