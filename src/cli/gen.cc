// `longsparse gen`: writes synthetic task samples as JSONL (docs/eval.md).
#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "cli/eval_model.h"
#include "core/error.h"
#include "eval/generators.h"

namespace ls::cli {
namespace {

struct GenArgs {
  std::string model = "approx";
  std::string task;
  std::int64_t length = 4096;
  std::int64_t samples = 1;
  std::uint64_t seed = 42;
  double depth = -1;
  std::int64_t gen_tokens = 0;
  bool list = false;
};

void setup_gen(CLI::App& app) {
  auto args = std::make_shared<GenArgs>();
  app.add_option("-m,--model", args->model,
                 "model whose tokenizer and chat template measure the length ('approx': no model, approximate count)");
  app.add_option("--task", args->task, "task name (--list shows them)");
  app.add_option("--len", args->length, "target length in tokens: final prompt + generation budget")->check(CLI::PositiveNumber);
  app.add_option("--samples", args->samples, "number of samples")->check(CLI::PositiveNumber);
  app.add_option("--seed", args->seed, "seed");
  app.add_option("--depth", args->depth, "needle depth in percent (niah_single_1/2/3, passkey)")->check(CLI::Range(0.0, 100.0));
  app.add_option("--gen-tokens", args->gen_tokens, "override the task's generation budget")->check(CLI::PositiveNumber);
  app.add_flag("--list", args->list, "list the tasks and exit");
  app.callback([args] {
    if (args->list) {
      for (const auto& t : eval::task_catalog())
        std::printf("%-18s %-8s %s%s\n", t.name.c_str(), t.family.c_str(), t.summary.c_str(),
                    t.supports_depth ? " [--depth]" : "");
      return;
    }
    LS_CHECK(!args->task.empty(), "gen: --task is required (see --list)");
    eval::task_info(args->task);  // validates the name before loading text
    auto formatter = make_formatter(args->model);
    std::string model_name;
    if (const std::int64_t trained = trained_context(args->model, &model_name); trained > 0 && args->length > trained)
      std::fprintf(stderr,
                   "gen: warning: --len %lld is beyond %s's trained context of %lld tokens; only methods that cap the "
                   "RoPE distance (--prefill lambda, --decode streaming:shift=true) run at this length\n",
                   static_cast<long long>(args->length), model_name.c_str(), static_cast<long long>(trained));
    eval::GenerationRequest request;
    request.task = args->task;
    request.length = args->length;
    request.seed = args->seed;
    if (args->depth >= 0) request.depth = args->depth;
    if (args->gen_tokens > 0) request.gen_tokens = args->gen_tokens;
    const bool needs_text = eval::task_info(args->task).family == "ruler";
    eval::TextResources resources = needs_text ? eval::default_resources() : eval::TextResources{};
    for (std::int64_t i = 0; i < args->samples; ++i) {
      request.index = i;
      std::cout << eval::to_jsonl_line(eval::generate_sample(request, *formatter, resources)) << '\n';
    }
    std::cout.flush();
  });
}

}  // namespace

LS_REGISTER_COMMAND(gen, "Generate synthetic long-context task samples (JSONL on stdout)", setup_gen);

}  // namespace ls::cli
