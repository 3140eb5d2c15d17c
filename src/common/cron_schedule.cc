#include "common/cron_schedule.h"

#include <chrono>
#include <vector>

namespace nubo {
namespace {

constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kSearchDays = 8 * 366;

struct Field {
  const char* name;
  int lo, hi;
  const char* const* names;  // null, or names for lo..hi
};

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"};

Result<int> number(std::string_view s, const Field& f) {
  if (s.empty()) return InvalidArgument(std::string(f.name) + " has an empty value");
  if (f.names && s.size() == 3 && !std::isdigit(static_cast<unsigned char>(s[0]))) {
    std::string upper;
    for (char c : s) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (int i = 0; i <= f.hi - f.lo; ++i) {
      if (upper == f.names[i]) return f.lo + i;
    }
  }
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9' || v > 1000) {
      return InvalidArgument(std::string(f.name) + " has \"" + std::string(s) + "\", which is not a number" +
                             (f.names ? " or a name" : ""));
    }
    v = v * 10 + (c - '0');
  }
  if (v < f.lo || v > f.hi) {
    return InvalidArgument(std::string(f.name) + " has " + std::to_string(v) + ", outside " + std::to_string(f.lo) +
                           "-" + std::to_string(f.hi));
  }
  return v;
}

// Sets the bits `text` names; `any` when it is "*".
template <size_t N>
Status parseField(std::string_view text, const Field& f, std::bitset<N>& bits, bool* any) {
  if (any) *any = text == "*";
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    int step = 1;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      ASSIGN_OR_RETURN(step, number(item.substr(slash + 1), Field{f.name, 1, f.hi, nullptr}));
      item = item.substr(0, slash);
    }
    int lo = f.lo, hi = f.hi;
    if (item != "*") {
      size_t dash = item.find('-');
      ASSIGN_OR_RETURN(lo, number(item.substr(0, dash), f));
      hi = lo;
      if (dash != std::string_view::npos) {
        ASSIGN_OR_RETURN(hi, number(item.substr(dash + 1), f));
      } else if (step > 1) {
        hi = f.hi;  // "5/15": from 5 on
      }
      if (hi < lo) {
        return InvalidArgument(std::string(f.name) + " has the range \"" + std::string(item) + "\", which ends before it starts");
      }
    }
    for (int v = lo; v <= hi; v += step) bits.set(static_cast<size_t>(v == 7 && N == 7 ? 0 : v));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
    if (text.empty()) return InvalidArgument(std::string(f.name) + " ends with ','");
  }
  return Status::Ok();
}

std::string_view expand(std::string_view e) {
  if (e == "@yearly" || e == "@annually") return "0 0 1 1 *";
  if (e == "@monthly") return "0 0 1 * *";
  if (e == "@weekly") return "0 0 * * 0";
  if (e == "@daily" || e == "@midnight") return "0 0 * * *";
  if (e == "@hourly") return "0 * * * *";
  return e;
}

int64_t floorDiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

}  // namespace

Result<CronSchedule> CronSchedule::parse(std::string_view expression) {
  std::string_view e = expression;
  while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
  while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
  if (!e.empty() && e[0] == '@') {
    std::string_view full = expand(e);
    if (full == e) {
      return InvalidArgument("\"" + std::string(e) +
                             "\" is not a shorthand; use @yearly, @monthly, @weekly, @daily or @hourly");
    }
    e = full;
  }
  std::vector<std::string_view> fields;
  while (!e.empty()) {
    size_t end = e.find_first_of(" \t");
    fields.push_back(e.substr(0, end));
    if (end == std::string_view::npos) break;
    e.remove_prefix(end);
    while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
  }
  if (fields.size() != 5) {
    return InvalidArgument("a schedule has five fields (minute hour day-of-month month day-of-week), not " +
                           std::to_string(fields.size()) + ", as in \"*/5 * * * *\"");
  }
  CronSchedule s;
  RETURN_IF_ERROR(parseField(fields[0], Field{"the minute", 0, 59, nullptr}, s.minutes_, nullptr));
  RETURN_IF_ERROR(parseField(fields[1], Field{"the hour", 0, 23, nullptr}, s.hours_, nullptr));
  RETURN_IF_ERROR(parseField(fields[2], Field{"the day of month", 1, 31, nullptr}, s.days_, &s.days_any_));
  RETURN_IF_ERROR(parseField(fields[3], Field{"the month", 1, 12, kMonthNames}, s.months_, nullptr));
  RETURN_IF_ERROR(parseField(fields[4], Field{"the day of week", 0, 7, kDayNames}, s.weekdays_, &s.weekdays_any_));
  return s;
}

bool CronSchedule::dayMatches(int64_t day) const {
  using namespace std::chrono;
  year_month_day ymd{sys_days{days{day}}};
  if (!months_.test(static_cast<unsigned>(ymd.month()))) return false;
  bool dom = days_.test(static_cast<unsigned>(ymd.day()));
  bool dow = weekdays_.test(weekday{sys_days{days{day}}}.c_encoding());
  if (!days_any_ && !weekdays_any_) return dom || dow;
  return dom && dow;
}

std::optional<int64_t> CronSchedule::firstTimeOfDay(int64_t day, int from) const {
  for (int m = from; m < 24 * 60; ++m) {
    if (hours_.test(static_cast<size_t>(m / 60)) && minutes_.test(static_cast<size_t>(m % 60))) {
      return day * kDayMs + m * kMinuteMs;
    }
  }
  return std::nullopt;
}

std::optional<int64_t> CronSchedule::lastTimeOfDay(int64_t day, int to) const {
  for (int m = to; m >= 0; --m) {
    if (hours_.test(static_cast<size_t>(m / 60)) && minutes_.test(static_cast<size_t>(m % 60))) {
      return day * kDayMs + m * kMinuteMs;
    }
  }
  return std::nullopt;
}

std::optional<int64_t> CronSchedule::next(int64_t after_ms) const {
  int64_t start = floorDiv(after_ms, kMinuteMs) * kMinuteMs + kMinuteMs;  // the next whole minute
  int64_t day = floorDiv(start, kDayMs);
  int from = static_cast<int>((start - day * kDayMs) / kMinuteMs);
  for (int64_t d = day; d < day + kSearchDays; ++d, from = 0) {
    if (!dayMatches(d)) continue;
    if (auto t = firstTimeOfDay(d, from)) return t;
  }
  return std::nullopt;
}

std::optional<int64_t> CronSchedule::previous(int64_t at_ms) const {
  int64_t start = floorDiv(at_ms, kMinuteMs) * kMinuteMs;
  int64_t day = floorDiv(start, kDayMs);
  int to = static_cast<int>((start - day * kDayMs) / kMinuteMs);
  for (int64_t d = day; d > day - kSearchDays; --d, to = 24 * 60 - 1) {
    if (!dayMatches(d)) continue;
    if (auto t = lastTimeOfDay(d, to)) return t;
  }
  return std::nullopt;
}

}  // namespace nubo
