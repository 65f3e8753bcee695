// The undo record: stable paths, and applying the operations.
#include "coordinator/cli/undo_record.h"

#include <optional>

#include "coordinator/config/text.h"

namespace lameduck::coordinator {
namespace {

using Json = OrderedJson;

// What identifies a list entry: its name, or a Service port's port.
std::string EntryToken(const Json& entry, size_t index) {
  if (entry.is_object()) {
    auto name = entry.find("name");
    if (name != entry.end() && name->is_string() && !name->get_ref<const std::string&>().empty()) {
      return "#name=" + name->get<std::string>();
    }
    auto port = entry.find("port");
    if (port != entry.end() && port->is_number_integer()) return "#port=" + port->dump();
  }
  return std::to_string(index);
}

// The index of the entry a token names in `list`.
std::optional<size_t> Select(const Json& list, const std::string& token) {
  if (token.starts_with("#")) {
    size_t equals = token.find('=');
    if (equals == std::string::npos) return std::nullopt;
    std::string key = token.substr(1, equals - 1);
    std::string value = token.substr(equals + 1);
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_object()) continue;
      auto found = list[i].find(key);
      if (found == list[i].end()) continue;
      if (found->is_string() ? found->get_ref<const std::string&>() == value
                             : found->dump() == value) {
        return i;
      }
    }
    return std::nullopt;
  }
  auto index = ParseDigits<size_t>(token);
  if (!index || *index >= list.size()) return std::nullopt;
  return index;
}

// The value at `tokens` (all of them), or nullptr when something on the way is gone.
Json* Walk(Json& root, const Json& tokens, size_t count) {
  Json* at = &root;
  for (size_t i = 0; i < count; ++i) {
    const std::string& token = tokens[i].get_ref<const std::string&>();
    if (at->is_object()) {
      auto found = at->find(token);
      if (found == at->end()) return nullptr;
      at = &*found;
    } else if (at->is_array()) {
      auto index = Select(*at, token);
      if (!index) return nullptr;
      at = &(*at)[*index];
    } else {
      return nullptr;
    }
  }
  return at;
}

Result<void> Apply(Json& object, const Json& op) {
  if (!op.is_object()) return Error{"an operation is not an object"};
  auto kind_it = op.find("op");
  auto path_it = op.find("path");
  if (kind_it == op.end() || !kind_it->is_string()) return Error{"an operation has no op"};
  if (path_it == op.end() || !path_it->is_array() || path_it->empty()) {
    return Error{"an operation has no path"};
  }
  for (const Json& token : *path_it) {
    if (!token.is_string()) return Error{"a path holds something other than keys"};
  }
  const std::string& kind = kind_it->get_ref<const std::string&>();
  const Json& path = *path_it;
  const std::string& last = path.back().get_ref<const std::string&>();
  auto value = op.find("value");
  auto wrote = op.find("wrote");
  // A value inject wrote and a person changed since is theirs now: a replace keeps it.
  auto changed_since = [&](const Json& now) { return wrote != op.end() && now != *wrote; };
  Json* parent = Walk(object, path, path.size() - 1);
  if (parent == nullptr) return {};  // gone with what held it: nothing to put back into
  if (parent->is_object()) {
    auto it = parent->find(last);
    if (kind == "replace") {
      if (it == parent->end() || changed_since(*it)) return {};
      *it = value != op.end() ? *value : Json(nullptr);
    } else if (kind == "remove") {
      if (it != parent->end() && !changed_since(*it)) parent->erase(it);
    } else if (kind == "prune") {
      if (it == parent->end() || !(it->empty() || it->is_null())) return {};  // kept
      if (value != op.end()) {
        *it = nullptr;
      } else {
        parent->erase(it);
      }
    } else {
      return Error{"an operation is " + Quote(kind)};
    }
    return {};
  }
  if (!parent->is_array()) return Error{path.dump() + " is not in an object or a list"};
  auto index = Select(*parent, last);
  if (kind == "replace") {
    if (!index || changed_since((*parent)[*index])) return {};
    (*parent)[*index] = value != op.end() ? *value : Json(nullptr);
  } else if (kind == "remove") {
    if (index) parent->erase(*index);
  } else {
    return Error{"an operation is " + Quote(kind)};
  }
  return {};
}

}  // namespace

Json Editor::StablePath(const JsonPointer& pointer) const {
  Json path = Json::array();
  const Json* at = &root_;
  // Walk the pointer's tokens; json_pointer has no iteration, so rebuild it token by token.
  std::vector<std::string> tokens;
  for (JsonPointer rest = pointer; !rest.empty(); rest.pop_back()) tokens.push_back(rest.back());
  for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) {
    if (at->is_array()) {
      size_t index = std::stoul(*it);
      path.push_back(EntryToken((*at)[index], index));
      at = &(*at)[index];
    } else {
      path.push_back(*it);
      at = &(*at)[*it];
    }
  }
  return path;
}

JsonPointer Editor::Set(const JsonPointer& at, const std::string& key, Json value) {
  Json& parent = root_[at];
  JsonPointer path = at / key;
  auto it = parent.find(key);
  Json undo;
  if (it != parent.end()) {
    if (*it == value) return path;
    undo = {{"op", "replace"}, {"value", *it}, {"wrote", value}};
  } else {
    undo = {{"op", "remove"}};
    // A number or a string a person may change: theirs, then, is kept (a list or an object
    // inject added is inject's, and goes).
    if (value.is_primitive()) undo["wrote"] = value;
  }
  parent[key] = std::move(value);
  // After the edit: a renamed entry is found by its new name, as it will be when undone.
  undo["path"] = StablePath(path);
  undo_.push_back(std::move(undo));
  return path;
}

JsonPointer Editor::Ensure(const JsonPointer& at, const std::string& key, Json empty) {
  Json& parent = root_[at];
  JsonPointer path = at / key;
  auto it = parent.find(key);
  if (it != parent.end() && !it->is_null()) return path;
  Json undo = {{"op", "prune"}};
  if (it != parent.end()) undo["value"] = nullptr;
  parent[key] = std::move(empty);
  undo["path"] = StablePath(path);
  undo_.push_back(std::move(undo));
  return path;
}

void Editor::Append(const JsonPointer& list, Json value) {
  Json& array = root_[list];
  array.push_back(std::move(value));
  undo_.push_back({{"op", "remove"}, {"path", StablePath(list / (array.size() - 1))}});
}

void Editor::Record(const JsonPointer& metadata, std::string_view annotation) {
  JsonPointer annotations = Ensure(metadata, "annotations", Json::object());
  std::string key(annotation);
  root_[annotations][key] = "";
  undo_.push_back({{"op", "remove"}, {"path", StablePath(annotations / key)}});
  Json record = Json::array();
  for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) record.push_back(*it);
  root_[annotations][key] = record.dump();
}

Result<bool> Undo(Json& object, const JsonPointer& metadata, std::string_view annotation) {
  const Json* annotations = nullptr;
  if (object.contains(metadata / "annotations")) annotations = &object[metadata / "annotations"];
  if (annotations == nullptr || !annotations->is_object()) return false;
  auto found = annotations->find(annotation);
  if (found == annotations->end() || found->is_null()) return false;
  auto damaged = [&](const std::string& why) {
    return Error{"its " + std::string(annotation) + " annotation " + why + ": left as it is"};
  };
  if (!found->is_string()) return damaged("is not a string");
  Json record = Json::parse(found->get<std::string>(), nullptr, false);
  if (!record.is_array()) return damaged("is not a list of operations");
  Json undone = object;
  for (const Json& op : record) {
    if (auto applied = Apply(undone, op); !applied) {
      return damaged("does not apply (" + applied.error() + ")");
    }
  }
  // Every record begins by removing itself: one that does not was not written by inject.
  if (undone.contains(metadata / "annotations")) {
    const Json& left = undone[metadata / "annotations"];
    if (left.is_object() && left.contains(annotation)) {
      return damaged("does not apply (it does not remove itself)");
    }
  }
  object = std::move(undone);
  return true;
}

}  // namespace lameduck::coordinator
