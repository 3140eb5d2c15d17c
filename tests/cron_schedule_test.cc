#include "common/cron_schedule.h"

#include <gtest/gtest.h>

#include <chrono>

namespace nubo {
namespace {

// ms since the epoch of a UTC date and time.
int64_t at(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  using namespace std::chrono;
  sys_days day = year_month_day{year{y}, month{mo}, std::chrono::day{d}};
  return (day.time_since_epoch().count() * 86400 + h * 3600 + mi * 60) * 1000LL;
}

int64_t next(const char* expr, int64_t after) {
  auto s = CronSchedule::parse(expr);
  EXPECT_TRUE(s.ok()) << expr << ": " << s.status().message();
  return s.ok() ? s->next(after).value_or(-1) : -1;
}

TEST(CronScheduleTest, NextFindsTheFollowingScheduledMinute) {
  int64_t t = at(2026, 12, 6, 10, 7) + 30'000;  // 10:07:30, a Sunday
  EXPECT_EQ(next("* * * * *", t), at(2026, 12, 6, 10, 8));
  EXPECT_EQ(next("*/5 * * * *", t), at(2026, 12, 6, 10, 10));
  EXPECT_EQ(next("7 * * * *", t), at(2026, 12, 6, 11, 7)) << "strictly after";
  EXPECT_EQ(next("@hourly", t), at(2026, 12, 6, 11, 0));
  EXPECT_EQ(next("@daily", t), at(2026, 12, 7, 0, 0));
  EXPECT_EQ(next("30 9 * * MON-FRI", t), at(2026, 12, 7, 9, 30));
  EXPECT_EQ(next("0 0 1 1 *", t), at(2027, 1, 1));
  EXPECT_EQ(next("@weekly", t), at(2026, 12, 13)) << "Sundays";
  EXPECT_EQ(next("0 0 * * 7", t), at(2026, 12, 13)) << "7 is Sunday too";
  EXPECT_EQ(next("0 12 29 2 *", t), at(2028, 2, 29, 12, 0)) << "a leap day";
  EXPECT_EQ(next("0 0 13 * fri", t), at(2026, 12, 11)) << "the 13th or a Friday: either (Friday 11th first)";
  EXPECT_EQ(next("15,45 8-9 * dec *", at(2026, 12, 6, 9, 50)), at(2026, 12, 7, 8, 15));
  EXPECT_EQ(next("5/20 * * * *", t), at(2026, 12, 6, 10, 25));
  auto never = CronSchedule::parse("0 0 30 2 *");
  ASSERT_TRUE(never.ok());
  EXPECT_FALSE(never->next(t).has_value());
}

TEST(CronScheduleTest, PreviousFindsTheLastScheduledMinuteAtOrBefore) {
  auto s = CronSchedule::parse("*/15 * * * *");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s->previous(at(2026, 12, 6, 10, 7)), at(2026, 12, 6, 10, 0));
  EXPECT_EQ(*s->previous(at(2026, 12, 6, 10, 15)), at(2026, 12, 6, 10, 15)) << "at it counts";
  auto daily = CronSchedule::parse("@daily");
  EXPECT_EQ(*daily->previous(at(2026, 12, 6, 0, 0) - 1), at(2026, 12, 5));
}

TEST(CronScheduleTest, BadSchedulesAreRefusedNamingTheField) {
  auto msg = [](const char* e) {
    auto s = CronSchedule::parse(e);
    return s.ok() ? std::string("ok") : s.status().message();
  };
  EXPECT_NE(msg("* * * *").find("five fields"), std::string::npos);
  EXPECT_NE(msg("60 * * * *").find("the minute has 60"), std::string::npos);
  EXPECT_NE(msg("* 24 * * *").find("the hour"), std::string::npos);
  EXPECT_NE(msg("* * 0 * *").find("the day of month"), std::string::npos);
  EXPECT_NE(msg("* * * FOO *").find("the month"), std::string::npos);
  EXPECT_NE(msg("* * * * 8").find("the day of week"), std::string::npos);
  EXPECT_NE(msg("5-1 * * * *").find("ends before it starts"), std::string::npos);
  EXPECT_NE(msg("*/0 * * * *").find("outside"), std::string::npos);
  EXPECT_NE(msg("1, * * * *").find("ends with ','"), std::string::npos);
  EXPECT_NE(msg("@often").find("shorthand"), std::string::npos);
  EXPECT_EQ(msg("  0 */2 * * *  "), "ok");
}

}  // namespace
}  // namespace nubo
