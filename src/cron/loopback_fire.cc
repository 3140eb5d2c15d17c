#include "cron/loopback_fire.h"

#include <curl/curl.h>

#include <memory>

namespace nubo::cron {
namespace {

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

// Keeps the X-Nubo-Request-Id of the answer.
size_t header(char* data, size_t size, size_t n, void* out) {
  std::string_view line(data, size * n);
  constexpr std::string_view kName = "x-nubo-request-id:";
  if (line.size() > kName.size()) {
    bool same = true;
    for (size_t i = 0; i < kName.size() && same; ++i) same = std::tolower(static_cast<unsigned char>(line[i])) == kName[i];
    if (same) {
      std::string_view v = line.substr(kName.size());
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
      static_cast<std::string*>(out)->assign(v);
    }
  }
  return size * n;
}

// Non-zero ends the transfer: the server is stopping.
int cancelled(void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(flag)->load() ? 1 : 0;
}

}  // namespace

Fire loopbackFire(std::string data_url, std::string cron_key, long timeout_s) {
  return [data_url = std::move(data_url), cron_key = std::move(cron_key), timeout_s](
             const CronRun& run, const std::atomic<bool>& cancel) {
    CronResult r;
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
    if (!curl) {
      r.error = "no HTTP client";
      return r;
    }
    std::string url = data_url + "/" + run.deployment + "--" + run.app + run.path;
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(nullptr, &curl_slist_free_all);
    for (const std::string& h : {"X-Nubo-Cron: " + run.schedule, "X-Nubo-Cron-Key: " + cron_key}) {
      headers.reset(curl_slist_append(headers.release(), h.c_str()));
    }
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &discard);
    curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, &header);
    curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &r.request_id);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl.get(), CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, &cancel);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFOFUNCTION, &cancelled);
    CURLcode rc = curl_easy_perform(curl.get());
    if (rc != CURLE_OK) {
      r.error = curl_easy_strerror(rc);
      return r;
    }
    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    r.status = static_cast<int>(status);
    return r;
  };
}

}  // namespace nubo::cron
