// Edits to a Kubernetes object that remember how to be undone: what `lameduck inject` changes,
// recorded in the object's own annotation, so that `uninject`, and inject run again, can put back
// exactly what was there.
//
// The record is a list of operations, newest first: `replace` (a value inject changed, put back
// unless a person has changed it since: then theirs is kept), `remove` (a key or list entry
// inject added; a number or string added and changed since is kept too) and `prune` (an object or
// list inject made, which goes, or back to the null it was, only when nothing is left in it: what a
// person added after the injection, an annotation say, survives). Paths are lists of keys in which
// a list entry is named by what identifies it, `#name=web` or `#port=80` (a Service port), never by
// its place: a person may add a container at the top of a wired pod, and the undo still finds
// lameduck's entries, and touches nothing else. What is already gone stays gone; a record that is
// not one (a malformed operation) is not applied at all.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/result.h"

namespace lameduck::coordinator {

using OrderedJson = nlohmann::ordered_json;
using JsonPointer = OrderedJson::json_pointer;

class Editor {
 public:
  explicit Editor(OrderedJson& root) : root_(root) {}

  OrderedJson& root() { return root_; }

  // root[at][key] = value (root[at] is an object).
  JsonPointer Set(const JsonPointer& at, const std::string& key, OrderedJson value);
  // root[at][key], made `empty` (an object or a list) when absent or null.
  JsonPointer Ensure(const JsonPointer& at, const std::string& key, OrderedJson empty);
  // Appends an entry with a `name` to the list at `list`.
  void Append(const JsonPointer& list, OrderedJson value);
  // Writes the record into the annotation `annotation` of the metadata at `metadata`; its own
  // removal is the undo's first step.
  void Record(const JsonPointer& metadata, std::string_view annotation);

 private:
  // The path of `pointer` (valid in root_ now) with list entries named, not numbered.
  OrderedJson StablePath(const JsonPointer& pointer) const;

  OrderedJson& root_;
  std::vector<OrderedJson> undo_;
};

// Applies the record found in annotation `annotation` of the metadata at `metadata`. Returns false,
// changing nothing, when there is none; an error (changing nothing) when it is damaged.
Result<bool> Undo(OrderedJson& object, const JsonPointer& metadata, std::string_view annotation);

}  // namespace lameduck::coordinator
