#include "cli/http_client.h"

#include <curl/curl.h>

#include <strings.h>

#include <cctype>
#include <mutex>

namespace nubo::cli {
namespace {

void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t onBody(char* data, size_t size, size_t n, void* user) {
  static_cast<HttpResponse*>(user)->body.append(data, size * n);
  return size * n;
}

size_t onHeader(char* data, size_t size, size_t n, void* user) {
  std::string_view line(data, size * n);
  auto* r = static_cast<HttpResponse*>(user);
  if (line.substr(0, 5) == "HTTP/") {
    r->headers.clear();  // a new response (after 100 Continue or a redirect)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.remove_suffix(1);
    r->headers.emplace_back(std::move(name), std::string(value));
  }
  return size * n;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

HttpClient::HttpClient(std::string base_url, std::string token, long timeout_s)
    : base_(std::move(base_url)), token_(std::move(token)), timeout_s_(timeout_s) {
  globalInit();
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
  curl_ = curl_easy_init();
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

Result<HttpResponse> HttpClient::send(std::string_view method, std::string_view path, std::string_view body,
                                      const std::vector<std::string>& headers) {
  CURL* c = static_cast<CURL*>(curl_);
  if (!c) return Internal("libcurl could not be initialised");
  curl_easy_reset(c);
  HttpResponse r;
  std::string url = base_ + std::string(path);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);  // send paths exactly as given
  curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s_);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &onBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &onHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  std::string m(method);
  if (m == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (m != "GET" || !body.empty()) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  struct curl_slist* list = nullptr;
  std::string auth = "Authorization: Bearer " + token_;
  if (!token_.empty()) list = curl_slist_append(list, auth.c_str());
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  bool has_type = false;
  for (const auto& h : headers) {
    list = curl_slist_append(list, h.c_str());
    if (h.size() > 13 && strncasecmp(h.c_str(), "content-type:", 13) == 0) has_type = true;
  }
  if (!has_type && !body.empty()) list = curl_slist_append(list, "Content-Type: application/octet-stream");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(list);
  if (rc != CURLE_OK) {
    std::string why = curl_easy_strerror(rc);
    if (rc == CURLE_OPERATION_TIMEDOUT) return DeadlineExceeded(url + ": " + why);
    return Unavailable("cannot reach the nubo server at " + base_ + " (" + why +
                       "); is `nubo serve` running? Set NUBO_SERVER or run `nubo login --server URL`");
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

namespace {
struct StreamState {
  const std::function<bool(std::string_view)>* on_data;
  HttpResponse* r;
  bool stopped = false;
};
size_t onStreamBody(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<StreamState*>(user);
  std::string_view bytes(data, size * n);
  if (!st->r->headers.empty() && st->r->header("content-type").rfind("text/event-stream", 0) != 0) {
    st->r->body.append(bytes);  // an error answer: kept for statusOf()
    return size * n;
  }
  if (!(*st->on_data)(bytes)) {
    st->stopped = true;
    return 0;  // ends the transfer
  }
  return size * n;
}
}  // namespace

Status HttpClient::stream(std::string_view path, const std::function<bool(std::string_view)>& on_data) {
  CURL* c = static_cast<CURL*>(curl_);
  if (!c) return Internal("libcurl could not be initialised");
  curl_easy_reset(c);
  HttpResponse r;
  StreamState st{&on_data, &r};
  std::string url = base_ + std::string(path);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &onStreamBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &onHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  struct curl_slist* list = nullptr;
  std::string auth = "Authorization: Bearer " + token_;
  if (!token_.empty()) list = curl_slist_append(list, auth.c_str());
  list = curl_slist_append(list, "Accept: text/event-stream");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(list);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  if (st.stopped) return Status::Ok();
  if (rc != CURLE_OK) {
    return Unavailable("the stream from " + base_ + " broke off (" + std::string(curl_easy_strerror(rc)) + ")");
  }
  return statusOf(r);
}

Status HttpClient::statusOf(const HttpResponse& r) {
  if (r.status >= 200 && r.status < 300) return Status::Ok();
  Code code = codeForHttpStatus(static_cast<int>(r.status));
  auto j = parseJson(r.body, "response");
  if (j.ok() && j->is_object() && j->contains("error") && (*j)["error"].is_object()) {
    const Json& e = (*j)["error"];
    if (e.contains("code") && e["code"].is_string()) {
      if (auto c = codeFromName(e["code"].get<std::string>())) code = *c;
    }
    if (e.contains("message") && e["message"].is_string()) return Status(code, e["message"].get<std::string>());
  }
  std::string body = r.body.substr(0, 300);
  while (!body.empty() && body.back() == '\n') body.pop_back();
  return Status(code, "server answered HTTP " + std::to_string(r.status) + (body.empty() ? "" : ": " + body));
}

Result<Json> HttpClient::call(std::string_view method, std::string_view path, const Json* body) {
  std::string payload = body ? dumpJson(*body) : "";
  ASSIGN_OR_RETURN(HttpResponse r, send(method, path, payload, {"Content-Type: application/json"}));
  RETURN_IF_ERROR(statusOf(r));
  if (r.body.empty()) return Json::object();
  return parseJson(r.body, "the server's answer");
}

}  // namespace nubo::cli
