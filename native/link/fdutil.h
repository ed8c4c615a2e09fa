// Small helpers shared by the descriptor link drivers.
#pragma once
#include <cerrno>
#include <cstring>
#include <string>

#include "link/fdlink.h"

namespace ms {

/** "ENOENT" for ENOENT (the symbolic name when the C library knows it) */
inline std::string errno_text(int e) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* n = strerrorname_np(e);
  if (n) return n;
#endif
  return std::strerror(e);
}

/** an FdLinkOpen failure */
inline FdLinkOpen link_error(int err, std::string message) {
  FdLinkOpen r;
  r.err = err;
  r.message = std::move(message);
  return r;
}

}  // namespace ms
