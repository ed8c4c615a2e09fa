// The per-environment runtime of user-space stacks, and the N-API wrapper of one stack.
#pragma once
#include <napi.h>
#include <uv.h>

#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/stack.h"

#include "link/fdlink.h"
#include "link/hub.h"

namespace msb {

class UserStack;
class JsHubPort;
class JsLinkPort;

/** The libuv side of one FdLink: a uv_poll per descriptor (readable always, writable while
    the link has output queued). on_io(ctx) runs after each batch the link read or wrote, so
    the owner can kick its stack and notice down(). Stop() closes the poll handles (freed by
    their close callbacks) and must come before the link closes its descriptors. */
class LinkPoll {
 public:
  using OnIo = void (*)(void* ctx);
  LinkPoll(uv_loop_t* loop, ms::FdLink* link, OnIo on_io, void* ctx);
  ~LinkPoll() { Stop(); }
  LinkPoll(const LinkPoll&) = delete;
  LinkPoll& operator=(const LinkPoll&) = delete;
  /** poll the link's descriptors; a libuv status (0 on success) */
  int Start();
  /** update write interest to wants_write() */
  void Sync();
  /** run the owner's callback (the runtime does, for a link that went down in a transmit) */
  void Notify();
  void Stop();
  ms::FdLink* link() const { return link_; }
  static constexpr size_t kBudget = 256;  // frames read per readable event

 private:
  struct Handle { uv_poll_t h; LinkPoll* owner; int fd; int events; };
  static void OnPoll(uv_poll_t* h, int status, int events);
  uv_loop_t* loop_;
  ms::FdLink* link_;
  OnIo on_io_;
  void* ctx_;
  std::vector<Handle*> handles_;
};

class UserRuntime {
 public:
  static UserRuntime* Get(Napi::Env env);
  UserRuntime(Napi::Env env, uv_loop_t* loop);
  ~UserRuntime();
  /** environment teardown: close every stack and the libuv handles; deletes itself */
  void Shutdown();

  ms::Micros Now() const;
  /** the time taken at the start of the current turn's round */
  ms::Micros TurnNow() const { return turn_now_; }
  /** work is queued: make sure a turn runs soon */
  void Kick();
  void Add(UserStack* s);
  void Remove(UserStack* s);
  UserStack* Find(int id) const { auto it = by_id_.find(id); return it == by_id_.end() ? nullptr : it->second; }
  ms::Hub* HubNamed(const std::string& name);
  void Event(UserStack* s, int sd, uint32_t ev);
  void AddPing(UserStack* s, const ms::PingResult& r);
  /** a stack's deadline may have changed */
  void Schedule(UserStack* s);
  /** referenced sockets and pings in flight keep the loop alive */
  void Ref(int delta);

  /** a JS hub port has frames for JavaScript: flushed at the end of the turn */
  void PortPending(JsHubPort* p);
  void PortGone(JsHubPort* p);

  /** descriptor links: their clocks are set and their write interest synced every turn */
  void AddLinkPoll(LinkPoll* p) { link_polls_.insert(p); }
  void RemoveLinkPoll(LinkPoll* p) { link_polls_.erase(p); }
  /** a stack's link went down: JavaScript hears of it at the end of the turn */
  void LinkDown(UserStack* s, int ifindex, const std::string& reason);
  uv_loop_t* loop() const { return loop_; }

  Napi::FunctionReference dispatcher_;
  Napi::FunctionReference ping_handler_;
  std::unordered_map<std::string, std::unique_ptr<ms::Hub>> hubs_;
  std::vector<UserStack*> touched_;

 private:
  void Turn();
  bool Deliver();
  void ArmTimer(ms::Micros at);

  struct PendingEvent { UserStack* stack; int sd; uint32_t events; };
  struct PendingPing { UserStack* stack; ms::PingResult result; };
  struct PendingLinkDown { UserStack* stack; int ifindex; std::string reason; };
  struct Deadline {
    ms::Micros at; uint64_t serial; int id;
    bool operator>(const Deadline& o) const { return at > o.at; }
  };

  Napi::Env env_;
  uv_loop_t* loop_;
  uv_timer_t timer_;
  uv_idle_t idle_;
  uv_check_t check_;
  int closing_ = 0;
  bool shut_ = false, idle_active_ = false, in_turn_ = false, timer_armed_ = false;
  ms::Micros timer_at_ = 0, turn_now_ = 0;
  int refs_ = 0;
  std::vector<UserStack*> stacks_;
  std::unordered_map<int, UserStack*> by_id_;
  std::vector<PendingEvent> events_;
  std::vector<PendingPing> pings_;
  std::vector<JsHubPort*> ports_pending_;
  std::vector<PendingLinkDown> link_downs_;
  std::unordered_set<LinkPoll*> link_polls_;
 public:
  std::unordered_set<JsHubPort*> js_ports_;
  std::unordered_set<JsLinkPort*> js_links_;
 private:
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<Deadline>> deadlines_;
};

class UserStack : public Napi::ObjectWrap<UserStack> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit UserStack(const Napi::CallbackInfo& info);
  ~UserStack() override;

  ms::Stack& stack() { return *stack_; }
  int id() const { return id_; }
  bool alive() const { return alive_; }
  uint64_t serial() const { return serial_; }
  void MarkTouched();
  void ClearTouched() { touched_ = false; }
  void CloseStack();
  void DeliverPing(const ms::PingResult& r);
  void DeliverLinkDown(int ifindex, const std::string& reason);
  void Enter();
  void Leave();
  void DropRef(int sd);

 private:
  Napi::Value AddInterface(const Napi::CallbackInfo& info);
  Napi::Value AttachHub(const Napi::CallbackInfo& info);
  Napi::Value AttachLink(const Napi::CallbackInfo& info);
  Napi::Value SetImpair(const Napi::CallbackInfo& info);
  Napi::Value SetCapture(const Napi::CallbackInfo& info);
  Napi::Value AddAddress(const Napi::CallbackInfo& info);
  Napi::Value AddRoute(const Napi::CallbackInfo& info);
  Napi::Value RemoveAddress(const Napi::CallbackInfo& info);
  Napi::Value RemoveRoute(const Napi::CallbackInfo& info);
  Napi::Value SetAddressDraining(const Napi::CallbackInfo& info);
  Napi::Value Interfaces(const Napi::CallbackInfo& info);
  Napi::Value Socket(const Napi::CallbackInfo& info);
  Napi::Value Bind(const Napi::CallbackInfo& info);
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value Accept(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value GetSockName(const Napi::CallbackInfo& info);
  Napi::Value GetPeerName(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Sendv(const Napi::CallbackInfo& info);
  Napi::Value SendTo(const Napi::CallbackInfo& info);
  Napi::Value Recv(const Napi::CallbackInfo& info);
  Napi::Value RecvFrom(const Napi::CallbackInfo& info);
  Napi::Value RecvMany(const Napi::CallbackInfo& info);
  Napi::Value Shutdown(const Napi::CallbackInfo& info);
  Napi::Value CloseSocket(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value SetSockOpt(const Napi::CallbackInfo& info);
  Napi::Value GetSockOpt(const Napi::CallbackInfo& info);
  Napi::Value Membership(const Napi::CallbackInfo& info);
  Napi::Value MulticastInterface(const Napi::CallbackInfo& info);
  Napi::Value Events(const Napi::CallbackInfo& info);
  Napi::Value RefSocket(const Napi::CallbackInfo& info);
  Napi::Value UnrefSocket(const Napi::CallbackInfo& info);
  Napi::Value Ping(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Sockets(const Napi::CallbackInfo& info);
  Napi::Value CloseStackJs(const Napi::CallbackInfo& info);
  Napi::Value Inject(const Napi::CallbackInfo& info);

  struct PortCtx { UserStack* stack; int ifindex; };
  struct Port { ms::Hub* hub; ms::Hub::Port* port; std::unique_ptr<PortCtx> ctx; };
  /** an interface on a descriptor link (vde, tap, udp, cmd, ...) */
  struct FdIf {
    UserStack* stack;
    int ifindex;
    std::string url;
    std::unique_ptr<ms::FdLink> link;
    std::unique_ptr<LinkPoll> poll;
    bool down_reported = false;
  };
  void CloseFdIf(FdIf* f);
  static void FdIfIo(void* ctx);

  UserRuntime* rt_;
  int id_;
  std::unique_ptr<ms::Stack> stack_;  // null once closed
  bool alive_ = true, touched_ = false;
  uint64_t serial_ = 0;
  friend class UserRuntime;
  size_t rt_index_ = 0;  // position in the runtime's stacks_
  std::vector<Port> ports_;
  std::vector<std::unique_ptr<FdIf>> fd_ifs_;
  std::vector<uint8_t> refd_;  // by descriptor: 1 while the socket is referenced
  int refs_ = 0;
  int pings_out_ = 0;
  Napi::FunctionReference on_ping_;
  Napi::FunctionReference on_link_down_;
};

/** A hub port whose other end is JavaScript: frames out of the hub arrive in batches, one
    callback per turn; send() puts a frame into the hub. For bridges (a namespace's TAP device
    on a hub) and custom links. */
class JsHubPort : public Napi::ObjectWrap<JsHubPort> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit JsHubPort(const Napi::CallbackInfo& info);
  ~JsHubPort() override;
  void Flush();
  /** leave the hub (runtime teardown or close) */
  void Detach();

 private:
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  static constexpr size_t kMaxQueuedBytes = 8u << 20;

  UserRuntime* rt_;
  ms::Hub* hub_ = nullptr;
  ms::Hub::Port* port_ = nullptr;
  Napi::FunctionReference on_frames_;
  std::vector<std::vector<uint8_t>> queue_;
  size_t queued_bytes_ = 0;
  uint64_t drops_ = 0;
  bool listed_ = false;
};

/** A descriptor link whose other end is JavaScript: new LinkPort(url, onFrames, onDown,
    mac?, mtu?) opens any link open_fd_link() knows; frames arrive in batches (one onFrames
    call per readable event), send() transmits one frame, onDown(reason) tells the link
    went down. For bridges (a namespace's TAP device on a vde:// switch) and custom links. */
class JsLinkPort : public Napi::ObjectWrap<JsLinkPort> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit JsLinkPort(const Napi::CallbackInfo& info);
  ~JsLinkPort() override;
  /** stop polling and close the link (runtime teardown or close) */
  void Detach();

 private:
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Error(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  static void OnIo(void* ctx);
  static void OnFrame(void* ctx, const uint8_t* frame, size_t len);

  UserRuntime* rt_;
  std::unique_ptr<ms::FdLink> link_;
  std::unique_ptr<LinkPoll> poll_;
  int err_ = 0;
  std::string message_;
  Napi::FunctionReference on_frames_, on_down_;
  std::vector<std::vector<uint8_t>> batch_;
  bool down_reported_ = false;
  bool registered_ = false;
};

void InitUser(Napi::Env env, Napi::Object exports);

}  // namespace msb
