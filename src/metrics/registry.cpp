#include "pythmata/metrics/registry.hpp"

#include <sstream>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace pythmata::metrics {

Registry::Registry() : registry_(std::make_shared<prometheus::Registry>()) {}

Registry::~Registry() = default;

prometheus::Registry& Registry::prometheus() {
    return *registry_;
}

std::string Registry::render() const {
    std::ostringstream out;
    prometheus::TextSerializer{}.Serialize(out, registry_->Collect());
    return out.str();
}

}  // namespace pythmata::metrics
