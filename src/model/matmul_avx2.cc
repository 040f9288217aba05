// The int8 matmul kernels on plain AVX2 (compiled for x86-64-v3 only; see matmul_avx2.inc).
#include "model/matmul_avx2.inc"

namespace ls::matmul_detail {

const Int8Kernels& kernels_avx2() {
  static const Int8Kernels k{"avx2", quantize, gemm};
  return k;
}

}  // namespace ls::matmul_detail
