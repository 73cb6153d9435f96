#include <gtest/gtest.h>

#include "aim/data/shard_list.h"
#include "aim/error.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;
using Strings = std::vector<std::string>;

TEST(DataShardList, ZeroPaddedRangeKeepsWidth) {
  EXPECT_EQ(expand_braces("/d/{00000008..00000011}.tar"),
            (Strings{"/d/00000008.tar", "/d/00000009.tar", "/d/00000010.tar", "/d/00000011.tar"}));
  EXPECT_EQ(expand_braces("s{1..3}"), (Strings{"s1", "s2", "s3"}));
  EXPECT_EQ(expand_braces("s{3..1}"), (Strings{"s3", "s2", "s1"}));
}

TEST(DataShardList, AlternativesSeveralGroupsAndNesting) {
  EXPECT_EQ(expand_braces("{a,b}-{1..2}.tar"), (Strings{"a-1.tar", "a-2.tar", "b-1.tar", "b-2.tar"}));
  EXPECT_EQ(expand_braces("x{a,{b,c}}"), (Strings{"xa", "xb", "xc"}));
  EXPECT_EQ(expand_braces("{p{0..1},q}"), (Strings{"p0", "p1", "q"}));
  EXPECT_EQ(expand_braces("plain.tar"), (Strings{"plain.tar"}));
}

TEST(DataShardList, MalformedPatternsAreErrors) {
  EXPECT_THROW(expand_braces("/d/{0..3.tar"), aim::Error);
  EXPECT_THROW(expand_braces("/d/0..3}.tar"), aim::Error);
  EXPECT_THROW(expand_braces("/d/{a..c}.tar"), aim::Error);
}

TEST(DataShardList, SeveralListsAndGlobs) {
  t::TempDir d;
  for (auto n : {"b.tar", "a.tar", "c.txt"}) t::write_text(d / n, "x");
  auto out = expand_shard_patterns({d / "{0..1}.tar::" + d / "{1..2}.tar", d / "*.tar"});
  EXPECT_EQ(out, (Strings{d / "0.tar", d / "1.tar", d / "2.tar", d / "a.tar", d / "b.tar"}));
  EXPECT_TRUE(expand_shard_patterns({d / "*.nothing"}).empty());
}

// Only strings the user wrote are commands or URLs. On main a file named like a command,
// found by "*.tar", ran under sh -c when the shard was opened.
TEST(DataShardList, ANameFoundByAGlobIsAFileNeverACommand) {
  t::TempDir d;
  const std::string hostile = "pipe:touch INJECTED; cat 00000000.tar;.tar";
  t::write_text(d / "00000000.tar", "x");
  t::write_text(d / hostile, "x");
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(d.path);
  const auto out = expand_shard_patterns({"*.tar"});
  std::filesystem::current_path(cwd);
  EXPECT_EQ(out, (Strings{"00000000.tar", "./" + hostile}));
  for (const auto& s : out) EXPECT_FALSE(is_remote_shard(s)) << s;
  // Absolute glob results are paths already.
  EXPECT_EQ(expand_shard_patterns({d / "*.tar"}), (Strings{d / "00000000.tar", d / hostile}));
  // Written literally, the same string is the user's command.
  EXPECT_TRUE(is_remote_shard(expand_shard_patterns({hostile}).at(0)));
}

// On main every brace group was expanded: "{ cat X; }" lost its braces (a syntax error),
// "${DIR}" became "$DIR" by luck, find's "{}" vanished, and awk's "/}/" was an error.
TEST(DataShardList, BracesExpandOnlyWhereTheyAskForARange) {
  for (const std::string cmd : {"pipe:f() { cat /d/x.tar; }; f", "pipe:find /d -name x.tar -exec cat {} \\;",
                                "pipe:awk '/}/' /d/x", "pipe:cat ${DIR}/x.tar", "pipe:echo {a, b}"})
    EXPECT_EQ(expand_braces(cmd), (Strings{cmd})) << cmd;
  EXPECT_EQ(expand_braces("pipe:cat ${DIR}/{0..1}.tar"), (Strings{"pipe:cat ${DIR}/0.tar", "pipe:cat ${DIR}/1.tar"}));
  EXPECT_EQ(expand_braces("pipe:f() { cat /d/{0,1}.tar; }; f"),
            (Strings{"pipe:f() { cat /d/0.tar; }; f", "pipe:f() { cat /d/1.tar; }; f"}));
  // Local paths: same rule, and a malformed range is still an error.
  EXPECT_EQ(expand_braces("/d/{}/x.tar"), (Strings{"/d/{}/x.tar"}));
  EXPECT_THROW(expand_braces("/d/{0..x}.tar"), aim::Error);
}

// On main "::" split "http://[::1]:8080/..." into "http://[", "1]:8080/...".
TEST(DataShardList, ListsSplitAtDoubleColonsButNotInsideIpv6OrQuotes) {
  EXPECT_EQ(split_shard_lists("http://[::1]:8080/{0..1}.tar::/d/a.tar"),
            (Strings{"http://[::1]:8080/{0..1}.tar", "/d/a.tar"}));
  EXPECT_EQ(expand_shard_patterns({"http://[::1]:8080/{0..1}.tar::http://[fe80::2]/c.tar"}),
            (Strings{"http://[::1]:8080/0.tar", "http://[::1]:8080/1.tar", "http://[fe80::2]/c.tar"}));
  EXPECT_EQ(split_shard_lists("pipe:perl -e 'print Foo::bar' /d/x.tar::pipe:cat \"a::b.tar\""),
            (Strings{"pipe:perl -e 'print Foo::bar' /d/x.tar", "pipe:cat \"a::b.tar\""}));
}
