// Passkey retrieval as in Landmark Attention (Mohtashami & Jaggi 2023, "Landmark Attention:
// Random-Access Infinite Context Length for Transformers", run_test.py): a 5-digit-or-shorter
// pass key hidden in repeated filler. The final question is split at "The pass key is" so
// that the answer prefix follows the chat template's generation prompt.
#include <fmt/format.h>

#include "eval/fit.h"
#include "eval/generators.h"
#include "eval/rng.h"

namespace ls::eval {

namespace {
const char* kDescription =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you "
    "about the important information there.";
const char* kFiller = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
}  // namespace

FitResult generate_passkey(const GenerationRequest& req, const PromptFormatter& formatter) {
  const std::uint64_t seed = sample_seed(req.task, req.length, req.seed, req.index);
  const std::int64_t gen_tokens = req.gen_tokens.value_or(16);
  auto build = [&](std::int64_t n) {
    Rng rng(seed);
    const std::string key = std::to_string(rng.uniform(1, 50000));
    const double fraction = req.depth ? *req.depth / 100.0 : rng.unit();
    const auto before = static_cast<std::int64_t>(fraction * double(n));
    auto filler = [](std::int64_t count) {
      std::string text;
      for (std::int64_t i = 0; i < count; ++i) text += i ? std::string(" ") + kFiller : std::string(kFiller);
      return text;
    };
    const std::string needle = fmt::format("The pass key is {0}. Remember it. {0} is the pass key.", key);
    BuiltPrompt built;
    built.sample.input = fmt::format("{}\n{}\n{}\n{}\nWhat is the pass key?", kDescription, filler(before), needle,
                                     filler(n - before));
    built.sample.answer_prefix = " The pass key is";
    built.sample.answers = {key};
    built.sample.metric = "string_match_all";
    built.sample.gen_tokens = gen_tokens;
    built.sample.depth = req.depth ? *req.depth : (n ? 100.0 * double(before) / double(n) : 0.0);
    built.needles = {needle};
    return built;
  };
  return fit_length(build, formatter, req.task, req.length, gen_tokens, 1, std::int64_t{1} << 40);
}

}  // namespace ls::eval
