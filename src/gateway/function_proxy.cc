#include "gateway/function_proxy.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <algorithm>
#include <optional>
#include <deque>
#include <span>

#include "common/json.h"

namespace nubo::gateway {

namespace asio = boost::asio;
using http::Response;
using runtime::Call;
using runtime::Clock;
using runtime::Deadline;
using runtime::DeploymentSpec;
using runtime::EarlyOpen;
using runtime::Instance;
using runtime::Lease;
namespace protocol = runtime::protocol;
using protocol::Frame;
using protocol::FrameType;

namespace {

// Whether `value` (an Upgrade header) asks for a WebSocket, in any case.
bool asksForWebSocket(std::string_view value) {
  static constexpr std::string_view kWord = "websocket";
  for (size_t i = 0; i + kWord.size() <= value.size(); ++i) {
    size_t k = 0;
    while (k < kWord.size() && (value[i + k] | 0x20) == kWord[k]) ++k;
    if (k == kWord.size()) return true;
  }
  return false;
}

// How long a request runs before the gateway watches for its client leaving.
constexpr std::chrono::milliseconds kWatchClientAfter{50};

// Header names compare without case.
bool sameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Headers that describe one HTTP hop, not the message: never passed on.
// Content-Length is passed to the function (frameworks look at it to see a
// body is there) but not taken from it: the gateway frames the response.
bool hopByHop(std::string_view name, bool response) {
  static constexpr std::string_view kHop[] = {"content-length", "connection", "keep-alive", "transfer-encoding",
                                              "upgrade", "te", "trailer", "proxy-connection"};
  for (auto h : std::span(kHop).subspan(response ? 0 : 1)) {
    if (sameName(name, h)) return true;
  }
  return false;
}

// Whether a client's header reaches the function: not hop-by-hop, not named
// in the client's Connection header (RFC 9110 7.6.1), and not one the
// gateway sets itself (the request id, which a client must not choose,
// X-Forwarded-*, and X-Nubo-Cron, which only the server's cron may send).
bool forwarded(std::string_view name, std::string_view connection) {
  if (hopByHop(name, false) || sameName(name, "x-nubo-request-id")) return false;
  // The gateway says where the request came from (a client could claim anything).
  for (std::string_view own : {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix",
                               "x-nubo-cron", "x-nubo-cron-key"}) {
    if (sameName(name, own)) return false;
  }
  while (!connection.empty()) {
    size_t comma = connection.find(',');
    std::string_view token = connection.substr(0, comma);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (!token.empty() && sameName(name, token)) return false;
    if (comma == std::string_view::npos) break;
    connection.remove_prefix(comma + 1);
  }
  return true;
}

// Whether a function's response header would set the console's session
// cookie: a browser would send it to the control port too (cookies ignore
// ports), signing the console in with a token of the function's choosing.
bool setsConsoleCookie(std::string_view name, std::string_view value) {
  if (!sameName(name, "set-cookie")) return false;
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  return value.substr(0, http::kConsoleCookie.size()) == http::kConsoleCookie &&
         value.substr(http::kConsoleCookie.size()).starts_with("=");
}

std::string firstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

Response failure(int status, std::string message) { return Response::text(status, std::move(message) + "\n"); }

// Moves a streamed request body from the client to the instance, as fast as
// the instance's window allows. Runs beside the request on the connection's
// strand; stop() ends it once the response no longer needs the body.
class BodyPump : public std::enable_shared_from_this<BodyPump> {
 public:
  BodyPump(std::shared_ptr<Call> call, std::shared_ptr<http::BodyReader> reader, Deadline deadline)
      : call_(std::move(call)), reader_(std::move(reader)), deadline_(deadline) {}

  void start(asio::any_io_executor ex) {
    asio::co_spawn(ex, [self = shared_from_this()] { return self->run(); }, asio::detached);
  }
  void stop() {
    stopped_ = true;
    call_->stopSending();
  }
  // Set when the client's side failed (the call then fails with it too).
  const std::optional<Status>& clientError() const { return client_error_; }

 private:
  asio::awaitable<void> run() {
    for (;;) {
      Result<std::string_view> piece = co_await reader_->read();
      if (stopped_) co_return;
      if (!piece.ok()) {
        client_error_ = piece.status();
        call_->abort(piece.status());
        co_return;
      }
      bool end = piece->empty();
      Status sent = co_await call_->sendBody(*piece, end, deadline_);
      if (!sent.ok() || end) co_return;  // a closed stream is reported to the request by the call itself
    }
  }

  std::shared_ptr<Call> call_;
  std::shared_ptr<http::BodyReader> reader_;
  Deadline deadline_;
  bool stopped_ = false;
  std::optional<Status> client_error_;
};

// The rest of a streamed response, pulled by the HTTP server chunk by chunk.
// Owns the lease (the instance slot stays taken until the stream ends) and
// the call; the window granted back follows what the client takes.
class CallStream final : public http::BodyStream {
 public:
  CallStream(std::unique_ptr<Lease> lease, std::shared_ptr<Call> call, std::shared_ptr<BodyPump> pump,
             Deadline deadline, std::string first, std::function<void(const std::string&)> on_error)
      : lease_(std::move(lease)), call_(std::move(call)), pump_(std::move(pump)), deadline_(deadline),
        first_(std::move(first)), on_error_(std::move(on_error)) {}
  ~CallStream() override {
    if (pump_) pump_->stop();
  }

  asio::awaitable<Result<std::optional<std::string>>> next() override {
    if (!first_.empty()) {
      std::string out = std::move(first_);
      first_.clear();
      call_->grant(static_cast<uint32_t>(out.size()));
      co_return std::optional<std::string>(std::move(out));
    }
    if (done_) co_return std::optional<std::string>();
    Result<Frame> f = co_await call_->next(deadline_);
    if (!f.ok()) {
      if (pump_ && pump_->clientError()) co_return f.status();  // the client broke off its upload
      if (f.status().code() == Code::kDeadlineExceeded) lease_->instance().kill();
      on_error_(f.status().message());
      co_return f.status();
    }
    if (f->type == FrameType::kError) {
      call_->markDone();
      on_error_("the handler failed while streaming: " + f->payload);
      co_return Internal("the function failed while streaming its response");
    }
    if (f->type != FrameType::kData) co_return std::optional<std::string>(std::string());
    if (f->endStream()) {
      done_ = true;
      call_->markDone();
    } else if (!f->payload.empty()) {
      call_->grant(static_cast<uint32_t>(f->payload.size()));
    }
    co_return std::optional<std::string>(std::move(f->payload));
  }

  void cancel() override { call_->cancel(); }

 private:
  std::unique_ptr<Lease> lease_;
  std::shared_ptr<Call> call_;
  std::shared_ptr<BodyPump> pump_;
  Deadline deadline_;
  std::string first_;
  std::function<void(const std::string&)> on_error_;
  bool done_ = false;
};

}  // namespace

asio::awaitable<Response> FunctionProxy::serve(std::shared_ptr<const DeploymentSpec> spec_ptr, std::string_view path,
                                               const http::Request& req, const std::string& request_id,
                                               protocol::HeaderList forwarded_by_gateway) {
  auto t0 = Clock::now();
  const DeploymentSpec& spec = *spec_ptr;
  Deadline deadline = t0 + spec.limits.timeout;

  protocol::HeaderList headers;
  auto all = req.headers();
  headers.reserve(all.size() + 3);
  std::string_view connection = req.header("connection");
  // A WebSocket handshake reaches the function as one (Upgrade and
  // Connection are hop-by-hop otherwise). No extension is offered: the
  // gateway must see each frame as sent (no compressed messages).
  bool websocket = req.upgrade && asksForWebSocket(req.header("upgrade"));
  if (websocket) {
    headers.emplace_back("connection", "upgrade");
    headers.emplace_back("upgrade", "websocket");
  }
  std::deque<std::string> kept_cookies;  // (the header list points into them)
  for (const auto& kv : all) {
    if (websocket && sameName(kv.first, "sec-websocket-extensions")) continue;
    if (!forwarded(kv.first, connection)) continue;
    if (sameName(kv.first, "cookie") && !http::cookieValue(kv.second, http::kConsoleCookie).empty()) {
      // The console's session holds an API token: never a function's to see.
      kept_cookies.push_back(http::withoutCookie(kv.second, http::kConsoleCookie));
      if (!kept_cookies.back().empty()) headers.emplace_back(kv.first, kept_cookies.back());
      continue;
    }
    headers.push_back(kv);
  }
  headers.insert(headers.end(), forwarded_by_gateway.begin(), forwarded_by_gateway.end());
  headers.emplace_back("x-nubo-request-id", request_id);
  std::string p(path);
  if (!req.query.empty()) {
    p += '?';
    p.append(req.query);
  }
  std::string_view host = req.header("host");
  std::string url = "http://" + std::string(host.empty() ? std::string_view("localhost") : host) + p;
  std::string head;
  head.reserve(256);
  // HEAD is asked as GET: the client gets the GET's headers, its
  // Content-Length included, and the server sends no body (a streamed one
  // is cancelled). A function's own HEAD answer would not know the length.
  std::string_view method = req.method == "HEAD" ? std::string_view("GET") : req.method;
  protocol::appendRequestHead(head, method, p, url, request_id, headers);
  auto ex = co_await asio::this_coro::executor;
  bool body_complete = req.body_stream == nullptr;

  // A cold start sends this request right behind SPECIALIZE.
  std::shared_ptr<Call> early_call;
  auto open_early = [&](const std::shared_ptr<Instance>& fresh) {
    auto c = fresh->open(ex, head, req.body, body_complete, websocket);
    if (c.ok()) early_call = *c;
  };
  EarlyOpen early = open_early;
  auto count = [this](metrics::Failure why) {
    if (metrics_) metrics_->failed(why);
  };
  auto lease = co_await functions_.acquire(spec, deadline, early);
  if (!lease.ok()) {
    const Status& s = lease.status();
    if (s.code() == Code::kResourceExhausted) {
      count(metrics::Failure::kQueueFull);
      Response r = failure(503, s.message());
      r.header("retry-after", "1");
      co_return r;
    }
    count(metrics::Failure::kStartFailed);
    if (s.code() == Code::kFailedPrecondition) {
      spdlog::error("deployment {} of {} failed to load: {}", spec.id, spec.app, s.message());
      functions_.note(spec, request_id, "the code failed to load: " + s.message());
      co_return failure(500, "the deployment's code failed to load: " + firstLine(s.message()));
    }
    co_return failure(httpStatusFor(s.code()) == 500 ? 502 : httpStatusFor(s.code()),
                      "could not start an instance: " + s.message());
  }
  Instance& inst = (*lease)->instance();
  // A cold start by this request opened the call already, on this instance.
  Result<std::shared_ptr<Call>> call = early_call;
  if (!early_call) call = inst.open(ex, head, req.body, body_complete, websocket);
  if (!call.ok()) {
    count(metrics::Failure::kCrash);
    co_return failure(502, call.status().message());
  }
  // A large upload flows to the instance while the request runs; the pump
  // stops when the response no longer needs it (a streamed response takes it along).
  std::shared_ptr<BodyPump> pump;
  if (req.body_stream) {
    pump = std::make_shared<BodyPump>(*call, req.body_stream, deadline);
    pump->start(ex);
  }
  struct StopPump {
    std::shared_ptr<BodyPump>& p;
    ~StopPump() {
      if (p) p->stop();
    }
  } stop_pump{pump};

  Response r;
  r.kind = Response::BodyKind::kString;
  if (const auto& cold = (*lease)->coldStart()) r.header("x-nubo-cold-start", cold->from_stem ? "stem" : "spawn");
  bool got_head = false;
  // A request that runs long starts watching for its client to go away (a
  // quick one never pays for the watch).
  Deadline watch_at = req.client ? t0 + kWatchClientAfter : deadline;
  auto client_gone = std::make_shared<bool>(false);
  for (;;) {
    Result<Frame> f = co_await (*call)->next(std::min(watch_at, deadline));
    if (!f.ok() && f.status().code() == Code::kDeadlineExceeded && watch_at < deadline) {
      watch_at = deadline;
      req.client->watch([c = *call, client_gone] {
        *client_gone = true;
        c->abort(Unavailable("the client closed the connection"));
      });
      continue;
    }
    if (!f.ok() && *client_gone) {
      functions_.note(spec, request_id, "the client went away; the request was cancelled");
      co_return failure(499, "the client closed the connection");
    }
    if (!f.ok()) {
      if (pump && pump->clientError()) {
        functions_.note(spec, request_id, "the client broke off its request body: " + pump->clientError()->message());
        co_return http::bodyReadError(*pump->clientError());
      }
      if (f.status().code() == Code::kDeadlineExceeded) {
        spdlog::warn("request {} to {} exceeded {} ms; killing instance pid {}", request_id, spec.id,
                     spec.limits.timeout.count(), inst.pid());
        inst.kill();
        count(metrics::Failure::kTimeout);
        functions_.note(spec, request_id, "over limits.timeout_ms (" + std::to_string(spec.limits.timeout.count()) +
                                   " ms): the instance was stopped");
        co_return failure(504, "the function did not finish within limits.timeout_ms (" +
                                   std::to_string(spec.limits.timeout.count()) + " ms)");
      }
      bool oom = f.status().message().find("out of memory") != std::string::npos;
      count(oom ? metrics::Failure::kOutOfMemory : metrics::Failure::kCrash);
      functions_.note(spec, request_id, "the instance failed during the request: " + f.status().message());
      co_return failure(502, "the function's instance failed: " + f.status().message());
    }
    if (f->type == FrameType::kError) {
      auto e = parseJson(f->payload, "error");
      std::string msg = e.ok() && e->is_object() ? e->value("message", std::string()) : f->payload;
      functions_.note(spec, request_id, "the handler threw: " + msg);
      (*call)->markDone();
      if (got_head) co_return failure(502, "the function failed while responding");
      co_return failure(500, "the function threw an error: " + firstLine(msg));
    }
    std::string_view body = f->payload;
    if (f->type == FrameType::kResponse) {
      std::string_view head_bytes;
      protocol::ResponseHead rh;
      if (!protocol::splitHead(f->payload, &head_bytes, &body).ok() ||
          !protocol::parseResponseHead(head_bytes, &rh).ok()) {
        count(metrics::Failure::kCrash);
        co_return failure(502, "the function's instance sent a malformed response head");
      }
      if (websocket && rh.status == 101) {
        if (f->endStream()) co_return failure(502, "the function accepted the WebSocket and ended it at once");
        functions_.noteColdStart(*lease, spec, request_id, t0);
        r.status = 101;
        for (auto& [name, value] : rh.headers) {
          if (!hopByHop(name, true) && !setsConsoleCookie(name, value)) r.header(std::move(name), std::move(value));
        }
        r.header("upgrade", "websocket");
        r.kind = Response::BodyKind::kUpgrade;
        r.takeover = std::make_shared<WebSocketRelay>(
            std::move(lease).value(), *call, std::string(body), websocket_,
            [this, spec_ptr, request_id](const std::string& what) { functions_.note(*spec_ptr, request_id, what); });
        co_return r;
      }
      if (rh.status < 200 || rh.status > 599) {
        // A 1xx sent as the final answer would leave the client waiting for
        // the real one and answering the next request with it.
        std::string why = "the function answered with status " + std::to_string(rh.status) +
                          ", which cannot be a final response (use 200-599)";
        functions_.note(spec, request_id, why);
        co_return failure(502, why);
      }
      r.status = rh.status;
      r.headers.reserve(rh.headers.size() + 3);
      for (auto& [name, value] : rh.headers) {
        // (A stream's declared length is what a HEAD answer states.)
        if (sameName(name, "content-length") && value.find_first_not_of("0123456789") == std::string::npos &&
            !value.empty() && value.size() < 19) {
          r.stream_length = std::stoull(value);
        }
        if (!hopByHop(name, true) && !setsConsoleCookie(name, value)) r.header(std::move(name), std::move(value));
      }
      got_head = true;
      if (!f->endStream()) {
        // More is coming: stream it to the client as it arrives.
        functions_.noteColdStart(*lease, spec, request_id, t0);
        r.kind = Response::BodyKind::kStream;
        r.stream = std::make_shared<CallStream>(
            std::move(lease).value(), *call, std::move(pump), deadline, std::string(body),
            [this, spec_ptr, request_id](const std::string& why) {
              functions_.note(*spec_ptr, request_id, "response cut short: " + why);
            });
        co_return r;
      }
    } else if (f->type != FrameType::kData) {
      continue;
    }
    r.body.append(body);
    if (!f->endStream()) {
      if (!body.empty()) (*call)->grant(static_cast<uint32_t>(body.size()));
      continue;
    }
    (*call)->markDone();
    break;
  }
  functions_.noteColdStart(*lease, spec, request_id, t0);
  co_return r;
}

}  // namespace nubo::gateway
