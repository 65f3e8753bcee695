// Reading and writing manifests: splitting a YAML stream into its documents by their separator
// lines, YAML 1.1 scalars into JSON types, and JSON trees back into YAML that reads back equal.
#include "coordinator/cli/manifest.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <optional>

namespace lameduck::coordinator::manifest {
namespace {

// A YAML document may hold aliases, each of which the JSON tree copies: a few lines of anchors
// can stand for billions of nodes. No manifest comes near this many.
constexpr size_t kMaxNodes = 1'000'000;
// JSON nested deeper than this is refused before parsing: the parser (and every walk of the tree
// after it) recurses once a level, and a few megabytes of brackets would overflow the stack.
// Kubernetes objects are a dozen levels deep.
constexpr size_t kMaxJsonDepth = 256;

bool StartsWithMarker(std::string_view line, std::string_view marker) {
  if (line.ends_with('\n')) line.remove_suffix(1);
  if (!line.starts_with(marker)) return false;
  return line.size() == marker.size() || line[marker.size()] == ' ' ||
         line[marker.size()] == '\t' || line[marker.size()] == '\r';
}

// A line that holds no content: blank, or a comment.
bool IsCommentOrBlank(std::string_view line) {
  size_t first = line.find_first_not_of(" \t\r\n");
  return first == std::string_view::npos || line[first] == '#';
}

// How deep the brackets of a JSON text nest (outside strings).
size_t JsonDepth(std::string_view text) {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// A separator line with nothing after the marker but a comment: it may lead a document written
// anew. (`--- |` or `--- {a: 1}` starts the content on the marker's line.)
bool IsBareSeparator(std::string_view line) {
  if (!StartsWithMarker(line, "---")) return false;
  return IsCommentOrBlank(line.substr(3));
}

// The document texts of a stream, each starting at its `---` line (but the first). In YAML a
// line that starts with `---` and a space or its end is a document marker wherever it occurs: no
// scalar, block or quoted, may hold one at the start of a line.
std::vector<std::string> SplitDocuments(std::string_view text) {
  std::vector<std::string> documents(1);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    size_t next = end == std::string_view::npos ? text.size() : end + 1;
    std::string_view line = text.substr(start, next - start);
    if (StartsWithMarker(line, "---") && !(documents.size() == 1 && documents[0].empty())) {
      documents.emplace_back();
    }
    documents.back().append(line);
    start = next;
  }
  return documents;
}

// The bare separator line and the comment and blank lines that lead a document.
std::string HeadOf(std::string_view text) {
  size_t end = 0;
  bool first = true;
  while (end < text.size()) {
    size_t line_end = text.find('\n', end);
    size_t next = line_end == std::string_view::npos ? text.size() : line_end + 1;
    std::string_view line = text.substr(end, next - end);
    if (!(first ? IsBareSeparator(line) || IsCommentOrBlank(line) : IsCommentOrBlank(line))) break;
    first = false;
    end = next;
  }
  return std::string(text.substr(0, end));
}

// ---- YAML 1.1 plain scalars, as sigs.k8s.io/yaml (go-yaml v2) resolves them.

bool IsBoolWord(std::string_view text, bool value) {
  static constexpr std::array<std::string_view, 11> kTrue = {
      "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static constexpr std::array<std::string_view, 11> kFalse = {
      "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
  for (std::string_view word : value ? kTrue : kFalse) {
    if (text == word) return true;
  }
  return false;
}

bool IsNullWord(std::string_view text) {
  return text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL";
}

// An integer as strconv.ParseInt(text, 0, 64) reads it (0x, 0o, 0b prefixes, a leading 0 for
// octal, underscores between digits), or uint64 beyond int64.
std::optional<Json> ParseInteger(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  } else if (text.size() > 2 && text[0] == '0' && (text[1] == 'b' || text[1] == 'B')) {
    base = 2;
    text.remove_prefix(2);
  } else if (text.size() > 2 && text[0] == '0' && (text[1] == 'o' || text[1] == 'O')) {
    base = 8;
    text.remove_prefix(2);
  } else if (text.size() > 1 && text[0] == '0') {
    base = 8;
    text.remove_prefix(1);
  }
  std::string digits;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '_' && i > 0 && i + 1 < text.size()) continue;
    digits += text[i];
  }
  if (digits.empty()) return std::nullopt;
  uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  if (!negative) return Json(magnitude);
  if (magnitude > uint64_t{1} << 63) return std::nullopt;
  return Json(static_cast<int64_t>(0 - magnitude));
}

std::optional<Json> ParseFloat(std::string_view text) {
  // [-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?
  size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  size_t mantissa = i;
  bool digits = false;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '_')) {
    digits = digits || text[i] != '_';
    ++i;
  }
  if (i == mantissa && i < text.size() && text[i] != '.') return std::nullopt;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '_')) {
      digits = digits || text[i] != '_';
      ++i;
    }
  }
  if (!digits) return std::nullopt;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    size_t exponent = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i == exponent) return std::nullopt;
  }
  if (i != text.size()) return std::nullopt;
  std::string plain;
  for (char c : text) {
    if (c != '_') plain += c;
  }
  double value = std::strtod(plain.c_str(), nullptr);
  if (!std::isfinite(value)) return std::nullopt;
  return Json(value);
}

// What a plain (unquoted) scalar means.
Json ResolvePlain(const std::string& text) {
  if (IsNullWord(text)) return nullptr;
  if (IsBoolWord(text, true)) return true;
  if (IsBoolWord(text, false)) return false;
  if (auto integer = ParseInteger(text)) return *integer;
  if (auto number = ParseFloat(text)) return *number;
  return text;
}

Result<Json> ToJson(const YAML::Node& node, size_t& nodes) {
  if (++nodes > kMaxNodes) return Error{"more than a million values (aliases?)"};
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return Json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      const std::string& tag = node.Tag();
      if (tag == "?") return ResolvePlain(text);
      return Json(text);  // quoted, a block scalar, or tagged: a string
    }
    case YAML::NodeType::Sequence: {
      Json array = Json::array();
      for (const YAML::Node& item : node) {
        auto value = ToJson(item, nodes);
        if (!value) return value;
        array.push_back(std::move(*value));
      }
      return array;
    }
    case YAML::NodeType::Map: {
      Json object = Json::object();
      std::vector<Json> merged;  // `<<: *base` (or a list of them): keys the map does not set
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (!it->first.IsScalar()) return Error{"a mapping key that is not a plain value"};
        if (it->first.Scalar() == "<<" && it->first.Tag() == "?") {
          auto converted = ToJson(it->second, nodes);
          if (!converted) return converted;
          const Json& value = *converted;
          if (value.is_object()) {
            merged.push_back(value);
          } else if (value.is_array() &&
                     std::all_of(value.begin(), value.end(),
                                 [](const Json& item) { return item.is_object(); })) {
            for (const Json& item : value) merged.push_back(item);
          } else {
            return Error{"a merge key (<<) whose value is not a mapping"};
          }
          continue;
        }
        // Kubernetes' strict decoding refuses these; taking one would drop the other unseen.
        if (object.contains(it->first.Scalar())) {
          return Error{"duplicate key " + it->first.Scalar() + " (line " +
                       std::to_string(it->first.Mark().line + 1) + " of the document)"};
        }
        auto value = ToJson(it->second, nodes);
        if (!value) return value;
        object[it->first.Scalar()] = std::move(*value);
      }
      for (const Json& base : merged) {  // the first merged map wins over later ones
        for (const auto& [key, value] : base.items()) {
          if (!object.contains(key)) object[key] = value;
        }
      }
      return object;
    }
  }
  return Json(nullptr);
}

// ---- Writing YAML.

// What YAML 1.1 readers take for something other than a string, beyond what Resolve knows:
// timestamps (2024-01-31, 2024-01-31T10:00:00Z), the float specials, the merge and value keys.
bool LooksLikeOtherType(const std::string& text) {
  if (text.size() >= 8 && std::isdigit(static_cast<unsigned char>(text[0])) &&
      text.find('-') == 4) {
    return true;  // a date, perhaps with a time
  }
  static constexpr std::array<std::string_view, 14> kSpecial = {
      ".inf",  ".Inf",  ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
      "-.Inf", "-.INF", ".nan", ".NaN",  ".NAN",  "<<",    "="};
  return std::find(kSpecial.begin(), kSpecial.end(), text) != kSpecial.end();
}

bool NeedsQuotes(const std::string& text) {
  if (text.empty() || ResolvePlain(text).type() != Json::value_t::string) return true;
  if (LooksLikeOtherType(text)) return true;
  unsigned char first = static_cast<unsigned char>(text.front());
  unsigned char last = static_cast<unsigned char>(text.back());
  if (std::isspace(first) || std::isspace(last)) return true;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return true;  // control characters: only escaped
  }
  return false;
}

// A literal block (`|`) reads back exactly a text that ends in one newline, has no other
// control character but newlines, and does not begin with a space (which would need an
// indentation indicator yaml-cpp does not write).
bool FitsLiteralBlock(const std::string& text) {
  if (text.size() < 2 || text.back() != '\n' || text[text.size() - 2] == '\n') return false;
  if (text.front() == ' ' || text.front() == '\n') return false;
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
  }
  return text.find(" \n") == std::string::npos;
}

void EmitString(YAML::Emitter& out, const std::string& text) {
  if (text.find('\n') != std::string::npos && FitsLiteralBlock(text)) {
    out << YAML::Literal << text;
  } else if (NeedsQuotes(text)) {
    out << YAML::DoubleQuoted << text;
  } else {
    out << text;  // yaml-cpp quotes what YAML's syntax needs quoted (": ", "#", "- ", ...)
  }
}

void Emit(YAML::Emitter& out, const Json& value) {
  switch (value.type()) {
    case Json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, member] : value.items()) {
        out << YAML::Key;
        EmitString(out, key);
        out << YAML::Value;
        Emit(out, member);
      }
      out << YAML::EndMap;
      break;
    case Json::value_t::array:
      out << YAML::BeginSeq;
      for (const Json& item : value) Emit(out, item);
      out << YAML::EndSeq;
      break;
    case Json::value_t::string:
      EmitString(out, value.get_ref<const std::string&>());
      break;
    case Json::value_t::null:
      out << YAML::Null;
      break;
    default:  // booleans and numbers: their JSON spelling is their YAML spelling
      out << value.dump();
      break;
  }
}

Result<Json> ParseYamlDocument(const std::string& text) {
  YAML::Node node = YAML::Load(text);
  size_t nodes = 0;
  return ToJson(node, nodes);
}

// An object, or a list of objects (what `kubectl apply -f` takes as a JSON array).
bool IsObjectOrList(const Json& value) {
  if (value.is_object()) return true;
  return value.is_array() &&
         std::all_of(value.begin(), value.end(), [](const Json& item) { return item.is_object(); });
}

// Whether the text's first line ends in CRLF: then what is written anew does too.
bool UsesCrlf(std::string_view text) {
  size_t newline = text.find('\n');
  return newline != std::string_view::npos && newline > 0 && text[newline - 1] == '\r';
}

// `text` with each "\n" made "\r\n".
std::string WithCrlf(const std::string& text) {
  std::string out;
  out.reserve(text.size() + text.size() / 16);
  for (char c : text) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

}  // namespace

Result<Stream> Read(std::string_view text) {
  Stream stream;
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && (text[first] == '{' || text[first] == '[')) {
    stream.format = Format::kJson;
    if (JsonDepth(text) > kMaxJsonDepth) {
      return Error{"stdin nests deeper than " + std::to_string(kMaxJsonDepth) +
                   " levels: not a Kubernetes manifest"};
    }
    Json value;
    try {
      value = Json::parse(text);
    } catch (const Json::parse_error& error) {
      return Error{"stdin is not valid JSON (at byte " + std::to_string(error.byte) + ")"};
    } catch (const Json::exception& error) {  // a number out of range (fuzz_inject)
      return Error{std::string("stdin is not usable JSON: ") + error.what()};
    }
    if (!IsObjectOrList(value)) {
      return Error{"stdin holds JSON but not an object: pipe in kubectl get ... -o json"};
    }
    stream.documents.push_back({"", std::string(text), value, value});
    return stream;
  }
  stream.format = Format::kYaml;
  std::vector<std::string> texts = SplitDocuments(text);
  size_t first_line = 1;  // of the document being read
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string head = HeadOf(texts[i]);
    size_t content_line = first_line + std::count(head.begin(), head.end(), '\n');
    std::string where =
        "document " + std::to_string(i + 1) + " (line " + std::to_string(content_line) + ")";
    Json value;
    try {
      auto parsed = ParseYamlDocument(texts[i]);
      if (!parsed) return Error{where + ": " + parsed.error()};
      value = std::move(*parsed);
    } catch (const YAML::Exception& error) {
      if (error.mark.is_null())
        return Error{"stdin is not valid YAML: " + where + ": " + error.msg};
      // A mark past the end (an unclosed bracket) is shown as the document's last line.
      size_t lines = std::max<size_t>(1, std::count(texts[i].begin(), texts[i].end(), '\n'));
      size_t line = first_line + std::min<size_t>(error.mark.line, lines - 1);
      return Error{"stdin is not valid YAML: line " + std::to_string(line) + ": " + error.msg};
    }
    if (!value.is_null() && !IsObjectOrList(value)) {
      return Error{where +
                   " is not a Kubernetes object: pipe in manifests (kubectl get ... -o yaml)"};
    }
    first_line += std::count(texts[i].begin(), texts[i].end(), '\n');
    stream.documents.push_back({std::move(head), std::move(texts[i]), value, value});
  }
  return stream;
}

std::string ToYaml(const Json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  Emit(out, value);
  std::string text = out.c_str();
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

std::string Write(const Stream& stream) {
  std::string out;
  bool crlf = !stream.documents.empty() && UsesCrlf(stream.documents[0].text);
  for (const Document& document : stream.documents) {
    if (document.value == document.original) {
      out += document.text;
      continue;
    }
    if (stream.format == Format::kJson) {
      out += crlf ? WithCrlf(document.value.dump(4) + "\n") : document.value.dump(4) + "\n";
      continue;
    }
    std::string body = ToYaml(document.value);
    // The safety net: a document that would not read back as its tree goes out as JSON.
    try {
      auto again = ParseYamlDocument(body);
      if (!again || *again != document.value) body = document.value.dump(4) + "\n";
    } catch (const YAML::Exception&) {
      body = document.value.dump(4) + "\n";
    }
    if (!out.empty() && out.back() != '\n') out += '\n';
    std::string head = document.head;
    // A separator that carried content (`--- |`) was not kept in the head: the next document
    // still needs one.
    if (&document != &stream.documents.front() && !head.starts_with("---")) {
      head = (crlf ? "---\r\n" : "---\n") + head;
    }
    out += head + (crlf ? WithCrlf(body) : body);
  }
  return out;
}

}  // namespace lameduck::coordinator::manifest
