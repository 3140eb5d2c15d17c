// Reading a sample back from Prometheus text in tests.
#pragma once

#include <string>

namespace nubo::testing_util {

// The value of the sample `series` (its name and labels exactly as written)
// in exposition text; `missing` when it is not there.
inline double sampleValue(const std::string& text, const std::string& series, double missing) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return missing;
}

}  // namespace nubo::testing_util
