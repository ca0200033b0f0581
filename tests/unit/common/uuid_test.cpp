#include "pythmata/common/uuid.hpp"

#include <set>

#include <gtest/gtest.h>

namespace pythmata {
namespace {

TEST(Uuid, NewUuidsAreCanonicalVersion4AndDistinct) {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        const auto u = new_uuid();
        ASSERT_TRUE(is_uuid(u)) << u;
        EXPECT_EQ(u[14], '4');
        EXPECT_TRUE(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b');
        seen.insert(u);
    }
    EXPECT_EQ(seen.size(), 1000u);
}

TEST(Uuid, RecognisesOnlyCanonicalText) {
    EXPECT_TRUE(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
    EXPECT_FALSE(is_uuid("123e4567e89b12d3a456426614174000"));
    EXPECT_FALSE(is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
    EXPECT_FALSE(is_uuid("../../etc/passwd"));
}

}  // namespace
}  // namespace pythmata
