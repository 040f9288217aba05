// `longsparse capture -m MODEL -f FILE [-c CTX] [--chat] [--truncate] --layers L1,L2 --out DIR`:
// runs a text through prefill and saves the post-RoPE Q/K/V of the chosen layers as .npy files,
// so methods can be measured on real attention inputs (`bench attention --qkv`) and in Python.
//   DIR/manifest.json                 the run: model, text, tokens, layers
//   DIR/layer<L>/{q,k,v}.npy          [heads][n][head_dim], [kv_heads][n][head_dim] (x2), float32
//   DIR/layer<L>/manifest.json        the layer's shape, softmax scale and RoPE base
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/prefill_capture.h"
#include "core/error.h"
#include "core/npy.h"
#include "methods/policy.h"

namespace ls::cli {
namespace {

struct CaptureOptions {
  PromptOptions prompt;
  std::string layers;
  std::string out;
};

void write_json(const std::filesystem::path& path, const nlohmann::ordered_json& json) {
  std::ofstream file(path);
  LS_CHECK(file.good(), "cannot write '{}'", path.string());
  file << json.dump(2) << "\n";
  LS_CHECK(file.good(), "error while writing '{}'", path.string());
}

void capture(const CaptureOptions& o) {
  LS_CHECK(!o.out.empty(), "give the output directory with --out DIR");
  const std::vector<int> layers = parse_layer_list(o.layers);
  LS_CHECK(!layers.empty(), "--layers names no layer");
  const std::filesystem::path out(o.out);
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  LS_CHECK(!ec && std::filesystem::is_directory(out), "cannot create output directory '{}': {}", o.out,
           ec ? ec.message() : "not a directory");

  const std::string source = std::filesystem::absolute(o.prompt.file).string();
  std::string model_path;
  ModelConfig config;
  const auto check = [&](const std::string& path, const ModelConfig& c) {
    for (int layer : layers)
      LS_CHECK(layer < c.layers, "layer {} does not exist: the model has layers 0..{}", layer, c.layers - 1);
    model_path = path;
    config = c;
  };
  nlohmann::ordered_json layer_entries = nlohmann::ordered_json::array();
  std::int64_t tokens = 0;
  const CaptureRun run = run_prefill_capture(o.prompt, check, [&](int layer, const AttnInput& in) {
    if (std::binary_search(layers.begin(), layers.end(), layer)) {
      const AttnShape& s = in.shape;
      const std::filesystem::path dir = out / fmt::format("layer{}", layer);
      std::filesystem::create_directories(dir, ec);
      LS_CHECK(!ec, "cannot create '{}': {}", dir.string(), ec.message());
      write_npy((dir / "q.npy").string(), in.q, {s.heads, s.n_q, s.dim});
      write_npy((dir / "k.npy").string(), in.k, {s.kv_heads, s.n_k, s.dim});
      write_npy((dir / "v.npy").string(), in.v, {s.kv_heads, s.n_k, s.dim});
      tokens = s.n_k;
      write_json(dir / "manifest.json", {
                                            {"format", "longsparse-qkv-capture"},
                                            {"version", 1},
                                            {"layer", layer},
                                            {"tokens", s.n_k},
                                            {"heads", s.heads},
                                            {"kv_heads", s.kv_heads},
                                            {"head_dim", s.dim},
                                            {"softmax_scale", s.softmax_scale()},
                                            {"window", s.window},
                                            {"files", {{"q", "q.npy"}, {"k", "k.npy"}, {"v", "v.npy"}}},
                                            {"model_path", model_path},
                                            {"model_name", config.name},
                                            {"rope_theta", config.rope_theta},
                                            {"rope_dims", config.rope_dims},
                                            {"source", source},
                                            {"chat", o.prompt.chat},
                                        });
      layer_entries.push_back({{"layer", layer}, {"dir", dir.filename().string()}});
    }
    return layer < layers.back();
  });

  nlohmann::ordered_json manifest = {
      {"format", "longsparse-qkv-capture"},
      {"version", 1},
      {"model_path", run.model_path},
      {"model_name", run.config.name},
      {"model_layers", run.config.layers},
      {"source", source},
      {"chat", o.prompt.chat},
      {"tokens", tokens},
      {"text_tokens", run.text_tokens},
      {"truncated", run.text_tokens > tokens},
      {"heads", run.config.heads},
      {"kv_heads", run.config.kv_heads},
      {"head_dim", run.config.head_dim},
      {"rope_theta", run.config.rope_theta},
      {"layers", layer_entries},
  };
  write_json(out / "manifest.json", manifest);
  std::fprintf(stderr, "captured %zu layer(s) of %lld tokens from %s into %s (prefill %.0f ms)\n", layers.size(),
               (long long)tokens, run.config.name.c_str(), o.out.c_str(), run.prefill_ms);
}

void setup_capture(CLI::App& app) {
  auto o = std::make_shared<CaptureOptions>();
  add_prompt_options(app, o->prompt);
  app.add_option("--layers", o->layers, "layers to save: 2,15,28 or ranges 0-3")->required();
  app.add_option("--out", o->out, "output directory")->required();
  app.callback([o] { capture(*o); });
}

}  // namespace

LS_REGISTER_COMMAND(capture, "Save post-RoPE Q/K/V of chosen layers of a prefill as .npy files", setup_capture);

}  // namespace ls::cli
