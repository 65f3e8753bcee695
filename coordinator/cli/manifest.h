// Kubernetes manifests as `lameduck inject` and `uninject` read and write them: one JSON object,
// or a YAML stream of any number of documents (as kubectl, Helm and Kustomize print them), each
// parsed into an ordered JSON tree that the wiring edits in place.
//
// What is written back is, per document, its original text byte for byte when its tree did not
// change (comments, quoting and layout kept: a ConfigMap or a Redis StatefulSet passes through
// untouched), and otherwise the changed tree in the input's format: JSON as kubectl prints it
// (4-space indent), YAML in block style with the keys in their order. The separator line and the
// comments that lead a document (Helm's `# Source: chart/templates/x.yaml`) are kept either way.
//
// YAML scalars are read as Kubernetes reads them (sigs.k8s.io/yaml, YAML 1.1): `0644` is 420,
// `yes` and `on` are true; a quoted scalar is always a string. Strings that would read back as
// something else are written quoted, and every YAML document written is read back and compared
// with its tree: one that would not come back equal is written as JSON instead (JSON is YAML), so
// nothing is ever changed by the writing itself.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/result.h"

namespace lameduck::coordinator::manifest {

using Json = nlohmann::ordered_json;

enum class Format { kJson, kYaml };

struct Document {
  std::string head;  // its separator line and leading comments, verbatim ("" for the first)
  std::string text;  // the whole document as it came, head included
  Json original;     // as parsed; null for a document with no content
  Json value;        // what the caller edits; starts equal to original
};

struct Stream {
  Format format = Format::kYaml;
  std::vector<Document> documents;
};

// JSON when the first character that is not white space is `{` or `[`, else YAML. An error names
// the document and line, for a one-line message.
Result<Stream> Read(std::string_view text);

// The stream, each document verbatim where its value equals its original.
std::string Write(const Stream& stream);

// A tree as one YAML document (no separator), ending in a newline. Exposed for tests.
std::string ToYaml(const Json& value);

}  // namespace lameduck::coordinator::manifest
