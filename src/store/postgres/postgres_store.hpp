#pragma once

#include <memory>
#include <string>

#include "pythmata/app/settings.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/store/store.hpp"

namespace pythmata::store {

/// A store on PostgreSQL at `url` (a libpq URL or key=value string; connect_timeout is added
/// from db_connect_timeout_ms unless present). Validates the URL (INVALID_DB_URL), tries to
/// connect and migrate once: an unreachable server is not an error (see open_store).
[[nodiscard]] Result<std::unique_ptr<Store>> open_postgres_store(const std::string& url,
                                                                 const app::DbSettings& settings,
                                                                 metrics::Registry& registry);

}  // namespace pythmata::store
