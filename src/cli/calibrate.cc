// `longsparse calibrate -m MODEL -f calibration.txt [-c 4096] [--channels 8] -o channels.json`:
// the offline calibration of the double-sparsity decode selector (methods/decode/
// double_sparsity.h). Dense prefill runs the first `-c` tokens of the text; for every layer the
// capture hook accumulates, per KV head and channel, the mean |q_c·k_c| of each token with its
// own key over the group's query heads (Double Sparsity's "qk" outlier criterion), and keeps
// the `--channels` largest channels of each head, largest first.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/prefill_capture.h"
#include "core/error.h"
#include "methods/decode/double_sparsity.h"

namespace ls::cli {
namespace {

struct CalibrateOptions {
  PromptOptions prompt;
  std::string out;
  int channels = 8;
  bool quiet = false;
};

void calibrate(const CalibrateOptions& o) {
  LS_CHECK(o.prompt.context > 0, "-c must be positive, got {}", o.prompt.context);
  LS_CHECK(o.channels > 0, "--channels must be positive, got {}", o.channels);
  const std::filesystem::path out_dir = std::filesystem::absolute(o.out).parent_path();
  LS_CHECK(std::filesystem::is_directory(out_dir), "cannot write '{}': directory '{}' does not exist", o.out,
           out_dir.string());
  LabelChannels labels;
  labels.channels = o.channels;
  int layers = 0;
  const CaptureRun run = run_prefill_capture(
      o.prompt,
      [&](const std::string&, const ModelConfig& config) {
        LS_CHECK(o.channels <= config.head_dim, "--channels {} exceeds the head dimension {} of {}", o.channels,
                 config.head_dim, config.name);
        layers = config.layers;
        labels.kv_heads = config.kv_heads;
        labels.head_dim = config.head_dim;
      },
      [&](int layer, const AttnInput& in) {
        std::vector<std::vector<int>> heads;
        for (const std::vector<double>& statistic : channel_qk_statistic(in))
          heads.push_back(top_channels(statistic, o.channels));
        if (!o.quiet) {
          std::string line;
          for (const auto& head : heads) line += fmt::format(" [{}]", fmt::join(head, " "));
          std::fprintf(stderr, "layer %2d: channels per KV head%s\n", layer, line.c_str());
        }
        labels.heads.push_back(std::move(heads));
        return layer + 1 < layers;
      });
  labels.model = fmt::format("{}; calibration {} ({} tokens)", run.config.name,
                             std::filesystem::path(o.prompt.file).filename().string(), run.tokens);
  save_label_channels(labels, o.out);
  std::fprintf(stderr, "wrote %s: %d channels of %d for %d layers x %d KV heads from %lld tokens (prefill %.0f ms)\n",
               o.out.c_str(), o.channels, labels.head_dim, layers, labels.kv_heads, (long long)run.tokens,
               run.prefill_ms);
}

void setup_calibrate(CLI::App& app) {
  auto o = std::make_shared<CalibrateOptions>();
  o->prompt.context = 4096;
  o->prompt.truncate = true;  // a calibration text only needs to be long enough
  app.add_option("-m,--model", o->prompt.model, "model: a GGUF path or a cached name (smollm2)")->capture_default_str();
  app.add_option("-f,--file", o->prompt.file, "calibration text file")->required();
  app.add_option("-c,--context", o->prompt.context, "calibration tokens: the text's first CTX")->capture_default_str();
  app.add_option("--channels", o->channels, "label channels kept per KV head")->capture_default_str();
  app.add_option("-o,--out", o->out, "label channels JSON to write (--decode double-sparsity:file=...)")->required();
  app.add_option("-t,--threads", o->prompt.threads, "threads (default: all cores)");
  app.add_flag("-q,--quiet", o->quiet, "no per-layer lines on stderr");
  app.callback([o] { calibrate(*o); });
}

}  // namespace

LS_REGISTER_COMMAND(calibrate, "Find the label channels of the double-sparsity decode selector on a text",
                    setup_calibrate);

}  // namespace ls::cli
