// Exposition: writes metrics in the Prometheus text format (version 0.0.4),
// family by family: a # HELP and a # TYPE line, then its samples.
//
// Label values are escaped (backslash, double quote, newline); numbers are
// written so that integers stay integers and +Inf reads as Prometheus
// expects. Names are the caller's (compile-time constants here), not
// checked.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace nubo::metrics {

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class Exposition {
 public:
  // Starts a family. `type`: counter, gauge or histogram.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, Labels labels, double value);
  // A classic histogram's samples: `counts[i]` observations fell at or
  // under `bounds[i]` and above the previous bound; `counts` has one more
  // entry (above the last bound). Written cumulatively, with _sum and
  // _count.
  void histogram(std::string_view name, Labels labels, std::span<const double> bounds,
                 std::span<const uint64_t> counts, double sum);
  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void labels(Labels labels, std::string_view le = {});
  void number(double v);
  std::string out_;
};

}  // namespace nubo::metrics
