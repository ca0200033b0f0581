// pg::array_parameters: the element types the store's binary array columns are encoded as.
#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <vector>

#include "postgres/statements.hpp"

namespace pythmata::store::pg {
namespace {

using T = ElementType;

TEST(ArrayParametersTest, EveryParameterIsReadInItsNumberOrder) {
    const auto types = array_parameters(
        "INSERT INTO x SELECT * FROM unnest($2::bigint[], $1::uuid[], $3::text[], $4::int[],"
        " $5::jsonb[], $6::json[], $7::boolean[], $8::bytea[], $9::text[], $10::uuid[])");
    ASSERT_TRUE(types.has_value());
    EXPECT_EQ(*types, (std::vector<T>{T::kUuid, T::kInt8, T::kText, T::kInt4, T::kJsonb, T::kJson,
                                      T::kBool, T::kBytea, T::kText, T::kUuid}));
}

TEST(ArrayParametersTest, AParameterUsedTwiceKeepsItsType) {
    const auto types = array_parameters(
        "SELECT 1 WHERE a = ANY($1::text[]) OR b = ANY($1::text[]) OR c = ANY($2::uuid[])");
    ASSERT_TRUE(types.has_value());
    EXPECT_EQ(*types, (std::vector<T>{T::kText, T::kUuid}));
}

TEST(ArrayParametersTest, AnythingButArraysOfKnownTypesIsRefused) {
    EXPECT_FALSE(array_parameters("SELECT 1 WHERE id = $1::uuid").has_value());   // not an array
    EXPECT_FALSE(array_parameters("SELECT $1").has_value());                      // no type
    EXPECT_FALSE(array_parameters("SELECT $1::numeric[]").has_value());           // not ours
    EXPECT_FALSE(array_parameters("SELECT $2::text[]").has_value());              // $1 missing
    EXPECT_FALSE(array_parameters("SELECT $1::text[], $1::uuid[]").has_value());  // two types
    EXPECT_FALSE(array_parameters("SELECT $1::int[], $2").has_value());
    EXPECT_EQ(array_parameters("SELECT 1"), std::optional<std::vector<T>>(std::vector<T>{}));
}

TEST(ArrayParametersTest, TheBatchStatementsTakeArraysOnly) {
    for (const Statement& statement : {stmt::kInsertInstances,
                                       stmt::kUpdateInstances,
                                       stmt::kCloseTasks,
                                       stmt::kCloseJobs,
                                       stmt::kCloseMessageSubscriptions,
                                       stmt::kCloseSignalSubscriptions,
                                       stmt::kInsertTasks,
                                       stmt::kInsertJobs,
                                       stmt::kInsertMessageSubscriptions,
                                       stmt::kInsertSignalSubscriptions,
                                       stmt::kInsertHistory,
                                       stmt::kInsertIncidents,
                                       stmt::kResolveIncidents,
                                       stmt::kCountOpenIncidents,
                                       stmt::kUpsertIdempotency,
                                       stmt::kClearStartJobs,
                                       stmt::kClearStartMessageSubscriptions,
                                       stmt::kClearStartSignalSubscriptions,
                                       stmt::kMarkStartEvents,
                                       stmt::kInsertOutbox,
                                       stmt::kDeleteOutbox}) {
        EXPECT_NO_THROW((void)array_parameters_of(statement)) << statement.name;
    }
    EXPECT_EQ(array_parameters_of(stmt::kInsertInstances).size(), 17u);
    EXPECT_EQ(array_parameters_of(stmt::kInsertInstances)[7], T::kBytea);  // the engine state
    EXPECT_THROW((void)array_parameters_of(stmt::kInstance), std::logic_error);
}

}  // namespace
}  // namespace pythmata::store::pg
