// How a task's text becomes the model's prompt, and how its length is counted.
// Generators fit lengths through this interface so that tests can use a cheap approximate
// counter while the CLI plugs in the model's tokenizer and chat template.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace ls::eval {

class PromptFormatter {
 public:
  virtual ~PromptFormatter() = default;
  // The full text the model is given: chat template around `input` (when the model has one),
  // the generation prompt, then `answer_prefix`.
  virtual std::string format(const std::string& input, const std::string& answer_prefix) const = 0;
  // Tokens of `text`, counted as a prompt prefix (including BOS when the model adds one).
  virtual std::int64_t count_tokens(const std::string& text) const = 0;
  // Describes the counter in task metadata ("approx", a model file name, ...).
  virtual std::string name() const = 0;
};

// Cheap deterministic stand-in for a BPE tokenizer: a letter run counts 1 token per 6
// letters (rounded up), a digit run 1 per 3 digits, every other non-space character 1.
// Within a factor of about 1.3 of SmolLM2's tokenizer on English prose.
std::int64_t approx_token_count(const std::string& text);

// No chat template (input + answer_prefix) and the approximate counter.
class ApproxFormatter : public PromptFormatter {
 public:
  std::string format(const std::string& input, const std::string& answer_prefix) const override {
    return input + answer_prefix;
  }
  std::int64_t count_tokens(const std::string& text) const override { return approx_token_count(text); }
  std::string name() const override { return "approx"; }
};

// Adapter from plain functions (the CLI's route to a real tokenizer and chat template).
class FunctionFormatter : public PromptFormatter {
 public:
  using FormatFn = std::function<std::string(const std::string&, const std::string&)>;
  using CountFn = std::function<std::int64_t(const std::string&)>;
  FunctionFormatter(FormatFn format, CountFn count, std::string name)
      : format_(std::move(format)), count_(std::move(count)), name_(std::move(name)) {}
  std::string format(const std::string& input, const std::string& answer_prefix) const override {
    return format_(input, answer_prefix);
  }
  std::int64_t count_tokens(const std::string& text) const override { return count_(text); }
  std::string name() const override { return name_; }

 private:
  FormatFn format_;
  CountFn count_;
  std::string name_;
};

}  // namespace ls::eval
