// Status and Result<T>: how every component reports failure.
//
// A Status is a code plus a human message that names the problem and, where
// there is one, the fix. Codes say what the caller should do next (see
// STYLE.md); they are mapped to HTTP statuses and CLI exit codes in exactly
// one place, httpStatusFor() / exitCodeFor() below.
//
// No exceptions cross component boundaries: functions that can fail return
// [[nodiscard]] Status or Result<T>. Propagate with RETURN_IF_ERROR and
// ASSIGN_OR_RETURN.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace nubo {

enum class Code {
  kOk = 0,
  kInvalidArgument,     // the request is wrong; fix it and retry      -> 400
  kUnauthenticated,     // no or bad credentials                       -> 401
  kPermissionDenied,    // credentials fine, not allowed               -> 403
  kNotFound,            // the named thing does not exist              -> 404
  kAlreadyExists,       // creating something that exists              -> 409
  kFailedPrecondition,  // state does not allow it (yet)               -> 409
  kResourceExhausted,   // a limit or quota was hit                    -> 429
  kInternal,            // a bug or a broken invariant                 -> 500
  kUnimplemented,       // not supported by this server                -> 501
  kUnavailable,         // transient; retry later                      -> 503
  kDeadlineExceeded,    // took too long                               -> 504
};

std::string_view codeName(Code code);           // "invalid_argument", ...
std::optional<Code> codeFromName(std::string_view name);
int httpStatusFor(Code code);
int exitCodeFor(Code code);                     // 0 for kOk, 1..N otherwise
Code codeForHttpStatus(int http_status);        // inverse, for clients

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string toString() const;

  // Returns a copy whose message is "<prefix>: <message>".
  Status withContext(std::string_view prefix) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status Unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {Code::kUnimplemented, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }

// Status from errno, e.g. ErrnoStatus("open /x", errno): ENOENT maps to
// kNotFound, EACCES/EPERM to kPermissionDenied, ENOSPC to kResourceExhausted.
Status ErrnoStatus(std::string_view what, int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result needs a value or an error");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace nubo

#define NUBO_CONCAT_INNER(a, b) a##b
#define NUBO_CONCAT(a, b) NUBO_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    ::nubo::Status nubo_status_ = (expr);     \
    if (!nubo_status_.ok()) return nubo_status_; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(NUBO_CONCAT(nubo_result_, __LINE__), lhs, expr)
