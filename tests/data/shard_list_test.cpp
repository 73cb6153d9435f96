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
