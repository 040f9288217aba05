// Resolves the `-m` argument of every command: a short name of a cached default model
// ("smollm2") or a path to a GGUF file.
#pragma once

#include <string>

namespace ls {

// The model cache directory: $LONGSPARSE_MODELS, else ~/.cache/longsparse/models.
std::string model_cache_dir();

// "smollm2" → <cache>/SmolLM2-135M-Instruct.Q4_1.gguf; anything else is taken as a path.
// Throws ls::Error when the file does not exist; for a known name the message says to run
// `scripts/fetch-model <name>`.
std::string resolve_model_path(const std::string& name_or_path);

}  // namespace ls
