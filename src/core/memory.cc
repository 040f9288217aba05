#include "core/memory.h"

#include <cstdio>
#include <cstring>

namespace ls {

namespace {
std::int64_t read_status_kb(const char* key) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  std::int64_t kb = 0;
  std::size_t key_len = std::strlen(key);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, key, key_len) == 0) {
      long long value = 0;
      if (std::sscanf(line + key_len, "%lld", &value) == 1) kb = value;
      break;
    }
  }
  std::fclose(f);
  return kb;
}
}  // namespace

std::int64_t peak_rss_bytes() { return read_status_kb("VmHWM:") * 1024; }
std::int64_t current_rss_bytes() { return read_status_kb("VmRSS:") * 1024; }

}  // namespace ls
