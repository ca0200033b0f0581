#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <pugixml.hpp>

#include "pythmata/bpmn/parser.hpp"

namespace pythmata::bpmn::detail {

inline constexpr std::string_view kBpmnNs = "http://www.omg.org/spec/BPMN/20100524/MODEL";
inline constexpr std::string_view kCamundaNs = "http://camunda.org/schema/1.0/bpmn";
inline constexpr std::string_view kZeebeNs = "http://camunda.org/schema/zeebe/1.0";
inline constexpr std::string_view kPythmataNs = "http://pythmata.org/schema/1.0/bpmn";

/// A namespace-aware, limit-checked view over a pugixml document. pugixml knows nothing about
/// namespaces, so the prefix bindings (xmlns, xmlns:p) in effect at every element are recorded
/// once while walking, and names are compared by (namespace URI, local name), never by prefix.
/// Not copyable or movable: the scope table points into itself.
class XmlDocument {
  public:
    XmlDocument();
    ~XmlDocument();
    XmlDocument(const XmlDocument&) = delete;
    XmlDocument& operator=(const XmlDocument&) = delete;

    /// Refuses DTDs and entity declarations, checks the size, parses without DOCTYPE or entity
    /// processing, then walks the tree checking depth and element count. All problems found are
    /// returned; on success the document is ready for the accessors below.
    [[nodiscard]] std::vector<Diagnostic> load(std::string_view xml, const ParseLimits& limits);

    /// The document element.
    [[nodiscard]] pugi::xml_node root() const;
    /// The namespace URI of an element (empty when its prefix is unbound or it has none).
    [[nodiscard]] std::string_view ns(pugi::xml_node element) const;
    /// The local part of an element or attribute name.
    [[nodiscard]] static std::string_view local(std::string_view qualified_name);
    [[nodiscard]] static std::string_view local(pugi::xml_node element) {
        return local(std::string_view{element.name()});
    }
    /// True when `element` is {uri}local_name.
    [[nodiscard]] bool is(pugi::xml_node element, std::string_view uri,
                          std::string_view local_name) const;
    /// The value of the namespaced attribute {uri}local_name on `element`, or empty.
    [[nodiscard]] std::string_view attribute(pugi::xml_node element, std::string_view uri,
                                             std::string_view local_name) const;
    /// True when `element` carries the namespaced attribute at all.
    [[nodiscard]] bool has_attribute(pugi::xml_node element, std::string_view uri,
                                     std::string_view local_name) const;
    /// The first child element {uri}local_name, or a null node.
    [[nodiscard]] pugi::xml_node child(pugi::xml_node element, std::string_view uri,
                                       std::string_view local_name) const;
    /// Every child element {uri}local_name, in document order.
    [[nodiscard]] std::vector<pugi::xml_node> children(pugi::xml_node element, std::string_view uri,
                                                       std::string_view local_name) const;
    /// The first descendant {uri}local_name (depth-first, document order), or a null node.
    [[nodiscard]] pugi::xml_node descendant(pugi::xml_node element, std::string_view uri,
                                            std::string_view local_name) const;
    /// The first element {uri}local_name under `element`'s bpmn:extensionElements (at any
    /// depth), or a null node.
    [[nodiscard]] pugi::xml_node extension(pugi::xml_node element, std::string_view uri,
                                           std::string_view local_name) const;

    /// The character data of an element (text and CDATA children joined), whitespace-trimmed.
    [[nodiscard]] static std::string text(pugi::xml_node element);

  private:
    struct Scope {
        const Scope* parent = nullptr;
        std::vector<std::pair<std::string, std::string>> bindings;  // prefix ("" = default), uri
    };

    [[nodiscard]] std::string_view resolve(pugi::xml_node element, std::string_view prefix) const;

    std::unique_ptr<pugi::xml_document> doc_;
    std::deque<Scope> scopes_;
    std::unordered_map<const void*, const Scope*> scope_of_;
};

/// Trims ASCII whitespace on both ends.
[[nodiscard]] std::string_view trim(std::string_view text);
/// Trims and drops a leading FEEL '=' marker (Zeebe expressions).
[[nodiscard]] std::string strip_feel(std::string_view text);

}  // namespace pythmata::bpmn::detail
