// The two checks every containerd call's routing depends on: the namespace
// (containerd's identifier rule) and an event topic (containerd's
// validateTopic), table-driven.
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "plugin/event_exchange.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {
namespace {

TEST(ValidateNamespace, ContainerdsIdentifierRule) {
  const std::string longest(76, 'a');
  for (const std::string& ok :
       {std::string("default"), std::string("k8s.io"), std::string("moby"), std::string("a-b_c.d"),
        std::string("A1"), std::string("0"), longest}) {
    EXPECT_TRUE(ValidateNamespace(ok).ok()) << ok;
  }
  for (const std::string& bad :
       {std::string(""), std::string("-a"), std::string("a-"), std::string(".a"),
        std::string("a..b"), std::string("a_-b"), std::string("a/b"), std::string("a b"),
        std::string("k8s.io\n"), std::string("\xc3\xbc"), longest + "a"}) {
    absl::Status s = ValidateNamespace(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << "\"" << bad << "\": " << s;
  }
}

TEST(ValidateNamespace, AHugeNamespaceIsNotEchoed) {
  absl::Status s = ValidateNamespace(std::string(1 << 20, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_LT(s.message().size(), 512u);
}

TEST(ValidateTopic, ContainerdsTopicRule) {
  for (const char* ok : {"/images/create", "/content/delete", "/a", "/a_b/c-d/e.f", "/X1/y2"}) {
    EXPECT_TRUE(EventExchange::ValidateTopic(ok).ok()) << ok;
  }
  for (const char* bad : {"", "/", "images/create", "//a", "/a//b", "/a/", "/a b", "/a:b",
                          "/\xc3\xbc"}) {
    absl::Status s = EventExchange::ValidateTopic(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << "\"" << bad << "\": " << s;
  }
}

TEST(ValidateTopic, AHugeTopicIsNotEchoed) {
  absl::Status s = EventExchange::ValidateTopic(absl::StrCat("/", std::string(1 << 20, '!')));
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_LT(s.message().size(), 512u);
}

}  // namespace
}  // namespace imaged::plugin
