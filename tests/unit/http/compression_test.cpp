#include <gtest/gtest.h>

#include <string>

#include "pythmata/http/compression.hpp"

namespace pythmata::http {
namespace {

TEST(Compression, AcceptEncodingParsing) {
    EXPECT_TRUE(accepts_gzip("gzip"));
    EXPECT_TRUE(accepts_gzip("deflate, gzip;q=0.5, br"));
    EXPECT_TRUE(accepts_gzip("*"));
    EXPECT_TRUE(accepts_gzip("GZIP"));
    EXPECT_FALSE(accepts_gzip("gzip;q=0"));
    EXPECT_FALSE(accepts_gzip("*, gzip;q=0"));
    EXPECT_FALSE(accepts_gzip("br, deflate"));
    EXPECT_FALSE(accepts_gzip(""));
    EXPECT_FALSE(accepts_gzip("identity"));
}

TEST(Compression, CompressibleTypes) {
    EXPECT_TRUE(compressible("application/json"));
    EXPECT_TRUE(compressible("text/plain; version=0.0.4; charset=utf-8"));
    EXPECT_TRUE(compressible("application/problem+json"));
    EXPECT_FALSE(compressible("image/png"));
    EXPECT_FALSE(compressible("application/octet-stream"));
}

TEST(Compression, RoundTripShrinksRepetitiveJson) {
    std::string body = "{\"items\":[";
    for (int i = 0; i < 500; ++i)
        body += R"({"id":"abc","status":"RUNNING"},)";
    body += "{}]}";
    auto zipped = gzip_compress(body);
    ASSERT_TRUE(zipped);
    EXPECT_LT(zipped->size(), body.size() / 5);
    EXPECT_EQ(static_cast<unsigned char>((*zipped)[0]), 0x1f);  // gzip magic
    EXPECT_EQ(static_cast<unsigned char>((*zipped)[1]), 0x8b);
    EXPECT_EQ(gzip_decompress(*zipped), body);
}

TEST(Compression, DecompressRefusesGarbageTruncationAndBombs) {
    EXPECT_FALSE(gzip_decompress("not gzip at all"));
    auto zipped = gzip_compress(std::string(100000, 'a'));
    ASSERT_TRUE(zipped);
    EXPECT_FALSE(gzip_decompress(zipped->substr(0, zipped->size() / 2)));
    EXPECT_FALSE(gzip_decompress(*zipped, 1000));
    EXPECT_TRUE(gzip_decompress(*zipped, 100000));
}

}  // namespace
}  // namespace pythmata::http
