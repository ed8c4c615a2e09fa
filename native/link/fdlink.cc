// open_fd_link(): the scheme of a link URL selects its driver.
#include "link/fdlink.h"

#include <cerrno>
#include <cstring>

namespace ms {

FdLinkOpen open_fd_link(const std::string& url, const FdLinkParams& params) {
  FdLinkOpen r;
  size_t sep = url.find("://");
  if (sep == std::string::npos || sep == 0) {
    r.err = EINVAL;
    r.message = "'" + url + "' is not a link URL (SCHEME://ADDRESS, e.g. vde:///tmp/vde.ctl, tap://tap0)";
    return r;
  }
  std::string scheme = url.substr(0, sep);
  for (char c : scheme) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!ok) {
      r.err = EINVAL;
      r.message = "'" + scheme + "' is not a link scheme (lower-case letters and digits)";
      return r;
    }
  }
  std::string rest = url.substr(sep + 3);
  if (scheme == "vde") return open_vde_link(rest, params);
  if (scheme == "vxvde") return open_vxvde_link(rest, params);
  if (scheme == "vxlan") return open_vxlan_link(rest, params);
  if (scheme == "tap") return open_tap_link(rest, params);
  if (scheme == "udp") return open_udp_link(rest, params);
  if (scheme == "cmd") return open_cmd_link(rest, params);
  r.err = EPROTONOSUPPORT;
  if (scheme == "hub") r.message = "hub:// is the in-process hub, not a descriptor link";
  else r.message = "no '" + scheme + "' link driver (known: hub, vde, vxvde, vxlan, tap, udp, cmd)";
  return r;
}

}  // namespace ms
