#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace pythmata {

/// A random (version 4) UUID in its canonical lower-case text form. Thread-safe; uses a
/// per-thread generator seeded from std::random_device.
[[nodiscard]] std::string new_uuid();

/// True when `text` is a canonical 8-4-4-4-12 hex UUID.
[[nodiscard]] bool is_uuid(std::string_view text);

/// The 16 bytes of a canonical 8-4-4-4-12 hex UUID (either case), or nullopt for anything else.
[[nodiscard]] std::optional<std::array<unsigned char, 16>> uuid_bytes(std::string_view text);

}  // namespace pythmata
