#include "buffered_sink.hpp"

namespace pythmata::script::detail {

expr::Value* BufferedSink::buffered(std::string_view name) {
    for (auto& [key, value] : writes_) {
        if (key == name) {
            return &value;
        }
    }
    return nullptr;
}

const expr::Value* BufferedSink::written(std::string_view name) const {
    for (const auto& [key, value] : writes_) {
        if (key == name) {
            return &value;
        }
    }
    return nullptr;
}

const expr::Value* BufferedSink::find(std::string_view name) const {
    if (const expr::Value* value = written(name)) {
        return value;
    }
    return target_.find(name);
}

void BufferedSink::set(std::string_view name, expr::Value value) {
    if (expr::Value* existing = buffered(name)) {
        *existing = std::move(value);
        return;
    }
    writes_.emplace_back(std::string(name), std::move(value));
}

expr::Value* BufferedSink::find_mutable(std::string_view name) {
    if (expr::Value* existing = buffered(name)) {
        return existing;
    }
    const expr::Value* original = target_.find(name);
    if (original == nullptr) {
        return nullptr;
    }
    writes_.emplace_back(std::string(name), *original);
    return &writes_.back().second;
}

void BufferedSink::commit() {
    for (auto& [name, value] : writes_) {
        target_.set(name, std::move(value));
    }
    writes_.clear();
}

}  // namespace pythmata::script::detail
