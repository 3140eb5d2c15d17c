// EtcdClient: etcd v3 through its JSON gateway (POST /v3/..., keys and
// values base64, 64-bit numbers as strings), over libcurl.
//
// - Endpoints are tried in turn: a call that cannot reach one (or gets a
//   5xx from it) goes to the next, and the one that answered is tried first
//   from then on. Calls are blocking; any thread may make them (each thread
//   keeps its own connection per client).
// - Errors map to Status: unreachable -> kUnavailable, a refused request
//   (bad auth, a compaction past the revision asked) -> the code etcd says.
// - watch() streams changes under a prefix from a revision on, calling
//   `on_events` for each batch until it returns false or the stream ends;
//   a revision compacted away is kFailedPrecondition with the compaction's
//   revision in the message (the caller resyncs).
//
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace nubo::store::etcd {

struct EtcdOptions {
  std::vector<std::string> endpoints;  // "http://127.0.0.1:2379"
  std::string user, password;          // empty: no authentication
  std::string ca_file, cert_file, key_file;  // TLS (https endpoints)
  std::chrono::milliseconds timeout{5000};   // per call (not watches)
};

struct KeyValue {
  std::string key, value;
  int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;  // the store's revision when it was read
  bool more = false;     // a limit cut the list short
  int64_t count = 0;     // keys in the range (all of them, whatever the limit)
};

struct RangeOptions {
  int64_t limit = 0;      // 0: no limit
  int64_t revision = 0;   // 0: the newest
  bool keys_only = false;  // no values
  bool count_only = false;  // only `count`
};

// One condition of a transaction.
struct Compare {
  enum class Target { kVersion, kCreateRevision, kModRevision, kValue };
  enum class Result { kEqual, kNotEqual, kGreater, kLess };
  std::string key;
  Target target = Target::kVersion;
  Result result = Result::kEqual;
  int64_t number = 0;  // version or revision
  std::string value;   // kValue
  std::string range_end;  // non-empty: every key in [key, range_end) must pass

  static Compare version(std::string key, Result r, int64_t v) {
    return {std::move(key), Target::kVersion, r, v, "", ""};
  }
  static Compare modRevision(std::string key, Result r, int64_t rev) {
    return {std::move(key), Target::kModRevision, r, rev, "", ""};
  }
  static Compare valueIs(std::string key, std::string v) {
    return {std::move(key), Target::kValue, Result::kEqual, 0, std::move(v), ""};
  }
  // Nothing in [key, range_end) was written after revision `rev`.
  static Compare unchangedSince(std::string key, std::string range_end, int64_t rev) {
    return {std::move(key), Target::kModRevision, Result::kLess, rev + 1, "", std::move(range_end)};
  }
};

// One operation of a transaction.
struct TxnOp {
  enum class Kind { kPut, kDelete, kRange };
  Kind kind = Kind::kPut;
  std::string key, value;
  std::string range_end;  // kDelete/kRange: up to (not including) this key ("" for one key)
  int64_t lease = 0;      // kPut

  static TxnOp put(std::string key, std::string value, int64_t lease = 0) {
    return {Kind::kPut, std::move(key), std::move(value), "", lease};
  }
  static TxnOp del(std::string key, std::string range_end = "") {
    return {Kind::kDelete, std::move(key), "", std::move(range_end), 0};
  }
  static TxnOp get(std::string key, std::string range_end = "") {
    return {Kind::kRange, std::move(key), "", std::move(range_end), 0};
  }
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;
  std::vector<RangeResult> ranges;  // of the kRange ops that ran, in order
};

struct WatchEvent {
  bool deleted = false;
  KeyValue kv;
  KeyValue prev_kv;  // what the key held before (when the watch asked for it)
};

class EtcdClient {
 public:
  static Result<std::unique_ptr<EtcdClient>> connect(EtcdOptions options);
  ~EtcdClient();

  // The key range of everything under `prefix`.
  static std::string prefixEnd(std::string_view prefix);

  Result<RangeResult> range(std::string_view key, std::string_view range_end = {}, int64_t limit = 0,
                            int64_t revision = 0);
  Result<RangeResult> range(std::string_view key, std::string_view range_end, const RangeOptions& options);
  Result<int64_t> put(std::string_view key, std::string_view value, int64_t lease = 0);  // the new revision
  Result<int64_t> deleteRange(std::string_view key, std::string_view range_end = {});   // how many went
  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                        const std::vector<TxnOp>& failure = {});

  Result<int64_t> leaseGrant(int64_t ttl_s);  // the lease's id
  Status leaseKeepAlive(int64_t id);          // kNotFound once it expired
  Status leaseRevoke(int64_t id);

  // Events under [key, range_end) from `start_revision` on. `on_events`
  // gets each batch and the revision it brings the watcher to (first an
  // empty batch once etcd has created the watch); returning false ends the
  // watch (OK). `stop` (may be null) is looked at every 50 ms. `prev_kv`:
  // events carry what each key held before. Ends with kUnavailable when the
  // stream broke off (the caller resumes from the last revision it saw,
  // plus one).
  using OnEvents = std::function<bool(const std::vector<WatchEvent>& events, int64_t revision)>;
  Status watch(std::string_view key, std::string_view range_end, int64_t start_revision, const OnEvents& on_events,
               const std::atomic<bool>* stop = nullptr, bool prev_kv = false);

 private:
  explicit EtcdClient(EtcdOptions options);
  // POSTs `body` to `path` on an endpoint that answers; the JSON answer.
  Result<Json> call(std::string_view path, const Json& body);
  Status authenticate();

  const EtcdOptions opts_;
  std::atomic<size_t> preferred_{0};  // the endpoint that answered last
  std::mutex token_mu_;
  std::string token_;  // guarded by token_mu_: from /v3/auth/authenticate
  const uint64_t id_;  // tells this client's connections from others' in a thread's cache
  friend struct CurlCache;
};

}  // namespace nubo::store::etcd
