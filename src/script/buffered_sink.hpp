#pragma once

#include <deque>
#include <string>
#include <string_view>
#include <utility>

#include "pythmata/expr/statements.hpp"

namespace pythmata::script::detail {

/// A VariableSink that keeps the writes of one script run to itself until commit(), so that a
/// script failing halfway changes nothing. Reads see the buffered writes first. find_mutable
/// copies the variable into the buffer on first use (copy-on-write). Pointers it returns stay
/// valid until the sink is destroyed.
class BufferedSink final : public expr::VariableSink {
  public:
    /// `target` must outlive the sink.
    explicit BufferedSink(expr::VariableSink& target) : target_(target) {}

    [[nodiscard]] const expr::Value* find(std::string_view name) const override;
    void set(std::string_view name, expr::Value value) override;
    [[nodiscard]] expr::Value* find_mutable(std::string_view name) override;
    /// Buffers the removal: later reads see the variable as undefined.
    void erase(std::string_view name) override;

    /// The buffered value of `name`, or nullptr when the script did not write it (or erased it).
    [[nodiscard]] const expr::Value* written(std::string_view name) const;
    /// Applies every buffered write and removal to the target, in first-write order.
    void commit();

  private:
    struct Write {
        std::string name;
        expr::Value value;
        bool erased = false;
    };

    [[nodiscard]] Write* buffered(std::string_view name);
    [[nodiscard]] const Write* buffered(std::string_view name) const;

    expr::VariableSink& target_;
    std::deque<Write> writes_;  // deque: stable addresses
};

}  // namespace pythmata::script::detail
