// CronSchedule: a five-field cron expression in UTC ("minute hour
// day-of-month month day-of-week"), or a shorthand (@yearly, @annually,
// @monthly, @weekly, @daily, @midnight, @hourly), and the times it names.
//
// Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and
// lists of those; months and days of the week also by name (JAN, MON; case
// ignored); day of week 0 or 7 is Sunday. As in classic cron, when both the
// day of month and the day of week are restricted, a day matching either
// is scheduled.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace nubo {

class CronSchedule {
 public:
  // kInvalidArgument naming the field and what is wrong with it.
  static Result<CronSchedule> parse(std::string_view expression);

  // The first scheduled minute strictly after `after_ms` (ms since the
  // epoch, UTC); nullopt when none comes in the next 8 years (Feb 30th).
  std::optional<int64_t> next(int64_t after_ms) const;
  // The last scheduled minute at or before `at_ms`, within 8 years.
  std::optional<int64_t> previous(int64_t at_ms) const;

 private:
  bool dayMatches(int64_t day) const;  // days since the epoch
  std::optional<int64_t> firstTimeOfDay(int64_t day, int from_minute_of_day) const;
  std::optional<int64_t> lastTimeOfDay(int64_t day, int to_minute_of_day) const;

  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;    // 1-31
  std::bitset<13> months_;  // 1-12
  std::bitset<7> weekdays_; // 0 Sunday - 6
  bool days_any_ = false, weekdays_any_ = false;
};

}  // namespace nubo
