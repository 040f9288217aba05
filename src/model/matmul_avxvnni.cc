// The int8 matmul kernels on AVX2 with AVX-VNNI (compiled for x86-64-v3 plus AVX-VNNI only;
// see matmul_avx2.inc).
#define LS_AVXVNNI 1
#include "model/matmul_avx2.inc"

namespace ls::matmul_detail {

const Int8Kernels& kernels_avxvnni() {
  static const Int8Kernels k{"avx-vnni", quantize, gemm};
  return k;
}

}  // namespace ls::matmul_detail
