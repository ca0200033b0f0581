#pragma once

#include <string>

namespace pythmata {

/// A random (version 4) UUID in its canonical lower-case text form. Thread-safe; uses a
/// per-thread generator seeded from std::random_device.
[[nodiscard]] std::string new_uuid();

/// True when `text` is a canonical 8-4-4-4-12 hex UUID.
[[nodiscard]] bool is_uuid(std::string_view text);

}  // namespace pythmata
