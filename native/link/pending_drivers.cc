// TEMPORARY placeholders for the vde, vxvde and vxlan drivers, written in another worktree.
// Delete this file when native/link/vde.cc, vxvde.cc and vxlan.cc are merged.
#include <cerrno>

#include "link/fdlink.h"

namespace ms {

static FdLinkOpen not_built(const char* kind) {
  FdLinkOpen r;
  r.err = EPROTONOSUPPORT;
  r.message = std::string(kind) + ": driver not built";
  return r;
}

FdLinkOpen open_vde_link(const std::string&, const FdLinkParams&) { return not_built("vde"); }
FdLinkOpen open_vxvde_link(const std::string&, const FdLinkParams&) { return not_built("vxvde"); }
FdLinkOpen open_vxlan_link(const std::string&, const FdLinkParams&) { return not_built("vxlan"); }

}  // namespace ms
