// Threading: OpenMP. It gives a parallel-for with dynamic scheduling over (head, query block)
// work items at microsecond overhead, per-thread scratch by thread id, and it is the runtime
// our BLAS and compiler already ship, so there is no pool of our own to keep correct.
#pragma once

#include <cstdint>

namespace ls {

// Threads used by parallel regions of this process (defaults to the number of cores).
int num_threads();
int available_cores();  // the cores this process may run on (its CPU affinity)
void set_num_threads(int threads);
int thread_id();  // 0 outside a parallel region

// Runs fn(i) for i in [0, n) across the threads, dynamically scheduled in chunks of `grain`.
template <typename Fn>
void parallel_for(std::int64_t n, Fn&& fn, std::int64_t grain = 1) {
#pragma omp parallel for schedule(dynamic, grain) num_threads(num_threads()) if (n > 1)
  for (std::int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace ls
