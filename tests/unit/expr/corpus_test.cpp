#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "pythmata/expr/expression.hpp"
#include "pythmata/expr/statements.hpp"

namespace pythmata::expr {
namespace {

namespace fs = std::filesystem;

std::string unescape_xml(std::string s) {
    const std::pair<const char*, const char*> entities[] = {
        {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}};
    for (const auto& [from, to] : entities) {
        for (std::size_t at = s.find(from); at != std::string::npos;
             at = s.find(from, at + std::strlen(to))) {
            s.replace(at, std::strlen(from), to);
        }
    }
    return s;
}

/// The text of an element body: a CDATA section verbatim, otherwise unescaped.
std::string element_text(const std::string& body) {
    const std::size_t open = body.find("<![CDATA[");
    if (open != std::string::npos) {
        const std::size_t close = body.find("]]>", open);
        return body.substr(open + 9, close == std::string::npos ? close : close - open - 9);
    }
    return unescape_xml(body);
}

struct Snippet {
    std::string file;
    std::string text;
};

/// Condition expressions and python script bodies of the public BPMN corpus. Models written
/// for JavaScript engines (bpmn-elements) are left out: their expressions call injected
/// JavaScript services that no BPMN engine outside their test suite has.
void collect(std::vector<Snippet>& conditions, std::vector<Snippet>& scripts) {
    const fs::path dir = PYTHMATA_CORPUS_DIR;
    const std::regex condition(R"(<(?:\w+:)?conditionExpression[^>]*>([\s\S]*?)</)");
    const std::regex script(R"(<(?:\w+:)?script>([\s\S]*?)</)");
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (entry.path().extension() != ".bpmn" || name.rfind("bpmn-elements__", 0) == 0) {
            continue;
        }
        std::ifstream in(entry.path());
        std::stringstream buf;
        buf << in.rdbuf();
        const std::string xml = buf.str();
        for (std::sregex_iterator it(xml.begin(), xml.end(), condition), end; it != end; ++it) {
            conditions.push_back({name, element_text((*it)[1].str())});
        }
        for (std::sregex_iterator it(xml.begin(), xml.end(), script), end; it != end; ++it) {
            scripts.push_back({name, element_text((*it)[1].str())});
        }
    }
}

TEST(Corpus, EveryConditionAndPythonScriptCompiles) {
    if (!fs::is_directory(PYTHMATA_CORPUS_DIR)) {
        GTEST_SKIP() << "BPMN corpus not found at " << PYTHMATA_CORPUS_DIR << "; skipped";
    }
    std::vector<Snippet> conditions;
    std::vector<Snippet> scripts;
    collect(conditions, scripts);
    EXPECT_GE(conditions.size(), 10u);
    EXPECT_GE(scripts.size(), 5u);
    for (const auto& c : conditions) {
        auto e = Expression::compile(c.text);
        EXPECT_TRUE(e.ok()) << c.file << ": " << c.text << " -> "
                            << (e.ok() ? "" : e.error().message);
    }
    for (const auto& s : scripts) {
        auto b = StatementBlock::compile(s.text);
        EXPECT_TRUE(b.ok()) << s.file << ": " << s.text << " -> "
                            << (b.ok() ? "" : b.error().message);
    }
}

}  // namespace
}  // namespace pythmata::expr
