// Process memory accounting.
#pragma once

#include <cstdint>

namespace ls {

// Peak resident set size of this process in bytes (VmHWM), or 0 when unavailable.
std::int64_t peak_rss_bytes();
// Current resident set size in bytes (VmRSS), or 0 when unavailable.
std::int64_t current_rss_bytes();

}  // namespace ls
