#include "api/control_api.h"

#include "console/console_assets.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <mutex>
#include <optional>

#include "api/endpoint_util.h"
#include "common/ids.h"
#include "common/sha256.h"

namespace nubo::api {
namespace {

using http::Response;

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path[0] == '/') {
      path.remove_prefix(1);
      continue;
    }
    size_t slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return parts;
}

Result<std::vector<std::string>> stringList(const Json& j, const char* key) {
  std::vector<std::string> out;
  if (!j.contains(key)) return out;
  if (!j[key].is_array()) return InvalidArgument(std::string("field \"") + key + "\" must be an array of hashes");
  for (const auto& v : j[key]) {
    if (!v.is_string()) return InvalidArgument(std::string("field \"") + key + "\" must contain only strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

Json splitJson(const store::Split& split) {
  Json out = Json::array();
  for (const auto& p : split) out.push_back({{"deployment", p.deployment_id}, {"weight", p.weight}});
  return out;
}

Json aliasEventJson(const store::AliasEvent& e) {
  return {{"app", e.app},         {"alias", e.alias},   {"deployment", e.deployment_id},
          {"previous", e.previous_id}, {"kind", e.kind}, {"actor", e.actor},
          {"at_ms", e.at_ms},     {"undone", e.undone}, {"split", splitJson(e.split)},
          {"previous_split", splitJson(e.previous_split)}};
}

// {"split": [{"deployment": id, "weight": 90}, ...]} or {"deployment": id}.
Result<store::Split> readSplit(const Json& body) {
  if (!body.contains("split")) {
    ASSIGN_OR_RETURN(std::string dep, stringField(body, "deployment", "", true));
    return store::Split{{dep, 100}};
  }
  const Json& list = body["split"];
  if (!list.is_array() || list.empty() || list.size() > store::kMaxSplit) {
    return InvalidArgument("field \"split\" must be a list of 1 to 4 {\"deployment\", \"weight\"} objects");
  }
  store::Split split;
  for (const auto& part : list) {
    if (!part.is_object() || !part.contains("deployment") || !part["deployment"].is_string() ||
        !part.contains("weight") || !part["weight"].is_number_integer()) {
      return InvalidArgument("each part of \"split\" must be {\"deployment\": ID, \"weight\": 1-100}");
    }
    int64_t w = part["weight"].get<int64_t>();
    if (w < 1 || w > 100) return InvalidArgument("split weights are whole numbers from 1 to 100");
    split.push_back({part["deployment"].get<std::string>(), static_cast<int>(w)});
  }
  RETURN_IF_ERROR(store::validateSplit(split));
  return split;
}

// `current` with `deployment` at `percent` and the others keeping their
// proportions in what is left (whole weights by largest remainder; a part
// that would get none drops out).
Result<store::Split> promotedSplit(const store::Split& current, const std::string& deployment, int percent) {
  if (percent == 100) return store::Split{{deployment, 100}};
  store::Split others;
  int total = 0;
  for (const auto& p : current) {
    if (p.deployment_id == deployment) continue;
    others.push_back(p);
    total += p.weight;
  }
  if (others.empty()) {
    return FailedPrecondition("the alias sends nothing to another deployment, so " + deployment +
                              " cannot have only " + std::to_string(percent) + "%; promote it at 100%");
  }
  int left = 100 - percent;
  std::vector<std::pair<int, size_t>> remainders;  // remainder, index
  int given = 0;
  for (size_t i = 0; i < others.size(); ++i) {
    int exact = others[i].weight * left;
    others[i].weight = exact / total;
    given += others[i].weight;
    remainders.emplace_back(exact % total, i);
  }
  std::stable_sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < left; ++k, ++given) others[remainders[k % remainders.size()].second].weight += 1;
  store::Split out{{deployment, percent}};
  for (const auto& p : others) {
    if (p.weight > 0) out.push_back(p);
  }
  return out;
}

// Wakes the coroutine that follows something (a log, a deployment's state)
// when it changes: fire() from any thread (a store or log watcher), wait()
// on the follower's executor returns at the first fire since the last
// wait, or at `until`. Nothing polls.
class Signal : public std::enable_shared_from_this<Signal> {
 public:
  void fire() {
    std::optional<boost::asio::any_io_executor> ex;
    {
      std::lock_guard lock(mu_);
      fired_ = true;
      ex = ex_;
    }
    if (ex) boost::asio::post(*ex, [self = shared_from_this()] { self->timer_->cancel(); });
  }
  boost::asio::awaitable<void> wait(std::chrono::steady_clock::time_point until) {
    auto ex = co_await boost::asio::this_coro::executor;
    {
      std::lock_guard lock(mu_);
      if (!timer_) {
        ex_ = ex;
        timer_.emplace(ex);
      }
      if (fired_) {
        fired_ = false;
        co_return;
      }
    }
    timer_->expires_at(until);
    boost::system::error_code ec;
    co_await timer_->async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    std::lock_guard lock(mu_);
    fired_ = false;
  }

 private:
  std::mutex mu_;
  bool fired_ = false;                                 // guarded by mu_
  std::optional<boost::asio::any_io_executor> ex_;     // guarded by mu_: the follower's, once it waited
  std::optional<boost::asio::steady_timer> timer_;     // the follower's executor only (made under mu_)
};

// Fires `signal` while it lives, when `logs` writes lines under `key` or
// the store changes `app` (either may be empty: not watched); unwatches
// when destroyed.
class Follow {
 public:
  Follow(store::MetadataStore& store, logs::LogStore& logs, std::string app, std::string key)
      : store_(store), logs_(logs), signal_(std::make_shared<Signal>()) {
    std::weak_ptr<Signal> weak = signal_;
    if (!app.empty()) {
      store_watch_ = store_.watch([weak, app](const store::Change& c) {
        if (c.app != app && c.kind != store::Change::Kind::kResync) return;
        if (auto s = weak.lock()) s->fire();
      });
    }
    if (!key.empty()) {
      log_watch_ = logs_.watch([weak, key](const std::string& written) {
        if (written != key) return;
        if (auto s = weak.lock()) s->fire();
      });
    }
  }
  ~Follow() {
    if (store_watch_) store_.unwatch(store_watch_);
    if (log_watch_) logs_.unwatch(log_watch_);
  }
  Follow(const Follow&) = delete;
  Follow& operator=(const Follow&) = delete;
  Signal& signal() { return *signal_; }

 private:
  store::MetadataStore& store_;
  logs::LogStore& logs_;
  std::shared_ptr<Signal> signal_;
  uint64_t store_watch_ = 0;
  uint64_t log_watch_ = 0;
};

}  // namespace

std::string PublicUrls::appUrl(std::string_view app) const { return aliasUrl(app, ""); }

std::string PublicUrls::deploymentUrl(std::string_view app, std::string_view id) const { return aliasUrl(app, id); }

std::string PublicUrls::aliasUrl(std::string_view app, std::string_view alias) const {
  std::string url = scheme + "://";
  if (!alias.empty()) url += std::string(alias) + "--";
  url += std::string(app) + "." + base_domain;
  if (port != 80) url += ":" + std::to_string(port);
  return url + "/";
}

ControlApi::ControlApi(store::MetadataStore& store, Deployer& deployer, Authenticator& auth, Clock& clock,
                       const SecretBox& secrets, PublicUrls urls, runtime::Functions* functions,
                       cron::CronScheduler* cron, logs::LogStore& logs, logs::LogStore& build_logs,
                       AppRemoved app_removed, Served served, Observability observability)
    : store_(store),
      deployer_(deployer),
      auth_(auth),
      clock_(clock),
      secrets_(secrets),
      urls_(std::move(urls)),
      functions_(functions),
      cron_(cron),
      logs_(logs),
      build_logs_(build_logs),
      app_removed_(std::move(app_removed)),
      served_(std::move(served)),
      observability_(std::move(observability)) {}

boost::asio::awaitable<Response> ControlApi::putBlob(const Call& call) {
  const http::Request& req = call.req;
  const std::string& hash = call.params[0];
  if (!req.body_stream) {
    // (A body small enough to have been read ahead.)
    if (Status s = deployer_.putBlob(hash, req.body); !s.ok()) co_return Response::error(s);
    if (observability_.metrics) observability_.metrics->uploaded(req.body.size());
    co_return jsonResponse(201, {{"hash", hash}, {"size", req.body.size()}});
  }
  if (!isSha256Hex(hash)) {
    co_return Response::error(InvalidArgument("blob name \"" + hash.substr(0, 80) +
                                              "\" is not a SHA-256 hex digest (64 lowercase hex characters)"));
  }
  auto writer = deployer_.blobWriter();
  if (!writer.ok()) co_return Response::error(writer.status());
  for (;;) {
    Result<std::string_view> piece = co_await req.body_stream->read();
    if (!piece.ok()) co_return http::bodyReadError(piece.status());
    if (piece->empty()) break;
    if (Status s = (*writer)->write(*piece); !s.ok()) co_return Response::error(s);
  }
  uint64_t size = (*writer)->size();
  auto stored = (*writer)->commit(hash);
  if (!stored.ok()) co_return Response::error(stored.status());
  if (observability_.metrics) observability_.metrics->uploaded(size);
  co_return jsonResponse(201, {{"hash", hash}, {"size", size}});
}

boost::asio::awaitable<Response> ControlApi::answerWhenStarted(Response created) {
  auto j = parseJson(created.body, "deployment");
  if (!j.ok() || !j->is_object() || j->value("state", "") != "STARTING") co_return created;
  std::string id = j->value("id", "");
  // Woken by the store's changes to the app; READY is said once the data
  // plane serves it, which follows the same change a moment later (looked
  // at again within 5 ms).
  Follow follow(store_, build_logs_, j->value("app", ""), "");
  auto until = std::chrono::steady_clock::now() + kStartWait;
  while (std::chrono::steady_clock::now() < until) {
    auto d = store_.getDeployment(id);
    if (!d.ok()) break;  // removed with its app meanwhile
    bool ready_unserved = d->state == store::DeploymentState::kReady && served_ && !served_(id);
    if (d->state != store::DeploymentState::kStarting && !ready_unserved) {
      (*j)["state"] = std::string(store::stateName(d->state));
      (*j)["error"] = d->error.empty() ? Json(nullptr) : Json(d->error);
      break;
    }
    auto next = ready_unserved ? std::chrono::steady_clock::now() + std::chrono::milliseconds(5) : until;
    co_await follow.signal().wait(next);
  }
  co_return jsonResponse(201, *j);
}

namespace {

// The search a logs request asks for (docs/api.md), every parameter checked.
Result<logs::LogFilter> logFilter(std::string_view query) {
  logs::LogFilter f;
  std::string kind = queryParam(query, "kind");
  if (kind == "requests") f.kind = logs::LogFilter::Kind::kRequests;
  else if (kind == "output") f.kind = logs::LogFilter::Kind::kOutput;
  else if (!kind.empty() && kind != "all") {
    return InvalidArgument("kind must be all, requests (access records) or output (what functions wrote), not \"" +
                           kind.substr(0, 40) + "\"");
  }
  f.deployment = queryParam(query, "deployment");
  f.request_id = queryParam(query, "request");
  f.grep = queryParam(query, "grep");
  if (f.deployment.size() > 64 || f.request_id.size() > 128) {
    return InvalidArgument("deployment and request must be ids (up to 64 and 128 characters)");
  }
  if (f.grep.size() > 1024) return InvalidArgument("grep is longer than 1024 characters");
  for (auto [key, out] : {std::pair<const char*, int64_t*>{"since", &f.since_ms}, {"until", &f.until_ms}}) {
    std::string v = queryParam(query, key);
    if (v.empty()) continue;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
    if (ec != std::errc() || p != v.data() + v.size() || *out < 0) {
      return InvalidArgument(std::string(key) + " must be a time in milliseconds since the Unix epoch, not \"" +
                             v.substr(0, 40) + "\"");
    }
  }
  if (f.since_ms && f.until_ms && f.until_ms < f.since_ms) return InvalidArgument("until is before since");
  if (std::string st = queryParam(query, "status"); !st.empty()) {
    bool cls = st.size() == 3 && st[0] >= '1' && st[0] <= '5' && (st.substr(1) == "xx" || st.substr(1) == "XX");
    int exact = 0;
    auto [p, ec] = std::from_chars(st.data(), st.data() + st.size(), exact);
    if (cls) {
      f.status_class = st[0] - '0';
    } else if (ec == std::errc() && p == st.data() + st.size() && exact >= 100 && exact <= 599) {
      f.status = exact;
    } else {
      return InvalidArgument("status must be a class like 5xx or a status like 503, not \"" + st.substr(0, 40) + "\"");
    }
  }
  return f;
}

}  // namespace

boost::asio::awaitable<Response> ControlApi::serveLogs(const Call& call) {
  const http::Request& req = call.req;
  const std::string& app = call.params[0];
  if (auto a = store_.getApp(app); !a.ok()) co_return Response::error(a.status());
  auto number = [&](const char* key, uint64_t fallback, uint64_t max) -> Result<uint64_t> {
    std::string v = queryParam(req.query, key);
    if (v.empty()) return fallback;
    uint64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || n > max) {
      return InvalidArgument(std::string(key) + " must be a whole number up to " + std::to_string(max));
    }
    return n;
  };
  auto limit = number("limit", 100, 100000);
  auto wait = number("wait", 0, 60);
  auto after_n = number("after", 0, UINT64_MAX);
  for (auto* r : {&limit, &wait, &after_n}) {
    if (!r->ok()) co_return Response::error(r->status());
  }
  std::optional<uint64_t> after;
  if (!queryParam(req.query, "after").empty()) after = *after_n;
  auto filter = logFilter(req.query);
  if (!filter.ok()) co_return Response::error(filter.status());
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(*wait);
  // Woken when the app's lines are written: a follower costs nothing while
  // the app is quiet.
  Follow follow(store_, logs_, "", app);
  for (;;) {
    logs::LogStore::Page page = logs_.read(app, after, *filter, *limit);
    if (!page.lines.empty() || std::chrono::steady_clock::now() >= until) {
      Json lines = Json::array();
      for (const auto& l : page.lines) {
        lines.push_back({{"ts_ms", l.ts_ms}, {"deployment", l.deployment}, {"stream", l.stream},
                         {"request_id", l.request_id}, {"text", l.text}});
      }
      co_return jsonResponse(200, {{"lines", lines}, {"cursor", page.cursor}});
    }
    after = page.cursor;
    co_await follow.signal().wait(until);
  }
}

namespace {

bool finalState(store::DeploymentState s) {
  return s == store::DeploymentState::kReady || s == store::DeploymentState::kFailed;
}

// The `after` query parameter: a log cursor from an earlier page or event.
Result<std::optional<uint64_t>> afterCursor(const http::Request& req) {
  std::string a = queryParam(req.query, "after");
  if (a.empty()) return std::optional<uint64_t>();
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(a.data(), a.data() + a.size(), v);
  if (ec != std::errc() || p != a.data() + a.size()) {
    return InvalidArgument("after must be a cursor from an earlier page or event, got \"" + a + "\"");
  }
  return std::optional<uint64_t>(v);
}

Json buildLine(const logs::LogLine& l) { return {{"ts_ms", l.ts_ms}, {"stream", l.stream}, {"text", l.text}}; }

std::string sseEvent(std::string_view event, const Json& data) {
  return "event: " + std::string(event) + "\ndata: " + dumpJson(data) + "\n\n";
}

// The events of one deployment's build and start: its log lines as they
// are written and its state whenever it changes, ending after READY or
// FAILED (once the log is drained). Woken by the build log's writes and
// the store's changes to the app; nothing polls (but for the moment between
// READY in the store and the data plane serving it, looked at every 10 ms
// for at most 2 s).
class BuildEvents final : public http::BodyStream {
 public:
  BuildEvents(store::MetadataStore& store, logs::LogStore& logs, std::string id, std::string app,
              std::optional<uint64_t> after, ControlApi::Served served)
      : store_(store), logs_(logs), id_(std::move(id)), after_(after), served_(std::move(served)),
        follow_(store, logs, std::move(app), id_) {}

  boost::asio::awaitable<Result<std::optional<std::string>>> next() override {
    for (;;) {
      if (cancelled_ || done_) co_return std::optional<std::string>();
      std::string out;
      // The state first, then the log: every line written before the state
      // changed is in this page (a READY seen first could end the stream
      // before the build's last lines were read).
      auto d = store_.getDeployment(id_);
      if (!d.ok()) co_return d.status();
      logs::LogStore::Page page = logs_.read(id_, after_.value_or(0), "", 1000);
      after_ = page.cursor;
      for (const auto& l : page.lines) {
        Json data = buildLine(l);
        data["cursor"] = page.cursor;  // a client that reconnects passes it as ?after=
        out += sseEvent("log", data);
      }
      // READY is said once the data plane serves it (the router reloads
      // just after the store commits), or after 2 s whatever happens.
      bool routed = d->state != store::DeploymentState::kReady || !served_ || served_(id_) || ++ready_waits_ > 200;
      if (!routed && !out.empty()) co_return std::optional<std::string>(std::move(out));  // the lines now, READY later
      if (!routed) {
        co_await follow_.signal().wait(std::chrono::steady_clock::now() + std::chrono::milliseconds(10));
        continue;
      }
      if (!last_ || *last_ != d->state) {
        last_ = d->state;
        Json data = {{"state", std::string(store::stateName(d->state))}};
        if (!d->error.empty()) data["error"] = d->error;
        out += sseEvent("state", data);
      }
      // Final, and nothing more was logged since the last look: the end.
      if (finalState(d->state) && page.lines.empty()) done_ = true;
      if (!out.empty()) co_return std::optional<std::string>(std::move(out));
      if (done_) continue;
      // (A second at most: a safety net, not the way news arrives.)
      co_await follow_.signal().wait(std::chrono::steady_clock::now() + std::chrono::seconds(1));
    }
  }
  void cancel() override {
    cancelled_ = true;
    follow_.signal().fire();
  }

 private:
  store::MetadataStore& store_;
  logs::LogStore& logs_;
  std::string id_;
  std::optional<uint64_t> after_;
  std::optional<store::DeploymentState> last_;
  ControlApi::Served served_;
  Follow follow_;
  int ready_waits_ = 0;
  bool done_ = false;
  bool cancelled_ = false;
};

// An app's log lines that match a search, as server-sent events, from a
// cursor on until the client goes. Woken by the log's writes; a comment
// every 15 s of quiet keeps proxies from closing the stream.
class LogEvents final : public http::BodyStream {
 public:
  LogEvents(store::MetadataStore& store, logs::LogStore& logs, std::string app, logs::LogFilter filter,
            uint64_t after)
      : logs_(logs), app_(app), filter_(std::move(filter)), after_(after), follow_(store, logs, "", std::move(app)) {}

  boost::asio::awaitable<Result<std::optional<std::string>>> next() override {
    if (!opened_) {
      opened_ = true;  // said at once: the client knows it is following
      co_return std::optional<std::string>(": following\n\n");
    }
    auto quiet_since = std::chrono::steady_clock::now();
    for (;;) {
      if (cancelled_) co_return std::optional<std::string>();
      logs::LogStore::Page page = logs_.read(app_, after_, filter_, 1000);
      after_ = page.cursor;
      if (!page.lines.empty()) {
        std::string out;
        for (const auto& l : page.lines) {
          out += sseEvent("log", {{"ts_ms", l.ts_ms}, {"deployment", l.deployment}, {"stream", l.stream},
                                  {"request_id", l.request_id}, {"text", l.text}, {"cursor", page.cursor}});
        }
        co_return std::optional<std::string>(std::move(out));
      }
      auto now = std::chrono::steady_clock::now();
      if (now - quiet_since >= std::chrono::seconds(15)) co_return std::optional<std::string>(": quiet\n\n");
      co_await follow_.signal().wait(quiet_since + std::chrono::seconds(15));
    }
  }
  void cancel() override {
    cancelled_ = true;
    follow_.signal().fire();
  }

 private:
  logs::LogStore& logs_;
  std::string app_;
  logs::LogFilter filter_;
  uint64_t after_;
  Follow follow_;
  bool opened_ = false;
  bool cancelled_ = false;
};

}  // namespace

// GET /v1/apps/{app}/logs/events[?after=CURSOR&<filters>]: the lines that
// match, live (from the end of the log without a cursor).
Result<Response> ControlApi::serveLogEvents(const Call& call) {
  const std::string& app = call.params[0];
  RETURN_IF_ERROR(store_.getApp(app).status());
  ASSIGN_OR_RETURN(logs::LogFilter filter, logFilter(call.req.query));
  ASSIGN_OR_RETURN(std::optional<uint64_t> after, afterCursor(call.req));
  if (!after) after = logs_.read(app, std::nullopt, std::string(), 0).cursor;  // (the end, as things stand)
  Response r;
  r.kind = Response::BodyKind::kStream;
  r.header("content-type", "text/event-stream");
  r.header("cache-control", "no-cache");
  r.stream = std::make_shared<LogEvents>(store_, logs_, app, std::move(filter), *after);
  return r;
}

Result<Response> ControlApi::serveBuildEvents(const Call& call) {
  const http::Request& req = call.req;
  const std::string& id = call.params[0];
  auto d = store_.getDeployment(id);
  if (!d.ok()) return d.status();
  Response r;
  r.kind = Response::BodyKind::kStream;
  r.header("content-type", "text/event-stream");
  r.header("cache-control", "no-cache");
  ASSIGN_OR_RETURN(std::optional<uint64_t> after, afterCursor(req));
  r.stream = std::make_shared<BuildEvents>(store_, build_logs_, id, d->app, after, served_);
  return r;
}

// "alias" (default production) and "promote" (default true) of a request
// that creates a deployment.
Status readPromotion(const Json& body, CreateRequest& cr) {
  ASSIGN_OR_RETURN(cr.alias, stringField(body, "alias", "production"));
  if (body.contains("promote")) {
    if (!body["promote"].is_boolean()) return InvalidArgument("field \"promote\" must be true or false");
    cr.promote = body["promote"].get<bool>();
  }
  return Status::Ok();
}

Json ControlApi::deploymentJson(const store::Deployment& d) {
  Json manifest = Json::object();
  if (auto m = parseJson(d.manifest_json, "manifest"); m.ok()) manifest = std::move(m).value();
  return {{"id", d.id},
          {"app", d.app},
          {"state", std::string(store::stateName(d.state))},
          {"root", d.root_tree},
          {"output", d.output_tree.empty() ? Json(nullptr) : Json(d.output_tree)},
          {"error", d.error.empty() ? Json(nullptr) : Json(d.error)},
          {"runtime", d.runtime},
          {"created_ms", d.created_ms},
          {"creator", d.creator},
          {"files", d.files},
          {"bytes", d.bytes},
          {"url", urls_.deploymentUrl(d.app, d.id)},
          {"production_url", urls_.appUrl(d.app)},
          {"manifest", manifest}};
}

// ---- the endpoints ------------------------------------------------------------

const std::vector<ControlApi::Endpoint>& ControlApi::endpoints() {
  using B = Endpoint::Body;
  using A = Endpoint::Access;
  using S = Endpoint::Scope;
  static const std::vector<Endpoint> table = {
      {"GET", "/", A::kPublic, S::kNone, "", B::kNone, &ControlApi::consolePage, nullptr},
      {"GET", "/console/{}", A::kPublic, S::kNone, "", B::kNone, &ControlApi::consolePage, nullptr},
      {"GET", "/healthz", A::kPublic, S::kNone, "", B::kNone, &ControlApi::healthz, nullptr},
      {"GET", "/_nubo/healthz", A::kPublic, S::kNone, "", B::kNone, &ControlApi::healthz, nullptr},
      {"GET", "/_nubo/readyz", A::kPublic, S::kNone, "", B::kNone, &ControlApi::readyz, nullptr},
      {"GET", "/metrics", A::kPublic, S::kNone, "", B::kNone, &ControlApi::serveMetrics, nullptr},
      {"POST", "/v1/session", A::kPublic, S::kNone, "", B::kJson, &ControlApi::openSession, nullptr},
      {"GET", "/v1/stats", A::kView, S::kNone, "", B::kNone, &ControlApi::allStats, nullptr},
      {"GET", "/v1/apps/{}/stats", A::kView, S::kApp, "", B::kNone, &ControlApi::appStats, nullptr},
      {"DELETE", "/v1/session", A::kPublic, S::kNone, "", B::kNone, &ControlApi::closeSession, nullptr},
      {"GET", "/v1/whoami", A::kView, S::kNone, "", B::kNone, &ControlApi::whoami, nullptr},
      // Uploads are content-addressed and shared: any deployer may add one.
      {"POST", "/v1/negotiate", A::kDeploy, S::kNone, "uploading", B::kJson, &ControlApi::negotiate, nullptr},
      {"PUT", "/v1/blobs/{}", A::kDeploy, S::kNone, "uploading", B::kBlob, nullptr, &ControlApi::putBlob},
      {"GET", "/v1/blobs/{}", A::kDeploy, S::kNone, "uploading", B::kNone, &ControlApi::hasObject, nullptr},
      {"HEAD", "/v1/blobs/{}", A::kDeploy, S::kNone, "uploading", B::kNone, &ControlApi::hasObject, nullptr},
      {"PUT", "/v1/trees/{}", A::kDeploy, S::kNone, "uploading", B::kTree, &ControlApi::putTree, nullptr},
      {"GET", "/v1/trees/{}", A::kDeploy, S::kNone, "uploading", B::kNone, &ControlApi::hasObject, nullptr},
      {"HEAD", "/v1/trees/{}", A::kDeploy, S::kNone, "uploading", B::kNone, &ControlApi::hasObject, nullptr},
      {"POST", "/v1/gc", A::kAdmin, S::kNone, "collecting garbage", B::kJson, &ControlApi::collectGarbage, nullptr},
      {"GET", "/v1/instances", A::kView, S::kNone, "", B::kNone, &ControlApi::listInstances, nullptr},
      {"GET", "/v1/nodes", A::kView, S::kNone, "", B::kNone, &ControlApi::listNodes, nullptr},
      {"GET", "/v1/deployments/{}", A::kView, S::kDeployment, "", B::kNone, &ControlApi::getDeployment, nullptr},
      {"GET", "/v1/deployments/{}/build-log", A::kView, S::kDeployment, "", B::kNone, &ControlApi::buildLog,
       nullptr},
      {"GET", "/v1/deployments/{}/events", A::kView, S::kDeployment, "", B::kNone, &ControlApi::serveBuildEvents,
       nullptr},
      {"POST", "/v1/deployments/{}/redeploy", A::kDeploy, S::kDeployment, "redeploying", B::kJson, nullptr,
       &ControlApi::redeploy},
      {"GET", "/v1/apps", A::kView, S::kNone, "", B::kNone, &ControlApi::listApps, nullptr},
      {"GET", "/v1/apps/{}", A::kView, S::kApp, "", B::kNone, &ControlApi::getApp, nullptr},
      {"DELETE", "/v1/apps/{}", A::kAdmin, S::kApp, "removing an app", B::kNone, &ControlApi::deleteApp, nullptr},
      {"GET", "/v1/apps/{}/deployments", A::kView, S::kApp, "", B::kNone, &ControlApi::listDeployments, nullptr},
      {"POST", "/v1/apps/{}/deployments", A::kDeploy, S::kApp, "deploying", B::kJson, nullptr,
       &ControlApi::createDeployment},
      {"GET", "/v1/apps/{}/logs", A::kView, S::kApp, "", B::kNone, nullptr, &ControlApi::serveLogs},
      {"GET", "/v1/apps/{}/logs/events", A::kView, S::kApp, "", B::kNone, &ControlApi::serveLogEvents, nullptr},
      {"GET", "/v1/apps/{}/aliases", A::kView, S::kApp, "", B::kNone, &ControlApi::listAliases, nullptr},
      {"PUT", "/v1/apps/{}/aliases/{}", A::kDeploy, S::kApp, "moving an alias", B::kJson, &ControlApi::setAlias,
       nullptr},
      {"GET", "/v1/apps/{}/aliases/{}/history", A::kView, S::kApp, "", B::kNone, &ControlApi::aliasHistory,
       nullptr},
      {"POST", "/v1/apps/{}/promote", A::kDeploy, S::kApp, "promoting", B::kJson, &ControlApi::promote, nullptr},
      {"POST", "/v1/apps/{}/rollback", A::kDeploy, S::kApp, "rolling back", B::kJson, &ControlApi::rollback,
       nullptr},
      {"GET", "/v1/apps/{}/env", A::kView, S::kApp, "", B::kNone, &ControlApi::listEnv, nullptr},
      {"GET", "/v1/apps/{}/cron", A::kView, S::kApp, "", B::kNone, &ControlApi::listCron, nullptr},
      {"PUT", "/v1/apps/{}/env", A::kDeploy, S::kApp, "setting env", B::kJson, nullptr, &ControlApi::setEnv},
      {"DELETE", "/v1/apps/{}/env/{}", A::kDeploy, S::kApp, "removing env", B::kNone, &ControlApi::removeEnv,
       nullptr},
      {"GET", "/v1/tokens", A::kAdmin, S::kNone, "listing tokens", B::kNone, &ControlApi::listTokens, nullptr},
      {"POST", "/v1/tokens", A::kAdmin, S::kNone, "creating tokens", B::kJson, &ControlApi::createToken, nullptr},
      {"DELETE", "/v1/tokens/{}", A::kAdmin, S::kNone, "revoking tokens", B::kNone, &ControlApi::revokeToken,
       nullptr},
      {"GET", "/v1/audit", A::kView, S::kNone, "", B::kNone, &ControlApi::listAudit, nullptr},
      {"GET", "/v1/domains", A::kView, S::kNone, "", B::kNone, &ControlApi::listDomains, nullptr},
      {"POST", "/v1/domains", A::kAdmin, S::kNone, "binding domains", B::kJson, &ControlApi::addDomain, nullptr},
      {"DELETE", "/v1/domains/{}", A::kAdmin, S::kNone, "removing domains", B::kNone, &ControlApi::removeDomain,
       nullptr},
  };
  return table;
}

ControlApi::Match ControlApi::match(std::string_view method, std::string_view path) {
  Match out;
  auto parts = splitPath(path);
  for (const auto& e : endpoints()) {
    auto pattern = splitPath(e.path);
    if (pattern.size() != parts.size() || (e.path == "/healthz") != (path == "/healthz")) continue;
    std::vector<std::string> params;
    bool same = true;
    for (size_t i = 0; i < parts.size() && same; ++i) {
      if (pattern[i] == "{}") {
        // (A segment that does not decode stays as sent: the endpoint's
        // checks refuse it by name.)
        auto decoded = http::percentDecode(parts[i]);
        params.push_back(decoded.ok() ? std::move(decoded).value() : std::string(parts[i]));
      }
      else same = pattern[i] == parts[i];
    }
    if (!same) continue;
    if (!out.allowed.empty()) out.allowed += ", ";
    out.allowed += e.method;
    if (e.access == Endpoint::Access::kPublic) out.path_public = true;
    if (e.method == method) {
      out.endpoint = &e;
      out.params = std::move(params);
    }
  }
  return out;
}

http::BodyPlan ControlApi::planBody(const http::Request& head) {
  http::BodyPlan plan;
  plan.limit = kMaxJsonBody;
  plan.limit_hint = "the API takes JSON bodies of up to 4 MiB";
  Match m = match(head.method, head.path);
  // Anything but a public endpoint needs the token before its body is read
  // (an unknown path too: it is refused before saying it is unknown).
  if (m.needsToken()) {
    if (auto who = authorize(head, m); !who.ok()) {
      plan.answer = Response::error(who.status());
      return plan;
    }
  }
  if (!m.endpoint) return plan;  // answered 404 or 405 without reading it
  if (m.endpoint->body == Endpoint::Body::kBlob) {
    plan.limit = 0;  // the server's: --max-upload-mb
    plan.stream = true;
  } else if (m.endpoint->body == Endpoint::Body::kTree) {
    plan.limit = kMaxTreeBody;
    plan.limit_hint = "a tree object may have up to 32 MiB; split the folder";
  }
  return plan;
}

boost::asio::awaitable<Response> ControlApi::handle(const http::Request& req) {
  Match m = match(req.method, req.path);
  Principal who;
  if (m.needsToken()) {
    auto authorized = authorize(req, m);
    if (!authorized.ok()) co_return Response::error(authorized.status());
    who = std::move(authorized).value();
  }
  if (!m.endpoint && m.allowed.empty()) {
    co_return Response::error(NotFound("no such endpoint " + std::string(req.method) + " " + std::string(req.path) +
                                       "; the API lives under /v1/ (see docs/api.md)"));
  }
  if (!m.endpoint) {
    Response r = Response::error(InvalidArgument(std::string(req.method) + " is not allowed on " +
                                                 std::string(req.path) + "; use " + m.allowed));
    r.status = 405;
    r.header("allow", m.allowed);
    co_return r;
  }
  std::string actor = who.name;
  Call call{req, std::move(m.params), std::move(actor), std::move(who)};
  if (m.endpoint->answer_async) co_return co_await (this->*(m.endpoint->answer_async))(call);
  Result<Response> r = (this->*(m.endpoint->answer))(call);
  if (!r.ok()) {
    if (r.status().code() == Code::kInternal) {
      spdlog::error("control: {} {}: {}", std::string(req.method), std::string(req.path), r.status().message());
    }
    co_return Response::error(r.status());
  }
  co_return std::move(r).value();
}

Result<Principal> ControlApi::authorize(const http::Request& req, const Match& m) {
  std::string_view authorization = req.header("authorization");
  std::string from_console;
  if (authorization.empty()) {
    if (std::string_view session = http::cookieValue(req.header("cookie"), http::kConsoleCookie); !session.empty()) {
      RETURN_IF_ERROR(checkConsoleRequest(req));
      from_console = "Bearer " + std::string(session);
      authorization = from_console;
    }
  }
  ASSIGN_OR_RETURN(Principal who, auth_.authenticate(authorization));
  if (!m.endpoint) return who;
  const Endpoint& e = *m.endpoint;
  using A = Endpoint::Access;
  if (e.access == A::kAdmin) RETURN_IF_ERROR(who.require(Role::kAdmin, e.what));
  if (e.access == A::kDeploy) RETURN_IF_ERROR(who.require(Role::kDeployer, e.what));
  if (e.scope == Endpoint::Scope::kApp) {
    // A name in the path is checked before anything looks it up.
    RETURN_IF_ERROR(validateAppName(m.params[0], "app"));
    RETURN_IF_ERROR(who.requireApp(m.params[0]));
  } else if (e.scope == Endpoint::Scope::kDeployment && !who.allApps()) {
    ASSIGN_OR_RETURN(store::Deployment d, store_.getDeployment(m.params[0]));
    if (!who.mayUse(d.app)) return NotFound("deployment " + m.params[0] + " not found");
  }
  return who;
}

Status ControlApi::checkConsoleRequest(const http::Request& req) {
  // A page of another origin can make a browser send the cookie (a form, an
  // image), but not a header of its own without asking first (CORS, which
  // this API never allows): changes need it.
  if (req.method != "GET" && req.method != "HEAD" && req.header("x-nubo-console") != "1") {
    return PermissionDenied("a change made with the console's session needs the X-Nubo-Console: 1 header "
                            "(it keeps other sites from acting with your session); scripts send a Bearer token");
  }
  // And a browser says where a request comes from: the console's own origin only.
  if (std::string_view origin = req.header("origin"); !origin.empty()) {
    size_t scheme = origin.find("://");
    std::string_view host = scheme == std::string_view::npos ? origin : origin.substr(scheme + 3);
    if (host != req.header("host")) {
      return PermissionDenied("the console's session is not accepted from " + std::string(origin.substr(0, 100)) +
                              " (only from the console's own address)");
    }
  }
  return Status::Ok();
}

std::optional<std::vector<std::string>> ControlApi::visibleApps(const Principal& who) {
  if (who.allApps()) return std::nullopt;
  return who.apps;
}

void ControlApi::audit(const Call& call, std::string_view action, std::string_view app, std::string_view target,
                       Json detail) {
  store::AuditEntry e;
  e.at_ms = clock_.nowMillis();
  e.actor = call.actor;
  e.action = std::string(action);
  e.app = std::string(app);
  e.target = std::string(target);
  e.detail = dumpJson(detail);
  e.source = std::string(call.req.peer);
  if (auto r = store_.appendAudit(e); !r.ok()) {
    spdlog::error("audit: could not record {} of {} by {}: {}", e.action, e.app, e.actor, r.status().message());
  }
}

Result<Response> ControlApi::healthz(const Call&) { return Response::text(200, "ok\n"); }

// GET / and /console/{file}: the web console (no token: it signs in itself).
Result<Response> ControlApi::consolePage(const Call& call) {
  const console::Asset* a = console::asset(call.params.empty() ? "index.html" : call.params[0]);
  if (!a) return NotFound("the console has no file " + (call.params.empty() ? "" : call.params[0].substr(0, 80)));
  bool gzip = a->gzipped && call.req.header("accept-encoding").find("gzip") != std::string_view::npos;
  Response r = Response::text(200, gzip ? *a->gzipped : *a->bytes, a->content_type);
  if (gzip) r.header("content-encoding", "gzip");
  if (a->gzipped) r.header("vary", "accept-encoding");
  r.header("cache-control", "no-cache");
  r.header("x-content-type-options", "nosniff");
  // Its own scripts and styles only, never framed (no clickjacking).
  r.header("content-security-policy",
           "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
           "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  r.header("referrer-policy", "no-referrer");
  return r;
}

// POST /v1/session {"token"}: the console signs in; the token is kept in
// an HttpOnly, SameSite=Strict cookie its script cannot read.
Result<Response> ControlApi::openSession(const Call& call) {
  // (Another site's form could otherwise sign a browser in with its token.)
  RETURN_IF_ERROR(checkConsoleRequest(call.req));
  ASSIGN_OR_RETURN(Json body, jsonBody(call.req));
  ASSIGN_OR_RETURN(std::string token, stringField(body, "token", "", true));
  if (token.empty() || token.size() > 512 || token.find_first_of(" ;,\t\r\n\"\\") != std::string::npos) {
    return Unauthenticated("that is not a nubo token (tokens are printed by `nubo tokens create`)");
  }
  ASSIGN_OR_RETURN(Principal who, auth_.authenticate("Bearer " + token));
  Response r = jsonResponse(200, {{"name", who.name}, {"role", std::string(roleName(who.role))}, {"apps", who.apps}});
  r.header("set-cookie", std::string(http::kConsoleCookie) + "=" + token +
                             "; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict");
  r.header("cache-control", "no-store");
  return r;
}

namespace {
// The `minutes` query parameter: 1..60, default 60.
Result<size_t> statMinutes(std::string_view query) {
  std::string v = queryParam(query, "minutes");
  if (v.empty()) return size_t{60};
  size_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < 1 || n > 60) {
    return InvalidArgument("minutes must be a whole number from 1 to 60, not \"" + v.substr(0, 20) + "\"");
  }
  return n;
}
}  // namespace

// GET /v1/apps/{app}/stats[?minutes=N]: the app's last minutes, one point each.
Result<Response> ControlApi::appStats(const Call& call) {
  const std::string& app = call.params[0];
  RETURN_IF_ERROR(store_.getApp(app).status());
  ASSIGN_OR_RETURN(size_t minutes, statMinutes(call.req.query));
  Json points = Json::array();
  if (observability_.history) {
    for (const auto& p : observability_.history->series(app, clock_.nowMillis(), minutes)) {
      points.push_back({{"minute_ms", p.minute_ms}, {"requests", p.requests}, {"errors", p.errors},
                        {"cold_starts", p.cold}, {"p50_ms", p.p50_s * 1000}, {"p99_ms", p.p99_s * 1000}});
    }
  }
  return jsonResponse(200, {{"app", app}, {"points", points}});
}

// GET /v1/stats[?minutes=N]: every visible app's requests and errors per minute.
Result<Response> ControlApi::allStats(const Call& call) {
  ASSIGN_OR_RETURN(size_t minutes, statMinutes(call.req.query));
  ASSIGN_OR_RETURN(auto apps, store_.listApps());
  auto visible = visibleApps(call.who);
  int64_t now = clock_.nowMillis();
  Json out = Json::array();
  for (const auto& a : apps) {
    if (visible && std::find(visible->begin(), visible->end(), a.name) == visible->end()) continue;
    Json requests = Json::array(), errors = Json::array();
    uint64_t total = 0, failed = 0;
    if (observability_.history) {
      for (const auto& p : observability_.history->series(a.name, now, minutes)) {
        requests.push_back(p.requests);
        errors.push_back(p.errors);
        total += p.requests, failed += p.errors;
      }
    }
    out.push_back({{"app", a.name}, {"requests", total}, {"errors", failed}, {"requests_per_minute", requests},
                   {"errors_per_minute", errors}});
  }
  return jsonResponse(200, {{"minutes", minutes}, {"apps", out}});
}

// DELETE /v1/session: signs the console out.
Result<Response> ControlApi::closeSession(const Call&) {
  Response r = jsonResponse(200, {{"signed_out", true}});
  r.header("set-cookie", std::string(http::kConsoleCookie) + "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
  return r;
}

Result<Response> ControlApi::readyz(const Call&) {
  if (!observability_.readiness) return Response::text(200, "ready\n");
  auto r = observability_.readiness->report();
  return Response::text(r.ready ? 200 : 503, r.text);
}

Result<Response> ControlApi::serveMetrics(const Call& call) {
  if (!observability_.metrics) return NotFound("this server keeps no metrics");
  if (const std::string& want = observability_.metrics_token; !want.empty()) {
    std::string_view got = call.req.header("authorization");
    std::string_view scheme = "Bearer ";
    got = got.substr(0, scheme.size()) == scheme ? got.substr(scheme.size()) : std::string_view();
    if (!sameSecret(got, want)) {
      Response r = Response::error(Unauthenticated(
          "GET /metrics needs the metrics token (--metrics-token): send \"Authorization: Bearer <token>\""));
      r.header("www-authenticate", "Bearer realm=\"nubo metrics\"");
      return r;
    }
  }
  Response r = Response::text(200, observability_.metrics->render(), "text/plain; version=0.0.4; charset=utf-8");
  r.header("cache-control", "no-store");
  return r;
}

Result<Response> ControlApi::negotiate(const Call& call) {
  ASSIGN_OR_RETURN(Json body, jsonBody(call.req));
  ASSIGN_OR_RETURN(auto trees, stringList(body, "trees"));
  ASSIGN_OR_RETURN(auto files, stringList(body, "files"));
  ASSIGN_OR_RETURN(NegotiateResult nr, deployer_.negotiate(trees, files));
  return jsonResponse(200, {{"missing_trees", nr.missing_trees}, {"missing_files", nr.missing_files}});
}

Result<Response> ControlApi::hasObject(const Call& call) {
  const std::string& hash = call.params[0];
  ASSIGN_OR_RETURN(NegotiateResult nr, deployer_.negotiate({}, {hash}));
  if (!nr.missing_files.empty()) return NotFound("object " + hash + " is not stored");
  return jsonResponse(200, {{"hash", hash}});
}

Result<Response> ControlApi::putTree(const Call& call) {
  RETURN_IF_ERROR(deployer_.putTree(call.params[0], call.req.body));
  return jsonResponse(201, {{"hash", call.params[0]}, {"size", call.req.body.size()}});
}

// POST /v1/gc {"grace_s": 3600}
Result<Response> ControlApi::collectGarbage(const Call& call) {
  ASSIGN_OR_RETURN(Json body, jsonBody(call.req));
  int64_t grace_s = 3600;
  if (body.contains("grace_s")) {
    if (!body["grace_s"].is_number_integer() || body["grace_s"].get<int64_t>() < 0) {
      return InvalidArgument("field \"grace_s\" must be a whole number of seconds, 0 or more");
    }
    grace_s = std::min<int64_t>(body["grace_s"].get<int64_t>(), int64_t{30} * 86400);
  }
  ASSIGN_OR_RETURN(GcReport g, deployer_.collectGarbage(grace_s * 1000));
  audit(call, "gc", "", "", {{"removed", g.removed}, {"removed_bytes", g.removed_bytes}});
  spdlog::info("gc ({}): removed {} of {} blobs ({} of {} bytes)", call.actor, g.removed, g.blobs, g.removed_bytes,
               g.bytes);
  return jsonResponse(200, {{"blobs", g.blobs}, {"bytes", g.bytes}, {"removed", g.removed},
                            {"removed_bytes", g.removed_bytes}, {"live", g.live}});
}

// GET /v1/instances[?app=APP]
Result<Response> ControlApi::listInstances(const Call& call) {
  std::string app = queryParam(call.req.query, "app");
  if (!app.empty()) {
    RETURN_IF_ERROR(validateAppName(app, "app"));
    RETURN_IF_ERROR(call.who.requireApp(app));
  }
  Json list = Json::array();
  if (functions_) {
    for (const auto& i : functions_->describe()) {
      if ((!app.empty() && i.app != app) || !call.who.mayUse(i.app)) continue;
      list.push_back({{"app", i.app}, {"deployment", i.deployment}, {"pid", i.pid}, {"state", i.state},
                      {"inflight", i.inflight}, {"rss_bytes", i.rss_bytes}, {"age_s", i.age_s},
                      {"idle_s", i.idle_s}});
    }
  }
  return jsonResponse(200, {{"instances", list},
                            {"stems", functions_ ? functions_->stemCount() : 0},
                            {"stems_starting", functions_ ? functions_->stemsStarting() : 0},
                            {"pools", functions_ ? functions_->poolCount() : 0}});
}

// GET /v1/nodes: the nodes of the fleet with their last heartbeat.
Result<Response> ControlApi::listNodes(const Call&) {
  if (!observability_.nodes) {
    return NotFound("this server is a single node, not part of a fleet (nodes share etcd and an object store: "
                    "nubo serve --etcd ... --s3 ...)");
  }
  ASSIGN_OR_RETURN(Json nodes, observability_.nodes());
  return jsonResponse(200, {{"nodes", nodes}});
}

// GET /v1/deployments/{id}/build-log[?after=CURSOR]
Result<Response> ControlApi::buildLog(const Call& call) {
  ASSIGN_OR_RETURN(store::Deployment d, store_.getDeployment(call.params[0]));
  ASSIGN_OR_RETURN(std::optional<uint64_t> after, afterCursor(call.req));
  logs::LogStore::Page page = build_logs_.read(d.id, after, "", 100000);
  Json lines = Json::array();
  for (const auto& l : page.lines) lines.push_back(buildLine(l));
  Json body = {{"lines", lines}, {"cursor", page.cursor}, {"state", std::string(store::stateName(d.state))}};
  if (!d.error.empty()) body["error"] = d.error;
  return jsonResponse(200, body);
}

// POST /v1/deployments/{id}/redeploy {"alias", "promote"}: its source built again
boost::asio::awaitable<Response> ControlApi::redeploy(const Call& call) {
  auto created = [&]() -> Result<Response> {
    ASSIGN_OR_RETURN(store::Deployment from, store_.getDeployment(call.params[0]));
    Json body = Json::object();
    if (!call.req.body.empty()) {
      ASSIGN_OR_RETURN(body, parseJson(call.req.body, "request body"));
      if (!body.is_object()) return InvalidArgument("the request body must be a JSON object");
    }
    CreateRequest cr;
    cr.app = from.app;
    cr.actor = call.actor;
    cr.root = from.root_tree;
    ASSIGN_OR_RETURN(cr.manifest, parseJson(from.manifest_json, "manifest"));
    RETURN_IF_ERROR(readPromotion(body, cr));
    if (body.contains("env_only")) {
      if (!body["env_only"].is_boolean()) return InvalidArgument("field \"env_only\" must be true or false");
      if (body["env_only"].get<bool>()) cr.same_build_as = from;
    }
    ASSIGN_OR_RETURN(store::Deployment d, deployer_.createDeployment(cr));
    Json j = deploymentJson(d);
    j["redeployed_from"] = from.id;
    j["env_only"] = cr.same_build_as.has_value();
    audit(call, "redeploy", d.app, d.id, {{"from", from.id}, {"alias", cr.promote ? Json(cr.alias) : Json(nullptr)}});
    return jsonResponse(201, j);
  }();
  if (!created.ok()) co_return Response::error(created.status());
  co_return co_await answerWhenStarted(std::move(created).value());
}

Result<Response> ControlApi::getDeployment(const Call& call) {
  ASSIGN_OR_RETURN(store::Deployment d, store_.getDeployment(call.params[0]));
  return jsonResponse(200, deploymentJson(d));
}

Result<Response> ControlApi::listApps(const Call& call) {
  ASSIGN_OR_RETURN(auto apps, store_.listApps());
  Json list = Json::array();
  for (const auto& a : apps) {
    if (!call.who.mayUse(a.name)) continue;
    Json item = {{"name", a.name}, {"created_ms", a.created_ms}, {"created_by", a.created_by},
                 {"url", urls_.appUrl(a.name)}, {"production", nullptr}};
    ASSIGN_OR_RETURN(auto aliases, store_.listAliases(a.name));
    for (const auto& al : aliases) {
      if (al.name == "production") item["production"] = al.deployment_id;
    }
    ASSIGN_OR_RETURN(auto newest, store_.listDeployments(a.name, 1));
    item["last_deploy_ms"] = newest.empty() ? Json(nullptr) : Json(newest[0].created_ms);
    list.push_back(std::move(item));
  }
  return jsonResponse(200, {{"apps", list}});
}

Result<Response> ControlApi::getApp(const Call& call) {
  const std::string& app = call.params[0];
  ASSIGN_OR_RETURN(store::App a, store_.getApp(app));
  ASSIGN_OR_RETURN(auto aliases, store_.listAliases(app));
  Json al = Json::object();
  for (const auto& x : aliases) al[x.name] = x.deployment_id;
  return jsonResponse(200, {{"name", a.name}, {"created_ms", a.created_ms}, {"created_by", a.created_by},
                            {"url", urls_.appUrl(app)}, {"aliases", al}});
}

Result<Response> ControlApi::deleteApp(const Call& call) {
  const std::string& app = call.params[0];
  auto deployments = store_.listDeployments(app, 0);
  RETURN_IF_ERROR(store_.deleteApp(app));
  audit(call, "app.remove", app, app);
  if (app_removed_) app_removed_(app);
  logs_.removeApp(app);
  if (deployments.ok()) {
    for (const auto& d : *deployments) build_logs_.removeApp(d.id);
  }
  return jsonResponse(200, {{"deleted", app}});
}

Result<Response> ControlApi::listDeployments(const Call& call) {
  const std::string& app = call.params[0];
  ASSIGN_OR_RETURN(store::App a, store_.getApp(app));
  (void)a;
  size_t limit = 0;
  std::string l = queryParam(call.req.query, "limit");
  if (!l.empty()) {
    auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), limit);
    if (ec != std::errc() || p != l.data() + l.size()) return InvalidArgument("limit must be a whole number");
  }
  ASSIGN_OR_RETURN(auto ds, store_.listDeployments(app, limit));
  ASSIGN_OR_RETURN(auto aliases, store_.listAliases(app));
  Json list = Json::array();
  for (const auto& d : ds) {
    Json j = deploymentJson(d);
    j.erase("manifest");
    Json names = Json::array();
    for (const auto& x : aliases) {
      for (const auto& part : x.split) {
        if (part.deployment_id != d.id) continue;
        names.push_back(part.weight == 100 ? x.name : x.name + " (" + std::to_string(part.weight) + "%)");
      }
    }
    j["aliases"] = names;
    list.push_back(std::move(j));
  }
  return jsonResponse(200, {{"deployments", list}});
}

boost::asio::awaitable<Response> ControlApi::createDeployment(const Call& call) {
  const std::string& app = call.params[0];
  auto created = [&]() -> Result<Response> {
    ASSIGN_OR_RETURN(Json body, jsonBody(call.req));
    CreateRequest cr;
    cr.app = app;
    cr.actor = call.actor;
    ASSIGN_OR_RETURN(cr.root, stringField(body, "root", "", true));
    if (body.contains("manifest")) cr.manifest = body["manifest"];
    RETURN_IF_ERROR(readPromotion(body, cr));
    ASSIGN_OR_RETURN(store::Deployment d, deployer_.createDeployment(cr));
    Json j = deploymentJson(d);
    audit(call, "deploy", app, d.id, {{"alias", cr.promote ? Json(cr.alias) : Json(nullptr)}});
    j["promoted"] = cr.promote;
    j["alias"] = cr.alias;
    j["alias_url"] = urls_.aliasUrl(app, cr.alias == "production" ? "" : cr.alias);
    return jsonResponse(201, j);
  }();
  if (!created.ok()) co_return Response::error(created.status());
  co_return co_await answerWhenStarted(std::move(created).value());
}

Result<Response> ControlApi::listAliases(const Call& call) {
  const std::string& app = call.params[0];
  ASSIGN_OR_RETURN(store::App a, store_.getApp(app));
  (void)a;
  ASSIGN_OR_RETURN(auto aliases, store_.listAliases(app));
  Json list = Json::array();
  for (const auto& x : aliases) {
    list.push_back({{"name", x.name}, {"deployment", x.deployment_id}, {"split", splitJson(x.split)},
                    {"updated_ms", x.updated_ms},
                    {"url", urls_.aliasUrl(app, x.name == "production" ? "" : x.name)}});
  }
  return jsonResponse(200, {{"aliases", list}});
}

// PUT /v1/apps/{app}/aliases/{alias}  {"deployment": id}
Result<Response> ControlApi::setAlias(const Call& call) {
  const std::string& alias = call.params[1];
  RETURN_IF_ERROR(validateAliasName(alias, "alias"));
  ASSIGN_OR_RETURN(Json body, jsonBody(call.req));
  ASSIGN_OR_RETURN(store::Split split, readSplit(body));
  ASSIGN_OR_RETURN(store::AliasEvent e, store_.setAliasSplit(call.params[0], alias, split, call.actor));
  audit(call, "alias.set", e.app, alias,
        {{"split", store::splitText(e.split)}, {"previous", store::splitText(e.previous_split)}});
  return jsonResponse(200, aliasEventJson(e));
}

Result<Response> ControlApi::aliasHistory(const Call& call) {
  ASSIGN_OR_RETURN(auto hist, store_.aliasHistory(call.params[0], call.params[1], 0));
  Json list = Json::array();
  for (const auto& e : hist) list.push_back(aliasEventJson(e));
  return jsonResponse(200, {{"history", list}});
}

// POST /v1/apps/{app}/promote {"deployment": id, "alias": "production", "percent": 100}
Result<Response> ControlApi::promote(const Call& call) {
  ASSIGN_OR_RETURN(Json body, jsonBody(call.req));
  ASSIGN_OR_RETURN(std::string dep, stringField(body, "deployment", "", true));
  ASSIGN_OR_RETURN(std::string alias, stringField(body, "alias", "production"));
  RETURN_IF_ERROR(validateAliasName(alias, "alias"));
  int percent = 100;
  if (body.contains("percent")) {
    if (!body["percent"].is_number_integer() || body["percent"].get<int64_t>() < 1 ||
        body["percent"].get<int64_t>() > 100) {
      return InvalidArgument("field \"percent\" must be a whole number from 1 to 100");
    }
    percent = static_cast<int>(body["percent"].get<int64_t>());
  }
  store::Split current;
  ASSIGN_OR_RETURN(auto aliases, store_.listAliases(call.params[0]));
  for (const auto& a : aliases) {
    if (a.name == alias) current = a.split;
  }
  ASSIGN_OR_RETURN(store::Split split, promotedSplit(current, dep, percent));
  ASSIGN_OR_RETURN(store::AliasEvent e, store_.setAliasSplit(call.params[0], alias, split, call.actor));
  audit(call, "promote", e.app, alias,
        {{"split", store::splitText(e.split)}, {"previous", store::splitText(e.previous_split)}});
  return jsonResponse(200, aliasEventJson(e));
}

// POST /v1/apps/{app}/rollback {"alias": "production"}
Result<Response> ControlApi::rollback(const Call& call) {
  ASSIGN_OR_RETURN(Json body, jsonBody(call.req));
  ASSIGN_OR_RETURN(std::string alias, stringField(body, "alias", "production"));
  RETURN_IF_ERROR(validateAliasName(alias, "alias"));
  ASSIGN_OR_RETURN(store::AliasEvent e, store_.rollbackAlias(call.params[0], alias, call.actor));
  audit(call, "rollback", e.app, alias,
        {{"deployment", e.deployment_id}, {"split", store::splitText(e.split)},
         {"previous", store::splitText(e.previous_split)}});
  return jsonResponse(200, aliasEventJson(e));
}

}  // namespace nubo::api
