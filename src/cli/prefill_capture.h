// Shared by `longsparse capture` and `longsparse profile`: load a model, tokenize a text file
// into one prompt, and run prefill with a capture hook that sees every layer's post-RoPE
// Q/K/V. The hook may stop the pass early (after the last layer it needs).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attn/attention.h"
#include "model/model_config.h"

namespace ls::cli {

struct PromptOptions {
  std::string model = "smollm2";
  std::string file;
  std::int64_t context = 0;  // 0: the model's trained context
  bool chat = false;
  bool truncate = false;     // keep the first `context` tokens of a longer text
  int threads = 0;           // 0: all cores
};

// The whole of a text file (-f), as bytes; a missing or unreadable file is a clear error.
std::string read_text(const std::string& path);

// Adds -m, -f, -c, --chat, --truncate, -t to a subcommand.
void add_prompt_options(CLI::App& app, PromptOptions& options);

struct CaptureRun {
  std::string model_path;
  ModelConfig config;
  std::int64_t tokens = 0;           // prompt length that went through prefill
  std::int64_t text_tokens = 0;      // the text's length before truncation
  double prefill_ms = 0.0;           // wall time of the (possibly stopped) prefill
};

// Receives (layer, input); returns false to stop the forward pass after this layer.
using LayerVisitor = std::function<bool(int layer, const AttnInput& in)>;

// Called once the model is loaded, before tokenizing: validates requested layers against the
// model and keeps what the visitor needs to know about it.
using ModelCheck = std::function<void(const std::string& model_path, const ModelConfig& config)>;

// Checks the options, loads the model, calls `check`, runs prefill and calls `visit` on every
// layer until it returns false.
CaptureRun run_prefill_capture(const PromptOptions& options, const ModelCheck& check, const LayerVisitor& visit);

}  // namespace ls::cli
