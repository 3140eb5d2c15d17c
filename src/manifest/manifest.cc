#include "manifest/manifest.h"

#include "common/cron_schedule.h"

#include <algorithm>
#include <set>

#include "common/ids.h"

namespace nubo::manifest {
namespace {

// Collects problems while walking the JSON.
class Checker {
 public:
  void add(const std::string& field, const std::string& problem) { problems_.push_back(field + ": " + problem); }
  bool ok() const { return problems_.empty(); }
  Status status() const {
    std::string msg = "nubo.json has " + std::to_string(problems_.size()) +
                      (problems_.size() == 1 ? " problem:" : " problems:");
    for (const auto& p : problems_) msg += "\n  " + p;
    return InvalidArgument(msg);
  }

  // Reports fields of `obj` not in `known`.
  void unknownFields(const Json& obj, const std::string& prefix, const std::set<std::string>& known) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (!known.count(it.key())) {
        std::string allowed;
        for (const auto& k : known) allowed += (allowed.empty() ? "" : ", ") + k;
        add(prefix + it.key(), "unknown field; allowed here: " + allowed);
      }
    }
  }

  void string(const Json& obj, const char* key, const std::string& prefix, std::string* out) {
    if (!obj.contains(key)) return;
    const Json& v = obj[key];
    if (!v.is_string()) {
      add(prefix + key, std::string("must be a string, got ") + v.type_name());
      return;
    }
    *out = v.get<std::string>();
  }

  void integer(const Json& obj, const char* key, const std::string& prefix, int lo, int hi, int* out) {
    if (!obj.contains(key)) return;
    const Json& v = obj[key];
    if (!v.is_number_integer()) {
      add(prefix + key, "must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                            ", got " + (v.is_number() ? v.dump() : std::string(v.type_name())));
      return;
    }
    int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) {
      add(prefix + key, "must be from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got " +
                            std::to_string(x));
      return;
    }
    *out = static_cast<int>(x);
  }

  // A number (whole or not) from lo to hi; `what` names them ("0.1 to 16").
  void number(const Json& obj, const char* key, const std::string& prefix, double lo, double hi,
              const std::string& what, double* out) {
    if (!obj.contains(key)) return;
    const Json& v = obj[key];
    if (!v.is_number() || v.get<double>() < lo || v.get<double>() > hi) {
      add(prefix + key, "must be a number from " + what + ", got " + (v.is_number() ? v.dump() : std::string(v.type_name())));
      return;
    }
    *out = v.get<double>();
  }

  void boolean(const Json& obj, const char* key, const std::string& prefix, bool* out) {
    if (!obj.contains(key)) return;
    const Json& v = obj[key];
    if (!v.is_boolean()) {
      add(prefix + key, std::string("must be true or false, got ") + v.type_name());
      return;
    }
    *out = v.get<bool>();
  }

  // The object at obj[key], or nullptr (reporting a type problem).
  const Json* object(const Json& obj, const char* key) {
    if (!obj.contains(key)) return nullptr;
    const Json& v = obj[key];
    if (!v.is_object()) {
      add(key, std::string("must be an object, got ") + v.type_name());
      return nullptr;
    }
    return &v;
  }

 private:
  std::vector<std::string> problems_;
};

bool isRelativeSubpath(const std::string& p) {
  if (p.empty() || p[0] == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string part = p.substr(start, end - start);
    if (part == "..") return false;
    start = end + 1;
  }
  return true;
}

bool validEnvKey(const std::string& k) {
  if (k.empty() || k.size() > 256) return false;
  if (!(std::isalpha(static_cast<unsigned char>(k[0])) || k[0] == '_')) return false;
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

bool validPath(const std::string& p) { return !p.empty() && p[0] == '/' && p.find_first_of(" \t\r\n") == std::string::npos; }

// A path nubo itself sends a request to: printable ASCII, no spaces or '#'.
bool validRequestPath(const std::string& p) {
  if (p.empty() || p[0] != '/' || p.size() > 1024) return false;
  return std::all_of(p.begin(), p.end(), [](char ch) { return ch > ' ' && ch < 0x7f && ch != '#'; });
}

// A value quoted back in an error: control characters shown as '?', at most 80.
std::string printable(const std::string& v) {
  std::string out = v.substr(0, 80);
  for (char& ch : out) {
    if (static_cast<unsigned char>(ch) < ' ' || ch == 0x7f) ch = '?';
  }
  return v.size() > 80 ? out + "..." : out;
}

bool validHeader(const std::string& name, const std::string& value) {
  if (name.empty() || name.size() > 256 || value.size() > 4096) return false;
  for (char ch : name) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos)) return false;
  }
  return value.find_first_of("\r\n") == std::string::npos && value.find('\0') == std::string::npos;
}

// Headers that say how the response is framed or the connection kept: a
// second one beside the server's would let a client or proxy read the
// stream differently.
bool framingHeader(std::string name) {
  for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (std::string_view f : {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
                             "trailer", "proxy-connection", "date", "server"}) {
    if (name == f) return true;
  }
  return false;
}

// static.headers: {"/path" or "/prefix/*": {"name": "value"}}; static.redirects:
// [{"from": "/a", "to": "/b" or "https://...", "status": 308}].
void parseStaticRules(Checker& c, const Json& st, StaticOptions& out) {
  if (st.contains("headers")) {
    const Json& h = st["headers"];
    if (!h.is_object() || h.size() > 50) {
      c.add("static.headers", "must be an object of at most 50 paths (\"/path\" or \"/prefix/*\") to headers");
    } else {
      for (const auto& [path, set] : h.items()) {
        std::string where = "static.headers." + path;
        if (!validPath(path)) c.add(where, "the path must start with / (\"/assets/*\" for everything under /assets/)");
        if (!set.is_object() || set.size() > 20) {
          c.add(where, "must be an object of at most 20 header names to string values");
          continue;
        }
        std::vector<std::pair<std::string, std::string>> headers;
        for (const auto& [name, value] : set.items()) {
          if (!value.is_string() || !validHeader(name, value.get<std::string>())) {
            c.add(where + "." + name, "must be a header name (letters, digits, -) with a one-line string value");
            continue;
          }
          if (framingHeader(name)) {
            c.add(where + "." + name, "is set by the server (it frames the response); leave it out");
            continue;
          }
          headers.emplace_back(name, value.get<std::string>());
        }
        out.headers.emplace_back(path, std::move(headers));
      }
    }
  }
  if (st.contains("redirects")) {
    const Json& r = st["redirects"];
    if (!r.is_array() || r.size() > 200) {
      c.add("static.redirects", "must be an array of at most 200 {\"from\", \"to\", \"status\"} objects");
      return;
    }
    for (size_t i = 0; i < r.size(); ++i) {
      std::string where = "static.redirects[" + std::to_string(i) + "]";
      if (!r[i].is_object()) {
        c.add(where, "must be an object like {\"from\": \"/old\", \"to\": \"/new\"}");
        continue;
      }
      c.unknownFields(r[i], where + ".", {"from", "to", "status"});
      StaticOptions::Redirect rd;
      c.string(r[i], "from", where + ".", &rd.from);
      c.string(r[i], "to", where + ".", &rd.to);
      c.integer(r[i], "status", where + ".", 301, 308, &rd.status);
      if (!validPath(rd.from)) c.add(where + ".from", "must be a path starting with /");
      bool absolute = rd.to.rfind("https://", 0) == 0 || rd.to.rfind("http://", 0) == 0;
      if ((!validPath(rd.to) && !absolute) || rd.to.rfind("//", 0) == 0 || !validHeader("location", rd.to)) {
        c.add(where + ".to", "must be a path starting with / or an http(s):// URL");
      }
      if (rd.status != 301 && rd.status != 302 && rd.status != 307 && rd.status != 308) {
        c.add(where + ".status", "must be 301, 302, 307 or 308");
      }
      out.redirects.push_back(std::move(rd));
    }
  }
}

}  // namespace

bool staticPathMatches(std::string_view rule, std::string_view path) {
  if (rule.size() >= 2 && rule.substr(rule.size() - 2) == "/*") {
    return path.substr(0, rule.size() - 1) == rule.substr(0, rule.size() - 1);
  }
  return rule == path;
}

Result<Manifest> parseManifest(const Json& j) {
  Manifest m;
  Checker c;
  if (!j.is_object()) {
    c.add("(top level)", std::string("must be a JSON object, got ") + j.type_name());
    return c.status();
  }
  c.unknownFields(j, "",
                  {"name", "runtime", "entry", "build", "limits", "permissions", "env", "cron", "static", "health"});
  if (const Json* h = c.object(j, "health")) {
    c.unknownFields(*h, "health.", {"path"});
    c.string(*h, "path", "health.", &m.health.path);
    if (h->contains("path") && !validRequestPath(m.health.path)) {
      c.add("health.path", "must be a request path starting with '/' (e.g. \"/healthz\"), at most 1024 printable "
                           "characters without spaces or '#', got \"" + printable(m.health.path) + "\"");
    }
  }
  if (const Json* st = c.object(j, "static")) {
    c.unknownFields(*st, "static.", {"fallback", "headers", "redirects"});
    c.string(*st, "fallback", "static.", &m.static_site.fallback);
    parseStaticRules(c, *st, m.static_site);
    if (!m.static_site.fallback.empty() && !isRelativeSubpath(m.static_site.fallback)) {
      c.add("static.fallback", "must be a file of the site, a relative path without \"..\" (e.g. \"index.html\"), "
                               "got \"" + m.static_site.fallback + "\"");
    }
  }

  c.string(j, "name", "", &m.name);
  if (j.contains("name") && j["name"].is_string()) {
    Status s = validateAppName(m.name, "name");
    if (!s.ok()) c.add("name", s.message().substr(5));
  }
  c.string(j, "runtime", "", &m.runtime);
  if (!runtimeFromName(m.runtime)) {
    c.add("runtime", "must be one of " + runtimeNames() + "; got \"" + m.runtime + "\"");
  }
  c.string(j, "entry", "", &m.entry);
  if (!m.entry.empty() && !isRelativeSubpath(m.entry)) {
    c.add("entry", "must be a relative path inside the project without \"..\", got \"" + m.entry + "\"");
  }

  if (const Json* b = c.object(j, "build")) {
    c.unknownFields(*b, "build.", {"builder", "command", "output"});
    c.string(*b, "builder", "build.", &m.build.builder);
    c.string(*b, "command", "build.", &m.build.command);
    c.string(*b, "output", "build.", &m.build.output);
    if (!m.build.builder.empty() && !validateAppName(m.build.builder).ok()) {
      c.add("build.builder", "must be a builder name like \"node\" (lowercase letters, digits, '-')");
    }
    if (!m.build.output.empty() && !isRelativeSubpath(m.build.output)) {
      c.add("build.output", "must be a relative directory inside the project without \"..\", got \"" +
                                m.build.output + "\"");
    }
  }

  if (const Json* l = c.object(j, "limits")) {
    c.unknownFields(*l, "limits.",
                    {"memory_mb", "timeout_ms", "concurrency", "min_instances", "max_instances", "idle_ttl_s", "cpu"});
    c.integer(*l, "memory_mb", "limits.", 16, 65536, &m.limits.memory_mb);
    c.integer(*l, "timeout_ms", "limits.", 1, 900000, &m.limits.timeout_ms);
    c.integer(*l, "concurrency", "limits.", 1, 10000, &m.limits.concurrency);
    c.integer(*l, "min_instances", "limits.", 0, 1000, &m.limits.min_instances);
    c.integer(*l, "max_instances", "limits.", 1, 1000, &m.limits.max_instances);
    c.integer(*l, "idle_ttl_s", "limits.", 1, 86400, &m.limits.idle_ttl_s);
    c.number(*l, "cpu", "limits.", kMinCpu, kMaxCpu, "0.1 to 16", &m.limits.cpu);
    if (m.limits.min_instances > m.limits.max_instances) {
      c.add("limits.min_instances", "must not exceed limits.max_instances (" +
                                        std::to_string(m.limits.max_instances) + ")");
    }
  }

  if (const Json* p = c.object(j, "permissions")) {
    c.unknownFields(*p, "permissions.", {"network", "tmp_mb"});
    c.boolean(*p, "network", "permissions.", &m.permissions.network);
    c.integer(*p, "tmp_mb", "permissions.", 0, 4096, &m.permissions.tmp_mb);
  }

  if (const Json* e = c.object(j, "env")) {
    for (auto it = e->begin(); it != e->end(); ++it) {
      std::string field = "env." + it.key();
      if (!validEnvKey(it.key())) {
        c.add(field, "names must match [A-Za-z_][A-Za-z0-9_]*");
        continue;
      }
      if (!it.value().is_string()) {
        c.add(field, std::string("must be a string, got ") + it.value().type_name());
        continue;
      }
      std::string v = it.value().get<std::string>();
      if (v.find('\0') != std::string::npos) {
        c.add(field, "must not contain NUL");
        continue;
      }
      m.env[it.key()] = std::move(v);
    }
  }

  if (j.contains("cron")) {
    const Json& cron = j["cron"];
    if (!cron.is_array()) {
      c.add("cron", std::string("must be an array, got ") + cron.type_name());
    } else if (cron.size() > 20) {
      c.add("cron", "has " + std::to_string(cron.size()) + " entries; a deployment may schedule at most 20 "
                    "(route several tasks through one path)");
    } else {
      for (size_t i = 0; i < cron.size(); ++i) {
        std::string prefix = "cron[" + std::to_string(i) + "].";
        const Json& job = cron[i];
        if (!job.is_object()) {
          c.add("cron[" + std::to_string(i) + "]", "must be an object with schedule and path");
          continue;
        }
        c.unknownFields(job, prefix, {"schedule", "path"});
        CronJob cj;
        c.string(job, "schedule", prefix, &cj.schedule);
        c.string(job, "path", prefix, &cj.path);
        if (auto sched = CronSchedule::parse(cj.schedule); !sched.ok()) {
          c.add(prefix + "schedule", sched.status().message() + " (UTC, e.g. \"*/5 * * * *\" or \"@hourly\")");
        }
        bool printable = std::all_of(cj.path.begin(), cj.path.end(), [](char ch) {
          return static_cast<unsigned char>(ch) > 0x20 && static_cast<unsigned char>(ch) < 0x7f && ch != '#';
        });
        if (cj.path.empty() || cj.path[0] != '/' || cj.path.size() > 1024 || !printable) {
          c.add(prefix + "path", "must be a request path starting with '/' of printable ASCII without spaces or '#', "
                                 "at most 1024 characters");
        }
        m.cron.push_back(std::move(cj));
      }
    }
  }

  if (!m.health.path.empty() && j.contains("runtime") && runtimeKind(m) == RuntimeKind::kStatic) {
    c.add("health.path", "a static site runs no code to check; remove \"health\" or name a runtime that runs code");
  }

  if (!c.ok()) return c.status();
  return m;
}

Result<Manifest> parseManifestText(std::string_view text) {
  ASSIGN_OR_RETURN(Json j, parseJson(text, "nubo.json"));
  return parseManifest(j);
}

Json toJson(const Manifest& m) {
  Json cron = Json::array();
  for (const auto& c : m.cron) cron.push_back({{"schedule", c.schedule}, {"path", c.path}});
  Json j = {
      {"runtime", m.runtime},
      {"entry", m.entry},
      {"build", {{"builder", m.build.builder}, {"command", m.build.command}, {"output", m.build.output}}},
      {"limits",
       {{"memory_mb", m.limits.memory_mb},
        {"timeout_ms", m.limits.timeout_ms},
        {"concurrency", m.limits.concurrency},
        {"min_instances", m.limits.min_instances},
        {"max_instances", m.limits.max_instances},
        {"idle_ttl_s", m.limits.idle_ttl_s},
        {"cpu", m.limits.cpu}}},
      {"permissions", {{"network", m.permissions.network}, {"tmp_mb", m.permissions.tmp_mb}}},
      {"env", m.env},
      {"cron", cron},
  };
  if (!m.name.empty()) j["name"] = m.name;
  Json st = Json::object();
  if (!m.static_site.fallback.empty()) st["fallback"] = m.static_site.fallback;
  if (!m.static_site.headers.empty()) {
    Json h = Json::object();
    for (const auto& [path, set] : m.static_site.headers) {
      Json one = Json::object();
      for (const auto& [k, v] : set) one[k] = v;
      h[path] = one;
    }
    st["headers"] = h;
  }
  if (!m.static_site.redirects.empty()) {
    Json r = Json::array();
    for (const auto& rd : m.static_site.redirects) r.push_back({{"from", rd.from}, {"to", rd.to}, {"status", rd.status}});
    st["redirects"] = r;
  }
  if (!st.empty()) j["static"] = st;
  if (!m.health.path.empty()) j["health"] = {{"path", m.health.path}};
  return j;
}

}  // namespace nubo::manifest
