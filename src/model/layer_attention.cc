// Dense prefill attention kernel selection (see layer_attention.h).
#include "model/layer_attention.h"

#include "attn/reference.h"

namespace ls {

void dense_attention(const AttnInput& in, float* out) { reference_attention(in, out); }

}  // namespace ls
