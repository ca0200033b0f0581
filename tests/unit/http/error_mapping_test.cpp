#include "pythmata/http/error_mapping.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

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

/// Makes the default logger write into a string for the test's lifetime.
class CapturedLog {
  public:
    CapturedLog() : previous_(spdlog::default_logger()) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
        sink->set_pattern("%l %v");
        spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
    }
    ~CapturedLog() { spdlog::set_default_logger(previous_); }
    CapturedLog(const CapturedLog&) = delete;
    CapturedLog& operator=(const CapturedLog&) = delete;
    [[nodiscard]] std::string text() const { return out_.str(); }

  private:
    std::shared_ptr<spdlog::logger> previous_;
    std::ostringstream out_;
};

std::size_t lines(const std::string& text) {
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(ErrorMapping, ServerErrorsAreLoggedWithTheirCauseAtMostOncePerCodePerSecond) {
    CapturedLog log;
    // The cause the body hides is what an operator needs: here, a commit whose outcome is
    // unknown. A burst of the same code is one line.
    const Error lost = Error::unavailable("TEST_LOST_COMMIT", "the database is unavailable",
                                          "commit outcome unknown: connection lost\n", 1);
    for (int i = 0; i < 50; ++i) {
        EXPECT_EQ(error_response(lost).status, 503);
    }
    EXPECT_EQ(lines(log.text()), 1u) << log.text();
    EXPECT_NE(
        log.text().find("warning 503 TEST_LOST_COMMIT: commit outcome unknown: connection lost"),
        std::string::npos)
        << log.text();
    // Other codes have their own line; a 500 is an error; a 4xx is not logged.
    Error bug = Error::internal_error("TEST bug:\n\tsecret detail");  // one line in the log
    bug.code = "TEST_INTERNAL";  // a code of its own: other tests answer INTERNAL this second
    EXPECT_EQ(error_response(bug).status, 500);
    EXPECT_NE(log.text().find("error 500 TEST_INTERNAL: TEST bug:  secret detail"),
              std::string::npos)
        << log.text();
    EXPECT_EQ(error_response(Error::invalid("TEST_BAD", "bad", {})).status, 422);
    EXPECT_EQ(log.text().find("TEST_BAD"), std::string::npos) << log.text();
    EXPECT_EQ(lines(log.text()), 2u) << log.text();
    // A second later, the next answer of the first code logs and counts the ones left out.
    std::this_thread::sleep_for(std::chrono::milliseconds(1050));
    EXPECT_EQ(error_response(lost).status, 503);
    EXPECT_EQ(lines(log.text()), 3u) << log.text();
    EXPECT_NE(log.text().find("connection lost (50 answers of this code since the last line)"),
              std::string::npos)
        << log.text();
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
