#include "addon.h"

#include <unistd.h>

#include <cstdlib>

namespace msb {

Addon::Addon(Napi::Env env, Napi::Object exports) {
  napi_get_uv_event_loop(env, &loop_);
  scratch_ = static_cast<uint8_t*>(std::malloc(kScratch));
  InitKernel(env, exports);
  InitUser(env, exports);
  InitNetns(env, exports);
  exports.Set("ownedFds", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(Addon::Get(info.Env())->owned_fds()));
  }));
  napi_add_env_cleanup_hook(env, [](void* self) { static_cast<Addon*>(self)->Cleanup(); }, this);
}

Addon::~Addon() {
  Cleanup();
  std::free(scratch_);
}

void* Addon::add_closer(Closer c) {
  auto* p = new Closer(std::move(c));
  closers_.insert(p);
  return p;
}

void Addon::remove_closer(void* token) {
  auto* p = static_cast<Closer*>(token);
  if (closers_.erase(p)) delete p;
}

void Addon::Cleanup() {
  if (cleaned_) return;
  cleaned_ = true;
  // closers may remove themselves: take the set first
  auto closers = std::move(closers_);
  closers_.clear();
  for (Closer* c : closers) { (*c)(); delete c; }
  for (int fd : fds_) ::close(fd);
  fds_.clear();
}

}  // namespace msb

using MsocketsAddon = msb::Addon;
NODE_API_ADDON(MsocketsAddon)
