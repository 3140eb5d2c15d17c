// What the control API's endpoints share for reading requests and writing
// answers (control_api.cc, team_endpoints.cc).
#pragma once

#include <string>
#include <string_view>

#include "common/json.h"
#include "common/status.h"
#include "http/message.h"

namespace nubo::api {

using http::Response;

inline Response jsonResponse(int status, const Json& j) { return Response::json(status, dumpJson(j) + "\n"); }

// A query parameter's value, decoded ("%XX" escapes, '+' as a space; a
// malformed escape stays as sent); "" when absent.
inline std::string queryParam(std::string_view query, std::string_view key) {
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == key) {
      if (eq == std::string_view::npos) return "";
      std::string_view v = kv.substr(eq + 1);
      std::string out;
      out.reserve(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '+') {
          out += ' ';
        } else if (v[i] == '%' && i + 2 < v.size() && hex(v[i + 1]) >= 0 && hex(v[i + 2]) >= 0) {
          out += static_cast<char>(hex(v[i + 1]) * 16 + hex(v[i + 2]));
          i += 2;
        } else {
          out += v[i];
        }
      }
      return out;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

inline Result<Json> jsonBody(const http::Request& req) {
  if (req.body.empty()) return Json::object();
  ASSIGN_OR_RETURN(Json j, parseJson(req.body, "request body"));
  if (!j.is_object()) return InvalidArgument("request body must be a JSON object");
  return j;
}

// A string field of a JSON body; kInvalidArgument naming it when it has the wrong type.
inline Result<std::string> stringField(const Json& j, const char* key, std::string fallback, bool required = false) {
  if (!j.contains(key)) {
    if (required) return InvalidArgument(std::string("field \"") + key + "\" is required");
    return fallback;
  }
  if (!j[key].is_string()) return InvalidArgument(std::string("field \"") + key + "\" must be a string");
  return j[key].get<std::string>();
}

struct CreateRequest;
// "alias" and "promote" of a create or redeploy body into `cr`.
Status readPromotion(const Json& body, CreateRequest& cr);

}  // namespace nubo::api
