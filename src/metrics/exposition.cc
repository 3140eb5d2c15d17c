#include "metrics/exposition.h"

#include <cmath>
#include <cstdio>

namespace nubo::metrics {

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).append(" ");
  for (char c : help) {
    if (c == '\\') out_.append("\\\\");
    else if (c == '\n') out_.append("\\n");
    else out_.push_back(c);
  }
  out_.append("\n# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Exposition::labels(Labels labels, std::string_view le) {
  if (labels.size() == 0 && le.empty()) return;
  out_.push_back('{');
  bool first = true;
  auto one = [&](std::string_view k, std::string_view v) {
    if (!first) out_.push_back(',');
    first = false;
    out_.append(k).append("=\"");
    for (char c : v) {
      if (c == '\\') out_.append("\\\\");
      else if (c == '"') out_.append("\\\"");
      else if (c == '\n') out_.append("\\n");
      else out_.push_back(c);
    }
    out_.push_back('"');
  };
  for (const auto& [k, v] : labels) one(k, v);
  if (!le.empty()) one("le", le);
  out_.push_back('}');
}

void Exposition::number(double v) {
  char buf[40];
  if (std::isinf(v)) {
    out_.append(v > 0 ? "+Inf" : "-Inf");
  } else if (std::isnan(v)) {
    out_.append("NaN");
  } else if (v == std::floor(v) && std::fabs(v) < 9e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
    out_.append(buf);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
    out_.append(buf);
  }
}

void Exposition::sample(std::string_view name, Labels l, double value) {
  out_.append(name);
  labels(l);
  out_.push_back(' ');
  number(value);
  out_.push_back('\n');
}

void Exposition::histogram(std::string_view name, Labels l, std::span<const double> bounds,
                           std::span<const uint64_t> counts, double sum) {
  uint64_t cumulative = 0;
  char le[40];
  for (size_t i = 0; i <= bounds.size() && i < counts.size(); ++i) {
    cumulative += counts[i];
    if (i < bounds.size()) std::snprintf(le, sizeof le, "%g", bounds[i]);
    else std::snprintf(le, sizeof le, "+Inf");
    out_.append(name).append("_bucket");
    labels(l, le);
    out_.push_back(' ');
    number(static_cast<double>(cumulative));
    out_.push_back('\n');
  }
  out_.append(name).append("_sum");
  labels(l);
  out_.push_back(' ');
  number(sum);
  out_.push_back('\n');
  out_.append(name).append("_count");
  labels(l);
  out_.push_back(' ');
  number(static_cast<double>(cumulative));
  out_.push_back('\n');
}

}  // namespace nubo::metrics
