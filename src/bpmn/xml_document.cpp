#include "xml_document.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>

namespace pythmata::bpmn::detail {

namespace {

bool starts_with_ci(std::string_view text, std::size_t at, std::string_view word) {
    if (text.size() - at < word.size()) {
        return false;
    }
    for (std::size_t i = 0; i < word.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[at + i]);
        if (std::tolower(c) != std::tolower(static_cast<unsigned char>(word[i]))) {
            return false;
        }
    }
    return true;
}

// Any markup declaration that could define entities is refused on sight, before pugixml sees
// the text. This is deliberately conservative: "<!DOCTYPE" inside a comment is refused too.
std::string_view find_declaration(std::string_view xml) {
    for (std::size_t at = xml.find("<!"); at != std::string_view::npos;
         at = xml.find("<!", at + 2)) {
        if (starts_with_ci(xml, at + 2, "DOCTYPE")) {
            return "DOCTYPE";
        }
        if (starts_with_ci(xml, at + 2, "ENTITY")) {
            return "ENTITY";
        }
    }
    return {};
}

std::pair<std::size_t, std::size_t> line_and_column(std::string_view xml, std::ptrdiff_t offset) {
    const auto end = static_cast<std::size_t>(
        std::clamp<std::ptrdiff_t>(offset, 0, static_cast<std::ptrdiff_t>(xml.size())));
    std::size_t line = 1;
    std::size_t column = 1;
    for (std::size_t i = 0; i < end; ++i) {
        if (xml[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return {line, column};
}

}  // namespace

std::string_view trim(std::string_view text) {
    const auto is_space = [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    };
    while (!text.empty() && is_space(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && is_space(text.back())) {
        text.remove_suffix(1);
    }
    return text;
}

std::string strip_feel(std::string_view text) {
    text = trim(text);
    if (!text.empty() && text.front() == '=') {
        text = trim(text.substr(1));
    }
    return std::string{text};
}

XmlDocument::XmlDocument() = default;
XmlDocument::~XmlDocument() = default;

std::vector<Diagnostic> XmlDocument::load(std::string_view xml, const ParseLimits& limits) {
    std::vector<Diagnostic> errors;
    if (xml.size() > limits.max_document_bytes) {
        errors.push_back({"", "document too large: " + std::to_string(xml.size()) +
                                  " bytes, the limit is " +
                                  std::to_string(limits.max_document_bytes)});
        return errors;
    }
    if (auto what = find_declaration(xml); !what.empty()) {
        errors.push_back({"", "refused: the document contains a " + std::string{what} +
                                  " declaration; DTDs and entity declarations are not allowed "
                                  "(entity expansion and external entities are unsafe)"});
        return errors;
    }

    // No parse_doctype, parse_pi, parse_comments: declarations would be skipped, not expanded,
    // and they were refused above anyway. parse_escapes only decodes the five predefined
    // entities and character references.
    constexpr unsigned kOptions =
        pugi::parse_cdata | pugi::parse_escapes | pugi::parse_eol | pugi::parse_wconv_attribute;
    doc_ = std::make_unique<pugi::xml_document>();
    const pugi::xml_parse_result result =
        doc_->load_buffer(xml.data(), xml.size(), kOptions, pugi::encoding_utf8);
    if (!result) {
        const auto [line, column] = line_and_column(xml, result.offset);
        errors.push_back({"", "malformed XML at line " + std::to_string(line) + ", column " +
                                  std::to_string(column) + " (offset " +
                                  std::to_string(result.offset) + "): " + result.description()});
        return errors;
    }

    // Walk iteratively (a deep document must not overflow our stack), recording the namespace
    // scope of every element and enforcing the depth and element-count limits.
    struct Frame {
        pugi::xml_node node;
        const Scope* scope;
        std::size_t depth;
    };
    std::vector<Frame> stack;
    scopes_.push_back(Scope{nullptr, {{"xml", "http://www.w3.org/XML/1998/namespace"}}});
    stack.push_back({doc_->document_element(), &scopes_.back(), 1});
    std::size_t count = 0;
    while (!stack.empty()) {
        const Frame frame = stack.back();
        stack.pop_back();
        if (frame.depth > limits.max_depth) {
            errors.push_back({"", "document nested too deeply: more than " +
                                      std::to_string(limits.max_depth) + " levels"});
            return errors;
        }
        if (++count > limits.max_elements) {
            errors.push_back({"", "document has too many elements: more than " +
                                      std::to_string(limits.max_elements)});
            return errors;
        }
        const Scope* scope = frame.scope;
        std::vector<std::pair<std::string, std::string>> bindings;
        for (const pugi::xml_attribute attr : frame.node.attributes()) {
            const std::string_view name = attr.name();
            if (name == "xmlns") {
                bindings.emplace_back("", attr.value());
            } else if (name.substr(0, 6) == "xmlns:") {
                bindings.emplace_back(std::string{name.substr(6)}, attr.value());
            }
        }
        if (!bindings.empty()) {
            scopes_.push_back(Scope{scope, std::move(bindings)});
            scope = &scopes_.back();
        }
        scope_of_[frame.node.internal_object()] = scope;
        for (pugi::xml_node c = frame.node.last_child(); c; c = c.previous_sibling()) {
            if (c.type() == pugi::node_element) {
                stack.push_back({c, scope, frame.depth + 1});
            }
        }
    }
    return errors;
}

pugi::xml_node XmlDocument::root() const {
    return doc_ ? doc_->document_element() : pugi::xml_node{};
}

std::string_view XmlDocument::resolve(pugi::xml_node element, std::string_view prefix) const {
    const auto it = scope_of_.find(element.internal_object());
    if (it == scope_of_.end()) {
        return {};
    }
    for (const Scope* s = it->second; s != nullptr; s = s->parent) {
        for (auto b = s->bindings.rbegin(); b != s->bindings.rend(); ++b) {
            if (b->first == prefix) {
                return b->second;
            }
        }
    }
    return {};
}

std::string_view XmlDocument::local(std::string_view qualified_name) {
    const auto colon = qualified_name.find(':');
    return colon == std::string_view::npos ? qualified_name : qualified_name.substr(colon + 1);
}

std::string_view XmlDocument::ns(pugi::xml_node element) const {
    const std::string_view name = element.name();
    const auto colon = name.find(':');
    return resolve(element,
                   colon == std::string_view::npos ? std::string_view{} : name.substr(0, colon));
}

bool XmlDocument::is(pugi::xml_node element, std::string_view uri,
                     std::string_view local_name) const {
    return element.type() == pugi::node_element && local(element) == local_name &&
           ns(element) == uri;
}

std::string_view XmlDocument::attribute(pugi::xml_node element, std::string_view uri,
                                        std::string_view local_name) const {
    for (const pugi::xml_attribute attr : element.attributes()) {
        const std::string_view name = attr.name();
        const auto colon = name.find(':');
        // Unprefixed attributes are in no namespace (XML Namespaces 1.0, section 6.2).
        if (colon == std::string_view::npos || name.substr(colon + 1) != local_name) {
            continue;
        }
        const std::string_view prefix = name.substr(0, colon);
        if (prefix != "xmlns" && resolve(element, prefix) == uri) {
            return attr.value();
        }
    }
    return {};
}

bool XmlDocument::has_attribute(pugi::xml_node element, std::string_view uri,
                                std::string_view local_name) const {
    for (const pugi::xml_attribute attr : element.attributes()) {
        const std::string_view name = attr.name();
        const auto colon = name.find(':');
        if (colon != std::string_view::npos && name.substr(colon + 1) == local_name &&
            name.substr(0, colon) != "xmlns" && resolve(element, name.substr(0, colon)) == uri) {
            return true;
        }
    }
    return false;
}

pugi::xml_node XmlDocument::child(pugi::xml_node element, std::string_view uri,
                                  std::string_view local_name) const {
    for (const pugi::xml_node c : element.children()) {
        if (is(c, uri, local_name)) {
            return c;
        }
    }
    return {};
}

std::vector<pugi::xml_node> XmlDocument::children(pugi::xml_node element, std::string_view uri,
                                                  std::string_view local_name) const {
    std::vector<pugi::xml_node> out;
    for (const pugi::xml_node c : element.children()) {
        if (is(c, uri, local_name)) {
            out.push_back(c);
        }
    }
    return out;
}

pugi::xml_node XmlDocument::descendant(pugi::xml_node element, std::string_view uri,
                                       std::string_view local_name) const {
    // Depth is bounded by the limit checked in load(), so recursion is safe here.
    for (const pugi::xml_node c : element.children()) {
        if (c.type() != pugi::node_element) {
            continue;
        }
        if (is(c, uri, local_name)) {
            return c;
        }
        if (const pugi::xml_node found = descendant(c, uri, local_name)) {
            return found;
        }
    }
    return {};
}

pugi::xml_node XmlDocument::extension(pugi::xml_node element, std::string_view uri,
                                      std::string_view local_name) const {
    for (const pugi::xml_node ext : children(element, kBpmnNs, "extensionElements")) {
        if (const pugi::xml_node found = descendant(ext, uri, local_name)) {
            return found;
        }
    }
    return {};
}

std::string XmlDocument::text(pugi::xml_node element) {
    std::string out;
    for (const pugi::xml_node c : element.children()) {
        if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) {
            out += c.value();
        }
    }
    return std::string{trim(out)};
}

}  // namespace pythmata::bpmn::detail
