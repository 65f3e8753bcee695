// Result<T>: a value or an error message, for expected failures outside the data plane's hot
// path (parsing options and addresses). GCC 12 has no std::expected. Result<void> is the same for
// an operation that has nothing to return: `return {};` succeeds, `return Error{...};` fails.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace lameduck {

struct Error {
  std::string message;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit on purpose
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit on purpose
  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }
  const std::string& error() const { return std::get<Error>(v_).message; }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;                            // success
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit on purpose
  bool ok() const { return std::holds_alternative<std::monostate>(v_); }
  explicit operator bool() const { return ok(); }
  const std::string& error() const { return std::get<Error>(v_).message; }

 private:
  std::variant<std::monostate, Error> v_;
};

}  // namespace lameduck
