#include <gtest/gtest.h>

#include "pythmata/http/router.hpp"

namespace pythmata::http {
namespace {

Handler named(std::string name) {
    return [name](const Request&, const PathParams&) {
        Response response;
        response.body = name;
        return response;
    };
}

Router sample() {
    Router router;
    router.add({"GET", "/api/v1/processes", Execution::kBlocking, named("list")});
    router.add({"POST", "/api/v1/processes", Execution::kBlocking, named("deploy")});
    router.add({"GET", "/api/v1/processes/{key}", Execution::kBlocking, named("latest")});
    router.add({"DELETE", "/api/v1/processes/{key}", Execution::kBlocking, named("delete")});
    router.add({"GET", "/api/v1/processes/{key}/versions/{version}", Execution::kBlocking,
                named("version")});
    router.add({"GET", "/api/v1/processes/stats", Execution::kInline, named("literal")});
    return router;
}

std::string run(const Match& match) {
    return match.route->handler({}, match.params).body;
}

TEST(Router, MatchesLiteralAndParameterSegments) {
    const Router router = sample();
    auto match = router.match("GET", "/api/v1/processes/Order%20Process/versions/3");
    ASSERT_TRUE(match) << match.error().message;
    EXPECT_EQ(run(*match), "version");
    EXPECT_EQ(match->params.get("key"), "Order Process");
    EXPECT_EQ(match->params.get("version"), "3");
    EXPECT_EQ(match->params.get("absent"), "");
}

TEST(Router, LiteralSegmentBeatsParameter) {
    const Router router = sample();
    auto literal = router.match("GET", "/api/v1/processes/stats");
    ASSERT_TRUE(literal);
    EXPECT_EQ(run(*literal), "literal");
    auto param = router.match("GET", "/api/v1/processes/other");
    ASSERT_TRUE(param);
    EXPECT_EQ(run(*param), "latest");
}

TEST(Router, UnknownPathIsNotFound) {
    const Router router = sample();
    auto match = router.match("GET", "/api/v1/nothing");
    ASSERT_FALSE(match);
    EXPECT_EQ(match.error().code, "NOT_FOUND");
    EXPECT_EQ(match.error().kind, ErrorKind::kNotFound);
    EXPECT_FALSE(router.match("GET", "/api/v1/processes/a/b/c/d"));
}

TEST(Router, WrongMethodIsMethodNotAllowedWithTheAllowedOnes) {
    const Router router = sample();
    auto match = router.match("PATCH", "/api/v1/processes/x");
    ASSERT_FALSE(match);
    EXPECT_EQ(match.error().code, "METHOD_NOT_ALLOWED");
    EXPECT_EQ(match.error().kind, ErrorKind::kMethodNotAllowed);
    const auto allow = match.error().context.at("allow");
    EXPECT_EQ(allow, nlohmann::json({"DELETE", "GET", "HEAD"}));
}

TEST(Router, HeadMatchesGetAndSlashesAreLenient) {
    const Router router = sample();
    auto match = router.match("HEAD", "/api/v1/processes/");
    ASSERT_TRUE(match);
    EXPECT_EQ(run(*match), "list");
}

TEST(Router, BadEscapeInASegmentIsABadRequest) {
    const Router router = sample();
    auto match = router.match("GET", "/api/v1/processes/%zz");
    ASSERT_FALSE(match);
    EXPECT_EQ(match.error().kind, ErrorKind::kInvalidArgument);
}

}  // namespace
}  // namespace pythmata::http
