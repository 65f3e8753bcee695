// Unit tests of HeadCollector and the field helpers: no sockets.
#include "proxy/message_head.h"

#include <gtest/gtest.h>

namespace lameduck::proxy {
namespace {

HeadCollector Head(std::initializer_list<std::pair<std::string, std::string>> fields,
                   std::string target = "/") {
  HeadCollector head;
  head.AppendTarget(target.data(), target.size());
  for (const auto& [name, value] : fields) {
    head.AppendField(name.data(), name.size());
    head.AppendValue(value.data(), value.size());
  }
  return head;
}

TEST(HeadCollectorTest, JoinsFieldsAndValuesSplitAcrossReads) {
  HeadCollector head;
  head.AppendTarget("/a", 2);
  head.AppendTarget("bc", 2);
  head.AppendField("Con", 3);
  head.AppendField("tent-Type", 9);
  head.AppendValue("text/", 5);
  head.AppendValue("plain  ", 7);
  head.AppendField("X", 1);
  head.AppendValue("1", 1);
  EXPECT_EQ(head.target(), "/abc");
  ASSERT_EQ(head.field_count(), 2u);
  EXPECT_EQ(head.name(0), "Content-Type");
  EXPECT_EQ(head.value(0), "text/plain");  // trailing whitespace trimmed
  EXPECT_EQ(head.Find("content-type"), "text/plain");
  EXPECT_EQ(head.Count("x"), 1);
}

TEST(HeadCollectorTest, ResetKeepsNothingOfThePreviousMessage) {
  HeadCollector head = Head({{"A", "1"}});
  head.Reset();
  EXPECT_EQ(head.field_count(), 0u);
  EXPECT_EQ(head.target(), "");
}

TEST(ListHasTokenTest, FindsTokensCaseInsensitivelyInCommaLists) {
  EXPECT_TRUE(ListHasToken("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(ListHasToken("close", "Close"));
  EXPECT_FALSE(ListHasToken("keep-alive", "close"));
  EXPECT_FALSE(ListHasToken("", "close"));
}

}  // namespace
}  // namespace lameduck::proxy
