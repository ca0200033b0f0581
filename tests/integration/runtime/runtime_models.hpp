#pragma once

// The small BPMN models the runtime integration tests deploy. Each is a function of its process
// id, so that a test can deploy two keys of the same shape.

#include <cstddef>
#include <string>

namespace pythmata::test::runtime::models {

inline std::string document(const std::string& body) {
    return R"(<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
             xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
             xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
             xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"
             xmlns:pythmata="http://pythmata.org/schema/1.0/bpmn"
             id="defs" targetNamespace="http://pythmata.test/runtime">
)" + body + "</definitions>\n";
}

/// start -> userTask `task_id` (candidate groups sales, audit) -> end. `marker` goes into the
/// documentation so that two otherwise equal documents are two versions.
inline std::string user_task(const std::string& key, const std::string& task_id = "review",
                             const std::string& marker = "") {
    return document(R"(  <process id=")" + key + R"(" name="Review" isExecutable="true">
    <documentation>)" +
                    marker + R"(</documentation>
    <startEvent id="start"/>
    <userTask id=")" +
                    task_id + R"(" name="Review order" camunda:candidateGroups="sales,audit"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef=")" +
                    task_id + R"("/>
    <sequenceFlow id="f2" sourceRef=")" +
                    task_id + R"(" targetRef="end"/>
  </process>
)");
}

/// start -> message catch "PaymentReceived" correlated by ${order_id} -> end.
inline std::string message_catch(const std::string& key) {
    return document(R"(  <message id="Msg_Paid" name="PaymentReceived"/>
  <process id=")" + key +
                    R"(" isExecutable="true">
    <startEvent id="start"/>
    <intermediateCatchEvent id="wait_payment" name="Payment received">
      <messageEventDefinition messageRef="Msg_Paid" pythmata:correlationKey="${order_id}"/>
    </intermediateCatchEvent>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="wait_payment"/>
    <sequenceFlow id="f2" sourceRef="wait_payment" targetRef="end"/>
  </process>
)");
}

/// start -> signal catch "GoSignal" -> end.
inline std::string signal_catch(const std::string& key) {
    return document(R"(  <signal id="Sig_Go" name="GoSignal"/>
  <process id=")" + key +
                    R"(" isExecutable="true">
    <startEvent id="start"/>
    <intermediateCatchEvent id="wait_signal">
      <signalEventDefinition signalRef="Sig_Go"/>
    </intermediateCatchEvent>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="wait_signal"/>
    <sequenceFlow id="f2" sourceRef="wait_signal" targetRef="end"/>
  </process>
)");
}

/// start -> intermediate timer `duration` -> end.
inline std::string timer_catch(const std::string& key, const std::string& duration = "PT1H") {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <intermediateCatchEvent id="wait_timer">
      <timerEventDefinition><timeDuration xsi:type="tFormalExpression">)" +
                    duration + R"(</timeDuration></timerEventDefinition>
    </intermediateCatchEvent>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="wait_timer"/>
    <sequenceFlow id="f2" sourceRef="wait_timer" targetRef="end"/>
  </process>
)");
}

/// start -> external service task (camunda:topic="charge-card") -> end, with an error boundary
/// for code DECLINED leading to a user task.
inline std::string charge_job(const std::string& key) {
    return document(R"(  <error id="Err_Declined" name="Declined" errorCode="DECLINED"/>
  <process id=")" + key +
                    R"(" isExecutable="true">
    <startEvent id="start"/>
    <serviceTask id="charge" name="Charge card" camunda:type="external" camunda:topic="charge-card"/>
    <boundaryEvent id="declined" attachedToRef="charge">
      <errorEventDefinition errorRef="Err_Declined"/>
    </boundaryEvent>
    <userTask id="handle_decline" name="Handle decline"/>
    <endEvent id="end"/>
    <endEvent id="end_declined"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="charge"/>
    <sequenceFlow id="f2" sourceRef="charge" targetRef="end"/>
    <sequenceFlow id="f3" sourceRef="declined" targetRef="handle_decline"/>
    <sequenceFlow id="f4" sourceRef="handle_decline" targetRef="end_declined"/>
  </process>
)");
}

/// start -> service task with zeebe:taskDefinition type="shipping" and a task header -> end.
inline std::string zeebe_job(const std::string& key) {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <serviceTask id="ship" name="Ship">
      <extensionElements>
        <zeebe:taskDefinition type="shipping" retries="3"/>
        <zeebe:taskHeaders><zeebe:header key="carrier" value="dhl"/></zeebe:taskHeaders>
      </extensionElements>
    </serviceTask>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="ship"/>
    <sequenceFlow id="f2" sourceRef="ship" targetRef="end"/>
  </process>
)");
}

/// start -> Lua script (doubled, lua_ran) -> Python script (plus_one, python_ran) -> end.
inline std::string scripts(const std::string& key) {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <scriptTask id="lua_step" name="Lua step" scriptFormat="lua">
      <script>doubled = amount * 2
lua_ran = true</script>
    </scriptTask>
    <scriptTask id="python_step" name="Python step" scriptFormat="python">
      <script>plus_one = doubled + 1
python_ran = True</script>
    </scriptTask>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="lua_step"/>
    <sequenceFlow id="f2" sourceRef="lua_step" targetRef="python_step"/>
    <sequenceFlow id="f3" sourceRef="python_step" targetRef="end"/>
  </process>
)");
}

/// start -> Lua script that fails unless the variable `ok` is true -> end.
inline std::string fragile_script(const std::string& key) {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <scriptTask id="fragile" name="Fragile" scriptFormat="lua">
      <script>if not ok then error("not ok yet") end
done = true</script>
    </scriptTask>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="fragile"/>
    <sequenceFlow id="f2" sourceRef="fragile" targetRef="end"/>
  </process>
)");
}

/// start -> call activity of `child_key` -> end.
inline std::string parent(const std::string& key, const std::string& child_key) {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <callActivity id="call_child" calledElement=")" +
                    child_key + R"("/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="call_child"/>
    <sequenceFlow id="f2" sourceRef="call_child" targetRef="end"/>
  </process>
)");
}

/// start -> exclusive gateway: amount > 100 to end_big, else (default) to end_small.
inline std::string route(const std::string& key) {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <exclusiveGateway id="is_big" default="to_small"/>
    <endEvent id="end_big"/>
    <endEvent id="end_small"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="is_big"/>
    <sequenceFlow id="to_big" sourceRef="is_big" targetRef="end_big">
      <conditionExpression xsi:type="tFormalExpression">${amount > 100}</conditionExpression>
    </sequenceFlow>
    <sequenceFlow id="to_small" sourceRef="is_big" targetRef="end_small"/>
  </process>
)");
}

/// start -> parallel split -> user tasks task_a, task_b -> parallel join -> end.
inline std::string fork_join(const std::string& key) {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <parallelGateway id="split"/>
    <userTask id="task_a" name="A"/>
    <userTask id="task_b" name="B"/>
    <parallelGateway id="join"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="split"/>
    <sequenceFlow id="f2" sourceRef="split" targetRef="task_a"/>
    <sequenceFlow id="f3" sourceRef="split" targetRef="task_b"/>
    <sequenceFlow id="f4" sourceRef="task_a" targetRef="join"/>
    <sequenceFlow id="f5" sourceRef="task_b" targetRef="join"/>
    <sequenceFlow id="f6" sourceRef="join" targetRef="end"/>
  </process>
)");
}

/// Message start event "OrderPlaced" -> user task handle_order -> end.
inline std::string message_start(const std::string& key) {
    return document(R"(  <message id="Msg_Order" name="OrderPlaced"/>
  <process id=")" + key +
                    R"(" isExecutable="true">
    <startEvent id="order_placed">
      <messageEventDefinition messageRef="Msg_Order"/>
    </startEvent>
    <userTask id="handle_order" name="Handle order"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="order_placed" targetRef="handle_order"/>
    <sequenceFlow id="f2" sourceRef="handle_order" targetRef="end"/>
  </process>
)");
}

/// Timer start event (cycle `cycle`) -> user task nightly_task -> end.
inline std::string timer_start(const std::string& key, const std::string& cycle = "R2/PT1H") {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="tick">
      <timerEventDefinition><timeCycle xsi:type="tFormalExpression">)" +
                    cycle + R"(</timeCycle></timerEventDefinition>
    </startEvent>
    <userTask id="nightly_task" name="Nightly"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="tick" targetRef="nightly_task"/>
    <sequenceFlow id="f2" sourceRef="nightly_task" targetRef="end"/>
  </process>
)");
}

/// Signal start event "Launch" -> user task launched -> end.
inline std::string signal_start(const std::string& key) {
    return document(R"(  <signal id="Sig_Launch" name="Launch"/>
  <process id=")" + key +
                    R"(" isExecutable="true">
    <startEvent id="on_launch">
      <signalEventDefinition signalRef="Sig_Launch"/>
    </startEvent>
    <userTask id="launched" name="Launched"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="on_launch" targetRef="launched"/>
    <sequenceFlow id="f2" sourceRef="launched" targetRef="end"/>
  </process>
)");
}

/// start -> message catch "Shipped", correlated by the message's zeebe:subscription on parcel ->
/// end.
inline std::string zeebe_subscription(const std::string& key) {
    return document(R"(  <message id="Msg_Shipped" name="Shipped">
    <extensionElements><zeebe:subscription correlationKey="=parcel"/></extensionElements>
  </message>
  <process id=")" + key +
                    R"(" isExecutable="true">
    <startEvent id="start"/>
    <intermediateCatchEvent id="wait_shipped">
      <messageEventDefinition messageRef="Msg_Shipped"/>
    </intermediateCatchEvent>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="wait_shipped"/>
    <sequenceFlow id="f2" sourceRef="wait_shipped" targetRef="end"/>
  </process>
)");
}

/// start -> receive task "Delivered" correlated by pythmata:correlationKey="${parcel}" -> end.
inline std::string receive_task(const std::string& key) {
    return document(R"(  <message id="Msg_Delivered" name="Delivered"/>
  <process id=")" + key +
                    R"(" isExecutable="true">
    <startEvent id="start"/>
    <receiveTask id="wait_delivered" messageRef="Msg_Delivered" pythmata:correlationKey="${parcel}"/>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="wait_delivered"/>
    <sequenceFlow id="f2" sourceRef="wait_delivered" targetRef="end"/>
  </process>
)");
}

/// start -> Lua script that makes a string variable of `bytes` bytes -> end.
inline std::string big_script(const std::string& key, std::size_t bytes) {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <scriptTask id="inflate" scriptFormat="lua">
      <script>blob = string.rep("x", )" +
                    std::to_string(bytes) + R"()</script>
    </scriptTask>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="inflate"/>
    <sequenceFlow id="f2" sourceRef="inflate" targetRef="end"/>
  </process>
)");
}

/// start -> user task `work` with an interrupting boundary timer PT1H to user task `escalate`.
inline std::string boundary_timer(const std::string& key) {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <userTask id="work" name="Work"/>
    <boundaryEvent id="too_slow" attachedToRef="work">
      <timerEventDefinition><timeDuration>PT1H</timeDuration></timerEventDefinition>
    </boundaryEvent>
    <userTask id="escalate" name="Escalate"/>
    <endEvent id="end"/>
    <endEvent id="end_escalated"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
    <sequenceFlow id="f3" sourceRef="too_slow" targetRef="escalate"/>
    <sequenceFlow id="f4" sourceRef="escalate" targetRef="end_escalated"/>
  </process>
)");
}

/// start -> event-based gateway: message "Answer" (key ${ticket}) to end_answered, or timer
/// PT1H to end_timed_out.
inline std::string event_gateway(const std::string& key) {
    return document(R"(  <message id="Msg_Answer" name="Answer"/>
  <process id=")" + key +
                    R"(" isExecutable="true">
    <startEvent id="start"/>
    <eventBasedGateway id="race"/>
    <intermediateCatchEvent id="answer">
      <messageEventDefinition messageRef="Msg_Answer" pythmata:correlationKey="${ticket}"/>
    </intermediateCatchEvent>
    <intermediateCatchEvent id="timeout">
      <timerEventDefinition><timeDuration>PT1H</timeDuration></timerEventDefinition>
    </intermediateCatchEvent>
    <endEvent id="end_answered"/>
    <endEvent id="end_timed_out"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="race"/>
    <sequenceFlow id="f2" sourceRef="race" targetRef="answer"/>
    <sequenceFlow id="f3" sourceRef="race" targetRef="timeout"/>
    <sequenceFlow id="f4" sourceRef="answer" targetRef="end_answered"/>
    <sequenceFlow id="f5" sourceRef="timeout" targetRef="end_timed_out"/>
  </process>
)");
}

/// start -> built-in http service (GET `url`, answer into `fetched`) -> built-in logger -> end.
inline std::string http_and_logger(const std::string& key, const std::string& url) {
    return document(R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <serviceTask id="fetch">
      <extensionElements>
        <pythmata:serviceTaskConfig taskName="http">
          <pythmata:properties>
            <pythmata:property name="url" value=")" +
                    url + R"("/>
            <pythmata:property name="method" value="GET"/>
            <pythmata:property name="timeout" value="5000"/>
            <pythmata:property name="output_variable" value="fetched"/>
          </pythmata:properties>
        </pythmata:serviceTaskConfig>
      </extensionElements>
    </serviceTask>
    <serviceTask id="log">
      <extensionElements>
        <pythmata:serviceTaskConfig taskName="logger">
          <pythmata:property name="level" value="info"/>
          <pythmata:property name="message" value="fetched ${fetched.status}"/>
        </pythmata:serviceTaskConfig>
      </extensionElements>
    </serviceTask>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="fetch"/>
    <sequenceFlow id="f2" sourceRef="fetch" targetRef="log"/>
    <sequenceFlow id="f3" sourceRef="log" targetRef="end"/>
  </process>
)");
}

/// start -> parallel split into `branches` user tasks branch_1..branch_n -> join -> end.
inline std::string wide_fork(const std::string& key, int branches) {
    std::string body = R"(  <process id=")" + key + R"(" isExecutable="true">
    <startEvent id="start"/>
    <parallelGateway id="split"/>
    <parallelGateway id="join"/>
    <endEvent id="end"/>
    <sequenceFlow id="f_start" sourceRef="start" targetRef="split"/>
    <sequenceFlow id="f_end" sourceRef="join" targetRef="end"/>
)";
    for (int i = 1; i <= branches; ++i) {
        const std::string n = std::to_string(i);
        body += R"(    <userTask id="branch_)" + n + R"("/>
    <sequenceFlow id="in_)" +
                n + R"(" sourceRef="split" targetRef="branch_)" + n + R"("/>
    <sequenceFlow id="out_)" +
                n + R"(" sourceRef="branch_)" + n + R"(" targetRef="join"/>
)";
    }
    return document(body + "  </process>\n");
}

}  // namespace pythmata::test::runtime::models
