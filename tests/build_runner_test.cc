// BuildRunner with real builder processes (the plain launcher: the sandbox
// around builds is the instance sandbox, tested through `nubo serve`).
#include "build/build_runner.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <map>
#include <vector>

#include "blob/directory.h"
#include "blob/local_blob_store.h"
#include "blob/tree.h"
#include "common/ids.h"
#include "test_util.h"

namespace nubo::build {
namespace {

using testing_util::writeFile;

class BuildRunnerTest : public testing::Test {
 protected:
  void SetUp() override {
    blobs_ = std::move(blob::LocalBlobStore::create(tmp_.sub("blobs"))).value();
    code_ = std::move(runtime::CodeStore::create(tmp_.sub("instances"), tmp_.sub("app-files"), *blobs_)).value();
    BuildOptions o;
    o.builders_dir = tmp_.sub("builders");
    o.work_dir = tmp_.sub("builds");
    o.cache_dir = tmp_.sub("cache");
    runner_ = std::make_unique<BuildRunner>(launcher_, *blobs_, *code_, nullptr, o);
  }

  void builder(const std::string& name, const std::string& script, std::chrono::milliseconds timeout = {}) {
    std::string path = tmp_.sub("builders/" + name + "/build");
    writeFile(path, "#!/bin/sh\n" + script);
    ::chmod(path.c_str(), 0755);
    if (timeout.count() > 0) {
      BuildOptions o = runner_->options();
      o.timeout = timeout;
      runner_ = std::make_unique<BuildRunner>(launcher_, *blobs_, *code_, nullptr, o);
    }
  }

  // The source folder `files` stored as a tree.
  std::string source(const std::map<std::string, std::string>& files) {
    std::string dir = tmp_.sub("src-" + std::to_string(sources_++));
    for (const auto& [p, c] : files) writeFile(dir + "/" + p, c);
    return blob::storeDirectory(*blobs_, dir, nullptr).value().root;
  }

  std::map<std::string, std::string> filesOf(const std::string& tree) {
    std::map<std::string, std::string> out;
    Status s = blob::walkTree(tree, blob::loaderFor(*blobs_),
                              [&](blob::FlatFile&& f) { out[f.path] = blobs_->get(f.hash).value(); });
    EXPECT_TRUE(s.ok()) << s.toString();
    return out;
  }

  Result<BuildOutput> build(const std::string& builder_name, const std::string& tree, std::string manifest = "{}") {
    log_.clear();
    BuildJob job{newDeploymentId(), "shop", builder_name, tree, std::move(manifest)};
    return runner_->run(job, [this](std::string_view stream, std::string_view line) {
      log_.emplace_back(std::string(stream), std::string(line));
    });
  }

  bool logged(const std::string& stream, const std::string& text) const {
    for (const auto& [s, l] : log_) {
      if (s == stream && l.find(text) != std::string::npos) return true;
    }
    return false;
  }

  testing_util::TempDir tmp_;
  runtime::PlainLauncher launcher_;
  std::unique_ptr<blob::BlobStore> blobs_;
  std::unique_ptr<runtime::CodeStore> code_;
  std::unique_ptr<BuildRunner> runner_;
  std::vector<std::pair<std::string, std::string>> log_;
  int sources_ = 0;
};

TEST_F(BuildRunnerTest, TheOutputFolderBecomesATreeAndEveryLineIsLogged) {
  builder("upper", R"(set -e
echo "source $1 output $2"
echo "a warning" >&2
tr a-z A-Z < "$1/index.txt" > "$2/index.txt"
mkdir -p "$2/meta" && printf '%s' "$NUBO_MANIFEST" > "$2/meta/manifest.json"
)");
  auto out = build("upper", source({{"index.txt", "hello"}}), R"({"name":"shop"})");
  ASSERT_TRUE(out.ok()) << out.status().toString();
  auto files = filesOf(out->tree);
  EXPECT_EQ(files["index.txt"], "HELLO");
  EXPECT_EQ(files["meta/manifest.json"], R"({"name":"shop"})");
  EXPECT_EQ(out->files, 2u);
  EXPECT_TRUE(logged("stdout", "source /"));
  EXPECT_TRUE(logged("stderr", "a warning"));
  EXPECT_TRUE(logged("nubo", "build finished"));
}

TEST_F(BuildRunnerTest, TheCacheIsKeptBetweenBuilds) {
  builder("cached", R"(
if [ -f "$3/seen" ]; then echo "cache hit"; else echo "cache miss"; fi
touch "$3/seen"
echo built > "$2/out.txt"
)");
  std::string tree = source({{"a.txt", "a"}});
  ASSERT_TRUE(build("cached", tree).ok());
  EXPECT_TRUE(logged("stdout", "cache miss"));
  ASSERT_TRUE(build("cached", tree).ok());
  EXPECT_TRUE(logged("stdout", "cache hit"));
}

TEST_F(BuildRunnerTest, TheBuildSeesNoneOfTheServersEnvironment) {
  ::setenv("NUBO_TEST_SECRET", "s3cret", 1);
  builder("env", R"(env > "$2/env.txt")");
  auto out = build("env", source({{"a", "a"}}));
  ::unsetenv("NUBO_TEST_SECRET");
  ASSERT_TRUE(out.ok()) << out.status().toString();
  std::string env = filesOf(out->tree)["env.txt"];
  EXPECT_EQ(env.find("s3cret"), std::string::npos) << env;
  EXPECT_NE(env.find("NUBO_MANIFEST="), std::string::npos) << env;
}

TEST_F(BuildRunnerTest, AFailingBuildSaysHowItEndedAndKeepsItsLog) {
  builder("broken", R"(echo "error: cannot find module 'left-pad'" >&2; exit 3)");
  auto out = build("broken", source({{"a", "a"}}));
  EXPECT_EQ(out.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(out.status().message().find("exit status 3"), std::string::npos) << out.status().message();
  EXPECT_TRUE(logged("stderr", "cannot find module 'left-pad'"));
}

TEST_F(BuildRunnerTest, ABuildOverTheTimeLimitIsStopped) {
  builder("slow", "sleep 30\n", std::chrono::milliseconds(300));
  auto t0 = std::chrono::steady_clock::now();
  auto out = build("slow", source({{"a", "a"}}));
  EXPECT_EQ(out.status().code(), Code::kDeadlineExceeded) << out.status().toString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST_F(BuildRunnerTest, MissingBuildersBadNamesAndEmptyOutputsAreRefused) {
  std::string tree = source({{"a", "a"}});
  auto missing = build("nope", tree);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("no builder \"nope\""), std::string::npos);
  EXPECT_EQ(build("../etc", tree).status().code(), Code::kInvalidArgument);
  builder("empty", "exit 0\n");
  auto empty = build("empty", tree);
  EXPECT_EQ(empty.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(empty.status().message().find("no files"), std::string::npos);
}

}  // namespace
}  // namespace nubo::build
