#pragma once

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

#include "pythmata/common/error.hpp"

namespace pythmata {

/// A value or an error (a small std::expected until C++23). Expected domain outcomes are
/// returned as Result; bugs are exceptions. Accessing the wrong alternative is a bug (asserts).
template <typename T, typename E = Error>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    Result(E error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit by design

    [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    [[nodiscard]] T& value() & {
        assert(ok());
        return std::get<0>(v_);
    }
    [[nodiscard]] const T& value() const& {
        assert(ok());
        return std::get<0>(v_);
    }
    [[nodiscard]] T&& value() && {
        assert(ok());
        return std::get<0>(std::move(v_));
    }
    [[nodiscard]] E& error() & {
        assert(!ok());
        return std::get<1>(v_);
    }
    [[nodiscard]] const E& error() const& {
        assert(!ok());
        return std::get<1>(v_);
    }
    [[nodiscard]] E&& error() && {
        assert(!ok());
        return std::get<1>(std::move(v_));
    }

    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

  private:
    std::variant<T, E> v_;
};

/// Result of an operation that returns nothing on success.
template <typename E>
class [[nodiscard]] Result<void, E> {
  public:
    Result() = default;
    Result(E error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design

    [[nodiscard]] bool ok() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    [[nodiscard]] const E& error() const& {
        assert(!ok_);
        return error_;
    }
    [[nodiscard]] E&& error() && {
        assert(!ok_);
        return std::move(error_);
    }

  private:
    E error_{};
    bool ok_ = true;
};

using Status = Result<void>;

}  // namespace pythmata
