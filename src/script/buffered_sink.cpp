#include "buffered_sink.hpp"

namespace pythmata::script::detail {

BufferedSink::Write* BufferedSink::buffered(std::string_view name) {
    for (Write& write : writes_) {
        if (write.name == name) {
            return &write;
        }
    }
    return nullptr;
}

const BufferedSink::Write* BufferedSink::buffered(std::string_view name) const {
    for (const Write& write : writes_) {
        if (write.name == name) {
            return &write;
        }
    }
    return nullptr;
}

const expr::Value* BufferedSink::written(std::string_view name) const {
    const Write* write = buffered(name);
    return write != nullptr && !write->erased ? &write->value : nullptr;
}

const expr::Value* BufferedSink::find(std::string_view name) const {
    if (const Write* write = buffered(name)) {
        return write->erased ? nullptr : &write->value;
    }
    return target_.find(name);
}

void BufferedSink::set(std::string_view name, expr::Value value) {
    if (Write* write = buffered(name)) {
        write->value = std::move(value);
        write->erased = false;
        return;
    }
    writes_.push_back(Write{std::string(name), std::move(value), false});
}

expr::Value* BufferedSink::find_mutable(std::string_view name) {
    if (Write* write = buffered(name)) {
        return write->erased ? nullptr : &write->value;
    }
    const expr::Value* original = target_.find(name);
    if (original == nullptr) {
        return nullptr;
    }
    writes_.push_back(Write{std::string(name), *original, false});
    return &writes_.back().value;
}

void BufferedSink::erase(std::string_view name) {
    if (Write* write = buffered(name)) {
        write->value = nullptr;
        write->erased = true;
        return;
    }
    writes_.push_back(Write{std::string(name), expr::Value(), true});
}

void BufferedSink::commit() {
    for (Write& write : writes_) {
        if (write.erased) {
            target_.erase(write.name);
        } else {
            target_.set(write.name, std::move(write.value));
        }
    }
    writes_.clear();
}

}  // namespace pythmata::script::detail
