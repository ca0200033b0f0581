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

    /// The buffered value of `name`, or nullptr when the script did not write it.
    [[nodiscard]] const expr::Value* written(std::string_view name) const;
    /// Applies every buffered write to the target, in first-write order.
    void commit();

  private:
    [[nodiscard]] expr::Value* buffered(std::string_view name);

    expr::VariableSink& target_;
    std::deque<std::pair<std::string, expr::Value>> writes_;  // deque: stable addresses
};

}  // namespace pythmata::script::detail
