// manifest::Read and Write: documents split at their separators and kept byte for byte when
// unchanged, YAML 1.1 scalars read as Kubernetes reads them, and YAML written that reads back as
// the same tree, whatever the strings hold.
#include "coordinator/cli/manifest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace lameduck::coordinator::manifest {
namespace {

Stream ReadOk(const std::string& text) {
  auto stream = Read(text);
  EXPECT_TRUE(stream) << (stream ? "" : stream.error());
  return stream ? std::move(stream).value() : Stream{};
}

TEST(ManifestTest, SplitsDocumentsAndWritesUnchangedOnesVerbatim) {
  const std::string text =
      "---\n# Source: chart/templates/sa.yaml\napiVersion: v1   # odd spacing kept\nkind: "
      "ServiceAccount\nmetadata: {name: 'a'}\n---\n# Source: chart/templates/cm.yaml\n"
      "apiVersion: v1\nkind: ConfigMap\ndata:\n  conf: |\n    --- not a separator inside\n"
      "---\n\n---\napiVersion: v1\nkind: Pod\n";
  Stream stream = ReadOk(text);
  EXPECT_EQ(stream.format, Format::kYaml);
  ASSERT_EQ(stream.documents.size(), 4u);
  EXPECT_EQ(stream.documents[0].value["metadata"]["name"], "a");
  EXPECT_EQ(stream.documents[1].value["data"]["conf"], "--- not a separator inside\n");
  EXPECT_TRUE(stream.documents[2].value.is_null());
  EXPECT_EQ(stream.documents[0].head, "---\n# Source: chart/templates/sa.yaml\n");
  EXPECT_EQ(Write(stream), text);
}

TEST(ManifestTest, AChangedDocumentKeepsItsHeadAndKeyOrder) {
  const std::string text = "# Source: a.yaml\nkind: Pod\nzeta: 1\nalpha: 2\n---\nkind: Other\n";
  Stream stream = ReadOk(text);
  stream.documents[0].value["middle"] = "x";
  EXPECT_EQ(Write(stream),
            "# Source: a.yaml\nkind: Pod\nzeta: 1\nalpha: 2\nmiddle: x\n"
            "---\nkind: Other\n");
}

TEST(ManifestTest, ScalarsAreReadAsKubernetesReadsThem) {
  Stream stream = ReadOk(
      "octal: 0644\nhex: 0x1F\nint: -42\nbig: 18446744073709551615\nfloat: 1.5\nyes: yes\n"
      "on: On\nno: n\nnull1: ~\nnull2:\nquoted: \"0644\"\nsingle: 'true'\nplain: 1.2.3\n"
      "block: |\n  two\n  lines\n");
  const Json& v = stream.documents[0].value;
  EXPECT_EQ(v["octal"], 420);
  EXPECT_EQ(v["hex"], 31);
  EXPECT_EQ(v["int"], -42);
  EXPECT_EQ(v["big"], 18446744073709551615ull);
  EXPECT_EQ(v["float"], 1.5);
  EXPECT_EQ(v["yes"], true);
  EXPECT_EQ(v["on"], true);
  EXPECT_EQ(v["no"], false);
  EXPECT_TRUE(v["null1"].is_null());
  EXPECT_TRUE(v["null2"].is_null());
  EXPECT_EQ(v["quoted"], "0644");
  EXPECT_EQ(v["single"], "true");
  EXPECT_EQ(v["plain"], "1.2.3");
  EXPECT_EQ(v["block"], "two\nlines\n");
}

TEST(ManifestTest, WrittenYamlReadsBackAsTheSameTree) {
  Json tree = Json::parse(R"({
    "strings": ["true", "yes", "on", "N", "null", "~", "", "0644", "1e3", "8080", " lead",
                "trail ", "a: b", "- dash", "# hash", "*star", "&amp", "!bang", "%pct", "@at",
                "`tick", "{brace}", "[bracket]", "quote\"d", "it's", "tab\there", "bell\u0007",
                "line\nbreak", "script\nwith trailing newline\n", "two\n\n", "\nleading",
                "crlf\r\n", "unicode é ✓", "---", "...", "key: value\n", "2024-01-31",
                "2024-01-31T10:00:00Z", ".inf", "-.Inf", ".nan", "<<", "="],
    "numbers": [0, -1, 1.25, 1e300, 18446744073709551615],
    "flags": [true, false, null],
    "nested": {"empty map": {}, "empty list": [], "deep": [[{"a": [1]}]]},
    "lameduck.dev/original": "[{\"op\":\"remove\",\"path\":\"/a~1b\"}]"
  })");
  std::string yaml = ToYaml(tree);
  Stream stream = ReadOk(yaml);
  ASSERT_EQ(stream.documents.size(), 1u) << yaml;
  EXPECT_EQ(stream.documents[0].value.dump(), tree.dump()) << yaml;
  EXPECT_NE(yaml.find("  - |\n    script\n    with trailing newline\n"), std::string::npos)
      << "multi-line text as a block:\n"
      << yaml;
}

TEST(ManifestTest, TimestampsAndFloatSpecialsAreWrittenQuoted) {
  // YAML 1.1 readers (kubectl's, and the validator's) take these plain for a time or a float.
  Json tree = {
      {"creationTimestamp", "2024-01-31T10:00:00Z"}, {"day", "2024-01-31"}, {"inf", ".inf"}};
  EXPECT_EQ(ToYaml(tree),
            "creationTimestamp: \"2024-01-31T10:00:00Z\"\nday: \"2024-01-31\"\ninf: \".inf\"\n");
}

TEST(ManifestTest, MergeKeysAreExpandedAsKubernetesDoes) {
  Stream stream = ReadOk(
      "base: &base {image: app:1, lifecycle: {preStop: {exec: {command: [stop]}}}}\n"
      "containers:\n  - <<: *base\n    name: worker\n    image: app:2\n");
  const Json& worker = stream.documents[0].value["containers"][0];
  EXPECT_EQ(worker["name"], "worker");
  EXPECT_EQ(worker["image"], "app:2") << "the map's own key wins over the merged one";
  EXPECT_EQ(worker["lifecycle"]["preStop"]["exec"]["command"][0], "stop");
  EXPECT_FALSE(worker.contains("<<"));
  EXPECT_FALSE(Read("a: {<<: 5}\n"));
}

TEST(ManifestTest, CrlfStreamsStayCrlf) {
  const std::string text = "kind: A\r\nx: 1\r\n---\r\nkind: B\r\n";
  Stream stream = ReadOk(text);
  ASSERT_EQ(stream.documents.size(), 2u);
  EXPECT_EQ(Write(stream), text);
  stream.documents[1].value["z"] = 2;
  EXPECT_EQ(Write(stream), "kind: A\r\nx: 1\r\n---\r\nkind: B\r\nz: 2\r\n");
}

TEST(ManifestTest, JsonNestedBeyondAnyManifestIsRefusedNotACrash) {
  std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto result = Read(deep);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("nests deeper than 256 levels"), std::string::npos);
  EXPECT_TRUE(Read("{\"s\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}"));
}

TEST(ManifestTest, JsonInJsonOut) {
  const std::string text = "{\"kind\": \"Pod\",   \"b\": [1,2]}";
  Stream stream = ReadOk(text);
  EXPECT_EQ(stream.format, Format::kJson);
  EXPECT_EQ(Write(stream), text) << "unchanged: the bytes as they came";
  stream.documents[0].value["c"] = true;
  EXPECT_EQ(Write(stream),
            "{\n    \"kind\": \"Pod\",\n    \"b\": [\n        1,\n        2\n    ],\n"
            "    \"c\": true\n}\n");
}

TEST(ManifestTest, ErrorsNameTheDocumentAndLine) {
  auto bad = Read("kind: A\n---\nkind: B\n---\nkind: [unclosed\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("line 5: end of sequence flow not found"), std::string::npos)
      << bad.error();
  auto bad_line = Read("kind: A\n---\nkind: B\n  - x: : y\n");
  ASSERT_FALSE(bad_line);
  EXPECT_NE(bad_line.error().find("line 4"), std::string::npos) << bad_line.error();
  auto scalar = Read("kind: A\n---\njust text\n");
  ASSERT_FALSE(scalar);
  EXPECT_NE(scalar.error().find("document 2 (line 3) is not a Kubernetes object"),
            std::string::npos)
      << scalar.error();
  EXPECT_FALSE(Read("{\"a\": 1"));
  auto duplicate = Read("kind: Pod\nmetadata: {name: a}\nkind: Service\n");
  ASSERT_FALSE(duplicate);
  EXPECT_NE(duplicate.error().find("duplicate key kind (line 3"), std::string::npos)
      << duplicate.error();
}

TEST(ManifestTest, AliasesThatWouldExpandBeyondAMillionValuesAreRefused) {
  // a1 is ten a0s, a2 ten a1s, ... a7 is 10^8 values in a few hundred bytes.
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (char level = '1'; level <= '7'; ++level) {
    std::string line = "aN: &aN [*aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP]\n";
    std::replace(line.begin(), line.end(), 'N', level);
    std::replace(line.begin(), line.end(), 'P', static_cast<char>(level - 1));
    text += line;
  }
  auto result = Read(text);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("more than a million values"), std::string::npos) << result.error();
}

}  // namespace
}  // namespace lameduck::coordinator::manifest
