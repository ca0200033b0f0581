#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pythmata/app/settings.hpp"
#include "pythmata/common/result.hpp"

namespace pythmata::config {

/// Reads an environment variable; nullptr when unset. Injected so tests need no real environment.
using EnvLookup = std::function<const char*(const char* name)>;

/// Loads the settings: defaults, then `file` (TOML, flat keys as documented in
/// config/pythmata.toml) when given, then environment overrides PYTHMATA_<KEY> (upper case), then
/// validation. Every failure names the key and where its value came from, e.g.
/// "db_pool_size (config/pythmata.toml): must be an integer from 1 to 1000, got -3".
/// An unknown key in the file is an error.
[[nodiscard]] Result<app::Settings, std::string> load(
    const std::optional<std::filesystem::path>& file, const EnvLookup& env);

/// Every setting as `key = value` TOML lines with their current values (for `pythmata config`).
[[nodiscard]] std::string dump(const app::Settings& settings);

}  // namespace pythmata::config
