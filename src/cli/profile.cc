// `longsparse profile -m MODEL -f calibration.txt [-c CTX] --out profile.json [--layers all]`:
// MInference's offline pattern search on real attention. Prefill runs the calibration text;
// for every layer the capture hook hands Q/K/V to search_patterns (methods/pattern_search.h),
// which picks one pattern per query head by attention mass recovered on sampled rows. The
// result is the per-head profile that `--policy profile.json` loads (methods/policy.h).
// Layers left out of --layers but below the highest searched one are written as dense
// (recall omitted), since a profile covers layers 0..L-1 without gaps.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/prefill_capture.h"
#include "core/error.h"
#include "core/timer.h"
#include "methods/pattern_search.h"
#include "methods/policy.h"

namespace ls::cli {
namespace {

struct ProfileOptions {
  PromptOptions prompt;
  std::string out;
  std::string layers = "all";
  std::int64_t sample_rows = 64;
  std::int64_t min_position = 2500;
  bool minference_mapping = false;
  bool quiet = false;
};

void profile(const ProfileOptions& o) {
  LS_CHECK(!o.out.empty(), "give the output file with --out profile.json");
  LS_CHECK(o.sample_rows > 0, "--sample-rows must be positive, got {}", o.sample_rows);
  LS_CHECK(o.min_position >= 0, "--min-position must be >= 0, got {}", o.min_position);
  const std::filesystem::path out_dir = std::filesystem::absolute(o.out).parent_path();
  LS_CHECK(std::filesystem::is_directory(out_dir), "cannot write '{}': directory '{}' does not exist", o.out,
           out_dir.string());

  std::vector<int> layers;
  const bool all = o.layers == "all";
  if (!all) {
    layers = parse_layer_list(o.layers);
    LS_CHECK(!layers.empty(), "--layers names no layer");
  }
  PatternSearchOptions search;
  search.sample_rows = o.sample_rows;
  search.min_position = o.min_position;
  search.minference_mapping = o.minference_mapping;

  HeadProfile result;
  const auto check = [&](const std::string&, const ModelConfig& config) {
    if (all)
      for (int l = 0; l < config.layers; ++l) layers.push_back(l);
    for (int layer : layers)
      LS_CHECK(layer < config.layers, "layer {} does not exist: the model has layers 0..{}", layer, config.layers - 1);
    result.layers.assign(std::size_t(layers.back() + 1),
                         std::vector<HeadAssignment>(std::size_t(config.heads), HeadAssignment{"dense", -1}));
  };
  const CaptureRun run = run_prefill_capture(o.prompt, check, [&](int layer, const AttnInput& in) {
    if (std::binary_search(layers.begin(), layers.end(), layer)) {
      Timer timer;
      const std::vector<HeadPattern> heads = search_patterns(in, search);
      auto& row = result.layers[std::size_t(layer)];
      for (std::size_t h = 0; h < heads.size(); ++h) row[h] = {heads[h].spec, heads[h].recall};
      if (!o.quiet) {
        std::string line;
        // Short form (name and budget values only); the file holds the full specs.
        for (const HeadPattern& p : heads) {
          const std::size_t first = p.spec.find(',');
          const std::string brief = p.spec.substr(0, first == std::string::npos ? first : p.spec.find(',', first + 1));
          line += fmt::format(" {} {:.3f};", brief, p.recall);
        }
        std::fprintf(stderr, "layer %2d (%.0f ms):%s\n", layer, timer.ms(), line.c_str());
      }
    }
    return layer < layers.back();
  });
  result.model = fmt::format("{}; calibration {} ({} tokens); {} sampled rows per head", run.config.name,
                             std::filesystem::path(o.prompt.file).filename().string(), run.tokens, o.sample_rows);
  save_profile(result, o.out);
  std::fprintf(stderr, "wrote %s: %zu layers x %d heads (prefill and search %.0f ms)\n", o.out.c_str(),
               result.layers.size(), result.heads(), run.prefill_ms);
}

void setup_profile(CLI::App& app) {
  auto o = std::make_shared<ProfileOptions>();
  add_prompt_options(app, o->prompt);
  app.add_option("--out", o->out, "profile JSON to write (loaded by --policy)")->required();
  app.add_option("--layers", o->layers, "layers to search: all, or a list such as 0-3,12")->capture_default_str();
  app.add_option("--sample-rows", o->sample_rows, "query rows scored per head")->capture_default_str();
  app.add_option("--min-position", o->min_position, "score rows from this position on (n/3 when shorter)")
      ->capture_default_str();
  app.add_flag("--minference-mapping", o->minference_mapping,
               "rewrite A-shape and block-sparse winners as vertical-slash, as the official search does");
  app.add_flag("-q,--quiet", o->quiet, "no per-layer lines on stderr");
  app.callback([o] { profile(*o); });
}

}  // namespace

LS_REGISTER_COMMAND(profile, "Search a per-head sparse pattern profile on a calibration text", setup_profile);

}  // namespace ls::cli
