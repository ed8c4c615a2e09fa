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
void InitNetns(Napi::Env env, Napi::Object exports);  // netns.cc: network namespaces as stacks

}  // namespace msb

namespace msb {

/** Call fn(argv) from a libuv callback. Uses raw N-API so that an environment that is
    shutting down (a worker calling process.exit) makes it a no-op instead of a fatal error;
    an exception thrown by fn becomes an uncaught exception, as for any event listener. */
inline void CallFromLoop(napi_env env, napi_ref fn_ref, size_t argc, const napi_value* argv) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, global, result;
  if (napi_get_reference_value(env, fn_ref, &fn) == napi_ok && fn != nullptr && napi_get_global(env, &global) == napi_ok) {
    napi_status st = napi_make_callback(env, nullptr, global, fn, argc, argv, &result);
    if (st == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

inline napi_value NumberValue(napi_env env, double v) {
  napi_value out = nullptr;
  napi_create_double(env, v, &out);
  return out;
}

}  // namespace msb
