// Dense prefill attention kernel selection (see layer_attention.h).
#include "model/layer_attention.h"

#include "attn/flash.h"

namespace ls {

void dense_attention(const AttnInput& in, float* out) { flash_attention(in, out); }

}  // namespace ls
