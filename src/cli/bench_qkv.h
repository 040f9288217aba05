// `longsparse bench attention --qkv DIR`: the methods on a captured layer (`longsparse capture`)
// instead of random inputs. For each plan spec: the plan build time (the method's estimate),
// the plan executor's time and, with --check, recall and relative error on sampled rows; the
// dense kernel is timed in the same process, so speed-ups are ratios measured together.
#pragma once

#include <string>

#include "attn/attention.h"
#include "core/npy.h"

namespace ls::cli {

// A capture's layer directory: q [heads][n][dim], k and v [kv_heads][n][dim], and the layer,
// softmax scale and window from its manifest.json when present.
struct QkvCapture {
  NpyArray q, k, v;
  AttnShape shape;
  int layer = -1;
};
// Throws ls::Error naming the directory and what is wrong with it.
QkvCapture load_capture(const std::string& dir);

struct QkvBenchOptions {
  std::string dir;           // a capture's layer directory: q.npy, k.npy, v.npy, manifest.json
  std::string plans;         // one spec, or several separated by ';'
  bool check = false;        // measure recall and rel_err
  int quality_rows = 0;      // sampled query rows per head for --check (0: 64)
  int threads = 2;
  int repeat = 3;
  bool json = false;         // one JSON object per plan, one per line
  std::string save_plan;     // with one spec: write its plan here (.npz, attn/plan_io.h)
};

void run_qkv_bench(const QkvBenchOptions& options);

}  // namespace ls::cli
