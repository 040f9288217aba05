// Context parallelism over MPI (model/context_parallel.h), run by CTest under
// `mpirun -np R` for R = 1, 2, 3: every rank runs every test. The one-process reference is
// computed on each rank itself, with the same threads and kernels, and fp32 weight products
// (see load()) and f32 caches: two fp32 results that differ in their last bits can round to
// f16 values one f16 step apart (1e-3 relative), which the decode steps then read.
//  - ring equals one process: logits after the prefill and after each decode step, and the
//    greedy tokens, for SmolLM2 (every layer global) and Gemma 3 (sliding-window layers whose
//    window spans blocks);
//  - ring with a sparse method equals a chunked prefill with the same blocks (--ubatch);
//  - star over one rank equals dense attention; star over several ranks gives every rank the
//    same tokens;
//  - a decode selector after a ring prefill: over one rank it selects what it selects in one
//    process; over several, each rank selects among its own keys;
//  - ranks that disagree on the prompt fail together, with the same error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/error.h"
#include "methods/policy.h"
#include "methods/registry.h"
#include "model/context_parallel.h"
#include "model/gguf.h"
#include "model/model_path.h"
#include "model/sparse_prefill.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace ls {
namespace {

Communicator* world = nullptr;

struct Loaded {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Transformer> model;
  std::unique_ptr<Tokenizer> tokenizer;
};

Loaded* load(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Loaded>> models;
  auto& slot = models[name];
  if (!slot) {
    slot = std::make_unique<Loaded>();
    try {
      slot->file = GgufFile::open(resolve_model_path(name));
    } catch (const Error&) {
      return nullptr;
    }
    slot->model = std::make_unique<Transformer>(*slot->file);
    // fp32 products: with int8 activations (the default route), a difference of 1e-7 in an
    // attention output can move an activation across a rounding step of its quantization,
    // which later layers amplify; the fp32 route shows the attention's own agreement.
    slot->model->set_matmul_route(MatmulRoute::Sgemm);
    slot->tokenizer = std::make_unique<Tokenizer>(tokenizer_data_from_gguf(*slot->file));
  }
  return slot->model ? slot.get() : nullptr;
}

// A deterministic prompt of at least `n` tokens, cut to exactly n.
std::vector<std::int32_t> prompt_tokens(const Tokenizer& tokenizer, std::int64_t n) {
  std::string text;
  for (int i = 0; std::int64_t(tokenizer.encode(text, false).size()) < n; ++i)
    text += "Record " + std::to_string(i * 37 % 101) + ": the courier from town " + std::to_string(i) +
            " carried " + std::to_string(i * i % 13) + " letters across the river, and the ferryman noted it.\n";
  std::vector<std::int32_t> tokens = tokenizer.encode(text, false);
  tokens.resize(n);
  return tokens;
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

std::int32_t argmax(const std::vector<float>& logits) {
  return std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

struct Trace {
  std::vector<std::vector<float>> logits;  // after the prefill, then after each decode step
  std::vector<std::int32_t> tokens;        // greedy
};

// Prefill (one process or context-parallel), then `steps` greedy decode steps.
Trace run(Transformer& model, const std::vector<std::int32_t>& prompt, int steps, ContextParallel* cp,
          std::int64_t query = 0, KvType type = KvType::F16, LayerAttention* method = nullptr,
          std::int64_t ubatch = 0, DecodeSelector* selector = nullptr, DecodeStats* stats = nullptr) {
  KvCache cache = model.make_cache(std::int64_t(prompt.size()) + steps + 1, type, type);
  if (selector && selector->needs().kinds) cache.keep_summaries(selector->needs());
  Trace t;
  std::vector<float> logits(model.config().vocab);
  PrefillHooks hooks;
  hooks.attention = method;
  if (cp) cp->prefill(model, prompt, query, cache, logits.data(), hooks);
  else model.prefill(prompt, cache, logits.data(), hooks, ubatch);
  t.logits.push_back(logits);
  for (int s = 0; s < steps; ++s) {
    t.tokens.push_back(argmax(logits));
    model.decode(t.tokens.back(), cache, logits.data(), selector, stats);
    t.logits.push_back(logits);
  }
  return t;
}

void expect_same(const Trace& expected, const Trace& got, float tolerance) {
  ASSERT_EQ(expected.logits.size(), got.logits.size());
  for (std::size_t i = 0; i < expected.logits.size(); ++i)
    EXPECT_LT(max_diff(expected.logits[i], got.logits[i]), tolerance) << "step " << i << ", rank " << world->rank();
  EXPECT_EQ(expected.tokens, got.tokens) << "rank " << world->rank();
}

void ring_equals_one_process(const std::string& name, std::int64_t n, float tolerance) {
  Loaded* m = load(name);
  if (!m) GTEST_SKIP() << name << " not cached; run scripts/fetch-model " << name;
  const std::vector<std::int32_t> prompt = prompt_tokens(*m->tokenizer, n);
  const Trace expected = run(*m->model, prompt, 6, nullptr, 0, KvType::F32);
  Trace got;
  {
    ContextParallel cp(*world, ContextMode::Ring);
    got = run(*m->model, prompt, 6, &cp, 0, KvType::F32);
    EXPECT_EQ(cp.layout().ranks, world->size());
    if (world->rank() + 1 < world->size()) {
      EXPECT_GT(cp.stats().bytes_sent, 0);
    }
  }
  EXPECT_EQ(m->model->context(), nullptr);  // released with the ContextParallel
  expect_same(expected, got, tolerance);
}

TEST(ContextParallel, RingEqualsOneProcessSmolLM2) { ring_equals_one_process("smollm2", 500, 1e-4f); }

TEST(ContextParallel, RingEqualsOneProcessGemma3SlidingWindows) {
  // 1200 tokens: over 3 ranks blocks of 400 < the 512-token window, which then spans two
  // blocks back; over 2, blocks of 600. Gemma's logits reach ±30 (soft-capped): the largest difference seen over
  // 262144 logits and 7 steps was 2.5e-4 (2 ranks).
  ring_equals_one_process("gemma3", 1200, 5e-4f);
}

TEST(ContextParallel, RingWithASparseMethodEqualsAChunkedPrefill) {
  Loaded* m = load("smollm2");
  if (!m) GTEST_SKIP() << "smollm2 not cached";
  const std::int64_t n = 1152;  // blocks of n / R for R = 1, 2, 3: the chunks of --ubatch n / R
  const std::vector<std::int32_t> prompt = prompt_tokens(*m->tokenizer, n);
  const auto method = [&] {
    return std::make_unique<SparsePrefill>(
        Policy("vertical-slash:v=64,s=128"));
  };
  // An f32 cache: the chunked prefill reads earlier chunks back from it, the ring gets them in fp32.
  auto chunked = method();
  const Trace expected = run(*m->model, prompt, 3, nullptr, 0, KvType::F32, chunked.get(), n / world->size());
  auto sparse = method();
  ContextParallel cp(*world, ContextMode::Ring);
  cp.set_equal_blocks(true);
  const Trace got = run(*m->model, prompt, 3, &cp, 0, KvType::F32, sparse.get());
  expect_same(expected, got, 1e-4f);
  if (world->size() > 1) {
    EXPECT_LT(sparse->mean_density(), 1.0);
  }
}

TEST(ContextParallel, StarOverOneRankEqualsDenseAndGivesEveryRankTheSameTokens) {
  Loaded* m = load("smollm2");
  if (!m) GTEST_SKIP() << "smollm2 not cached";
  const std::vector<std::int32_t> prompt = prompt_tokens(*m->tokenizer, 600);
  Trace got;
  double density = 0.0;
  {
    ContextParallel cp(*world, ContextMode::Star);
    got = run(*m->model, prompt, 5, &cp, 24, KvType::F32);
    density = cp.layout().density();
    EXPECT_EQ(cp.layout().query, 24);
    EXPECT_EQ(cp.layout().anchor, cp.layout().block(0));
  }
  if (world->size() <= 2) {
    // One rank is dense; so are two, with the anchor the size of block 0: rank 1 sees all of it.
    EXPECT_EQ(density, 1.0);
    expect_same(run(*m->model, prompt, 5, nullptr, 0, KvType::F32), got, 1e-4f);
  } else {
    EXPECT_LT(density, 1.0);
    std::vector<std::int32_t> all(got.tokens.size() * world->size());
    world->allgather(got.tokens.data(), got.tokens.size() * sizeof(std::int32_t), all.data());
    for (int r = 1; r < world->size(); ++r)
      EXPECT_TRUE(std::equal(got.tokens.begin(), got.tokens.end(), all.begin() + r * got.tokens.size()));
    for (const auto& logits : got.logits)
      for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  }
}

TEST(ContextParallel, StarAnchorShorterThanABlock) {
  Loaded* m = load("smollm2");
  if (!m) GTEST_SKIP() << "smollm2 not cached";
  const std::vector<std::int32_t> prompt = prompt_tokens(*m->tokenizer, 400);
  ContextParallel cp(*world, ContextMode::Star, 64);
  const Trace got = run(*m->model, prompt, 2, &cp, 10);
  EXPECT_EQ(cp.layout().anchor, 64);
  for (float x : got.logits.back()) ASSERT_TRUE(std::isfinite(x));
}

TEST(ContextParallel, DecodeSelectorsSelectAmongEachRanksKeys) {
  Loaded* m = load("smollm2");
  if (!m) GTEST_SKIP() << "smollm2 not cached";
  const std::int64_t n = 700;
  const std::vector<std::int32_t> prompt = prompt_tokens(*m->tokenizer, n);
  const int steps = 4, R = world->size();
  const std::string spec = "quest:budget=64,dense_layers=0";
  auto one = MethodRegistry::instance().make_decode(spec);
  DecodeStats one_stats;
  const Trace expected = run(*m->model, prompt, steps, nullptr, 0, KvType::F32, nullptr, 0, one.get(), &one_stats);
  auto mine = MethodRegistry::instance().make_decode(spec);
  DecodeStats stats;
  Trace got;
  {
    ContextParallel cp(*world, ContextMode::Ring);
    cp.set_block_alignment(ContextParallel::kBlockAlignment);
    got = run(*m->model, prompt, steps, &cp, 0, KvType::F32, nullptr, 0, mine.get(), &stats);
    for (int r = 1; r < R; ++r) EXPECT_EQ(cp.layout().begin[r] % ContextParallel::kBlockAlignment, 0);
  }
  const std::int64_t layers_heads = std::int64_t(m->model->config().layers) * m->model->config().kv_heads;
  if (R == 1) {
    // One rank holds every key: the selection of one process.
    expect_same(expected, got, 1e-4f);
    EXPECT_EQ(stats.keys_attended, one_stats.keys_attended);
  } else {
    // Each rank attends to at most its own budget, so more keys than one process and at
    // most R budgets (every block here is longer than the budget); every rank the same tokens.
    EXPECT_GT(stats.keys_attended, one_stats.keys_attended);
    EXPECT_LE(stats.keys_attended, std::int64_t(steps) * layers_heads * R * 64);
    std::vector<std::int32_t> first(steps);
    for (int s = 0; s < steps; ++s) first[s] = got.tokens[s];
    for (float x : got.logits.back()) ASSERT_TRUE(std::isfinite(x));
    std::vector<std::int32_t> all(std::size_t(steps) * R);
    world->allgather(first.data(), first.size() * sizeof(std::int32_t), all.data());
    for (int r = 1; r < R; ++r)
      EXPECT_TRUE(std::equal(first.begin(), first.end(), all.begin() + std::ptrdiff_t(r) * steps)) << "rank " << r;
  }
  // A budget above every rank's keys attends densely: the ring's dense decode.
  auto wide = MethodRegistry::instance().make_decode("quest:budget=4096,dense_layers=0");
  const Trace dense = run(*m->model, prompt, steps, nullptr, 0, KvType::F32);
  ContextParallel cp(*world, ContextMode::Ring);
  cp.set_block_alignment(ContextParallel::kBlockAlignment);
  expect_same(dense, run(*m->model, prompt, steps, &cp, 0, KvType::F32, nullptr, 0, wide.get()), 1e-4f);
}

TEST(ContextParallel, RanksThatDisagreeOnThePromptFailTogether) {
  if (world->size() == 1) GTEST_SKIP() << "needs two ranks";
  Loaded* m = load("smollm2");
  if (!m) GTEST_SKIP() << "smollm2 not cached";
  std::vector<std::int32_t> prompt = prompt_tokens(*m->tokenizer, 100 + world->rank());
  KvCache cache = m->model->make_cache(200);
  std::vector<float> logits(m->model->config().vocab);
  ContextParallel cp(*world, ContextMode::Ring);
  try {
    cp.prefill(*m->model, prompt, 0, cache, logits.data());
    ADD_FAILURE() << "no error on rank " << world->rank();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the ranks disagree"), std::string::npos) << e.what();
  }
}

TEST(ContextParallel, AMessageThatNeverComesTimesOut) {
  if (world->size() == 1) GTEST_SKIP() << "needs two ranks";
  world->set_timeout(1.0);
  if (world->rank() == 0) {
    double buffer = 0.0;
    try {
      world->start_exchange(-1, nullptr, 0, 1, &buffer, sizeof buffer);
      world->wait_exchange();
      ADD_FAILURE() << "no timeout";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("did not complete within 1 s"), std::string::npos) << e.what();
    }
  }
  world->set_timeout(Communicator::timeout_seconds());
  world->max(0.0);  // every rank meets again
}

TEST(ContextParallel, ImpossibleLayoutsAreErrors) {
  EXPECT_THROW(ContextLayout::make(ContextMode::Ring, 4, 3, 0), Error);          // fewer tokens than ranks
  EXPECT_THROW(ContextLayout::make(ContextMode::Ring, 2, 100, 10), Error);       // ring has no query
  EXPECT_THROW(ContextLayout::make(ContextMode::Star, 2, 100, 10, 60), Error);   // anchor longer than a block
  EXPECT_THROW(ContextLayout::make(ContextMode::Star, 2, 100, 100), Error);      // no context left
  EXPECT_THROW(parse_context_mode("tree"), Error);
  const ContextLayout l = ContextLayout::make(ContextMode::Star, 3, 310, 10);
  EXPECT_EQ(l.begin, (std::vector<std::int64_t>{0, 100, 200, 300}));
  EXPECT_EQ(l.anchor, 100);
  // Phase 1 computes 3 causal blocks of 100 and 2 anchor blocks of 100 × 100.
  EXPECT_NEAR(l.density(), (3 * 5050.0 + 2 * 10000.0) / (300 * 301 / 2.0), 1e-12);
}

TEST(ContextParallel, BalancedRingBlocksCostTheSame) {
  const double pair_cost = 1e-3;
  const ContextLayout l = ContextLayout::make(ContextMode::Ring, 3, 9000, 0, 0, pair_cost);
  const auto cost = [&](int r) {
    const double s = double(l.begin[r]), e = double(l.begin[r + 1]);
    return (e - s) + pair_cost * (e * (e + 1) - s * (s + 1)) / 2;
  };
  EXPECT_GT(l.block(0), l.block(1));  // earlier blocks are longer
  EXPECT_GT(l.block(1), l.block(2));
  for (int r = 1; r < 3; ++r) EXPECT_NEAR(cost(r) / cost(0), 1.0, 1e-3);
  // Equal blocks without a cost; still one token per rank when the prompt is tiny.
  EXPECT_EQ(ContextLayout::make(ContextMode::Ring, 3, 9000, 0).begin, (std::vector<std::int64_t>{0, 3000, 6000, 9000}));
  EXPECT_EQ(ContextLayout::make(ContextMode::Ring, 3, 3, 0, 0, 10.0).begin, (std::vector<std::int64_t>{0, 1, 2, 3}));
  // Aligned blocks: cut at the nearest multiple, or an error when a block would be empty.
  EXPECT_EQ(ContextLayout::make(ContextMode::Ring, 3, 9000, 0, 0, 0.0, 64).begin,
            (std::vector<std::int64_t>{0, 3008, 6016, 9000}));
  EXPECT_EQ(ContextLayout::make(ContextMode::Star, 2, 310, 10, 0, 0.0, 64).begin, (std::vector<std::int64_t>{0, 128, 300}));
  EXPECT_THROW(ContextLayout::make(ContextMode::Ring, 3, 100, 0, 0, 0.0, 64), Error);
}

}  // namespace
}  // namespace ls

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  std::unique_ptr<ls::Communicator> comm = ls::mpi_communicator();
  ls::world = comm.get();
  // Only rank 0 prints the progress; every rank prints its failures.
  if (comm->rank() != 0) {
    testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  // Every rank exits with the job's result.
  return comm->max(double(failed)) > 0 ? 1 : 0;
}
