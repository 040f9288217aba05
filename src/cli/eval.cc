// `longsparse eval`: runs a model over a JSONL task file and appends scored results.
#include <unistd.h>

#include <cstdio>

#include "cli/command.h"
#include "cli/context_run.h"
#include "cli/eval_model.h"
#include "core/error.h"
#include "eval/runner.h"
#include "eval/task.h"

namespace ls::cli {
namespace {

struct EvalArgs {
  std::string model, tasks, out;
  MethodOptions methods;
  int threads = 0;
  bool no_progress = false;
  ContextOptions context_parallel;
};

void eval_command(EvalArgs& args, ContextRun* cp) {
  set_threads(args.threads);
  auto samples = eval::read_task_file(args.tasks);
  auto formatter = make_formatter(args.model);
  args.methods.context = cp;
  auto generator = make_generator(args.model, args.methods);
  prepare_oracle(*generator, samples, *formatter);
  eval::EvalOptions options;
  options.out_path = args.out;
  const bool root = !cp || cp->root();
  options.write = root;  // the other ranks compute the same results
  options.progress = root && !args.no_progress && isatty(fileno(stderr));
  if (cp) cp->ready();
  auto stats = eval::run_eval(samples, *generator, *formatter, options);
  if (!root) return;
  std::fprintf(stderr, "eval: %lld evaluated, %lld already in %s\n", static_cast<long long>(stats.evaluated),
               static_cast<long long>(stats.skipped), args.out.c_str());
  std::fputs(eval::summary_table(stats.records).c_str(), stdout);
}

void setup_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  app.add_option("-m,--model", args->model, "model file or cached name ('oracle': pipeline check without a model)")->required();
  app.add_option("--tasks", args->tasks, "JSONL task file (longsparse gen writes them)")->required();
  app.add_option("--prefill", args->methods.prefill, "prefill attention method spec, e.g. dense or name:key=value");
  app.add_option("--decode", args->methods.decode,
                 "decode selector spec, or several separated by ';' (each continues a copy of one prefill)");
  app.add_option("--policy", args->methods.policy, "per-layer/head policy file");
  app.add_option("--dense-layers", args->methods.dense_layers, "layers kept dense, e.g. 0,1");
  add_cache_options(app, args->methods.cache);
  app.add_option("--out", args->out, "results JSONL (appended; samples already there for this method are skipped)")->required();
  app.add_option("-t,--threads", args->threads, "threads (default: all cores)");
  app.add_flag("--no-progress", args->no_progress, "no progress bar");
  add_context_options(app, args->context_parallel);
  app.callback([args] {
    std::unique_ptr<ContextRun> cp = ContextRun::make(args->context_parallel);
    if (!cp) return eval_command(*args, nullptr);
    LS_CHECK(args->model != "oracle", "--context-parallel needs a model, not the oracle");
    cp->guard([&] { eval_command(*args, cp.get()); });
  });
}

}  // namespace

LS_REGISTER_COMMAND(eval, "Evaluate a model on a JSONL task file (greedy decoding, scored, resumable)", setup_eval);

}  // namespace ls::cli
