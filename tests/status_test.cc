#include "common/status.h"

#include <gtest/gtest.h>

#include "common/ids.h"

namespace nubo {
namespace {

Result<int> half(int x) {
  if (x % 2) return InvalidArgument("odd");
  return x / 2;
}

Result<int> quarter(int x) {
  ASSIGN_OR_RETURN(int h, half(x));
  return half(h);
}

TEST(StatusTest, CodesMapToHttpAndExitCodesInOnePlace) {
  EXPECT_EQ(httpStatusFor(Code::kInvalidArgument), 400);
  EXPECT_EQ(httpStatusFor(Code::kUnauthenticated), 401);
  EXPECT_EQ(httpStatusFor(Code::kNotFound), 404);
  EXPECT_EQ(httpStatusFor(Code::kFailedPrecondition), 409);
  EXPECT_EQ(httpStatusFor(Code::kDeadlineExceeded), 504);
  EXPECT_EQ(exitCodeFor(Code::kOk), 0);
  EXPECT_NE(exitCodeFor(Code::kNotFound), 0);
  EXPECT_EQ(codeFromName("not_found"), Code::kNotFound);
  EXPECT_EQ(codeForHttpStatus(401), Code::kUnauthenticated);
}

TEST(StatusTest, ResultPropagates) {
  EXPECT_EQ(*quarter(8), 2);
  Result<int> r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().withContext("quarter").message(), "quarter: odd");
}

TEST(IdsTest, DeploymentIdsAreDnsSafeAndDistinct) {
  std::string a = newDeploymentId(), b = newDeploymentId();
  EXPECT_NE(a, b);
  EXPECT_TRUE(isDeploymentId(a));
  EXPECT_FALSE(isDeploymentId("production"));
  EXPECT_TRUE(validateAppName(a).ok());
}

TEST(IdsTest, NamesFollowTheRules) {
  EXPECT_TRUE(validateAppName("shop-2").ok());
  EXPECT_FALSE(validateAppName("").ok());
  EXPECT_FALSE(validateAppName("Shop").ok());
  EXPECT_FALSE(validateAppName("2shop").ok());
  EXPECT_FALSE(validateAppName(std::string(64, 'a')).ok());
  EXPECT_TRUE(validateAppName(std::string(63, 'a')).ok());
  EXPECT_FALSE(validateAppName("a_b").ok());
  EXPECT_TRUE(validateAliasName("staging").ok());
  EXPECT_FALSE(validateAliasName("my--alias").ok());
  EXPECT_FALSE(validateAliasName(newDeploymentId()).ok());
  Status s = validateAppName("Bad", "--app");
  EXPECT_NE(s.message().find("--app"), std::string::npos);
}

}  // namespace
}  // namespace nubo
