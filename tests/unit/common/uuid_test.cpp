#include "pythmata/common/uuid.hpp"

#include <array>
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

TEST(Uuid, BytesAreTheSixteenBytesOfTheTextInEitherCase) {
    const std::array<unsigned char, 16> expected = {0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3,
                                                    0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0xff};
    EXPECT_EQ(uuid_bytes("123e4567-e89b-12d3-a456-4266141740ff"), expected);
    EXPECT_EQ(uuid_bytes("123E4567-E89B-12D3-A456-4266141740FF"), expected);
    EXPECT_FALSE(uuid_bytes("123e4567e89b12d3a4564266141740ff").has_value());
    EXPECT_FALSE(uuid_bytes("123e4567-e89b-12d3-a456-4266141740fg").has_value());
    EXPECT_FALSE(uuid_bytes("").has_value());
    const std::string made = new_uuid();
    const auto bytes = uuid_bytes(made);
    ASSERT_TRUE(bytes.has_value());
    EXPECT_EQ((*bytes)[6] >> 4, 4);  // version 4, as the text says
}

}  // namespace
}  // namespace pythmata
