// Formatter and generator factories for gen/eval/sweep. Models are reached through the model
// layer's public API; until that API is in this build, only "approx" (length fitting without
// a model) and "oracle" (pipeline check) are available.
#include "cli/eval_model.h"

#include <unordered_map>

#include "core/error.h"
#include "eval/results.h"

namespace ls::cli {

namespace {

class OracleGenerator : public eval::Generator {
 public:
  explicit OracleGenerator(std::string method) : method_(std::move(method)) {}
  eval::GenerationResult generate(const std::string& prompt, std::int64_t) override {
    eval::GenerationResult r;
    auto it = answers_.find(std::hash<std::string>{}(prompt));
    LS_CHECK(it != answers_.end(), "oracle: no answer registered for this prompt");
    r.text = it->second;
    r.prompt_tokens = eval::approx_token_count(prompt);
    r.generated_tokens = eval::approx_token_count(r.text);
    return r;
  }
  std::string method() const override { return method_; }
  std::string model() const override { return "oracle"; }
  void expect(const std::string& prompt, std::string answer) {
    answers_[std::hash<std::string>{}(prompt)] = std::move(answer);
  }

 private:
  std::string method_;
  std::unordered_map<std::size_t, std::string> answers_;  // prompt hash -> gold answer text
};

}  // namespace

void prepare_oracle(eval::Generator& generator, const std::vector<eval::TaskSample>& samples,
                    const eval::PromptFormatter& formatter) {
  auto* oracle = dynamic_cast<OracleGenerator*>(&generator);
  if (!oracle) return;
  for (const auto& s : samples) {
    std::string text;
    if (s.metric == "exact" && s.answers.size() > 1) {
      for (std::size_t i = 0; i < s.answers.size(); ++i) text += fmt::format("{}. {}\n", i + 1, s.answers[i]);
    } else if (s.metric == "iou") {
      for (const auto& a : s.answers) text += (text.empty() ? "" : ", ") + a;
    } else {
      for (const auto& a : s.answers) text += (text.empty() ? "" : " ") + a;
    }
    if (s.metric == "exact" || s.metric == "iou") text = "<answer>\n" + text + "\n</answer>";
    oracle->expect(formatter.format(s.input, s.answer_prefix), text);
  }
}

std::unique_ptr<eval::PromptFormatter> make_formatter(const std::string& model) {
  if (model == "approx" || model == "oracle") return std::make_unique<eval::ApproxFormatter>();
  fail("model '{}': this build has no tokenizer/model engine yet; use -m approx (length by approximate count) "
       "or -m oracle (pipeline check)", model);
}

std::unique_ptr<eval::Generator> make_generator(const std::string& model, const MethodOptions& methods) {
  const std::string label = eval::method_label(methods.prefill, methods.decode, methods.dense_layers, methods.policy);
  if (model == "oracle") return std::make_unique<OracleGenerator>(label);
  fail("model '{}': this build has no model engine yet; use -m oracle to check the pipeline", model);
}

}  // namespace ls::cli
