// `longsparse sweep`: methods × parameters × lengths × tasks into one resumable results file.
#include <unistd.h>

#include <cstdio>

#include "cli/command.h"
#include "cli/eval_model.h"
#include "core/error.h"
#include "eval/sweep.h"

namespace ls::cli {
namespace {

struct SweepArgs {
  std::string config, model, out;
  CacheOptions cache;  // applied to every run
  int threads = 0;
  bool no_progress = false, dry_run = false;
};

void setup_sweep(CLI::App& app) {
  auto args = std::make_shared<SweepArgs>();
  app.add_option("--config", args->config, "sweep config (JSON; see docs/eval.md)")->required();
  app.add_option("-m,--model", args->model, "model (overrides the config's \"model\")");
  app.add_option("--out", args->out, "results JSONL (overrides the config's \"out\")");
  app.add_option("-t,--threads", args->threads, "threads (default: all cores)");
  add_cache_options(app, args->cache);
  app.add_flag("--no-progress", args->no_progress, "no progress bar");
  app.add_flag("--dry-run", args->dry_run, "generate the samples and list the runs without evaluating");
  app.callback([args] {
    set_threads(args->threads);
    auto config = eval::read_sweep_config(args->config);
    if (!args->model.empty()) config.model = args->model;
    if (!args->out.empty()) config.out = args->out;
    LS_CHECK(!config.model.empty(), "sweep: no model: give -m or \"model\" in {}", args->config);
    LS_CHECK(!config.out.empty(), "sweep: no output file: give --out or \"out\" in {}", args->config);
    auto formatter = make_formatter(config.model);
    bool needs_text = false;
    for (const auto& t : config.tasks) needs_text |= eval::task_info(t).family == "ruler";
    auto resources = needs_text ? eval::default_resources() : eval::TextResources{};
    auto samples = eval::sweep_samples(config, *formatter, resources);
    std::fprintf(stderr, "sweep: %zu samples × %zu methods -> %s\n", samples.size(), config.methods.size(),
                 config.out.c_str());
    if (args->dry_run) {
      for (const auto& m : config.methods)
        for (const std::string& decode : split_decode_list(m.decode))
          std::printf("%s\n", eval::method_label(m.prefill, decode, m.dense_layers, m.policy).c_str());
      return;
    }
    auto factory = [&](const eval::SweepMethod& m) {
      return make_generator(config.model, {m.prefill, m.decode, m.policy, m.dense_layers, args->cache});
    };
    auto stats = eval::run_sweep(config, samples, *formatter, factory, !args->no_progress && isatty(fileno(stderr)),
                                 [&](eval::Generator& g) { prepare_oracle(g, samples, *formatter); });
    std::fprintf(stderr, "sweep: %lld evaluated, %lld already in %s\n", static_cast<long long>(stats.evaluated),
                 static_cast<long long>(stats.skipped), config.out.c_str());
    std::fputs(eval::summary_table(stats.records).c_str(), stdout);
  });
}

}  // namespace

LS_REGISTER_COMMAND(sweep, "Run methods × parameters × lengths × tasks into one resumable results file", setup_sweep);

}  // namespace ls::cli
