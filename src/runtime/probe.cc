// Functions::probe: a deployment's start check (runtime/functions.h).
#include <boost/asio/this_coro.hpp>

#include "common/json.h"
#include "runtime/functions.h"

namespace nubo::runtime {

namespace asio = boost::asio;
using protocol::Frame;
using protocol::FrameType;

namespace {
// The first `n` lines of what a deployment said (a stack trace's message
// and its top frames), at most 2000 bytes, with control characters shown as
// '?' (it is printed in terminals).
std::string firstLines(const std::string& text, int n) {
  size_t end = 0;
  for (int i = 0; i < n && end != std::string::npos; ++i) end = text.find('\n', end == 0 ? 0 : end + 1);
  std::string out = text.substr(0, end);
  if (out.size() > 2000) out = out.substr(0, 2000) + "...";
  for (char& ch : out) {
    if ((static_cast<unsigned char>(ch) < ' ' && ch != '\n' && ch != '\t') || ch == 0x7f) ch = '?';
  }
  return out;
}
}  // namespace

asio::awaitable<Result<std::string>> Functions::probe(DeploymentSpec probed) {
  const DeploymentSpec* spec = &probed;
  auto t0 = Clock::now();
  ColdStart phases;
  auto created = co_await create(*spec, &phases, {}, /*on_my_shard=*/false);
  if (!created.ok()) {
    const Status& s = created.status();
    if (s.code() == Code::kFailedPrecondition) {
      co_return FailedPrecondition("the code failed to load: " + firstLines(s.message(), 6));
    }
    co_return Status(s.code(), "could not start an instance: " + firstLines(s.message(), 6));
  }
  std::shared_ptr<Instance> inst = *created;
  // A healthy instance serves the deployment's first requests; any other is stopped.
  struct AtEnd {
    Functions& f;
    std::shared_ptr<Instance>& inst;
    const DeploymentSpec& spec;
    bool healthy = false;
    ~AtEnd() {
      // (Not when its app was removed meanwhile: no pool comes back for it.)
      auto pool = healthy ? f.poolOf(spec, inst->label()) : Result<std::shared_ptr<Pool>>(Unavailable(""));
      if (!pool.ok() || !(*pool)->adopt(inst)) inst->kill();
    }
  } at_end{*this, inst, *spec};
  char started[128];
  std::snprintf(started, sizeof started, "started %s in %.1f ms (the code loaded in %.1f ms)",
                phases.from_stem ? "from a stem" : "a new instance", msSince(t0), phases.load_ms);
  char cold[256];
  std::snprintf(cold, sizeof cold, "cold start for the start check: %s %.1f ms, files %.1f ms, specialize %.1f ms "
                "(load %.1f ms)", phases.from_stem ? "stem" : "spawn", phases.acquire_ms, phases.files_ms,
                phases.specialize_ms, phases.load_ms);
  note(*spec, "", cold);
  at_end.healthy = spec->health_path.empty();
  if (spec->health_path.empty()) co_return std::string(started);

  // The health path must answer 2xx or 3xx within limits.timeout_ms (at
  // most kMaxHealthWait: a check holds a slot of the start checks).
  auto wait = std::min<std::chrono::milliseconds>(spec->limits.timeout, kMaxHealthWait);
  Deadline deadline = Clock::now() + wait;
  std::string request_id = "health-" + spec->id;
  protocol::HeaderList headers = {{"host", "localhost"}, {"user-agent", "nubo-health-check"},
                                  {"x-nubo-request-id", request_id}};
  std::string head;
  protocol::appendRequestHead(head, "GET", spec->health_path, "http://localhost" + spec->health_path, request_id,
                              headers);
  auto ex = co_await asio::this_coro::executor;
  auto call = inst->open(ex, head, "", /*body_complete=*/true);
  if (!call.ok()) co_return Unavailable("could not ask " + spec->health_path + ": " + call.status().message());
  std::string what = "health.path " + spec->health_path;
  for (;;) {
    Result<Frame> f = co_await (*call)->next(deadline);
    if (!f.ok() && f.status().code() == Code::kDeadlineExceeded) {
      co_return DeadlineExceeded(what + " did not answer within " +
                                 (wait < spec->limits.timeout ? "the longest wait of a start check ("
                                                              : "limits.timeout_ms (") +
                                 std::to_string(wait.count()) + " ms)");
    }
    if (!f.ok()) co_return FailedPrecondition(what + ": the instance failed: " + f.status().message());
    if (f->type == FrameType::kError) {
      auto e = parseJson(f->payload, "error");
      std::string msg = e.ok() && e->is_object() ? e->value("message", std::string()) : f->payload;
      co_return FailedPrecondition(what + ": the handler threw: " + firstLines(msg, 6));
    }
    if (f->type != FrameType::kResponse) continue;
    std::string_view head_bytes, body;
    protocol::ResponseHead rh;
    if (!protocol::splitHead(f->payload, &head_bytes, &body).ok() ||
        !protocol::parseResponseHead(head_bytes, &rh).ok()) {
      co_return FailedPrecondition(what + ": the instance sent a malformed response head");
    }
    if (rh.status < 200 || rh.status > 399) {
      // What it said, for the error: the start of its body (a moment more at most).
      std::string shown(body.substr(0, 200));
      Deadline body_by = std::min(deadline, Clock::now() + std::chrono::milliseconds(500));
      for (bool end = f->endStream(); !end && shown.size() < 200;) {
        Result<Frame> more = co_await (*call)->next(body_by);
        if (!more.ok() || more->type != FrameType::kData) break;
        shown.append(more->payload.substr(0, 200 - shown.size()));
        end = more->endStream();
        if (!end && !more->payload.empty()) (*call)->grant(static_cast<uint32_t>(more->payload.size()));
      }
      (*call)->cancel();
      co_return FailedPrecondition(what + " answered " + std::to_string(rh.status) + " (2xx or 3xx is healthy)" +
                                   (shown.empty() ? "" : ": " + firstLines(shown, 3)));
    }
    (*call)->cancel();
    at_end.healthy = true;
    co_return std::string(started) + "; " + what + " answered " + std::to_string(rh.status);
  }
}

}  // namespace nubo::runtime
