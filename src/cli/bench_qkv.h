// `longsparse bench attention --qkv DIR`: the methods on a captured layer (`longsparse capture`)
// instead of random inputs. For each plan spec: the plan build time (the method's estimate),
// the plan executor's time and, with --check, recall and relative error on sampled rows; the
// dense kernel is timed in the same process, so speed-ups are ratios measured together.
#pragma once

#include <string>

namespace ls::cli {

struct QkvBenchOptions {
  std::string dir;           // a capture's layer directory: q.npy, k.npy, v.npy, manifest.json
  std::string plans;         // one spec, or several separated by ';'
  bool check = false;        // measure recall and rel_err
  int quality_rows = 0;      // sampled query rows per head for --check (0: 64)
  int threads = 2;
  int repeat = 3;
  bool json = false;         // one JSON object per plan, one per line
};

void run_qkv_bench(const QkvBenchOptions& options);

}  // namespace ls::cli
