// Model name → file resolution, shared by `info`, `run`, `capture` and the tests.
#include "model/model_path.h"

#include <sys/stat.h>

#include <cstdlib>
#include <string_view>

#include "core/error.h"

namespace ls {
namespace {

struct KnownModel {
  std::string_view name;
  std::string_view file;
};

// Names scripts/fetch-model knows, with the file it puts in the cache.
constexpr KnownModel kKnownModels[] = {
    {"smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"},
    {"gemma3", "gemma-3-270m-Q4_K_M.gguf"},
};

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

std::string model_cache_dir() {
  if (const char* dir = std::getenv("LONGSPARSE_MODELS"); dir && *dir) return dir;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/longsparse/models";
}

std::string resolve_model_path(const std::string& name_or_path) {
  LS_CHECK(!name_or_path.empty(), "no model given: pass -m smollm2 or -m path/to/model.gguf");
  for (const KnownModel& known : kKnownModels) {
    if (name_or_path != known.name) continue;
    const std::string path = model_cache_dir() + "/" + std::string(known.file);
    LS_CHECK(is_regular_file(path),
             "model '{}' is not in the cache ({} is missing); fetch it with "
             "`scripts/fetch-model {}`",
             known.name, path, known.name);
    return path;
  }
  if (is_regular_file(name_or_path)) return name_or_path;
  const bool looks_like_path = name_or_path.find('/') != std::string::npos ||
                               name_or_path.ends_with(".gguf");
  LS_CHECK(!looks_like_path,
           "model file '{}' does not exist (the default model is fetched with "
           "`scripts/fetch-model smollm2` and then named with -m smollm2)",
           name_or_path);
  std::string names;
  for (const KnownModel& known : kKnownModels) {
    names += (names.empty() ? "" : ", ") + std::string(known.name);
  }
  fail("model '{}' is neither a file nor a known model name ({}); known models are fetched with "
       "`scripts/fetch-model smollm2`",
       name_or_path, names);
}

}  // namespace ls
