// A helper process that lives inside a network namespace and creates sockets there on
// request, handing each descriptor back over an AF_UNIX SOCK_SEQPACKET socketpair
// (SCM_RIGHTS). The caller's threads never change namespace: a socket belongs for life to
// the namespace it was created in, whoever uses it afterwards.
//
// The helper is cloned from a multithreaded process (Node), so between clone() and its exit
// it only makes system calls: no malloc, no stdio, no locks, no lazy symbol binding (the
// addon is linked with -z now). It drops the memory it inherited, closes every inherited
// descriptor, blocks signals, and dies with its parent thread (PR_SET_PDEATHSIG) or when
// the caller closes its end of the socketpair.
//
// Knows nothing of Node: usable from a plain C++ test.
#pragma once

#include <stdint.h>
#include <sys/types.h>

namespace msk {

enum NsOp : int32_t {
  kOpSocket = 1,  // a, b, c = domain, type, protocol; count -> up to count sockets
                  // (SOCK_NONBLOCK | SOCK_CLOEXEC), at least one or the error
  kOpTap = 2,     // name, a = tun flags (0: IFF_TAP | IFF_NO_PI) -> the /dev/net/tun descriptor
};

constexpr int kMaxBatch = 64;  // descriptors in one reply (SCM_MAX_FD is 253)

struct NsRequest {
  uint32_t seq;
  int32_t op;
  int32_t a, b, c;
  int32_t count;
  char name[16];
};

struct NsReply {
  uint32_t seq;
  int32_t result;   // how many descriptors are attached (>= 1), or -errno
  int32_t detail;   // kOpTap: the device's ifindex; handshake: the failed NsStage
  char name[16];    // kOpTap: the device's name
};

// How the helper gets into its namespace
enum NsMode : int32_t {
  kModeJoin = 0,     // setns() into an existing namespace (an open nsfs descriptor)
  kModeNew = 1,      // clone(CLONE_NEWNET): needs CAP_SYS_ADMIN
  kModeNewUser = 2,  // clone(CLONE_NEWUSER | CLONE_NEWNET): unprivileged, root inside maps to the caller
};

// Where starting a helper failed, reported with the errno
enum NsStage : int32_t {
  kStageNone = 0,
  kStageOpen,       // opening the namespace file (the caller's side)
  kStageNsType,     // the file is not a network namespace (the caller's side)
  kStageSocketpair,
  kStageClone,
  kStageSetns,
  kStageSetgroups,
  kStageUidMap,
  kStageGidMap,
  kStageLoopback,
  kStageHandshake,
};

const char* NsStageName(int stage);

struct NsHelper {
  pid_t pid = -1;
  int sock = -1;
  uint32_t seq = 0;
};

// Start a helper. kModeJoin: nsfd is an open network-namespace file (the caller keeps it).
// Returns 0, or -errno with *stage set; waits for the helper to be ready.
int NsSpawn(NsMode mode, int nsfd, NsHelper* out, int* stage);

// One request and its reply (blocking, at most timeout_ms). Returns how many descriptors
// were received into fds (>= 1, at most max) or -errno; -ECONNRESET when the helper is gone.
int NsCall(NsHelper* h, NsRequest* req, NsReply* rep, int* fds, int max, int timeout_ms);

// Close the channel, kill and reap the helper. Idempotent.
void NsStop(NsHelper* h);

}  // namespace msk
