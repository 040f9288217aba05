// `longsparse profile-decode -m MODEL -f calibration.txt --out heads.json [--retrieval 0.5]`:
// the training-free calibration of the `duo` decode selector (methods/decode/duo.h). Prefill
// runs the calibration text; for every layer the capture hook scores each KV head by the
// relative error of its attention output under sink + recent keys on sampled query rows; the
// `--retrieval` share of heads with the largest errors become retrieval heads.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/prefill_capture.h"
#include "core/error.h"
#include "methods/decode/duo.h"

namespace ls::cli {
namespace {

struct ProfileDecodeOptions {
  PromptOptions prompt;
  std::string out;
  double retrieval = 0.5;
  std::int64_t sink = 64, recent = 256, rows = 32;
  bool quiet = false;
};

void profile_decode(const ProfileDecodeOptions& o) {
  LS_CHECK(!o.out.empty(), "give the output file with --out heads.json");
  LS_CHECK(o.retrieval >= 0 && o.retrieval <= 1, "--retrieval must be in [0, 1], got {}", o.retrieval);
  LS_CHECK(o.rows > 0 && o.sink >= 0 && o.recent > 0, "--rows and --recent must be positive, --sink >= 0");
  const std::filesystem::path out_dir = std::filesystem::absolute(o.out).parent_path();
  LS_CHECK(std::filesystem::is_directory(out_dir), "cannot write '{}': directory '{}' does not exist", o.out,
           out_dir.string());
  DuoProfile profile;
  profile.sink = o.sink, profile.recent = o.recent, profile.retrieval_fraction = o.retrieval;
  int layers = 0;
  const CaptureRun run = run_prefill_capture(
      o.prompt, [&](const std::string&, const ModelConfig& config) { layers = config.layers; },
      [&](int layer, const AttnInput& in) {
        LS_CHECK(in.shape.n_k > o.sink + o.recent,
                 "the calibration prompt ({} tokens) must be longer than sink + recent ({})", in.shape.n_k,
                 o.sink + o.recent);
        profile.scores.push_back(score_streaming_error(in, o.sink, o.recent, o.rows));
        if (!o.quiet) {
          std::string line;
          for (double s : profile.scores.back()) line += fmt::format(" {:.3f}", s);
          std::fprintf(stderr, "layer %2d: streaming error per KV head%s\n", layer, line.c_str());
        }
        return layer + 1 < layers;
      });
  choose_retrieval_heads(profile);
  profile.model = fmt::format("{}; calibration {} ({} tokens); {} rows per head", run.config.name,
                              std::filesystem::path(o.prompt.file).filename().string(), run.tokens, o.rows);
  save_duo_profile(profile, o.out);
  int retrieval = 0, total = 0;
  for (const auto& layer : profile.retrieval)
    for (bool r : layer) retrieval += r, ++total;
  std::fprintf(stderr, "wrote %s: %d of %d KV heads are retrieval heads (prefill and scoring %.0f ms)\n",
               o.out.c_str(), retrieval, total, run.prefill_ms);
}

void setup_profile_decode(CLI::App& app) {
  auto o = std::make_shared<ProfileDecodeOptions>();
  add_prompt_options(app, o->prompt);
  app.add_option("--out", o->out, "head profile JSON to write (loaded by --decode duo:file=...)")->required();
  app.add_option("--retrieval", o->retrieval, "share of KV heads kept as retrieval heads")->capture_default_str();
  app.add_option("--sink", o->sink, "attention sinks of the streaming pattern scored")->capture_default_str();
  app.add_option("--recent", o->recent, "recent keys of the streaming pattern scored")->capture_default_str();
  app.add_option("--rows", o->rows, "query rows scored per head (second half of the text)")->capture_default_str();
  app.add_flag("-q,--quiet", o->quiet, "no per-layer lines on stderr");
  app.callback([o] { profile_decode(*o); });
}

}  // namespace

// Registered by hand: the command's name has a hyphen, which LS_REGISTER_COMMAND cannot spell.
static const bool ls_command_registered_profile_decode = [] {
  commands().push_back({"profile-decode", "Score streaming vs retrieval heads for the duo decode selector",
                        setup_profile_decode});
  return true;
}();

}  // namespace ls::cli
