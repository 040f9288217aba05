#include "core/parallel.h"

#include <omp.h>

namespace ls {

namespace {
int g_threads = 0;
}

int num_threads() {
  if (g_threads <= 0) g_threads = omp_get_num_procs();
  return g_threads;
}

int available_cores() { return omp_get_num_procs(); }

void set_num_threads(int threads) { g_threads = threads > 0 ? threads : omp_get_num_procs(); }

int thread_id() { return omp_get_thread_num(); }

}  // namespace ls
