#include "variables.hpp"

#include <string>
#include <vector>

namespace pythmata::engine {

Scope* find_scope(InstanceState& st, ScopeId id) {
    for (auto& s : st.scopes) {
        if (s.id == id) {
            return &s;
        }
    }
    return nullptr;
}

expr::Value* Variables::lookup(std::string_view name) const {
    ScopeId s = scope_;
    while (s != 0 && s != kRootScope) {
        Scope* sc = find_scope(st_, s);
        if (sc == nullptr) {
            break;
        }
        if (sc->locals.is_object()) {
            auto it = sc->locals.find(name);
            if (it != sc->locals.end()) {
                return &*it;
            }
        }
        s = sc->parent;
    }
    auto it = st_.variables.find(name);
    if (it != st_.variables.end()) {
        return &*it;
    }
    return nullptr;
}

const expr::Value* Variables::find(std::string_view name) const {
    return lookup(name);
}

expr::Value* Variables::find_mutable(std::string_view name) {
    expr::Value* v = lookup(name);
    if (v != nullptr && changed_ != nullptr) {
        *changed_ = true;
    }
    return v;
}

void Variables::set(std::string_view name, expr::Value value) {
    if (changed_ != nullptr) {
        *changed_ = true;
    }
    if (expr::Value* v = lookup(name)) {
        *v = std::move(value);
        return;
    }
    if (!st_.variables.is_object()) {
        st_.variables = nlohmann::json::object();
    }
    st_.variables[std::string(name)] = std::move(value);
}

void Variables::erase(std::string_view name) {
    if (changed_ != nullptr) {
        *changed_ = true;
    }
    ScopeId s = scope_;
    while (s != 0 && s != kRootScope) {
        Scope* sc = find_scope(st_, s);
        if (sc == nullptr) {
            break;
        }
        if (sc->locals.is_object()) {
            auto it = sc->locals.find(name);
            if (it != sc->locals.end()) {
                sc->locals.erase(it);
                return;
            }
        }
        s = sc->parent;
    }
    auto it = st_.variables.find(name);
    if (it != st_.variables.end()) {
        st_.variables.erase(it);
    }
}

const expr::Value* LocalSource::find(std::string_view name) const {
    if (first_.is_object()) {
        auto it = first_.find(name);
        if (it != first_.end()) {
            return &*it;
        }
    }
    return has_fallback_ ? fallback_.find(name) : nullptr;
}

nlohmann::json visible_variables(InstanceState& st, ScopeId scope) {
    nlohmann::json out = st.variables.is_object() ? st.variables : nlohmann::json::object();
    std::vector<const Scope*> chain;
    ScopeId s = scope;
    while (s != 0 && s != kRootScope) {
        const Scope* sc = find_scope(st, s);
        if (sc == nullptr) {
            break;
        }
        chain.push_back(sc);
        s = sc->parent;
    }
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        if ((*it)->locals.is_object()) {
            for (auto v = (*it)->locals.begin(); v != (*it)->locals.end(); ++v) {
                out[v.key()] = v.value();
            }
        }
    }
    return out;
}

}  // namespace pythmata::engine
