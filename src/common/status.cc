#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace nubo {
namespace {

struct CodeInfo {
  Code code;
  std::string_view name;
  int http;
  int exit;
};

// The one table that maps codes to their HTTP status and CLI exit code.
constexpr CodeInfo kCodes[] = {
    {Code::kOk, "ok", 200, 0},
    {Code::kInvalidArgument, "invalid_argument", 400, 2},
    {Code::kUnauthenticated, "unauthenticated", 401, 3},
    {Code::kPermissionDenied, "permission_denied", 403, 4},
    {Code::kNotFound, "not_found", 404, 5},
    {Code::kAlreadyExists, "already_exists", 409, 6},
    {Code::kFailedPrecondition, "failed_precondition", 409, 6},
    {Code::kResourceExhausted, "resource_exhausted", 429, 7},
    {Code::kInternal, "internal", 500, 10},
    {Code::kUnimplemented, "unimplemented", 501, 11},
    {Code::kUnavailable, "unavailable", 503, 12},
    {Code::kDeadlineExceeded, "deadline_exceeded", 504, 13},
};

const CodeInfo& info(Code code) {
  for (const auto& c : kCodes) {
    if (c.code == code) return c;
  }
  return kCodes[8];  // kInternal
}

}  // namespace

std::string_view codeName(Code code) { return info(code).name; }
int httpStatusFor(Code code) { return info(code).http; }
int exitCodeFor(Code code) { return info(code).exit; }

std::optional<Code> codeFromName(std::string_view name) {
  for (const auto& c : kCodes) {
    if (c.name == name) return c.code;
  }
  return std::nullopt;
}

Code codeForHttpStatus(int http_status) {
  if (http_status >= 200 && http_status < 400) return Code::kOk;
  for (const auto& c : kCodes) {
    if (c.http == http_status) return c.code;
  }
  if (http_status == 408) return Code::kDeadlineExceeded;
  if (http_status == 413 || http_status == 431) return Code::kInvalidArgument;
  if (http_status >= 400 && http_status < 500) return Code::kInvalidArgument;
  if (http_status == 502) return Code::kUnavailable;
  return Code::kInternal;
}

std::string Status::toString() const {
  if (ok()) return "ok";
  return std::string(codeName(code_)) + ": " + message_;
}

Status Status::withContext(std::string_view prefix) const {
  if (ok()) return *this;
  return Status(code_, std::string(prefix) + ": " + message_);
}

Status ErrnoStatus(std::string_view what, int err) {
  std::string msg = std::string(what) + ": " + std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return NotFound(std::move(msg));
    case EACCES:
    case EPERM:
    case EROFS:
      return PermissionDenied(std::move(msg));
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
      return ResourceExhausted(std::move(msg));
    case EEXIST:
      return AlreadyExists(std::move(msg));
    case EINVAL:
    case ENAMETOOLONG:
      return InvalidArgument(std::move(msg));
    default:
      return Internal(std::move(msg));
  }
}

}  // namespace nubo
