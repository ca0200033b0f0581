#include "pythmata/store/store.hpp"

#include <string_view>

#include "postgres/postgres_store.hpp"
#include "sqlite/sqlite_store.hpp"

namespace pythmata::store {

Result<std::unique_ptr<Store>> open_store(const app::DbSettings& settings,
                                          metrics::Registry& registry) {
    constexpr std::string_view kSqlite = "sqlite://";
    const std::string& url = settings.url;
    if (url.starts_with(kSqlite)) {
        return open_sqlite_store(url.substr(kSqlite.size()), settings, registry);
    }
    if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        return open_postgres_store(url, settings, registry);
    }
    return Error::invalid_argument(
        "db_url must start with sqlite:// (e.g. sqlite://./var/pythmata.db) or postgresql://",
        "INVALID_DB_URL");
}

}  // namespace pythmata::store
