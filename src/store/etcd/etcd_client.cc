#include "store/etcd/etcd_client.h"

#include <curl/curl.h>

#include <map>
#include <memory>
#include <thread>

#include "common/base64.h"

namespace nubo::store::etcd {

namespace {

std::atomic<uint64_t> next_client_id{1};

// A 64-bit number of etcd's JSON (a string, or absent for 0).
int64_t num(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

std::string b64field(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return unbase64(it->get<std::string>()).value_or("");
}

KeyValue keyValue(const Json& j) {
  KeyValue kv;
  kv.key = b64field(j, "key");
  kv.value = b64field(j, "value");
  kv.create_revision = num(j, "create_revision");
  kv.mod_revision = num(j, "mod_revision");
  kv.version = num(j, "version");
  kv.lease = num(j, "lease");
  return kv;
}

RangeResult rangeResult(const Json& j) {
  RangeResult r;
  if (auto h = j.find("header"); h != j.end()) r.revision = num(*h, "revision");
  if (auto kvs = j.find("kvs"); kvs != j.end() && kvs->is_array()) {
    for (const auto& kv : *kvs) r.kvs.push_back(keyValue(kv));
  }
  r.more = j.value("more", false);
  r.count = num(j, "count");
  return r;
}

Json opJson(const TxnOp& op) {
  switch (op.kind) {
    case TxnOp::Kind::kPut: {
      Json put = {{"key", base64(op.key)}, {"value", base64(op.value)}};
      if (op.lease) put["lease"] = std::to_string(op.lease);
      return {{"request_put", put}};
    }
    case TxnOp::Kind::kDelete: {
      Json del = {{"key", base64(op.key)}};
      if (!op.range_end.empty()) del["range_end"] = base64(op.range_end);
      return {{"request_delete_range", del}};
    }
    case TxnOp::Kind::kRange: {
      Json range = {{"key", base64(op.key)}};
      if (!op.range_end.empty()) range["range_end"] = base64(op.range_end);
      return {{"request_range", range}};
    }
  }
  return Json::object();
}

Json compareJson(const Compare& c) {
  static constexpr const char* kTargets[] = {"VERSION", "CREATE", "MOD", "VALUE"};
  static constexpr const char* kResults[] = {"EQUAL", "NOT_EQUAL", "GREATER", "LESS"};
  Json j = {{"key", base64(c.key)},
            {"target", kTargets[static_cast<int>(c.target)]},
            {"result", kResults[static_cast<int>(c.result)]}};
  switch (c.target) {
    case Compare::Target::kVersion: j["version"] = std::to_string(c.number); break;
    case Compare::Target::kCreateRevision: j["create_revision"] = std::to_string(c.number); break;
    case Compare::Target::kModRevision: j["mod_revision"] = std::to_string(c.number); break;
    case Compare::Target::kValue: j["value"] = base64(c.value); break;
  }
  if (!c.range_end.empty()) j["range_end"] = base64(c.range_end);
  return j;
}

// etcd's gRPC codes (in its JSON errors) as ours.
Code codeOf(int grpc) {
  switch (grpc) {
    case 3: return Code::kInvalidArgument;
    case 5: return Code::kNotFound;
    case 6: return Code::kAlreadyExists;
    case 7: return Code::kPermissionDenied;
    case 9: return Code::kFailedPrecondition;
    case 11: return Code::kFailedPrecondition;  // (out of range: a compacted revision)
    case 14: return Code::kUnavailable;
    case 16: return Code::kUnauthenticated;
    case 4: return Code::kDeadlineExceeded;
    case 8: return Code::kResourceExhausted;
    default: return Code::kInternal;
  }
}

size_t appendTo(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

void commonOptions(CURL* c, const EtcdOptions& o) {
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!o.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, o.ca_file.c_str());
  if (!o.cert_file.empty()) curl_easy_setopt(c, CURLOPT_SSLCERT, o.cert_file.c_str());
  if (!o.key_file.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, o.key_file.c_str());
}

}  // namespace

// Each thread's connections, one per client (reused: keep-alive).
struct CurlCache {
  std::map<uint64_t, CURL*> handles;
  ~CurlCache() {
    for (auto& [id, h] : handles) curl_easy_cleanup(h);
  }
  static CURL* of(const EtcdClient& client) {
    thread_local CurlCache cache;
    CURL*& h = cache.handles[client.id_];
    if (!h) h = curl_easy_init();
    return h;
  }
};

Result<std::unique_ptr<EtcdClient>> EtcdClient::connect(EtcdOptions options) {
  if (options.endpoints.empty()) return InvalidArgument("etcd: no endpoint given (--etcd http://host:2379,...)");
  for (const auto& e : options.endpoints) {
    if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0) {
      return InvalidArgument("etcd endpoint \"" + e + "\" must start with http:// or https://");
    }
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::unique_ptr<EtcdClient> c(new EtcdClient(std::move(options)));
  if (!c->opts_.user.empty()) RETURN_IF_ERROR(c->authenticate());
  // One read shows the cluster answers.
  RETURN_IF_ERROR(c->call("/v3/maintenance/status", Json::object()).status());
  return c;
}

EtcdClient::EtcdClient(EtcdOptions options) : opts_(std::move(options)), id_(next_client_id.fetch_add(1)) {}

EtcdClient::~EtcdClient() = default;

std::string EtcdClient::prefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // (every key)
}

Status EtcdClient::authenticate() {
  Json body = {{"name", opts_.user}, {"password", opts_.password}};
  {
    std::lock_guard lock(token_mu_);
    token_.clear();
  }
  ASSIGN_OR_RETURN(Json r, call("/v3/auth/authenticate", body));
  std::lock_guard lock(token_mu_);
  token_ = r.value("token", "");
  return token_.empty() ? Unauthenticated("etcd: no token for user " + opts_.user) : Status::Ok();
}

Result<Json> EtcdClient::call(std::string_view path, const Json& body) {
  const std::string payload = body.dump();
  CURL* c = CurlCache::of(*this);
  std::string last_error;
  const size_t n = opts_.endpoints.size();
  // While the cluster elects a leader, members answer "unavailable": asked
  // again (each member in turn, then after a pause) until the call's time
  // is up.
  const auto deadline = std::chrono::steady_clock::now() + opts_.timeout;
  for (int round = 0;; ++round) {
    if (round > 0) {
      if (std::chrono::steady_clock::now() + std::chrono::milliseconds(100) > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const size_t first = preferred_.load();
    for (size_t i = 0; i < n; ++i) {
      size_t at = (first + i) % n;
      std::string url = opts_.endpoints[at] + std::string(path);
      std::string out;
      curl_easy_reset(c);
      commonOptions(c, opts_);
      curl_easy_setopt(c, CURLOPT_URL, url.c_str());
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
      curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count()));
      curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<int64_t>(opts_.timeout.count(), 2000)));
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, appendTo);
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
      curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
      std::string auth;
      {
        std::lock_guard lock(token_mu_);
        if (!token_.empty()) auth = "Authorization: " + token_;
      }
      if (!auth.empty()) headers = curl_slist_append(headers, auth.c_str());
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
      CURLcode rc = curl_easy_perform(c);
      curl_slist_free_all(headers);
      if (rc != CURLE_OK) {
        last_error = opts_.endpoints[at] + ": " + curl_easy_strerror(rc);
        continue;
      }
      long status = 0;
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
      if (status >= 500 && status != 503 && out.find("\"code\"") == std::string::npos) {
        last_error = opts_.endpoints[at] + ": HTTP " + std::to_string(status);
        continue;
      }
      preferred_.store(at);
      auto j = parseJson(out, "etcd's answer");
      if (!j.ok()) return Internal("etcd " + std::string(path) + ": " + j.status().message());
      if (status != 200) {
        int grpc = j->is_object() ? static_cast<int>(num(*j, "code")) : 0;
        std::string msg = j->is_object() ? j->value("message", j->value("error", out)) : out;
        if (codeOf(grpc) == Code::kUnavailable) {
          last_error = opts_.endpoints[at] + ": " + msg;
          continue;
        }
        return Status(codeOf(grpc), "etcd " + std::string(path) + ": " + msg);
      }
      return *j;
    }
  }
  return Unavailable("etcd: no endpoint answered (" + last_error + ")");
}

Result<RangeResult> EtcdClient::range(std::string_view key, std::string_view range_end, int64_t limit,
                                      int64_t revision) {
  return range(key, range_end, RangeOptions{limit, revision, false, false});
}

Result<RangeResult> EtcdClient::range(std::string_view key, std::string_view range_end, const RangeOptions& o) {
  Json body = {{"key", base64(key)}};
  if (!range_end.empty()) body["range_end"] = base64(range_end);
  if (o.limit) body["limit"] = std::to_string(o.limit);
  if (o.revision) body["revision"] = std::to_string(o.revision);
  if (o.keys_only) body["keys_only"] = true;
  if (o.count_only) body["count_only"] = true;
  ASSIGN_OR_RETURN(Json r, call("/v3/kv/range", body));
  return rangeResult(r);
}

Result<int64_t> EtcdClient::put(std::string_view key, std::string_view value, int64_t lease) {
  Json body = {{"key", base64(key)}, {"value", base64(value)}};
  if (lease) body["lease"] = std::to_string(lease);
  ASSIGN_OR_RETURN(Json r, call("/v3/kv/put", body));
  return num(r.value("header", Json::object()), "revision");
}

Result<int64_t> EtcdClient::deleteRange(std::string_view key, std::string_view range_end) {
  Json body = {{"key", base64(key)}};
  if (!range_end.empty()) body["range_end"] = base64(range_end);
  ASSIGN_OR_RETURN(Json r, call("/v3/kv/deleterange", body));
  return num(r, "deleted");
}

Result<TxnResult> EtcdClient::txn(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                                  const std::vector<TxnOp>& failure) {
  Json body = {{"compare", Json::array()}, {"success", Json::array()}, {"failure", Json::array()}};
  for (const auto& c : compares) body["compare"].push_back(compareJson(c));
  for (const auto& op : success) body["success"].push_back(opJson(op));
  for (const auto& op : failure) body["failure"].push_back(opJson(op));
  ASSIGN_OR_RETURN(Json r, call("/v3/kv/txn", body));
  TxnResult t;
  t.succeeded = r.value("succeeded", false);
  t.revision = num(r.value("header", Json::object()), "revision");
  if (auto rs = r.find("responses"); rs != r.end() && rs->is_array()) {
    for (const auto& one : *rs) {
      if (auto range = one.find("response_range"); range != one.end()) t.ranges.push_back(rangeResult(*range));
    }
  }
  return t;
}

Result<int64_t> EtcdClient::leaseGrant(int64_t ttl_s) {
  ASSIGN_OR_RETURN(Json r, call("/v3/lease/grant", {{"TTL", std::to_string(ttl_s)}}));
  int64_t id = num(r, "ID");
  if (id == 0) return Internal("etcd granted no lease: " + r.value("error", std::string("no ID")));
  return id;
}

Status EtcdClient::leaseKeepAlive(int64_t id) {
  ASSIGN_OR_RETURN(Json r, call("/v3/lease/keepalive", {{"ID", std::to_string(id)}}));
  // (Answered as a stream's first message; a TTL of 0 or none: gone.)
  const Json& result = r.contains("result") ? r["result"] : r;
  if (num(result, "TTL") <= 0) return NotFound("etcd lease " + std::to_string(id) + " expired");
  return Status::Ok();
}

Status EtcdClient::leaseRevoke(int64_t id) {
  return call("/v3/lease/revoke", {{"ID", std::to_string(id)}}).status();
}

namespace {

struct WatchState {
  const EtcdClient::OnEvents* on_events;
  const std::atomic<bool>* stop;
  std::string buffer;
  Status status = Status::Ok();
  bool ended = false;  // by the callback, the stop flag, or an error
};

size_t watchData(char* data, size_t size, size_t n, void* p) {
  auto* w = static_cast<WatchState*>(p);
  w->buffer.append(data, size * n);
  size_t nl;
  while ((nl = w->buffer.find('\n')) != std::string::npos) {
    std::string line = w->buffer.substr(0, nl);
    w->buffer.erase(0, nl + 1);
    if (line.empty()) continue;
    auto j = parseJson(line, "etcd watch");
    if (!j.ok() || !j->is_object()) {
      w->status = Internal("etcd watch: " + (j.ok() ? std::string("not an object") : j.status().message()));
      w->ended = true;
      return 0;
    }
    if (j->contains("error")) {
      const Json& e = (*j)["error"];
      w->status = Status(codeOf(static_cast<int>(num(e, "grpc_code"))), "etcd watch: " + e.value("message", line));
      w->ended = true;
      return 0;
    }
    const Json& r = j->value("result", Json::object());
    if (r.value("canceled", false)) {
      int64_t compacted = num(r, "compact_revision");
      w->status = compacted ? FailedPrecondition("etcd watch: revisions up to " + std::to_string(compacted) +
                                         " were compacted; resync from a fresh read")
                            : Unavailable("etcd watch: canceled: " + r.value("cancel_reason", std::string("")));
      w->ended = true;
      return 0;
    }
    std::vector<WatchEvent> events;
    if (auto evs = r.find("events"); evs != r.end() && evs->is_array()) {
      for (const auto& e : *evs) {
        WatchEvent ev;
        ev.deleted = e.value("type", "") == "DELETE";
        ev.kv = keyValue(e.value("kv", Json::object()));
        if (auto prev = e.find("prev_kv"); prev != e.end()) ev.prev_kv = keyValue(*prev);
        events.push_back(std::move(ev));
      }
    }
    int64_t revision = num(r.value("header", Json::object()), "revision");
    if ((!events.empty() || r.value("created", false)) && !(*w->on_events)(events, revision)) {
      w->ended = true;
      return 0;
    }
  }
  return size * n;
}

// Runs the transfer, looking at the stop flag every 50 ms.
CURLcode performStoppable(CURL* easy, WatchState& w) {
  CURLM* m = curl_multi_init();
  curl_multi_add_handle(m, easy);
  CURLcode rc = CURLE_OK;
  for (;;) {
    int running = 0;
    if (curl_multi_perform(m, &running) != CURLM_OK) {
      rc = CURLE_RECV_ERROR;
      break;
    }
    if (!running) {
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(m, &left)) {
        if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
      }
      break;
    }
    if (w.stop && w.stop->load()) {
      w.ended = true;
      break;
    }
    curl_multi_poll(m, nullptr, 0, 50, nullptr);
  }
  curl_multi_remove_handle(m, easy);
  curl_multi_cleanup(m);
  return rc;
}

}  // namespace

Status EtcdClient::watch(std::string_view key, std::string_view range_end, int64_t start_revision,
                         const OnEvents& on_events, const std::atomic<bool>* stop, bool prev_kv) {
  Json create = {{"key", base64(key)}};
  if (prev_kv) create["prev_kv"] = true;
  if (!range_end.empty()) create["range_end"] = base64(range_end);
  if (start_revision) create["start_revision"] = std::to_string(start_revision);
  const std::string payload = Json{{"create_request", create}}.dump();
  std::unique_ptr<CURL, void (*)(CURL*)> c(curl_easy_init(), curl_easy_cleanup);
  std::string last_error;
  const size_t n = opts_.endpoints.size();
  for (size_t i = 0; i < n; ++i) {
    size_t at = (preferred_.load() + i) % n;
    WatchState w{&on_events, stop, "", Status::Ok(), false};
    std::string url = opts_.endpoints[at] + "/v3/watch";
    curl_easy_reset(c.get());
    commonOptions(c.get(), opts_);
    curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.get(), CURLOPT_POST, 1L);
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, payload.data());
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
    curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, watchData);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &w);
    // A quiet watch sends nothing for as long as nothing changes: TCP
    // keepalives notice a peer that went away without closing.
    curl_easy_setopt(c.get(), CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c.get(), CURLOPT_TCP_KEEPIDLE, 10L);
    curl_easy_setopt(c.get(), CURLOPT_TCP_KEEPINTVL, 5L);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    std::string auth;
    {
      std::lock_guard lock(token_mu_);
      if (!token_.empty()) auth = "Authorization: " + token_;
    }
    if (!auth.empty()) headers = curl_slist_append(headers, auth.c_str());
    curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers);
    CURLcode rc = performStoppable(c.get(), w);
    curl_slist_free_all(headers);
    if (w.ended) return w.status;  // the caller's choice, a stop, or what etcd said
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_RESOLVE_HOST) {
      last_error = opts_.endpoints[at] + ": " + curl_easy_strerror(rc);
      continue;  // never connected: the next endpoint
    }
    return Unavailable("etcd watch broke off (" + opts_.endpoints[at] + ": " +
                       (rc == CURLE_OK ? std::string("the server ended it") : curl_easy_strerror(rc)) +
                       "); resume from the last revision seen");
  }
  return Unavailable("etcd: no endpoint answered the watch (" + last_error + ")");
}

}  // namespace nubo::store::etcd
