#pragma once

#include <cstddef>
#include <string>

/// BPMN documents the HTTP and end-to-end tests deploy through the real server.
namespace pythmata::test::bpmn {

inline constexpr const char* kHeader =
    R"(<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs" targetNamespace="http://pythmata.test">
)";

/// start -> user task -> end, process id `key`, name `name`; `marker` goes into a documentation
/// element so that two otherwise equal documents differ (a new version).
inline std::string user_task_process(const std::string& key, const std::string& name = "Order",
                                     const std::string& marker = "") {
    return std::string(kHeader) + R"(  <process id=")" + key + R"(" name=")" + name +
           R"(" isExecutable="true">
    <documentation>)" +
           marker + R"(</documentation>
    <startEvent id="start"/>
    <userTask id="approve" name="Approve"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="approve"/>
    <sequenceFlow id="f2" sourceRef="approve" targetRef="end"/>
  </process>
</definitions>
)";
}

/// A collaboration of two executable processes and one non-executable one.
inline std::string collaboration(const std::string& first, const std::string& second,
                                 const std::string& not_executable) {
    auto process = [](const std::string& id, bool executable) {
        return R"(  <process id=")" + id + R"(" name=")" + id + R"(" isExecutable=")" +
               (executable ? "true" : "false") + R"(">
    <startEvent id=")" +
               id + R"(_start"/>
    <endEvent id=")" +
               id + R"(_end"/>
    <sequenceFlow id=")" +
               id + R"(_f" sourceRef=")" + id + R"(_start" targetRef=")" + id + R"(_end"/>
  </process>
)";
    };
    return std::string(kHeader) + R"(  <collaboration id="collab">
    <participant id="p1" processRef=")" +
           first + R"("/>
    <participant id="p2" processRef=")" +
           second + R"("/>
  </collaboration>
)" + process(first, true) +
           process(second, true) + process(not_executable, false) + "</definitions>\n";
}

/// A process whose sequence flow `flow_id` points at an element that does not exist.
inline std::string dangling_flow(const std::string& key, const std::string& flow_id) {
    return std::string(kHeader) + R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <endEvent id="end"/>
    <sequenceFlow id=")" +
           flow_id + R"(" sourceRef="start" targetRef="nowhere"/>
  </process>
</definitions>
)";
}

/// The "billion laughs" entity bomb around a valid-looking process.
inline std::string billion_laughs(const std::string& key) {
    return R"(<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs" targetNamespace="t">
  <process id=")" +
           key + R"(" name="&lol9;" isExecutable="true">
    <startEvent id="start"/>
  </process>
</definitions>
)";
}

/// An external entity that would read a local file into the process name.
inline std::string external_entity(const std::string& key) {
    return R"(<?xml version="1.0"?>
<!DOCTYPE definitions [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs" targetNamespace="t">
  <process id=")" +
           key + R"(" name="&secret;" isExecutable="true">
    <startEvent id="start"/>
  </process>
</definitions>
)";
}

/// A document type declaration with no entities at all (refused too: no DTDs).
inline std::string plain_doctype(const std::string& key) {
    return R"(<?xml version="1.0"?>
<!DOCTYPE definitions>
)" + std::string(kHeader).substr(std::string(kHeader).find('\n') + 1) +
           R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
  </process>
</definitions>
)";
}

/// A valid process with `depth` nested extensionElements-like elements inside its documentation.
inline std::string deeply_nested(const std::string& key, std::size_t depth) {
    std::string nest;
    for (std::size_t i = 0; i < depth; ++i) {
        nest += "<x:n>";
    }
    for (std::size_t i = 0; i < depth; ++i) {
        nest += "</x:n>";
    }
    return std::string(kHeader) + R"(  <process id=")" + key + R"(" isExecutable="true">
    <extensionElements xmlns:x="urn:x">)" +
           nest + R"(</extensionElements>
    <startEvent id="start"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="end"/>
  </process>
</definitions>
)";
}

/// start -> a Lua script task that loops until the script limits stop it -> end: a request
/// that starts it stays busy in the server for about script_timeout_ms.
inline std::string spinning_script(const std::string& key) {
    return std::string(kHeader) + R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <scriptTask id="spin" scriptFormat="lua"><script>local i = 0 while true do i = i + 1 end</script></scriptTask>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="spin"/>
    <sequenceFlow id="f2" sourceRef="spin" targetRef="end"/>
  </process>
</definitions>
)";
}

/// A valid process padded with a documentation element to at least `bytes` bytes.
inline std::string padded_process(const std::string& key, std::size_t bytes) {
    const std::string base = user_task_process(key);
    const std::size_t pad = bytes > base.size() ? bytes - base.size() : 0;
    return user_task_process(key, "Order", std::string(pad, 'p'));
}

}  // namespace pythmata::test::bpmn
