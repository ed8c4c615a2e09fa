// Per-environment addon state (one per main thread / worker), with a cleanup hook that
// frees what the environment created when it ends.
#pragma once
#include <napi.h>
#include <uv.h>

#include <functional>
#include <unordered_set>

namespace msb {

class UserRuntime;

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports);
  ~Addon();

  static Addon* Get(Napi::Env env) { return env.GetInstanceData<Addon>(); }
  uv_loop_t* loop() const { return loop_; }

  // kernel descriptors owned by this environment, closed when it ends unless released
  void own_fd(int fd) { fds_.insert(fd); }
  void disown_fd(int fd) { fds_.erase(fd); }
  size_t owned_fds() const { return fds_.size(); }

  // things with libuv handles register a closer, run at environment teardown
  using Closer = std::function<void()>;
  void* add_closer(Closer c);
  void remove_closer(void* token);

  // scratch memory for receives (one copy out per call)
  uint8_t* scratch() { return scratch_; }
  UserRuntime* user_runtime = nullptr;
  static constexpr size_t kScratch = 256 * 1024;

 private:
  void Cleanup();
  uv_loop_t* loop_ = nullptr;
  std::unordered_set<int> fds_;
  std::unordered_set<Closer*> closers_;
  uint8_t* scratch_;
  bool cleaned_ = false;
};

void InitKernel(Napi::Env env, Napi::Object exports);
void InitUser(Napi::Env env, Napi::Object exports);

}  // namespace msb
