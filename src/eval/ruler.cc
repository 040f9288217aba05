// RULER's synthetic tasks (Hsieh et al. 2024, "RULER: What's the Real Context Size of Your
// Long-Context Language Models?"), following NVIDIA/RULER scripts/data/synthetic/{niah,
// variable_tracking,common_words_extraction,freq_words_extraction}.py and synthetic.yaml:
// the same templates, answer prefixes, generation budgets, needle formats, insertion rules and
// metrics. Differences (docs/eval.md): our integer RNG instead of Python's random/numpy;
// haystack units are whole sentences (RULER cuts the essay by words, then re-splits into
// sentences); essay = Jane Austen, word lists = WordNet ∩ wamerican; CWE never needs RULER's
// fallback word list because ours is large enough.
#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "eval/fit.h"
#include "eval/generators.h"
#include "eval/rng.h"
#include "eval/text_util.h"

namespace ls::eval {

namespace {

// constants.py, TASKS[...]['template'] and ['answer_prefix'].
const char* kNiahTemplate =
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. I will "
    "quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic {type_needle_v} for "
    "{query} mentioned in the provided text?";
const char* kNiahPrefix = " The special magic {type_needle_v} for {query} mentioned in the provided text are";
const char* kNiahNeedle = "One of the special magic {type_needle_v} for {key} is: {value}.";
const char* kVtTemplate =
    "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\nQuestion: "
    "Find all variables that are assigned the value {query} in the text above.";
const char* kVtPrefix =
    " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are assigned "
    "the value {query}, they are: ";
const char* kCweTemplate =
    "Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that "
    "appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?";
const char* kCwePrefix = " Answer: The top 10 words that appear most often in the list are:";
const char* kFweTemplate =
    "Read the following coded text and track the frequency of each coded word. Find the three most frequently "
    "appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What "
    "are the three most frequently appeared words in the above coded text?";
const char* kFwePrefix =
    " Answer: According to the coded text above, the three most frequently appeared words are:";
const char* kNoise = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

constexpr std::int64_t kUnbounded = std::int64_t{1} << 40;

struct NiahConfig {
  enum class Haystack { noise, essay, needle } haystack;
  std::string type_k, type_v;  // words, numbers, uuids
  int num_k = 1, num_v = 1, num_q = 1;
};

NiahConfig niah_config(const std::string& task) {
  using H = NiahConfig::Haystack;
  if (task == "niah_single_1") return {H::noise, "words", "numbers", 1, 1, 1};
  if (task == "niah_single_2") return {H::essay, "words", "numbers", 1, 1, 1};
  if (task == "niah_single_3") return {H::essay, "words", "uuids", 1, 1, 1};
  if (task == "niah_multikey_1") return {H::essay, "words", "numbers", 4, 1, 1};
  if (task == "niah_multikey_2") return {H::needle, "words", "numbers", 1, 1, 1};
  if (task == "niah_multikey_3") return {H::needle, "uuids", "uuids", 1, 1, 1};
  if (task == "niah_multivalue") return {H::essay, "words", "numbers", 1, 4, 1};
  if (task == "niah_multiquery") return {H::essay, "words", "numbers", 1, 1, 4};
  fail("'{}' is not a NIAH task", task);
}

std::string random_value(Rng& rng, const std::string& type, const WordLists& words) {
  if (type == "numbers") return std::to_string(rng.uniform(1000000, 9999999));
  if (type == "uuids") {  // version-4 UUID from 128 random bits, as uuid.UUID(int=..., version=4)
    std::uint64_t hi = rng.next(), lo = rng.next();
    hi = (hi & ~0xF000ull) | 0x4000ull;
    lo = (lo & ~(0xC000ull << 48)) | (0x8000ull << 48);
    std::string h = fmt::format("{:016x}{:016x}", hi, lo);
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
  }
  return rng.choice(words.adjectives) + "-" + rng.choice(words.nouns);  // "words": adjective-noun
}

// numpy.round(numpy.linspace(0, 100, 40)): 40 depths in percent.
std::vector<int> ruler_depths() {
  std::vector<int> depths;
  for (int i = 0; i < 40; ++i) depths.push_back(static_cast<int>(std::nearbyint(100.0 * i / 39.0)));
  return depths;
}

std::string join_sentences(const std::vector<std::string>& essay, std::int64_t start, std::int64_t begin,
                           std::int64_t end) {
  std::string text;
  for (std::int64_t i = begin; i < end; ++i) {
    if (!text.empty()) text += ' ';
    text += essay[static_cast<std::size_t>((start + i) % static_cast<std::int64_t>(essay.size()))];
  }
  return text;
}

FitResult generate_niah(const GenerationRequest& req, const PromptFormatter& formatter, const TextResources& res) {
  const NiahConfig cfg = niah_config(req.task);
  const int num_k = std::max(cfg.num_k, cfg.num_q);
  const bool single = cfg.num_q * cfg.num_v == 1;
  std::string tmpl = kNiahTemplate, prefix = kNiahPrefix, type_v = cfg.type_v;
  if (single) {  // niah.py rewrites the template for a single answer
    for (std::string* t : {&tmpl, &prefix}) {
      *t = replace_all(*t, "Some", "A");
      *t = replace_all(*t, "are all", "is");
      *t = replace_all(*t, "are", "is");
      *t = replace_all(*t, "answers", "answer");
    }
    type_v.pop_back();
  }
  const std::uint64_t seed = sample_seed(req.task, req.length, req.seed, req.index);
  const std::int64_t gen_tokens = req.gen_tokens.value_or(128);

  auto build = [&](std::int64_t n) {
    Rng rng(seed);
    std::vector<std::string> keys, needles;
    std::vector<std::vector<std::string>> values;
    std::set<std::string> used;
    for (int k = 0; k < num_k; ++k) {
      std::string key;
      do key = random_value(rng, cfg.type_k, *res.words);
      while (!used.insert(key).second);
      keys.push_back(key);
      values.emplace_back();
      for (int v = 0; v < cfg.num_v; ++v) {
        values.back().push_back(random_value(rng, cfg.type_v, *res.words));
        needles.push_back(substitute(kNiahNeedle, {{"type_needle_v", cfg.type_v}, {"key", key}, {"value", values.back().back()}}));
      }
    }
    rng.shuffle(needles);
    std::vector<std::int64_t> asked = rng.sample(num_k, cfg.num_q);
    const std::int64_t essay_start = static_cast<std::int64_t>(rng.below(res.essay->size()));
    std::vector<int> depth_choices = ruler_depths();
    std::vector<std::int64_t> depth_pick = rng.sample(static_cast<std::int64_t>(depth_choices.size()),
                                                      static_cast<std::int64_t>(needles.size()));
    std::vector<double> depths;  // percent, one per needle (sorted, as niah.py inserts them)
    for (auto i : depth_pick) depths.push_back(req.depth ? *req.depth : depth_choices[i]);
    std::sort(depths.begin(), depths.end());

    std::string context;
    std::vector<double> recorded_depths;
    if (cfg.haystack == NiahConfig::Haystack::essay) {
      std::vector<std::int64_t> cuts{0};
      if (req.depth) {
        // A depth grid means a position in the text: cut at the sentence boundary where the
        // given share of the haystack's characters (≈ tokens) lies before the needle.
        std::vector<double> ends;  // cumulative characters after each sentence
        double chars = 0;
        for (std::int64_t i = 0; i < n; ++i)
          ends.push_back(chars += double(res.essay->at(static_cast<std::size_t>((essay_start + i) % std::int64_t(res.essay->size()))).size() + 1));
        const double wanted = chars * (*req.depth / 100.0);
        std::int64_t cut = 0;
        while (cut < n && ends[static_cast<std::size_t>(cut)] <= wanted) ++cut;
        if (cut < n && cut > 0 && wanted - ends[cut - 1] > ends[cut] - wanted) ++cut;  // nearer boundary
        cuts.push_back(cut);
      } else {
        for (double d : depths) cuts.push_back(static_cast<std::int64_t>(double(n) * (d / 100.0)));
      }
      cuts.push_back(n);
      std::vector<std::string> parts;
      for (std::size_t i = 1; i < cuts.size(); ++i) {
        parts.push_back(join_sentences(*res.essay, essay_start, cuts[i - 1], cuts[i]));
        if (i - 1 < needles.size()) parts.push_back(needles[i - 1]);
      }
      context = join(parts, " ");
      recorded_depths = depths;
    } else {
      std::vector<std::string> sentences;
      Rng distractors(seed ^ 0x5DEECE66Dull);  // a separate stream: needles stay fixed as n changes
      for (std::int64_t i = 0; i < n; ++i) {
        if (cfg.haystack == NiahConfig::Haystack::noise) {
          sentences.push_back(kNoise);
        } else {
          std::string key;
          do key = random_value(distractors, cfg.type_k, *res.words);
          while (used.count(key));
          sentences.push_back(substitute(kNiahNeedle, {{"type_needle_v", cfg.type_v}, {"key", key},
                                                       {"value", random_value(distractors, cfg.type_v, *res.words)}}));
        }
      }
      std::vector<std::int64_t> indexes;
      if (req.depth) {
        indexes.push_back(static_cast<std::int64_t>(double(n) * (*req.depth / 100.0)));
      } else {
        indexes = rng.sample(n, static_cast<std::int64_t>(needles.size()));
      }
      std::sort(indexes.rbegin(), indexes.rend());  // niah.py inserts from the back
      for (std::size_t i = 0; i < indexes.size(); ++i) {
        sentences.insert(sentences.begin() + indexes[i], needles[i]);
        recorded_depths.push_back(req.depth ? *req.depth : 100.0 * double(indexes[i]) / double(n));
      }
      context = join(sentences, "\n");
    }
    std::vector<std::string> queries;
    std::vector<std::string> answers;
    for (auto i : asked) {
      queries.push_back(keys[i]);
      for (const auto& v : values[i]) answers.push_back(v);
    }
    std::string query = queries.size() > 1
                            ? join({queries.begin(), queries.end() - 1}, ", ") + ", and " + queries.back()
                            : queries[0];
    BuiltPrompt built;
    built.sample.input = substitute(tmpl, {{"type_needle_v", type_v}, {"context", context}, {"query", query}});
    built.sample.answer_prefix = substitute(prefix, {{"type_needle_v", type_v}, {"query", query}});
    built.sample.answers = answers;
    built.sample.metric = "string_match_all";
    built.sample.gen_tokens = gen_tokens;
    if (needles.size() == 1) built.sample.depth = recorded_depths[0];
    built.sample.metadata["needle_depths"] = recorded_depths;
    built.sample.metadata["haystack"] = cfg.haystack == NiahConfig::Haystack::essay    ? "essay"
                                        : cfg.haystack == NiahConfig::Haystack::noise ? "noise"
                                                                                      : "needle";
    built.needles = needles;
    return built;
  };
  return fit_length(build, formatter, req.task, req.length, gen_tokens, num_k * cfg.num_v, kUnbounded);
}

std::string random_letters(Rng& rng, int count, char base) {
  std::string s;
  for (int i = 0; i < count; ++i) s.push_back(static_cast<char>(base + rng.below(26)));
  return s;
}

// One variable chain (variable_tracking.py, generate_chains with num_chains = 1).
struct Chain {
  std::vector<std::string> vars;
  std::vector<std::string> statements;
  std::string value;
};

Chain make_chain(Rng& rng, int hops, int letters) {
  Chain chain;
  std::set<std::string> used;
  while (static_cast<int>(chain.vars.size()) < hops + 1) {
    std::string v = random_letters(rng, letters, 'A');
    if (used.insert(v).second) chain.vars.push_back(v);
  }
  chain.value = std::to_string(rng.uniform(10000, 99998));
  chain.statements.push_back("VAR " + chain.vars[0] + " = " + chain.value);
  for (int j = 0; j < hops; ++j) chain.statements.push_back("VAR " + chain.vars[j + 1] + " = VAR " + chain.vars[j] + " ");
  return chain;
}

std::string vt_context(Rng& rng, const Chain& chain, std::int64_t n) {
  std::vector<std::string> sentences(static_cast<std::size_t>(n), kNoise);
  std::vector<std::int64_t> positions = rng.sample(n, static_cast<std::int64_t>(chain.statements.size()));
  std::sort(positions.begin(), positions.end());
  for (std::size_t j = 0; j < positions.size(); ++j)
    sentences.insert(sentences.begin() + positions[j] + static_cast<std::int64_t>(j), chain.statements[j]);
  return replace_all(join(sentences, "\n"), ". \n", ".\n");
}

FitResult generate_vt(const GenerationRequest& req, const PromptFormatter& formatter) {
  constexpr int kHops = 4;
  const std::uint64_t seed = sample_seed(req.task, req.length, req.seed, req.index);
  const std::int64_t gen_tokens = req.gen_tokens.value_or(30);
  const std::string num_v = std::to_string(kHops + 1);
  // The worked example: a ~500-token instance with 3-letter variables, fitted as plain text
  // without chat template (variable_tracking.py builds it with max_seq_length=500).
  FunctionFormatter raw([](const std::string& in, const std::string& p) { return in + p; },
                        [&](const std::string& t) { return formatter.count_tokens(t); }, "raw");
  auto build_example = [&](std::int64_t n) {
    Rng rng(seed ^ 0x1C1C1C1Cull);
    Chain chain = make_chain(rng, kHops, 3);
    BuiltPrompt built;
    built.sample.input = substitute(std::string(kVtTemplate) + kVtPrefix,
                                    {{"context", vt_context(rng, chain, n)}, {"query", chain.value}, {"num_v", num_v}}) +
                         " " + join(chain.vars, " ") + "\n";
    return built;
  };
  const std::string example = fit_length(build_example, raw, "vt example", 500, 0, 5, 1000).built.sample.input;

  auto build = [&](std::int64_t n) {
    Rng rng(seed);
    Chain chain = make_chain(rng, kHops, 5);
    BuiltPrompt built;
    built.sample.input =
        example + "\n" + substitute(kVtTemplate, {{"context", vt_context(rng, chain, n)}, {"query", chain.value}});
    built.sample.answer_prefix = substitute(kVtPrefix, {{"num_v", num_v}, {"query", chain.value}});
    built.sample.answers = chain.vars;
    built.sample.metric = "string_match_all";
    built.sample.gen_tokens = gen_tokens;
    // 5-letter variables never occur in the 3-letter example, so each statement is unique.
    for (const auto& s : chain.statements) built.needles.push_back(s.substr(0, s.find_last_not_of(' ') + 1));
    return built;
  };
  return fit_length(build, formatter, req.task, req.length, gen_tokens, 5, kUnbounded);
}

// common_words_extraction.py get_example: `count` distinct words, the first `num_cw` repeated
// `common_repeats` times, the rest `uncommon_repeats` times, shuffled and numbered.
std::pair<std::string, std::vector<std::string>> cwe_example(Rng& rng, const std::vector<std::string>& words,
                                                            std::int64_t count, int common_repeats,
                                                            int uncommon_repeats, int num_cw) {
  std::vector<std::int64_t> picked = rng.sample(static_cast<std::int64_t>(words.size()), count);
  std::vector<std::string> common, list;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::string& w = words[picked[i]];
    if (i < num_cw) common.push_back(w);
    for (int r = 0; r < (i < num_cw ? common_repeats : uncommon_repeats); ++r) list.push_back(w);
  }
  rng.shuffle(list);
  std::string context;
  for (std::size_t i = 0; i < list.size(); ++i) context += fmt::format("{}{}. {}", i ? " " : "", i + 1, list[i]);
  return {context, common};
}

FitResult generate_cwe(const GenerationRequest& req, const PromptFormatter& formatter, const TextResources& res) {
  constexpr int kNumCw = 10;
  const std::uint64_t seed = sample_seed(req.task, req.length, req.seed, req.index);
  const std::int64_t gen_tokens = req.gen_tokens.value_or(120);
  std::set<std::string> unique;
  for (const auto* list : {&res.words->nouns, &res.words->adjectives, &res.words->verbs})
    unique.insert(list->begin(), list->end());
  std::vector<std::string> words(unique.begin(), unique.end());
  const bool short_context = req.length < 4096;  // the script's max_seq_length < 4096 branch
  auto build = [&](std::int64_t n) {
    Rng rng(seed);
    std::vector<std::string> shuffled = words;
    rng.shuffle(shuffled);
    auto [shot_context, shot_answer] = short_context ? cwe_example(rng, shuffled, 20, 3, 1, kNumCw)
                                                     : cwe_example(rng, shuffled, 40, 10, 3, kNumCw);
    auto [context, answer] = short_context ? cwe_example(rng, shuffled, n, 6, 1, kNumCw)
                                           : cwe_example(rng, shuffled, n, 30, 3, kNumCw);
    std::string numbered;
    for (std::size_t i = 0; i < shot_answer.size(); ++i) numbered += fmt::format("{}{}. {}", i ? " " : "", i + 1, shot_answer[i]);
    std::string shot = substitute(std::string(kCweTemplate) + kCwePrefix, {{"context", shot_context}}) + " " + numbered;
    BuiltPrompt built;
    built.sample.input = shot + "\n" + substitute(kCweTemplate, {{"context", context}});
    built.sample.answer_prefix = kCwePrefix;
    built.sample.answers = answer;
    built.sample.metric = "string_match_all";
    built.sample.gen_tokens = gen_tokens;
    return built;
  };
  return fit_length(build, formatter, req.task, req.length, gen_tokens, 2 * kNumCw,
                    static_cast<std::int64_t>(words.size()));
}

FitResult generate_fwe(const GenerationRequest& req, const PromptFormatter& formatter) {
  constexpr double kZeta2 = 1.6449340668482264;  // zeta(alpha = 2) = pi^2 / 6
  const std::uint64_t seed = sample_seed(req.task, req.length, req.seed, req.index);
  const std::int64_t gen_tokens = req.gen_tokens.value_or(50);
  const std::int64_t vocab_size = std::max<std::int64_t>(8, (req.length - gen_tokens) / 50);
  auto build = [&](std::int64_t n) {
    Rng rng(seed);
    std::set<std::string> unique;
    while (static_cast<std::int64_t>(unique.size()) < vocab_size) unique.insert(random_letters(rng, 6, 'a'));
    std::vector<std::string> vocab(unique.begin(), unique.end());
    rng.shuffle(vocab);
    vocab[0] = "...";  // the top-ranked word is noise
    std::vector<std::string> text;
    for (std::int64_t k = 1; k <= vocab_size; ++k) {
      auto count = static_cast<std::int64_t>(double(n) / (double(k) * double(k)) / kZeta2);
      for (std::int64_t c = 0; c < count; ++c) text.push_back(vocab[k - 1]);
    }
    rng.shuffle(text);
    BuiltPrompt built;
    built.sample.input = substitute(kFweTemplate, {{"context", join(text, " ")}});
    built.sample.answer_prefix = kFwePrefix;
    built.sample.answers = {vocab[1], vocab[2], vocab[3]};
    built.sample.metric = "string_match_all";
    built.sample.gen_tokens = gen_tokens;
    return built;
  };
  return fit_length(build, formatter, req.task, req.length, gen_tokens, 64, kUnbounded);
}

}  // namespace

FitResult generate_ruler(const GenerationRequest& req, const PromptFormatter& formatter, const TextResources& res) {
  if (req.task == "vt") return generate_vt(req, formatter);
  if (req.task == "fwe") return generate_fwe(req, formatter);
  LS_CHECK(res.words, "task '{}' needs word lists", req.task);
  if (req.task == "cwe") return generate_cwe(req, formatter, res);
  LS_CHECK(res.essay, "task '{}' needs the essay haystack", req.task);
  return generate_niah(req, formatter, res);
}

}  // namespace ls::eval
