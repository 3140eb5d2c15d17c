// Cgroups::detect against a cgroup tree laid out in a temp folder (this
// machine's own may be v1, v2, or not delegated): which root it settles
// on, and where instances' groups go. The kernel side (limits that hold)
// is tested end to end in sandbox_integration_test.cc.
#include "runtime/cgroups.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"

namespace nubo::runtime {
namespace {

void put(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string get(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The unified hierarchy's root offers no controllers to this user; its own
// group (as systemd's Delegate=yes leaves it) does.
TEST(CgroupsTest, ADelegatedSubtreeIsUsedWhenTheRootIsNot) {
  testing_util::TempDir tmp;
  std::string fs = tmp.sub("fs"), own = "/system.slice/nubo.service";
  put(fs + "/cgroup.controllers", "");
  put(fs + own + "/cgroup.controllers", "cpu memory pids");
  put(fs + own + "/cgroup.subtree_control", "");
  put(fs + own + "/cgroup.procs", std::to_string(::getpid()) + "\n");
  put(tmp.sub("self"), "0::" + own + "\n");

  Cgroups c = Cgroups::detect("scope1", fs, tmp.sub("self"));
  ASSERT_TRUE(c.available());
  EXPECT_EQ(c.kind(), "v2");
  EXPECT_TRUE(c.delegated());
  EXPECT_TRUE(c.hasMemory() && c.hasPids() && c.hasCpu());
  // The server left the delegated group's root for a leaf of its own.
  EXPECT_EQ(get(fs + own + "/server/cgroup.procs"), std::to_string(::getpid()));
  EXPECT_NE(get(fs + own + "/cgroup.subtree_control").find("+memory"), std::string::npos);
  // Instances' groups: under the delegated group, with their limits.
  CgroupLimits limits;
  limits.memory_bytes = 64 << 20;
  limits.pids = 32;
  auto procs = c.create("i1", limits);
  ASSERT_TRUE(procs.ok()) << procs.status().message();
  ASSERT_EQ(procs->size(), 1u);
  EXPECT_EQ((*procs)[0], fs + own + "/nubo/scope1/i1/cgroup.procs");
  EXPECT_EQ(get(fs + own + "/nubo/scope1/i1/memory.max"), std::to_string(64 << 20));
  EXPECT_EQ(get(fs + own + "/nubo/scope1/i1/pids.max"), "32");
}

// Without a delegated group (the server in the root, or a group it may not
// write) there is nothing to use here.
TEST(CgroupsTest, NoDelegationNoCgroups) {
  testing_util::TempDir tmp;
  std::string fs = tmp.sub("fs");
  put(fs + "/cgroup.controllers", "");
  put(tmp.sub("self"), "0::/\n");
  EXPECT_FALSE(Cgroups::detect("scope1", fs, tmp.sub("self")).available());
  put(tmp.sub("self2"), "0::/user.slice\n");  // no such group here: not writable
  EXPECT_FALSE(Cgroups::detect("scope1", fs, tmp.sub("self2")).available());
}

// The app's instances split its weight; one that ends gives its part back.
TEST(CgroupsTest, AnAppsInstancesSplitItsWeight) {
  testing_util::TempDir tmp;
  std::string fs = tmp.sub("fs");
  put(fs + "/cgroup.controllers", "cpu memory pids");
  put(tmp.sub("self"), "0::/\n");
  Cgroups c = Cgroups::detect("s", fs, tmp.sub("self"));
  ASSERT_EQ(c.kind(), "v2");
  for (const char* id : {"a1", "a2", "b1"}) ASSERT_TRUE(c.create(id, CgroupLimits{}).ok());
  ASSERT_TRUE(c.joinApp("a1", "a", 1.0).ok());
  EXPECT_EQ(c.cpuWeight("a1"), 100);
  ASSERT_TRUE(c.joinApp("a2", "a", 1.0).ok());
  EXPECT_EQ(c.cpuWeight("a1"), 50);
  EXPECT_EQ(c.cpuWeight("a2"), 50);
  ASSERT_TRUE(c.joinApp("b1", "b", 0.5).ok());
  EXPECT_EQ(c.cpuWeight("b1"), 50);
  EXPECT_FALSE(c.joinApp("b1", "a", 1.0).ok()) << "an instance serves one app";
  c.remove("a2");
  EXPECT_EQ(c.cpuWeight("a1"), 100);
}

}  // namespace
}  // namespace nubo::runtime
