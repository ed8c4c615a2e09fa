// User-space stacks on the libuv loop of the thread that created them.
//
// One UserRuntime per environment runs every stack of that thread: a uv_check (with a
// uv_idle to keep the loop from sleeping while work is queued) does a "turn": hand hub frames
// to their stacks, run due timers, then give JavaScript every readiness change of the turn
// in one call. One uv_timer is armed to the earliest deadline of all stacks. Frames between
// stacks on one hub never touch a system call.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "addon.h"
#include "engine/stack.h"
#include "link/fdlink.h"
#include "link/hub.h"
#include "user_runtime.h"

namespace msb {
namespace {

Napi::Value Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }
int Int(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }

/** an address, with an IPv6 zone given as an interface name or index (fe80::1%eth0, fe80::1%1) */
bool ParseAddr(const std::string& text, ms::IpAddr* out, const ms::Stack* st) {
  size_t pct = text.find('%');
  if (pct != std::string::npos && st && pct + 1 < text.size() && !(text[pct + 1] >= '0' && text[pct + 1] <= '9')) {
    std::string name = text.substr(pct + 1);
    for (int i = 1; i <= st->interface_count(); i++) {
      const ms::Interface* ifp = st->interface(i);
      if (ifp && ifp->name == name) return out->parse((text.substr(0, pct) + "%" + std::to_string(i)).c_str());
    }
    return false;
  }
  return out->parse(text.c_str());
}

bool ParseEndpoint(const Napi::Value& addr, int port, ms::Endpoint* ep, int family_hint, const ms::Stack* st = nullptr) {
  std::string text = addr.As<Napi::String>().Utf8Value();
  ep->port = uint16_t(port);
  if (text.empty()) {
    ep->addr = ms::IpAddr();
    ep->addr.family = uint8_t(family_hint == AF_INET6 ? 6 : 4);
    return true;
  }
  return ParseAddr(text, &ep->addr, st);
}

/** text of an address, a zone by its interface name */
std::string AddrText(const ms::IpAddr& a, const ms::Stack* st) {
  if (a.family != 6 || !a.scope || !st) return a.str();
  ms::IpAddr b = a;
  b.scope = 0;
  const ms::Interface* ifp = st->interface(int(a.scope));
  return b.str() + "%" + (ifp ? ifp->name : std::to_string(a.scope));
}

Napi::Value EndpointValue(Napi::Env env, const ms::Endpoint& ep, const ms::Stack* st = nullptr) {
  Napi::Array a = Napi::Array::New(env, 3);
  ms::IpAddr addr = ep.addr;
  if (!addr.family) addr.family = 4;
  a.Set(uint32_t(0), Napi::String::New(env, AddrText(addr, st)));
  a.Set(uint32_t(1), Num(env, ep.port));
  a.Set(uint32_t(2), Num(env, addr.family == 6 ? AF_INET6 : AF_INET));
  return a;
}

bool ParseMac(const std::string& s, ms::MacAddr* mac) {
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return false;
  for (int i = 0; i < 6; i++) { if (v[i] > 255) return false; mac->b[i] = uint8_t(v[i]); }
  return true;
}

std::string MacText(const ms::MacAddr& m) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m.b[0], m.b[1], m.b[2], m.b[3], m.b[4], m.b[5]);
  return buf;
}

double NumOpt(const Napi::Object& o, const char* key, double def) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
}
bool BoolOpt(const Napi::Object& o, const char* key, bool def) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : def;
}

Napi::Object LinkStatsObject(Napi::Env env, const ms::FdLink& link) {
  const ms::FdLinkStats& st = link.stats();
  Napi::Object l = Napi::Object::New(env);
  l.Set("kind", Napi::String::New(env, link.kind()));
  l.Set("up", Napi::Boolean::New(env, !link.down()));
  if (link.down()) l.Set("downReason", Napi::String::New(env, link.down_reason()));
  l.Set("rxFrames", Num(env, double(st.rx_frames)));
  l.Set("rxBytes", Num(env, double(st.rx_bytes)));
  l.Set("txFrames", Num(env, double(st.tx_frames)));
  l.Set("txBytes", Num(env, double(st.tx_bytes)));
  l.Set("rxMalformed", Num(env, double(st.rx_malformed)));
  l.Set("rxFiltered", Num(env, double(st.rx_filtered)));
  l.Set("txDropped", Num(env, double(st.tx_dropped)));
  l.Set("txErrors", Num(env, double(st.tx_errors)));
  return l;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// LinkPoll

LinkPoll::LinkPoll(uv_loop_t* loop, ms::FdLink* link, OnIo on_io, void* ctx)
    : loop_(loop), link_(link), on_io_(on_io), ctx_(ctx) {}

int LinkPoll::Start() {
  for (int fd : link_->fds()) {
    auto* h = new Handle{};
    h->owner = this;
    h->fd = fd;
    h->events = 0;
    int r = uv_poll_init(loop_, &h->h, fd);
    if (r != 0) { delete h; Stop(); return r; }
    h->h.data = h;
    // a link alone does not keep the process alive: sockets and pings do
    uv_unref(reinterpret_cast<uv_handle_t*>(&h->h));
    handles_.push_back(h);
  }
  Sync();
  return 0;
}

void LinkPoll::Sync() {
  for (Handle* h : handles_) {
    if (h->events < 0) continue;  // stopped after a poll error
    int want = UV_READABLE | (link_->wants_write(h->fd) ? UV_WRITABLE : 0);
    if (want != h->events) {
      h->events = want;
      uv_poll_start(&h->h, want, &LinkPoll::OnPoll);
    }
  }
}

void LinkPoll::Notify() { on_io_(ctx_); }

void LinkPoll::Stop() {
  for (Handle* h : handles_) {
    h->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&h->h), [](uv_handle_t* x) { delete static_cast<Handle*>(x->data); });
  }
  handles_.clear();
}

void LinkPoll::OnPoll(uv_poll_t* uh, int status, int events) {
  auto* h = static_cast<Handle*>(uh->data);
  LinkPoll* self = h->owner;
  if (!self) return;
  ms::FdLink* l = self->link_;
  if (status < 0) {
    // the descriptor is unusable for polling: let the driver read it (and go down), and stop
    // watching it so that an error that does not clear cannot spin the loop
    l->on_readable(h->fd, kBudget);
    uv_poll_stop(&h->h);
    h->events = -1;
  } else {
    if (events & UV_WRITABLE) l->on_writable(h->fd);
    if (events & (UV_READABLE | UV_DISCONNECT)) l->on_readable(h->fd, kBudget);
    self->Sync();
  }
  // may Stop() and free self: nothing after this
  self->on_io_(self->ctx_);
}

// ---------------------------------------------------------------------------------------
// UserRuntime

UserRuntime::UserRuntime(Napi::Env env, uv_loop_t* loop) : env_(env), loop_(loop) {
  uv_timer_init(loop_, &timer_);
  uv_idle_init(loop_, &idle_);
  uv_check_init(loop_, &check_);
  timer_.data = idle_.data = check_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
  uv_unref(reinterpret_cast<uv_handle_t*>(&idle_));
  uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
  uv_check_start(&check_, [](uv_check_t* h) { static_cast<UserRuntime*>(h->data)->Turn(); });
}

UserRuntime::~UserRuntime() = default;

void UserRuntime::Shutdown() {
  if (shut_) return;
  shut_ = true;
  for (auto* s : std::vector<UserStack*>(stacks_)) s->CloseStack();
  stacks_.clear();
  for (JsHubPort* p : std::vector<JsHubPort*>(js_ports_.begin(), js_ports_.end())) p->Detach();
  for (JsLinkPort* p : std::vector<JsLinkPort*>(js_links_.begin(), js_links_.end())) p->Detach();
  link_polls_.clear();
  link_downs_.clear();
  hubs_.clear();
  uv_timer_stop(&timer_);
  uv_idle_stop(&idle_);
  uv_check_stop(&check_);
  // handles are freed by their close callbacks; the runtime object lives until the last one
  closing_ = 3;
  auto done = [](uv_handle_t* h) {
    auto* rt = static_cast<UserRuntime*>(h->data);
    if (--rt->closing_ == 0) delete rt;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), done);
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), done);
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), done);
}

ms::Micros UserRuntime::Now() const { return uv_hrtime() / 1000; }

// the idle handle only makes the loop poll without blocking, so the check handle runs soon
void UserRuntime::Kick() {
  if (idle_active_ || shut_) return;
  idle_active_ = true;
  uv_idle_start(&idle_, [](uv_idle_t*) {});
}

void UserRuntime::Add(UserStack* s) {
  s->rt_index_ = stacks_.size();
  stacks_.push_back(s);
  by_id_[s->id()] = s;
}

// O(1): the last stack takes the place of the removed one (closing n stacks is not n^2)
void UserRuntime::Remove(UserStack* s) {
  size_t i = s->rt_index_;
  if (i < stacks_.size() && stacks_[i] == s) {
    stacks_[i] = stacks_.back();
    stacks_[i]->rt_index_ = i;
    stacks_.pop_back();
  }
  auto it = by_id_.find(s->id());
  if (it != by_id_.end() && it->second == s) by_id_.erase(it);
  events_.erase(std::remove_if(events_.begin(), events_.end(), [&](const PendingEvent& e) { return e.stack == s; }), events_.end());
  link_downs_.erase(std::remove_if(link_downs_.begin(), link_downs_.end(), [&](const PendingLinkDown& e) { return e.stack == s; }), link_downs_.end());
}

void UserRuntime::LinkDown(UserStack* s, int ifindex, const std::string& reason) {
  link_downs_.push_back({s, ifindex, reason});
  Kick();
}

ms::Hub* UserRuntime::HubNamed(const std::string& name) {
  auto it = hubs_.find(name);
  if (it != hubs_.end()) return it->second.get();
  auto hub = std::make_unique<ms::Hub>();
  ms::Hub* h = hub.get();
  hubs_.emplace(name, std::move(hub));
  return h;
}

void UserRuntime::Event(UserStack* s, int sd, uint32_t ev) {
  events_.push_back({s, sd, ev});
  Kick();
}

void UserRuntime::Schedule(UserStack* s) {
  ms::Micros at = s->stack().poll_at();
  if (at == ms::kNever) return;
  deadlines_.push({at, s->serial(), s->id()});
  if (!timer_armed_ || at < timer_at_) ArmTimer(at);
}

void UserRuntime::ArmTimer(ms::Micros at) {
  ms::Micros now = Now();
  uint64_t ms = at <= now ? 0 : (at - now + 999) / 1000;
  timer_at_ = at;
  timer_armed_ = true;
  uv_timer_start(&timer_, [](uv_timer_t* t) {
    auto* rt = static_cast<UserRuntime*>(t->data);
    rt->timer_armed_ = false;
    rt->Turn();
  }, ms, 0);
}

// The check handle is always active: referenced, it keeps the loop alive (blocking in poll
// until a timer or I/O is due), as a listening socket does.
void UserRuntime::Ref(int delta) {
  refs_ += delta;
  if (refs_ > 0) uv_ref(reinterpret_cast<uv_handle_t*>(&check_));
  else uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
}

void UserRuntime::Turn() {
  if (shut_ || in_turn_) return;
  in_turn_ = true;
  if (!link_polls_.empty()) {
    ms::Micros now = Now();
    for (LinkPoll* p : link_polls_) p->link()->set_now(now);
  }
  for (int round = 0; round < 64; round++) {
    ms::Micros now = Now();
    size_t moved = 0;
    turn_now_ = now;
    for (auto& kv : hubs_) { kv.second->set_now(now); moved += kv.second->drain(4096); }
    // due timers
    while (!deadlines_.empty() && deadlines_.top().at <= now) {
      Deadline d = deadlines_.top();
      deadlines_.pop();
      UserStack* s = Find(d.id);
      if (!s || d.serial != s->serial()) continue;
      if (s->stack().poll_at() <= now) {
        s->stack().poll(now);
        moved++;
      }
      s->MarkTouched();
    }
    for (UserStack* s : touched_) { s->ClearTouched(); if (s->alive()) Schedule(s); }
    touched_.clear();
    bool delivered = Deliver();
    if (!moved && !delivered) break;
  }
  // keep turning while hubs hold frames
  bool pending = !events_.empty();
  for (auto& kv : hubs_) if (kv.second->pending()) pending = true;
  for (UserStack* s : touched_) { s->ClearTouched(); if (s->alive()) Schedule(s); }
  touched_.clear();
  // descriptor links: poll for writing while output is queued; report the ones that went
  // down inside a transmit (their owner closes them, which edits the set: iterate a copy)
  if (!link_polls_.empty()) {
    for (LinkPoll* p : std::vector<LinkPoll*>(link_polls_.begin(), link_polls_.end())) {
      if (!link_polls_.count(p)) continue;
      if (p->link()->down()) p->Notify();
      else p->Sync();
    }
  }
  if (!link_downs_.empty()) pending = true;
  if (pending) Kick();
  else if (idle_active_) { uv_idle_stop(&idle_); idle_active_ = false; }
  if (!deadlines_.empty()) {
    // drop stale heads so the timer is armed to a live deadline
    while (!deadlines_.empty()) {
      UserStack* s = Find(deadlines_.top().id);
      if (s && deadlines_.top().serial == s->serial()) break;
      deadlines_.pop();
    }
    if (!deadlines_.empty() && (!timer_armed_ || deadlines_.top().at != timer_at_)) ArmTimer(deadlines_.top().at);
  }
  in_turn_ = false;
}

void UserRuntime::PortPending(JsHubPort* p) {
  ports_pending_.push_back(p);
  Kick();
}

void UserRuntime::PortGone(JsHubPort* p) {
  ports_pending_.erase(std::remove(ports_pending_.begin(), ports_pending_.end(), p), ports_pending_.end());
}

bool UserRuntime::Deliver() {
  bool any = false;
  if (!link_downs_.empty()) {
    auto downs = std::move(link_downs_);
    link_downs_.clear();
    for (auto& d : downs) if (d.stack->alive()) d.stack->DeliverLinkDown(d.ifindex, d.reason);
    any = true;
  }
  if (!ports_pending_.empty()) {
    auto ports = std::move(ports_pending_);
    ports_pending_.clear();
    for (JsHubPort* p : ports) p->Flush();
    any = true;
  }
  // ping results first (rare), then readiness in one call
  if (!pings_.empty()) {
    auto pings = std::move(pings_);
    pings_.clear();
    for (auto& p : pings) {
      if (!p.stack->alive()) continue;
      p.stack->DeliverPing(p.result);
    }
    any = true;
  }
  if (events_.empty() || dispatcher_.IsEmpty()) return any;
  napi_env env = env_;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) { events_.clear(); return any; }
  size_t n = events_.size();
  void* data = nullptr;
  napi_value ab, arr = nullptr;
  if (napi_create_arraybuffer(env, n * 3 * sizeof(int32_t), &data, &ab) == napi_ok &&
      napi_create_typedarray(env, napi_int32_array, n * 3, ab, 0, &arr) == napi_ok) {
    auto* out = static_cast<int32_t*>(data);
    for (size_t i = 0; i < n; i++) {
      out[i * 3] = events_[i].stack->id();
      out[i * 3 + 1] = events_[i].sd;
      out[i * 3 + 2] = int32_t(events_[i].events);
    }
  }
  events_.clear();
  if (arr) CallFromLoop(env, dispatcher_, 1, &arr);
  napi_close_handle_scope(env, scope);
  return true;
}

void UserRuntime::AddPing(UserStack* s, const ms::PingResult& r) {
  pings_.push_back({s, r});
  Kick();
}

// ---------------------------------------------------------------------------------------
// UserStack

Napi::Function UserStack::Init(Napi::Env env) {
  return DefineClass(env, "UserStack", {
    InstanceMethod("addInterface", &UserStack::AddInterface),
    InstanceMethod("attachHub", &UserStack::AttachHub),
    InstanceMethod("attachLink", &UserStack::AttachLink),
    InstanceMethod("setImpair", &UserStack::SetImpair),
    InstanceMethod("setCapture", &UserStack::SetCapture),
    InstanceMethod("addAddress", &UserStack::AddAddress),
    InstanceMethod("addRoute", &UserStack::AddRoute),
    InstanceMethod("removeAddress", &UserStack::RemoveAddress),
    InstanceMethod("removeRoute", &UserStack::RemoveRoute),
    InstanceMethod("setAddressDraining", &UserStack::SetAddressDraining),
    InstanceMethod("interfaces", &UserStack::Interfaces),
    InstanceMethod("socket", &UserStack::Socket),
    InstanceMethod("bind", &UserStack::Bind),
    InstanceMethod("listen", &UserStack::Listen),
    InstanceMethod("accept", &UserStack::Accept),
    InstanceMethod("connect", &UserStack::Connect),
    InstanceMethod("getsockname", &UserStack::GetSockName),
    InstanceMethod("getpeername", &UserStack::GetPeerName),
    InstanceMethod("send", &UserStack::Send),
    InstanceMethod("sendv", &UserStack::Sendv),
    InstanceMethod("sendto", &UserStack::SendTo),
    InstanceMethod("recv", &UserStack::Recv),
    InstanceMethod("recvfrom", &UserStack::RecvFrom),
    InstanceMethod("recvmany", &UserStack::RecvMany),
    InstanceMethod("shutdown", &UserStack::Shutdown),
    InstanceMethod("close", &UserStack::CloseSocket),
    InstanceMethod("abort", &UserStack::Abort),
    InstanceMethod("setsockopt", &UserStack::SetSockOpt),
    InstanceMethod("getsockopt", &UserStack::GetSockOpt),
    InstanceMethod("membership", &UserStack::Membership),
    InstanceMethod("multicastInterface", &UserStack::MulticastInterface),
    InstanceMethod("events", &UserStack::Events),
    InstanceMethod("ref", &UserStack::RefSocket),
    InstanceMethod("unref", &UserStack::UnrefSocket),
    InstanceMethod("ping", &UserStack::Ping),
    InstanceMethod("stats", &UserStack::Stats),
    InstanceMethod("sockets", &UserStack::Sockets),
    InstanceMethod("closeStack", &UserStack::CloseStackJs),
    InstanceMethod("inject", &UserStack::Inject),
  });
}

static ms::StackConfig ConfigFrom(const Napi::Object& o) {
  ms::StackConfig c;
  if (o.Get("seed").IsNumber()) c.seed = uint64_t(o.Get("seed").As<Napi::Number>().DoubleValue());
  if (o.Get("ipv6").IsObject()) {
    Napi::Object v6 = o.Get("ipv6").As<Napi::Object>();
    c.dad = BoolOpt(v6, "dad", c.dad);
    c.stable_iids = BoolOpt(v6, "stableAddresses", c.stable_iids);
    if (v6.Get("secret").IsBuffer()) {
      Napi::Buffer<uint8_t> b = v6.Get("secret").As<Napi::Buffer<uint8_t>>();
      for (size_t i = 0; i < 16 && i < b.Length(); i++) c.stable_secret[i] = b.Data()[i];
    }
  }
  if (o.Get("tcp").IsObject()) {
    Napi::Object t = o.Get("tcp").As<Napi::Object>();
    ms::TcpConfig& tc = c.tcp;
    Napi::Value cong = t.Get("congestion");
    if (cong.IsString()) tc.congestion = cong.As<Napi::String>().Utf8Value() == "newreno" ? ms::Congestion::NewReno : ms::Congestion::Cubic;
    tc.send_buffer = uint32_t(NumOpt(t, "sendBuffer", tc.send_buffer));
    tc.send_buffer_max = uint32_t(NumOpt(t, "sendBufferMax", std::max<double>(tc.send_buffer_max, tc.send_buffer)));
    tc.receive_buffer = uint32_t(NumOpt(t, "receiveBuffer", tc.receive_buffer));
    tc.receive_buffer_max = uint32_t(NumOpt(t, "receiveBufferMax", std::max<double>(tc.receive_buffer_max, tc.receive_buffer)));
    tc.mss = uint32_t(NumOpt(t, "mss", tc.mss));
    tc.rto_min_ms = uint32_t(NumOpt(t, "rtoMin", tc.rto_min_ms));
    tc.sack = BoolOpt(t, "sack", tc.sack);
    tc.window_scale = BoolOpt(t, "windowScale", tc.window_scale);
    tc.timestamps = BoolOpt(t, "timestamps", tc.timestamps);
    tc.keepalive_idle_ms = uint32_t(NumOpt(t, "keepaliveIdle", tc.keepalive_idle_ms));
    tc.keepalive_interval_ms = uint32_t(NumOpt(t, "keepaliveInterval", tc.keepalive_interval_ms));
    tc.keepalive_count = uint32_t(NumOpt(t, "keepaliveCount", tc.keepalive_count));
    tc.time_wait_ms = uint32_t(NumOpt(t, "timeWait", tc.time_wait_ms));
    tc.syn_backlog = uint32_t(NumOpt(t, "synBacklog", tc.syn_backlog));
  }
  return c;
}

UserStack::UserStack(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<UserStack>(info),
      rt_(UserRuntime::Get(info.Env())),
      id_(Int(info, 0)),
      stack_(std::make_unique<ms::Stack>(info[1].IsObject() ? ConfigFrom(info[1].As<Napi::Object>()) : ms::StackConfig())) {
  if (info[2].IsFunction()) on_ping_ = Napi::Persistent(info[2].As<Napi::Function>());
  if (info[3].IsFunction()) on_link_down_ = Napi::Persistent(info[3].As<Napi::Function>());
  stack_->set_event_sink([](void* ctx, int sd, uint32_t ev) {
    auto* self = static_cast<UserStack*>(ctx);
    self->rt_->Event(self, sd, ev);
  }, this);
  stack_->set_ping_handler([](void* ctx, const ms::PingResult& r) {
    auto* self = static_cast<UserStack*>(ctx);
    self->rt_->AddPing(self, r);
  }, this);
  stack_->set_now(rt_->Now());
  rt_->Add(this);
}

UserStack::~UserStack() { CloseStack(); }

void UserStack::Enter() {
  stack_->set_now(rt_->Now());
}

void UserStack::Leave() {
  MarkTouched();
  rt_->Kick();
}

void UserStack::MarkTouched() {
  if (touched_ || !alive_) return;
  touched_ = true;
  serial_++;
  rt_->touched_.push_back(this);
}

void UserStack::CloseStack() {
  if (!alive_) return;
  Enter();
  stack_->close();
  for (auto& p : ports_) p.hub->detach(p.port);
  ports_.clear();
  for (auto& f : fd_ifs_) {
    CloseFdIf(f.get());
    stack_->set_link(f->ifindex, nullptr);
  }
  fd_ifs_.clear();
  if (refs_) { rt_->Ref(-refs_); refs_ = 0; }
  std::vector<uint8_t>().swap(refd_);  // a later unref() must not count again
  alive_ = false;
  // the engine's memory goes now, not when the collector finalizes this wrapper: nothing
  // touches stack_ once alive_ is false
  stack_.reset();
  rt_->Remove(this);
  if (touched_) {
    rt_->touched_.erase(std::remove(rt_->touched_.begin(), rt_->touched_.end(), this), rt_->touched_.end());
    touched_ = false;
  }
}

Napi::Value UserStack::CloseStackJs(const Napi::CallbackInfo& info) {
  CloseStack();
  on_ping_.Reset();
  on_link_down_.Reset();
  return info.Env().Undefined();
}

#define USER_GUARD(info) \
  if (!alive_) return Num(info.Env(), -ENETDOWN); \
  Enter(); \
  struct LeaveGuard { UserStack* s; ~LeaveGuard() { s->Leave(); } } leave_guard{this}

Napi::Value UserStack::AddInterface(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  Napi::Object o = info[0].As<Napi::Object>();
  ms::InterfaceConfig c;
  c.name = o.Get("name").IsString() ? o.Get("name").As<Napi::String>().Utf8Value() : "eth" + std::to_string(stack_->interface_count());
  if (o.Get("mac").IsString() && !ParseMac(o.Get("mac").As<Napi::String>().Utf8Value(), &c.mac)) return Num(info.Env(), -EINVAL);
  c.mtu = uint32_t(NumOpt(o, "mtu", 1500));
  c.force_checksums = BoolOpt(o, "forceChecksums", false);
  c.ipv6 = BoolOpt(o, "ipv6", false);
  c.slaac = BoolOpt(o, "slaac", false);
  return Num(info.Env(), stack_->add_interface(c));
}

Napi::Value UserStack::AttachHub(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  int ifindex = Int(info, 0);
  std::string name = info[1].As<Napi::String>().Utf8Value();
  const ms::Interface* ifp = stack_->interface(ifindex);
  if (!ifp) return Num(info.Env(), -ENODEV);
  ms::Hub* hub = rt_->HubNamed(name);
  auto ctx = std::make_unique<PortCtx>(PortCtx{this, ifindex});
  ms::Hub::Port* port = hub->attach([](void* c, const uint8_t* frame, size_t len) {
    auto* pc = static_cast<PortCtx*>(c);
    UserStack* self = pc->stack;
    if (!self->alive_) return;
    self->stack_->set_now(self->rt_->TurnNow());
    self->stack_->input(pc->ifindex, frame, len);
    self->MarkTouched();
  }, ctx.get());
  if (!port) return Num(info.Env(), -ENOBUFS);
  if (ifp->impair.corrupt > 0) hub->set_csum_offload(false);
  ports_.push_back({hub, port, std::move(ctx)});
  return Num(info.Env(), stack_->set_link(ifindex, port));
}

// an interface on a descriptor link: [errno, message] when the link cannot be opened
Napi::Value UserStack::AttachLink(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  Napi::Env env = info.Env();
  int ifindex = Int(info, 0);
  std::string url = info[1].As<Napi::String>().Utf8Value();
  const ms::Interface* ifp = stack_->interface(ifindex);
  if (!ifp) return Num(env, -ENODEV);
  auto fail = [&](int err, const std::string& msg) {
    Napi::Array a = Napi::Array::New(env, 2);
    a.Set(uint32_t(0), Num(env, -std::abs(err)));
    a.Set(uint32_t(1), Napi::String::New(env, msg));
    return a;
  };
  for (auto& f : fd_ifs_) if (f->ifindex == ifindex) return fail(EEXIST, "the interface already has a link");
  ms::FdLinkParams params;
  params.mac = ifp->mac;
  params.mtu = ifp->mtu;
  ms::FdLinkOpen o = ms::open_fd_link(url, params);
  if (!o.link) return fail(o.err ? o.err : EIO, o.message);
  auto f = std::make_unique<FdIf>();
  f->stack = this;
  f->ifindex = ifindex;
  f->url = url;
  f->link = std::move(o.link);
  f->link->set_receiver([](void* c, const uint8_t* frame, size_t len) {
    auto* fi = static_cast<FdIf*>(c);
    UserStack* self = fi->stack;
    if (!self->alive_) return;
    self->stack_->set_now(self->rt_->Now());
    self->stack_->input(fi->ifindex, frame, len);
  }, f.get());
  f->poll = std::make_unique<LinkPoll>(rt_->loop(), f->link.get(), &UserStack::FdIfIo, f.get());
  int r = f->poll->Start();
  if (r != 0) {
    f->link->close();
    return fail(-r, std::string("cannot poll the link's descriptors (uv_poll_init: ") + uv_err_name(r) + ")");
  }
  rt_->AddLinkPoll(f->poll.get());
  int sr = stack_->set_link(ifindex, f->link.get());
  fd_ifs_.push_back(std::move(f));
  return Num(env, sr);
}

// after the link read or wrote: the stack has work; a link that went down is reported once
// and closed (its descriptors, its child process), keeping its counters and reason
void UserStack::FdIfIo(void* ctx) {
  auto* f = static_cast<FdIf*>(ctx);
  UserStack* self = f->stack;
  if (!self->alive_) return;
  self->MarkTouched();
  self->rt_->Kick();
  if (f->link->down() && !f->down_reported) {
    f->down_reported = true;
    self->rt_->LinkDown(self, f->ifindex, f->link->down_reason());
    self->CloseFdIf(f);
  }
}

void UserStack::CloseFdIf(FdIf* f) {
  if (f->poll) {
    rt_->RemoveLinkPoll(f->poll.get());
    f->poll->Stop();
    f->poll.reset();
  }
  f->link->close();
}

void UserStack::DeliverLinkDown(int ifindex, const std::string& reason) {
  if (on_link_down_.IsEmpty()) return;
  napi_env env = Env();
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value text = nullptr;
  napi_create_string_utf8(env, reason.c_str(), reason.size(), &text);
  napi_value argv[2] = {NumberValue(env, ifindex), text};
  CallFromLoop(env, on_link_down_, 2, argv);
  napi_close_handle_scope(env, scope);
}

Napi::Value UserStack::SetImpair(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  Napi::Object o = info[1].As<Napi::Object>();
  ms::Impair im;
  im.loss = NumOpt(o, "loss", 0);
  im.duplicate = NumOpt(o, "duplicate", 0);
  im.reorder = NumOpt(o, "reorder", 0);
  im.corrupt = NumOpt(o, "corrupt", 0);
  im.delay_ms = uint32_t(NumOpt(o, "delay", 0));
  im.jitter_ms = uint32_t(NumOpt(o, "jitter", 0));
  int ifindex = Int(info, 0);
  int r = stack_->set_impair(ifindex, im);
  // corrupted frames must meet a checksum check at every receiver on the hub: no offload there
  if (r >= 0 && im.corrupt > 0) {
    for (auto& p : ports_) if (p.ctx->ifindex == ifindex) p.hub->set_csum_offload(false);
  }
  return Num(info.Env(), r);
}

Napi::Value UserStack::SetCapture(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  if (info[1].IsString()) {
    std::string path = info[1].As<Napi::String>().Utf8Value();
    return Num(info.Env(), stack_->set_capture(Int(info, 0), path.c_str()));
  }
  return Num(info.Env(), stack_->set_capture(Int(info, 0), nullptr));
}

Napi::Value UserStack::AddAddress(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  ms::IpAddr a;
  if (!a.parse(info[1].As<Napi::String>().Utf8Value().c_str())) return Num(info.Env(), -EINVAL);
  return Num(info.Env(), stack_->add_address(Int(info, 0), a, uint8_t(Int(info, 2))));
}

Napi::Value UserStack::AddRoute(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  ms::IpAddr dst, gw;
  if (!dst.parse(info[0].As<Napi::String>().Utf8Value().c_str())) return Num(info.Env(), -EINVAL);
  std::string via = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  if (!via.empty() && !ParseAddr(via, &gw, stack_.get())) return Num(info.Env(), -EINVAL);
  int ifindex = info[3].IsNumber() ? Int(info, 3) : 0;
  if (!ifindex && gw.family == 6 && gw.scope) ifindex = int(gw.scope);  // fe80::1%eth0
  gw.scope = 0;
  return Num(info.Env(), stack_->add_route(dst, uint8_t(Int(info, 1)), gw, ifindex));
}

Napi::Value UserStack::RemoveAddress(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  ms::IpAddr a;
  if (!a.parse(info[1].As<Napi::String>().Utf8Value().c_str())) return Num(info.Env(), -EINVAL);
  return Num(info.Env(), stack_->remove_address(Int(info, 0), a));
}

Napi::Value UserStack::SetAddressDraining(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  ms::IpAddr a;
  if (!ParseAddr(info[1].As<Napi::String>().Utf8Value(), &a, stack_.get())) return Num(info.Env(), -EINVAL);
  a.scope = 0;
  return Num(info.Env(), stack_->set_address_draining(Int(info, 0), a, info[2].ToBoolean().Value()));
}

Napi::Value UserStack::RemoveRoute(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  ms::IpAddr dst;
  if (!dst.parse(info[0].As<Napi::String>().Utf8Value().c_str())) return Num(info.Env(), -EINVAL);
  return Num(info.Env(), stack_->remove_route(dst, uint8_t(Int(info, 1))));
}

Napi::Value UserStack::Interfaces(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  if (!alive_) return out;
  for (int i = 1; i <= stack_->interface_count(); i++) {
    const ms::Interface* ifp = stack_->interface(i);
    if (!ifp) continue;
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Num(env, ifp->index));
    o.Set("name", Napi::String::New(env, ifp->name));
    o.Set("mac", Napi::String::New(env, MacText(ifp->mac)));
    o.Set("mtu", Num(env, ifp->mtu));
    Napi::Array addrs = Napi::Array::New(env);
    uint32_t k = 0;
    Napi::Array tentative = Napi::Array::New(env);
    uint32_t t = 0;
    for (auto& a : ifp->addrs) {
      std::string text = a.addr.str() + "/" + std::to_string(a.prefix);
      addrs.Set(k++, Napi::String::New(env, text));
      if (a.tentative) tentative.Set(t++, Napi::String::New(env, text));
    }
    o.Set("addresses", addrs);
    o.Set("tentative", tentative);
    const ms::InterfaceStats& s = ifp->stats;
    Napi::Object st = Napi::Object::New(env);
    st.Set("rxFrames", Num(env, double(s.rx_frames)));
    st.Set("rxBytes", Num(env, double(s.rx_bytes)));
    st.Set("txFrames", Num(env, double(s.tx_frames)));
    st.Set("txBytes", Num(env, double(s.tx_bytes)));
    st.Set("rxMalformed", Num(env, double(s.rx_malformed)));
    st.Set("rxNotForUs", Num(env, double(s.rx_not_for_us)));
    st.Set("rxUnknownType", Num(env, double(s.rx_unknown_type)));
    st.Set("txNoLink", Num(env, double(s.tx_no_link)));
    st.Set("impairLost", Num(env, double(s.impair_lost)));
    st.Set("impairDuplicated", Num(env, double(s.impair_duplicated)));
    st.Set("impairReordered", Num(env, double(s.impair_reordered)));
    st.Set("impairCorrupted", Num(env, double(s.impair_corrupted)));
    st.Set("impairDelayed", Num(env, double(s.impair_delayed)));
    o.Set("stats", st);
    out.Set(uint32_t(i - 1), o);
  }
  return out;
}

Napi::Value UserStack::Socket(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  return Num(info.Env(), stack_->socket(Int(info, 0), Int(info, 1), Int(info, 2)));
}

Napi::Value UserStack::Bind(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  ms::Endpoint ep;
  if (!ParseEndpoint(info[2], Int(info, 3), &ep, Int(info, 1), stack_.get())) return Num(info.Env(), -EINVAL);
  return Num(info.Env(), stack_->bind(Int(info, 0), ep));
}

Napi::Value UserStack::Listen(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  return Num(info.Env(), stack_->listen(Int(info, 0), Int(info, 1)));
}

Napi::Value UserStack::Accept(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  return Num(info.Env(), stack_->accept(Int(info, 0)));
}

Napi::Value UserStack::Connect(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  ms::Endpoint ep;
  if (Int(info, 1) == 0) return Num(info.Env(), stack_->connect(Int(info, 0), ep));
  if (!ParseEndpoint(info[2], Int(info, 3), &ep, Int(info, 1), stack_.get())) return Num(info.Env(), -EINVAL);
  return Num(info.Env(), stack_->connect(Int(info, 0), ep));
}

Napi::Value UserStack::GetSockName(const Napi::CallbackInfo& info) {
  if (!alive_) return Num(info.Env(), -EBADF);
  ms::Endpoint ep;
  int r = stack_->getsockname(Int(info, 0), &ep);
  if (r < 0) return Num(info.Env(), r);
  return EndpointValue(info.Env(), ep, stack_.get());
}

Napi::Value UserStack::GetPeerName(const Napi::CallbackInfo& info) {
  if (!alive_) return Num(info.Env(), -EBADF);
  ms::Endpoint ep;
  int r = stack_->getpeername(Int(info, 0), &ep);
  if (r < 0) return Num(info.Env(), r);
  return EndpointValue(info.Env(), ep, stack_.get());
}

Napi::Value UserStack::Send(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  auto buf = info[1].As<Napi::Uint8Array>();
  return Num(info.Env(), double(stack_->send(Int(info, 0), buf.Data(), buf.ByteLength())));
}

Napi::Value UserStack::Sendv(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  int sd = Int(info, 0);
  auto arr = info[1].As<Napi::Array>();
  long total = 0;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    auto b = arr.Get(i).As<Napi::Uint8Array>();
    if (b.ByteLength() == 0) continue;
    long n = stack_->send(sd, b.Data(), b.ByteLength());
    if (n < 0) return Num(info.Env(), double(total > 0 ? total : n));
    total += n;
    if (size_t(n) < b.ByteLength()) break;
  }
  return Num(info.Env(), double(total));
}

Napi::Value UserStack::SendTo(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  auto buf = info[1].As<Napi::Uint8Array>();
  ms::Endpoint ep;
  if (!ParseEndpoint(info[3], Int(info, 4), &ep, Int(info, 2), stack_.get())) return Num(info.Env(), -EINVAL);
  return Num(info.Env(), double(stack_->sendto(Int(info, 0), buf.Data(), buf.ByteLength(), 0, &ep)));
}

static constexpr long kRecvChunk = 128 * 1024;

Napi::Value UserStack::Recv(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  int sd = Int(info, 0);
  long avail = stack_->recv_available(sd);
  // one Buffer per call, at most kRecvChunk: larger ones come from fresh pages (mmap) and cost
  // more in page faults than the extra crossings (measured: 128 KiB is the sweet spot)
  if (avail > kRecvChunk) avail = kRecvChunk;
  if (avail > 0) {
    Napi::Buffer<uint8_t> b = Napi::Buffer<uint8_t>::New(info.Env(), size_t(avail));
    long n = stack_->recv(sd, b.Data(), size_t(avail));
    if (n < 0) return Num(info.Env(), double(n));
    if (n < avail) return Napi::Buffer<uint8_t>::Copy(info.Env(), b.Data(), size_t(n));
    return b;
  }
  // nothing queued: a 1-byte read tells EOF (0), would-block or a pending error apart. EOF
  // is the number 0 (JavaScript turns it into an empty Buffer without an external backing
  // store, which costs more to create and to collect than the call itself)
  uint8_t one[1];
  long n = stack_->recv(sd, one, 1);
  if (n <= 0) return Num(info.Env(), double(n));
  return Napi::Buffer<uint8_t>::Copy(info.Env(), one, size_t(n));
}

Napi::Value UserStack::RecvFrom(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  Napi::Env env = info.Env();
  int sd = Int(info, 0);
  long avail = stack_->recv_available(sd);
  if (avail < 0) return Num(env, double(avail));
  ms::Endpoint from;
  Napi::Buffer<uint8_t> b = Napi::Buffer<uint8_t>::New(env, size_t(avail));
  long n = stack_->recvfrom(sd, b.Data(), size_t(avail), 0, &from);
  if (n < 0) return Num(env, double(n));
  Napi::Array r = Napi::Array::New(env, 5);
  r.Set(uint32_t(0), b);
  Napi::Array ep = EndpointValue(env, from, stack_.get()).As<Napi::Array>();
  r.Set(uint32_t(1), ep.Get(uint32_t(0)));
  r.Set(uint32_t(2), ep.Get(uint32_t(1)));
  r.Set(uint32_t(3), ep.Get(uint32_t(2)));
  r.Set(uint32_t(4), Napi::Boolean::New(env, n > avail));
  return r;
}

// recvmany(sd, buf, meta, addrs): queued datagrams of a UDP socket in one call, copied back to
// back into buf (the caller's scratch, reused). For datagram i, meta[4i..4i+3] = bytes copied,
// the datagram's size (larger when cut), port, family << 16 | index into addrs; addrs receives
// the sources' texts, one per run of datagrams from the same source. Returns the count (0 when
// none is queued) or -errno.
Napi::Value UserStack::RecvMany(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  Napi::Env env = info.Env();
  int sd = Int(info, 0);
  if (!info[1].IsTypedArray() || !info[2].IsTypedArray() || !info[3].IsArray()) return Num(env, -EINVAL);
  auto buf = info[1].As<Napi::Uint8Array>();
  auto meta = info[2].As<Napi::Int32Array>();
  Napi::Array addrs = info[3].As<Napi::Array>();
  constexpr size_t kMax = 64;
  ms::Stack::Dgram got[kMax];
  size_t max = std::min(kMax, meta.ElementLength() / 4);
  long n = stack_->recvmany(sd, buf.Data(), buf.ByteLength(), got, max);
  if (n <= 0) return Num(env, double(n));
  int32_t* m = meta.Data();
  uint32_t naddr = 0;
  const ms::IpAddr* prev = nullptr;
  for (long i = 0; i < n; i++) {
    const ms::IpAddr& a = got[i].from.addr;
    if (!prev || *prev != a || prev->scope != a.scope) {
      ms::IpAddr shown = a;
      if (!shown.family) shown.family = 4;
      addrs.Set(naddr++, Napi::String::New(env, AddrText(shown, stack_.get())));
      prev = &a;
    }
    m[4 * i] = int32_t(got[i].len);
    m[4 * i + 1] = int32_t(got[i].size);
    m[4 * i + 2] = got[i].from.port;
    m[4 * i + 3] = int32_t((a.family == 6 ? AF_INET6 : AF_INET) << 16 | (naddr - 1));
  }
  return Num(env, double(n));
}

Napi::Value UserStack::Shutdown(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  return Num(info.Env(), stack_->shutdown(Int(info, 0), Int(info, 1)));
}

Napi::Value UserStack::CloseSocket(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  int sd = Int(info, 0);
  DropRef(sd);
  return Num(info.Env(), stack_->close(sd));
}

Napi::Value UserStack::Abort(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  int sd = Int(info, 0);
  DropRef(sd);
  return Num(info.Env(), stack_->abort(sd));
}

Napi::Value UserStack::SetSockOpt(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  int v = Int(info, 3);
  return Num(info.Env(), stack_->setsockopt(Int(info, 0), Int(info, 1), Int(info, 2), &v, sizeof(v)));
}

Napi::Value UserStack::GetSockOpt(const Napi::CallbackInfo& info) {
  if (!alive_) return Num(info.Env(), -EBADF);
  int v = 0;
  size_t len = sizeof(v);
  int r = stack_->getsockopt(Int(info, 0), Int(info, 1), Int(info, 2), &v, &len);
  if (r < 0) return Num(info.Env(), r);
  Napi::Array a = Napi::Array::New(info.Env(), 1);
  a.Set(uint32_t(0), Num(info.Env(), v));
  return a;
}

Napi::Value UserStack::Membership(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  if (Int(info, 1) == AF_INET6) {
    bool add6 = info[2].As<Napi::Boolean>().Value();
    ms::IpAddr g6;
    if (!ParseAddr(info[3].As<Napi::String>().Utf8Value(), &g6, stack_.get()) || g6.family != 6) return Num(info.Env(), -EINVAL);
    std::string ifs6 = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
    int ifx = int(g6.scope);
    if (!ifs6.empty()) {
      // an interface address (with or without a zone) or a bare zone ('%eth0', 'eth0')
      ms::IpAddr ia;
      std::string z = ifs6[0] == '%' ? "::" + ifs6 : ifs6;
      if (ParseAddr(z, &ia, stack_.get()) && ia.scope) ifx = int(ia.scope);
      else if (ParseAddr("::%" + ifs6, &ia, stack_.get()) && ia.scope) ifx = int(ia.scope);
    }
    uint8_t mreq6[20] = {0};
    std::memcpy(mreq6, g6.b, 16);
    std::memcpy(mreq6 + 16, &ifx, 4);
    return Num(info.Env(), stack_->setsockopt(Int(info, 0), IPPROTO_IPV6, add6 ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, mreq6, sizeof(mreq6)));
  }
  if (Int(info, 1) != AF_INET) return Num(info.Env(), -EAFNOSUPPORT);
  bool add = info[2].As<Napi::Boolean>().Value();
  ms::IpAddr group, iface;
  if (!group.parse(info[3].As<Napi::String>().Utf8Value().c_str()) || group.family != 4) return Num(info.Env(), -EINVAL);
  std::string ifs = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
  if (!ifs.empty() && (!iface.parse(ifs.c_str()) || iface.family != 4)) return Num(info.Env(), -EINVAL);
  uint8_t mreq[8] = {0};
  std::memcpy(mreq, group.b, 4);
  if (iface.family == 4) std::memcpy(mreq + 4, iface.b, 4);
  return Num(info.Env(), stack_->setsockopt(Int(info, 0), IPPROTO_IP, add ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, mreq, sizeof(mreq)));
}

Napi::Value UserStack::MulticastInterface(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  if (Int(info, 1) != AF_INET) return Num(info.Env(), -EAFNOSUPPORT);
  ms::IpAddr a;
  if (!a.parse(info[2].As<Napi::String>().Utf8Value().c_str()) || a.family != 4) return Num(info.Env(), -EINVAL);
  return Num(info.Env(), stack_->setsockopt(Int(info, 0), IPPROTO_IP, IP_MULTICAST_IF, a.b, 4));
}

Napi::Value UserStack::Events(const Napi::CallbackInfo& info) {
  if (!alive_) return Num(info.Env(), 0);
  return Num(info.Env(), stack_->events(Int(info, 0)));
}

void UserStack::DropRef(int sd) {
  if (sd > 0 && size_t(sd) < refd_.size() && refd_[size_t(sd)]) { refd_[size_t(sd)] = 0; refs_--; rt_->Ref(-1); }
}

// a referenced socket keeps the loop alive through the runtime's timer
Napi::Value UserStack::RefSocket(const Napi::CallbackInfo& info) {
  int sd = Int(info, 0);
  // descriptors are small integers the engine reuses: one flag per descriptor
  if (alive_ && sd > 0 && sd < (1 << 24)) {
    if (size_t(sd) >= refd_.size()) refd_.resize(size_t(sd) + 1 + refd_.size() / 2, 0);
    if (!refd_[size_t(sd)]) { refd_[size_t(sd)] = 1; refs_++; rt_->Ref(1); }
  }
  return info.Env().Undefined();
}

Napi::Value UserStack::UnrefSocket(const Napi::CallbackInfo& info) {
  DropRef(Int(info, 0));
  return info.Env().Undefined();
}

Napi::Value UserStack::Ping(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  ms::IpAddr dst;
  if (!ParseAddr(info[0].As<Napi::String>().Utf8Value(), &dst, stack_.get())) return Num(info.Env(), -EINVAL);
  uint16_t idseq[2] = {0, 0};
  int r = stack_->ping(dst, size_t(Int(info, 1)), idseq);
  if (r < 0) return Num(info.Env(), r);
  pings_out_++;
  rt_->Ref(1);
  return Num(info.Env(), (double(idseq[0]) * 65536) + idseq[1]);
}

void UserStack::DeliverPing(const ms::PingResult& r) {
  if (pings_out_ > 0) { pings_out_--; rt_->Ref(-1); }
  bool shared = on_ping_.IsEmpty();  // no per-stack callback: the runtime's, with the stack id first
  if (shared && rt_->ping_handler_.IsEmpty()) return;
  napi_env env = Env();
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value from = nullptr;
  std::string text = r.from.family ? r.from.str() : "";
  napi_create_string_utf8(env, text.c_str(), text.size(), &from);
  napi_value argv[7] = { NumberValue(env, id_), NumberValue(env, double(r.id) * 65536 + r.seq), NumberValue(env, r.status),
                         NumberValue(env, double(r.rtt)), from, NumberValue(env, r.ttl), NumberValue(env, double(r.bytes)) };
  if (shared) CallFromLoop(env, rt_->ping_handler_, 7, argv);
  else CallFromLoop(env, on_ping_, 6, argv + 1);
  napi_close_handle_scope(env, scope);
}

Napi::Value UserStack::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  if (!alive_) return o;
  const ms::StackStats& s = stack_->stats();
  auto group = [&](const char* name, std::initializer_list<std::pair<const char*, uint64_t>> kv) {
    Napi::Object g = Napi::Object::New(env);
    for (auto& p : kv) g.Set(p.first, Num(env, double(p.second)));
    o.Set(name, g);
  };
  group("eth", {{"inFrames", s.eth.in_frames}, {"malformed", s.eth.malformed}, {"notForUs", s.eth.not_for_us},
                {"unknownType", s.eth.unknown_type}, {"outFrames", s.eth.out_frames}, {"outNoLink", s.eth.out_no_link}});
  group("arp", {{"inRequests", s.arp.in_requests}, {"inReplies", s.arp.in_replies}, {"inMalformed", s.arp.in_malformed},
                {"outRequests", s.arp.out_requests}, {"outReplies", s.arp.out_replies}, {"outGratuitous", s.arp.out_gratuitous},
                {"resolveFailures", s.arp.resolve_failures}, {"queueDrops", s.arp.queue_drops}, {"evictions", s.arp.evictions}});
  group("ip", {{"inReceives", s.ip.in_receives}, {"inHdrErrors", s.ip.in_hdr_errors}, {"inCsumErrors", s.ip.in_csum_errors},
               {"inTruncated", s.ip.in_truncated}, {"inAddrErrors", s.ip.in_addr_errors}, {"inUnknownProtos", s.ip.in_unknown_protos},
               {"inDelivers", s.ip.in_delivers}, {"inDiscards", s.ip.in_discards}, {"outRequests", s.ip.out_requests},
               {"outNoRoutes", s.ip.out_no_routes}, {"outDiscards", s.ip.out_discards}, {"fragOks", s.ip.frag_oks},
               {"fragCreates", s.ip.frag_creates}, {"fragFails", s.ip.frag_fails}, {"reasmReqds", s.ip.reasm_reqds},
               {"reasmOks", s.ip.reasm_oks}, {"reasmFails", s.ip.reasm_fails}, {"reasmTimeouts", s.ip.reasm_timeouts}});
  group("icmp", {{"inMsgs", s.icmp.in_msgs}, {"inErrors", s.icmp.in_errors}, {"inEchos", s.icmp.in_echos},
                 {"inEchoReps", s.icmp.in_echo_reps}, {"inDestUnreachs", s.icmp.in_dest_unreachs}, {"outMsgs", s.icmp.out_msgs},
                 {"outEchos", s.icmp.out_echos}, {"outEchoReps", s.icmp.out_echo_reps}, {"outDestUnreachs", s.icmp.out_dest_unreachs},
                 {"outRateLimited", s.icmp.out_rate_limited}});
  group("udp", {{"inDatagrams", s.udp.in_datagrams}, {"noPorts", s.udp.no_ports}, {"inErrors", s.udp.in_errors},
                {"inCsumErrors", s.udp.in_csum_errors}, {"rcvbufErrors", s.udp.rcvbuf_errors}, {"outDatagrams", s.udp.out_datagrams},
                {"outErrors", s.udp.out_errors}});
  group("tcp", {{"inSegs", s.tcp.in_segs}, {"outSegs", s.tcp.out_segs}, {"retransSegs", s.tcp.retrans_segs},
                {"inErrs", s.tcp.in_errs}, {"badCsum", s.tcp.bad_csum}, {"outRsts", s.tcp.out_rsts}, {"inRsts", s.tcp.in_rsts},
                {"activeOpens", s.tcp.active_opens}, {"passiveOpens", s.tcp.passive_opens}, {"attemptFails", s.tcp.attempt_fails},
                {"estabResets", s.tcp.estab_resets}, {"synCookiesSent", s.tcp.syn_cookies_sent}, {"synCookiesOk", s.tcp.syn_cookies_ok},
                {"synCookiesFailed", s.tcp.syn_cookies_failed}, {"listenDrops", s.tcp.listen_drops}, {"fastRetrans", s.tcp.fast_retrans},
                {"timeouts", s.tcp.timeouts}, {"sackRecoveries", s.tcp.sack_recoveries}, {"ofoQueued", s.tcp.ofo_queued},
                {"challengeAcks", s.tcp.challenge_acks}, {"pawsDrops", s.tcp.paws_drops}, {"zeroWindowProbes", s.tcp.zero_window_probes},
                {"keepaliveProbes", s.tcp.keepalive_probes}});
  group("ip6", {{"inReceives", s.ip6.in_receives}, {"inHdrErrors", s.ip6.in_hdr_errors}, {"inTruncated", s.ip6.in_truncated},
                {"inAddrErrors", s.ip6.in_addr_errors}, {"inUnknownProtos", s.ip6.in_unknown_protos}, {"inDelivers", s.ip6.in_delivers},
                {"inDiscards", s.ip6.in_discards}, {"inMulticasts", s.ip6.in_multicasts}, {"outRequests", s.ip6.out_requests},
                {"outNoRoutes", s.ip6.out_no_routes}, {"outDiscards", s.ip6.out_discards}, {"fragOks", s.ip6.frag_oks},
                {"fragCreates", s.ip6.frag_creates}, {"fragFails", s.ip6.frag_fails}, {"reasmReqds", s.ip6.reasm_reqds},
                {"reasmOks", s.ip6.reasm_oks}, {"reasmFails", s.ip6.reasm_fails}, {"reasmTimeouts", s.ip6.reasm_timeouts}});
  group("icmp6", {{"inMsgs", s.icmp6.in_msgs}, {"inErrors", s.icmp6.in_errors}, {"inCsumErrors", s.icmp6.in_csum_errors},
                  {"inEchos", s.icmp6.in_echos}, {"inEchoReps", s.icmp6.in_echo_reps}, {"inDestUnreachs", s.icmp6.in_dest_unreachs},
                  {"inPktTooBigs", s.icmp6.in_pkt_too_bigs}, {"inTimeExcds", s.icmp6.in_time_excds}, {"inParmProblems", s.icmp6.in_parm_problems},
                  {"inRouterAdverts", s.icmp6.in_router_adverts}, {"inNeighborSolicits", s.icmp6.in_neighbor_solicits},
                  {"inNeighborAdverts", s.icmp6.in_neighbor_adverts}, {"outMsgs", s.icmp6.out_msgs}, {"outEchos", s.icmp6.out_echos},
                  {"outEchoReps", s.icmp6.out_echo_reps}, {"outDestUnreachs", s.icmp6.out_dest_unreachs},
                  {"outParmProblems", s.icmp6.out_parm_problems}, {"outRouterSolicits", s.icmp6.out_router_solicits},
                  {"outNeighborSolicits", s.icmp6.out_neighbor_solicits}, {"outNeighborAdverts", s.icmp6.out_neighbor_adverts},
                  {"outMldReports", s.icmp6.out_mld_reports}, {"ndMalformed", s.icmp6.nd_malformed},
                  {"dadFailures", s.icmp6.dad_failures}, {"slaacAddresses", s.icmp6.slaac_addresses}});
  o.Set("socketsOpen", Num(env, double(s.sockets_open)));
  if (!fd_ifs_.empty()) {
    Napi::Object links = Napi::Object::New(env);
    for (auto& f : fd_ifs_) {
      const ms::Interface* ifp = stack_->interface(f->ifindex);
      Napi::Object l = LinkStatsObject(env, *f->link);
      l.Set("url", Napi::String::New(env, f->url));
      links.Set(ifp ? ifp->name : std::to_string(f->ifindex), l);
    }
    o.Set("links", links);
  }
  return o;
}

Napi::Value UserStack::Sockets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  if (!alive_) return out;
  uint32_t k = 0;
  for (const ms::SocketInfo& si : stack_->sockets()) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("sd", Num(env, si.sd));
    o.Set("type", Napi::String::New(env, si.type == SOCK_STREAM ? "tcp" : "udp"));
    o.Set("state", Napi::String::New(env, si.state));
    o.Set("local", EndpointValue(env, si.local, stack_.get()));
    o.Set("remote", EndpointValue(env, si.remote, stack_.get()));
    o.Set("sendQueue", Num(env, si.send_queue));
    o.Set("recvQueue", Num(env, si.recv_queue));
    o.Set("drops", Num(env, double(si.drops)));
    if (si.has_tcp) {
      o.Set("cwnd", Num(env, si.tcp.cwnd));
      o.Set("ssthresh", Num(env, si.tcp.ssthresh));
      o.Set("srttUs", Num(env, si.tcp.srtt_us));
      o.Set("rtoUs", Num(env, si.tcp.rto_us));
      o.Set("mss", Num(env, si.tcp.mss));
      o.Set("retransmits", Num(env, si.tcp.retransmits));
    }
    out.Set(k++, o);
  }
  return out;
}

// a frame arrives on an interface as if from its link (tests, fuzzing, custom links)
Napi::Value UserStack::Inject(const Napi::CallbackInfo& info) {
  USER_GUARD(info);
  int ifindex = Int(info, 0);
  if (!stack_->interface(ifindex)) return Num(info.Env(), -ENODEV);
  auto buf = info[1].As<Napi::Uint8Array>();
  stack_->input(ifindex, buf.Data(), buf.ByteLength());
  return Num(info.Env(), 0);
}

// ---------------------------------------------------------------------------------------
// JsHubPort

Napi::Function JsHubPort::Init(Napi::Env env) {
  return DefineClass(env, "HubPort", {
    InstanceMethod("send", &JsHubPort::Send),
    InstanceMethod("close", &JsHubPort::Close),
  });
}

JsHubPort::JsHubPort(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsHubPort>(info), rt_(UserRuntime::Get(info.Env())) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  on_frames_ = Napi::Persistent(info[1].As<Napi::Function>());
  hub_ = rt_->HubNamed(name);
  // frames leave the process through this port (a kernel TAP, another program): every stack
  // on the hub must fill and check checksums from now on
  hub_->set_csum_offload(false);
  rt_->js_ports_.insert(this);
  port_ = hub_->attach([](void* ctx, const uint8_t* frame, size_t len) {
    auto* self = static_cast<JsHubPort*>(ctx);
    if (self->queued_bytes_ + len > kMaxQueuedBytes) { self->drops_++; return; }
    self->queue_.emplace_back(frame, frame + len);
    self->queued_bytes_ += len;
    if (!self->listed_) { self->listed_ = true; self->rt_->PortPending(self); }
  }, this);
}

JsHubPort::~JsHubPort() { Detach(); }

void JsHubPort::Detach() {
  if (port_) { hub_->detach(port_); port_ = nullptr; rt_->js_ports_.erase(this); }
  if (listed_) { rt_->PortGone(this); listed_ = false; }
  queue_.clear();
  queued_bytes_ = 0;
}

void JsHubPort::Flush() {
  listed_ = false;
  if (queue_.empty() || on_frames_.IsEmpty()) return;
  auto frames = std::move(queue_);
  queue_.clear();
  queued_bytes_ = 0;
  napi_env env = Env();
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value arr;
  if (napi_create_array_with_length(env, frames.size(), &arr) == napi_ok) {
    for (size_t i = 0; i < frames.size(); i++) {
      void* data = nullptr;
      napi_value buf;
      if (napi_create_buffer_copy(env, frames[i].size(), frames[i].data(), &data, &buf) == napi_ok) napi_set_element(env, arr, uint32_t(i), buf);
    }
    CallFromLoop(env, on_frames_, 1, &arr);
  }
  napi_close_handle_scope(env, scope);
}

Napi::Value JsHubPort::Send(const Napi::CallbackInfo& info) {
  if (!port_) return Num(info.Env(), -EBADF);
  auto buf = info[0].As<Napi::Uint8Array>();
  if (buf.ByteLength() < 14) return Num(info.Env(), -EINVAL);
  port_->transmit(buf.Data(), buf.ByteLength());
  rt_->Kick();
  return Num(info.Env(), 0);
}

Napi::Value JsHubPort::Close(const Napi::CallbackInfo& info) {
  Detach();
  on_frames_.Reset();
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------
// JsLinkPort

Napi::Function JsLinkPort::Init(Napi::Env env) {
  return DefineClass(env, "LinkPort", {
    InstanceMethod("send", &JsLinkPort::Send),
    InstanceMethod("close", &JsLinkPort::Close),
    InstanceMethod("error", &JsLinkPort::Error),
    InstanceMethod("stats", &JsLinkPort::Stats),
  });
}

JsLinkPort::JsLinkPort(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsLinkPort>(info), rt_(UserRuntime::Get(info.Env())) {
  std::string url = info[0].As<Napi::String>().Utf8Value();
  ms::FdLinkParams params;
  if (info[3].IsString() && !ParseMac(info[3].As<Napi::String>().Utf8Value(), &params.mac)) {
    err_ = EINVAL;
    message_ = "bad MAC address";
    return;
  }
  if (info[4].IsNumber()) params.mtu = uint32_t(info[4].As<Napi::Number>().Uint32Value());
  ms::FdLinkOpen o = ms::open_fd_link(url, params);
  if (!o.link) { err_ = o.err ? o.err : EIO; message_ = o.message; return; }
  link_ = std::move(o.link);
  link_->set_receiver(&JsLinkPort::OnFrame, this);
  poll_ = std::make_unique<LinkPoll>(rt_->loop(), link_.get(), &JsLinkPort::OnIo, this);
  int r = poll_->Start();
  if (r != 0) {
    err_ = -r;
    message_ = std::string("cannot poll the link's descriptors (uv_poll_init: ") + uv_err_name(r) + ")";
    poll_.reset();
    link_->close();
    link_.reset();
    return;
  }
  if (info[1].IsFunction()) on_frames_ = Napi::Persistent(info[1].As<Napi::Function>());
  if (info[2].IsFunction()) on_down_ = Napi::Persistent(info[2].As<Napi::Function>());
  rt_->AddLinkPoll(poll_.get());
  rt_->js_links_.insert(this);
  registered_ = true;
}

JsLinkPort::~JsLinkPort() { Detach(); }

void JsLinkPort::Detach() {
  if (poll_) {
    rt_->RemoveLinkPoll(poll_.get());
    poll_->Stop();
    poll_.reset();
  }
  if (link_) link_->close();
  // after the runtime's teardown rt_ is gone: touch it only while registered with it
  if (registered_) { rt_->js_links_.erase(this); registered_ = false; }
  batch_.clear();
}

void JsLinkPort::OnFrame(void* ctx, const uint8_t* frame, size_t len) {
  auto* self = static_cast<JsLinkPort*>(ctx);
  if (self->batch_.size() >= 4 * LinkPoll::kBudget) return;  // bounded (a batch is one read event)
  self->batch_.emplace_back(frame, frame + len);
}

void JsLinkPort::OnIo(void* ctx) {
  auto* self = static_cast<JsLinkPort*>(ctx);
  napi_env env = self->Env();
  if (!self->batch_.empty()) {
    auto frames = std::move(self->batch_);
    self->batch_.clear();
    if (!self->on_frames_.IsEmpty()) {
      napi_handle_scope scope;
      if (napi_open_handle_scope(env, &scope) == napi_ok) {
        napi_value arr;
        if (napi_create_array_with_length(env, frames.size(), &arr) == napi_ok) {
          for (size_t i = 0; i < frames.size(); i++) {
            void* data = nullptr;
            napi_value buf;
            if (napi_create_buffer_copy(env, frames[i].size(), frames[i].data(), &data, &buf) == napi_ok) napi_set_element(env, arr, uint32_t(i), buf);
          }
          CallFromLoop(env, self->on_frames_, 1, &arr);
        }
        napi_close_handle_scope(env, scope);
      }
    }
  }
  // the callback may have closed the port
  if (!self->link_ || !self->poll_) return;
  if (self->link_->down() && !self->down_reported_) {
    self->down_reported_ = true;
    std::string reason = self->link_->down_reason();
    self->Detach();
    if (!self->on_down_.IsEmpty()) {
      napi_handle_scope scope;
      if (napi_open_handle_scope(env, &scope) == napi_ok) {
        napi_value text = nullptr;
        napi_create_string_utf8(env, reason.c_str(), reason.size(), &text);
        CallFromLoop(env, self->on_down_, 1, &text);
        napi_close_handle_scope(env, scope);
      }
    }
  }
}

Napi::Value JsLinkPort::Send(const Napi::CallbackInfo& info) {
  if (!link_) return Num(info.Env(), -EBADF);
  if (link_->down()) return Num(info.Env(), -ENETDOWN);
  if (!poll_) return Num(info.Env(), -EBADF);  // closed
  auto buf = info[0].As<Napi::Uint8Array>();
  if (buf.ByteLength() < 14) return Num(info.Env(), -EINVAL);
  link_->transmit(buf.Data(), buf.ByteLength());
  poll_->Sync();
  // a link that fails inside transmit is reported at the end of the runtime's turn
  if (link_->down()) rt_->Kick();
  return Num(info.Env(), 0);
}

Napi::Value JsLinkPort::Close(const Napi::CallbackInfo& info) {
  Detach();
  on_frames_.Reset();
  on_down_.Reset();
  return info.Env().Undefined();
}

Napi::Value JsLinkPort::Error(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!err_) return env.Null();
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(uint32_t(0), Num(env, -err_));
  a.Set(uint32_t(1), Napi::String::New(env, message_));
  return a;
}

Napi::Value JsLinkPort::Stats(const Napi::CallbackInfo& info) {
  if (!link_) return info.Env().Null();
  return LinkStatsObject(info.Env(), *link_);
}

// ---------------------------------------------------------------------------------------

void InitUser(Napi::Env env, Napi::Object exports) {
  Napi::Object u = Napi::Object::New(env);
  u.Set("UserStack", UserStack::Init(env));
  u.Set("HubPort", JsHubPort::Init(env));
  u.Set("LinkPort", JsLinkPort::Init(env));
  u.Set("setDispatcher", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    UserRuntime* rt = UserRuntime::Get(info.Env());
    rt->dispatcher_ = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
  }));
  // one ping callback for every stack of the environment (id, key, status, rttUs, from, ttl,
  // bytes): a stack then needs no function reference of its own
  u.Set("setPingHandler", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    UserRuntime* rt = UserRuntime::Get(info.Env());
    rt->ping_handler_ = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
  }));
  u.Set("hubs", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    UserRuntime* rt = UserRuntime::Get(info.Env());
    Napi::Array a = Napi::Array::New(info.Env());
    uint32_t k = 0;
    for (auto& kv : rt->hubs_) a.Set(k++, Napi::String::New(info.Env(), kv.first));
    return a;
  }));
  exports.Set("user", u);
}

UserRuntime* UserRuntime::Get(Napi::Env env) {
  Addon* a = Addon::Get(env);
  if (!a->user_runtime) {
    auto* rt = new UserRuntime(env, a->loop());
    a->user_runtime = rt;
    a->add_closer([a]() {
      if (a->user_runtime) { a->user_runtime->Shutdown(); a->user_runtime = nullptr; }
    });
  }
  return a->user_runtime;
}

}  // namespace msb
