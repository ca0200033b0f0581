#include <string>

#include <gtest/gtest.h>

#include "pythmata/bpmn/parser.hpp"

namespace pythmata::bpmn {
namespace {

constexpr const char* kMinimal = R"(<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <process id="p" isExecutable="true">
    <startEvent id="s"/><endEvent id="e"/>
    <sequenceFlow id="f" sourceRef="s" targetRef="e"/>
  </process>
</definitions>)";

std::string all_messages(const std::vector<Diagnostic>& diagnostics) {
    std::string out;
    for (const Diagnostic& d : diagnostics) {
        out += d.message + "\n";
    }
    return out;
}

TEST(ParserSecurity, MinimalDocumentParses) {
    const auto r = parse(kMinimal);
    ASSERT_TRUE(r.ok()) << all_messages(r.error());
}

TEST(ParserSecurity, RefusesBillionLaughsBeforeExpandingAnything) {
    std::string xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n";
    for (int i = 1; i <= 9; ++i) {
        xml += "<!ENTITY lol" + std::to_string(i) + " \"";
        for (int j = 0; j < 10; ++j) {
            xml += "&lol" + (i == 1 ? std::string{} : std::to_string(i - 1)) + ";";
        }
        xml += "\">\n";
    }
    xml +=
        "]>\n<definitions xmlns=\"http://www.omg.org/spec/BPMN/20100524/MODEL\">"
        "<process id=\"p\" name=\"&lol9;\"/></definitions>";
    const auto r = parse(xml);
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.error().size(), 1u);
    EXPECT_NE(r.error()[0].message.find("DOCTYPE"), std::string::npos) << r.error()[0].message;
    EXPECT_LT(r.error()[0].message.size(), 300u);
}

TEST(ParserSecurity, RefusesExternalEntityPointingAtLocalFile) {
    const std::string xml = R"(<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <process id="p" name="&xxe;" isExecutable="true"><startEvent id="s"/></process>
</definitions>)";
    const auto r = parse(xml);
    ASSERT_FALSE(r.ok());
    const std::string messages = all_messages(r.error());
    EXPECT_NE(messages.find("DOCTYPE"), std::string::npos) << messages;
    EXPECT_EQ(messages.find("root:"), std::string::npos) << "file content leaked: " << messages;
}

TEST(ParserSecurity, RefusesLowerCaseDoctypeAndBareEntityDeclarations) {
    EXPECT_FALSE(parse(std::string{"<!doctype definitions>"} + kMinimal).ok());
    const std::string bare = std::string{kMinimal}.insert(0, "<!ENTITY x \"y\">");
    const auto r = parse(bare);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error()[0].message.find("ENTITY"), std::string::npos);
}

TEST(ParserSecurity, LeavesUndeclaredEntityReferencesUnexpanded) {
    const std::string xml = R"(<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <process id="p" name="&xxe;&amp;" isExecutable="true">
    <startEvent id="s"/><endEvent id="e"/><sequenceFlow id="f" sourceRef="s" targetRef="e"/>
  </process>
</definitions>)";
    const auto r = parse(xml);
    ASSERT_TRUE(r.ok()) << all_messages(r.error());
    EXPECT_EQ(r->definitions.processes[0].name, "&xxe;&");
}

TEST(ParserSecurity, RefusesDocumentsOverTheSizeLimitBeforeParsing) {
    ParseLimits limits;
    limits.max_document_bytes = 100;
    const auto r = parse(kMinimal, limits);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error()[0].message.find("too large"), std::string::npos) << r.error()[0].message;
    limits.max_document_bytes = std::string_view{kMinimal}.size();
    EXPECT_TRUE(parse(kMinimal, limits).ok());
}

TEST(ParserSecurity, RefusesNestingTenThousandLevelsDeep) {
    std::string xml = "<definitions xmlns=\"http://www.omg.org/spec/BPMN/20100524/MODEL\">";
    for (int i = 0; i < 10'000; ++i) {
        xml += "<extensionElements>";
    }
    for (int i = 0; i < 10'000; ++i) {
        xml += "</extensionElements>";
    }
    xml += "</definitions>";
    const auto r = parse(xml);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error()[0].message.find("nested too deeply"), std::string::npos)
        << r.error()[0].message;
}

TEST(ParserSecurity, RefusesMoreThanOneHundredThousandElements) {
    std::string xml =
        "<definitions xmlns=\"http://www.omg.org/spec/BPMN/20100524/MODEL\">"
        "<process id=\"p\" isExecutable=\"true\">";
    for (int i = 0; i < 100'001; ++i) {
        xml += "<task id=\"t" + std::to_string(i) + "\"/>";
    }
    xml += "</process></definitions>";
    const auto r = parse(xml);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error()[0].message.find("too many elements"), std::string::npos)
        << r.error()[0].message;
}

TEST(ParserSecurity, ReportsMalformedXmlWithLineAndColumn) {
    const std::string xml =
        "<definitions xmlns=\"http://www.omg.org/spec/BPMN/20100524/MODEL\">\n"
        "  <process id=\"p\">\n"
        "    <task id=\"t\">\n"
        "  </process>\n"
        "</definitions>\n";
    const auto r = parse(xml);
    ASSERT_FALSE(r.ok());
    const std::string& m = r.error()[0].message;
    EXPECT_NE(m.find("malformed XML"), std::string::npos) << m;
    EXPECT_NE(m.find("line 4"), std::string::npos) << m;
}

TEST(ParserSecurity, RefusesEmptyAndNonXmlInput) {
    EXPECT_FALSE(parse("").ok());
    EXPECT_FALSE(parse("not xml at all").ok());
    EXPECT_FALSE(parse("{\"json\": true}").ok());
}

}  // namespace
}  // namespace pythmata::bpmn
