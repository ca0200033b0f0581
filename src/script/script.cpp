#include "pythmata/script/script.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <exception>
#include <optional>
#include <unordered_map>
#include <utility>

#include "buffered_sink.hpp"
#include "lua_sandbox.hpp"

namespace pythmata::script {

/// The compiled form shared by copies of a Script.
class Script::Impl {
  public:
    std::string language;                        ///< "lua" or "python"
    std::string source;                          ///< Lua source text (sandboxes are built from it)
    ScriptLimits limits;                         ///< Lua limits
    std::optional<expr::StatementBlock> python;  ///< set for python
};

namespace {

constexpr std::size_t kMaxPooledSandboxes = 64;
constexpr std::string_view kLua = "lua";
constexpr std::string_view kPython = "python";

/// The calling thread's Lua sandboxes, one per compiled script, least recently used evicted.
/// Keyed by the Impl address; the weak owner detects an address reused after the script died.
class SandboxPool {
  public:
    struct Entry {
        std::weak_ptr<const void> owner;
        std::unique_ptr<detail::LuaSandbox> sandbox;
        std::uint64_t last_use = 0;
    };

    /// The live sandbox for `key`, or nullptr.
    detail::LuaSandbox* find(const void* key) {
        const auto it = entries_.find(key);
        if (it == entries_.end()) {
            return nullptr;
        }
        if (it->second.owner.expired()) {
            entries_.erase(it);
            return nullptr;
        }
        it->second.last_use = ++clock_;
        return it->second.sandbox.get();
    }

    detail::LuaSandbox* put(const std::shared_ptr<const void>& owner,
                            std::unique_ptr<detail::LuaSandbox> sandbox) {
        if (entries_.size() >= kMaxPooledSandboxes && entries_.count(owner.get()) == 0) {
            evict_one();
        }
        Entry& entry = entries_[owner.get()];
        entry.owner = owner;
        entry.sandbox = std::move(sandbox);
        entry.last_use = ++clock_;
        return entry.sandbox.get();
    }

    void erase(const void* key) { entries_.erase(key); }

  private:
    void evict_one() {
        auto victim = entries_.end();
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (it->second.owner.expired()) {
                victim = it;
                break;
            }
            if (victim == entries_.end() || it->second.last_use < victim->second.last_use) {
                victim = it;
            }
        }
        if (victim != entries_.end() && !victim->second.sandbox->busy()) {
            entries_.erase(victim);
        }
    }

    std::unordered_map<const void*, Entry> entries_;
    std::uint64_t clock_ = 0;
};

SandboxPool& thread_pool() {
    thread_local SandboxPool pool;
    return pool;
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
        text.remove_suffix(1);
    }
    return text;
}

/// Maps a scriptFormat to "lua" or "python"; nullopt when unsupported.
std::optional<std::string_view> normalize_format(std::string_view format) {
    const std::string name = lower(trim(format));
    if (name == "lua" || name == "lua5.4" || name == "lua54" || name == "text/x-lua") {
        return kLua;
    }
    if (name.empty() || name == "python" || name == "python3" || name == "py" ||
        name == "text/x-python") {
        return kPython;
    }
    return std::nullopt;
}

Result<void, ScriptError> run_python(const expr::StatementBlock& block, expr::VariableSink& vars,
                                     const expr::EvalContext& ctx, expr::Value* result) {
    detail::BufferedSink buffer(vars);
    auto executed = block.execute(buffer, ctx);
    if (!executed.ok()) {
        return ScriptError{executed.error().message};
    }
    if (result != nullptr) {
        const expr::Value* assigned = buffer.written("result");
        *result = assigned != nullptr ? *assigned : expr::Value();
    }
    buffer.commit();
    return {};
}

}  // namespace

Result<Script, ScriptError> Script::compile(std::string_view format, std::string_view source,
                                            const ScriptLimits& limits) {
    const auto language = normalize_format(format);
    if (!language) {
        return ScriptError{"unsupported scriptFormat '" + std::string(format) +
                           "' (supported: lua, python)"};
    }
    auto impl = std::make_shared<Impl>();
    impl->language = std::string(*language);
    impl->limits = limits;
    if (*language == kPython) {
        auto block = expr::StatementBlock::compile(source);
        if (!block.ok()) {
            return ScriptError{"python script: " + block.error().message};
        }
        impl->python.emplace(std::move(block).value());
    } else {
        impl->source = std::string(source);
        auto sandbox = detail::LuaSandbox::create(impl->source, limits);
        if (!sandbox.ok()) {
            return std::move(sandbox).error();
        }
        // The first sandbox serves this thread's first run.
        thread_pool().put(std::shared_ptr<const void>(impl, impl.get()),
                          std::move(sandbox).value());
    }
    Script script;
    script.impl_ = std::move(impl);
    return script;
}

Result<void, ScriptError> Script::run(expr::VariableSink& vars, const expr::EvalContext& ctx,
                                      expr::Value* result) const {
    if (!impl_) {
        return ScriptError{"script was not compiled"};
    }
    if (result != nullptr) {
        *result = nullptr;
    }
    try {
        if (impl_->python) {
            return run_python(*impl_->python, vars, ctx, result);
        }
        SandboxPool& pool = thread_pool();
        detail::LuaSandbox* sandbox = pool.find(impl_.get());
        std::unique_ptr<detail::LuaSandbox> own;  // re-entrant use gets a private sandbox
        if (sandbox == nullptr || sandbox->busy()) {
            auto created = detail::LuaSandbox::create(impl_->source, impl_->limits);
            if (!created.ok()) {
                return std::move(created).error();
            }
            if (sandbox == nullptr) {
                sandbox = pool.put(std::shared_ptr<const void>(impl_, impl_.get()),
                                   std::move(created).value());
            } else {
                own = std::move(created).value();
                sandbox = own.get();
            }
        }
        auto outcome = sandbox->run(vars, result);
        if (!sandbox->reusable() && !own) {
            pool.erase(impl_.get());
        }
        return outcome;
    } catch (const std::exception& e) {
        return ScriptError{std::string("script failed: ") + e.what()};
    }
}

const std::string& Script::language() const {
    static const std::string kNone;
    return impl_ ? impl_->language : kNone;
}

}  // namespace pythmata::script
