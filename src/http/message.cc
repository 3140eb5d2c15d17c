#include "http/message.h"

#include "common/json.h"

namespace nubo::http {

uint64_t Response::contentLength() const {
  switch (kind) {
    case BodyKind::kNone: return 0;
    case BodyKind::kString: return body.size();
    case BodyKind::kShared: return shared.length;
    case BodyKind::kFile: return file.length;
    case BodyKind::kStream: return stream_length.value_or(0);  // else unknown until sent
    case BodyKind::kUpgrade: return 0;
  }
  return 0;
}

Response Response::redirect(std::string_view path, std::string_view query) {
  while (!path.empty() && (path.front() == '/' || path.front() == '\\')) path.remove_prefix(1);
  std::string location = "/" + std::string(path);
  if (!query.empty()) location += "?" + std::string(query);
  Response r = Response::text(308, "moved to " + location + "\n");
  r.header("location", std::move(location));
  return r;
}

Response Response::text(int status, std::string body, std::string_view content_type) {
  Response r;
  r.status = status;
  r.kind = BodyKind::kString;
  r.body = std::move(body);
  r.header("content-type", std::string(content_type));
  return r;
}

Response bodyReadError(const Status& s) {
  int status = 400;
  if (s.code() == Code::kResourceExhausted) status = 413;
  if (s.code() == Code::kDeadlineExceeded) status = 408;
  Response r = Response::text(status, s.message() + "\n");
  r.header("connection", "close");
  return r;
}

Response Response::json(int status, std::string body) {
  return text(status, std::move(body), "application/json");
}

Response Response::error(const Status& s) {
  Json j = {{"error", {{"code", std::string(codeName(s.code()))}, {"message", s.message()}}}};
  return json(httpStatusFor(s.code()), dumpJson(j) + "\n");
}

Result<std::string> percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    auto hex = [](char h) -> int {
      if (h >= '0' && h <= '9') return h - '0';
      if (h >= 'a' && h <= 'f') return h - 'a' + 10;
      if (h >= 'A' && h <= 'F') return h - 'A' + 10;
      return -1;
    };
    if (i + 2 >= s.size() || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) {
      return InvalidArgument("malformed percent-escape in path");
    }
    char decoded = static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
    if (decoded == '\0') return InvalidArgument("path contains an encoded NUL");
    out.push_back(decoded);
    i += 2;
  }
  return out;
}

namespace {
// Calls `each(pair, name_of_pair)` for each "name=value" of a Cookie header.
template <class F>
void eachCookie(std::string_view cookies, F each) {
  while (!cookies.empty()) {
    size_t semi = cookies.find(';');
    std::string_view pair = cookies.substr(0, semi);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    while (!pair.empty() && (pair.back() == ' ' || pair.back() == '\t')) pair.remove_suffix(1);
    if (!pair.empty()) each(pair, pair.substr(0, pair.find('=')));
    if (semi == std::string_view::npos) break;
    cookies.remove_prefix(semi + 1);
  }
}
}  // namespace

std::string_view cookieValue(std::string_view cookies, std::string_view name) {
  std::string_view found;
  eachCookie(cookies, [&](std::string_view pair, std::string_view n) {
    if (found.empty() && n == name && pair.size() > name.size()) found = pair.substr(name.size() + 1);
  });
  return found;
}

std::string withoutCookie(std::string_view cookies, std::string_view name) {
  std::string out;
  eachCookie(cookies, [&](std::string_view pair, std::string_view n) {
    if (n == name) return;
    if (!out.empty()) out += "; ";
    out.append(pair);
  });
  return out;
}

}  // namespace nubo::http
