#include "pythmata/http/error_mapping.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace pythmata::http {
namespace {

TEST(ErrorMapping, MapsEveryKindToItsStatus) {
    EXPECT_EQ(status_for(ErrorKind::kInvalidArgument), 400);
    EXPECT_EQ(status_for(ErrorKind::kUnauthorized), 401);
    EXPECT_EQ(status_for(ErrorKind::kForbidden), 403);
    EXPECT_EQ(status_for(ErrorKind::kNotFound), 404);
    EXPECT_EQ(status_for(ErrorKind::kConflict), 409);
    EXPECT_EQ(status_for(ErrorKind::kTooLarge), 413);
    EXPECT_EQ(status_for(ErrorKind::kUnsupportedMedia), 415);
    EXPECT_EQ(status_for(ErrorKind::kInvalid), 422);
    EXPECT_EQ(status_for(ErrorKind::kOverloaded), 503);
    EXPECT_EQ(status_for(ErrorKind::kUnavailable), 503);
    EXPECT_EQ(status_for(ErrorKind::kInternal), 500);
}

TEST(ErrorMapping, BodyCarriesDetailCodeAndContext) {
    auto error = Error::invalid("INVALID_BPMN", "bad document",
                                {{"errors", {{{"element_id", "t1"}, {"message", "x"}}}}});
    const Response response = error_response(error);
    EXPECT_EQ(response.status, 422);
    const auto body = nlohmann::json::parse(response.body);
    EXPECT_EQ(body["detail"], "bad document");
    EXPECT_EQ(body["code"], "INVALID_BPMN");
    EXPECT_EQ(body["context"]["errors"][0]["element_id"], "t1");
    EXPECT_EQ(response.header("content-type"), "application/json");
}

TEST(ErrorMapping, UnavailableCarriesRetryAfter) {
    const Response response =
        error_response(Error::unavailable("DB_UNAVAILABLE", "database down", "conn refused", 7));
    EXPECT_EQ(response.status, 503);
    EXPECT_EQ(response.header("Retry-After"), "7");
    EXPECT_EQ(response.body.find("conn refused"), std::string::npos);
}

TEST(ErrorMapping, InternalErrorHidesItsDetails) {
    const Response response = error_response(Error::internal_error("segfault in foo: secret"));
    EXPECT_EQ(response.status, 500);
    EXPECT_EQ(response.body.find("secret"), std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(response.body)["code"], "INTERNAL");
}

TEST(ErrorMapping, OversizedHeadersAre431) {
    Error headers = Error::too_large("HEADERS_TOO_LARGE", "big");
    headers.kind = ErrorKind::kHeadersTooLarge;
    EXPECT_EQ(error_response(headers).status, 431);
    EXPECT_EQ(error_response(Error::too_large("BODY_TOO_LARGE", "big")).status, 413);
}

TEST(ErrorMapping, MethodNotAllowedListsAllowedMethods) {
    Error error{ErrorKind::kMethodNotAllowed, "METHOD_NOT_ALLOWED", "no", {}, {}, 1};
    error.context = {{"allow", {"GET", "PUT"}}};
    const Response response = error_response(error);
    EXPECT_EQ(response.status, 405);
    EXPECT_EQ(response.header("Allow"), "GET, PUT");
}

}  // namespace
}  // namespace pythmata::http
