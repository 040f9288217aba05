// Per-head decode policy in the manner of DuoAttention: each KV head of each layer is either
// a retrieval head (attends to the whole cache) or a streaming head (attention sinks + recent
// keys). The split is a profile file; `score_streaming_error` is the training-free calibration
// that produces it (see duo.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attn/attention.h"

namespace ls {

struct DuoProfile {
  std::string model;      // what it was calibrated on (free text)
  std::int64_t sink = 64, recent = 256;  // the streaming pattern scored
  double retrieval_fraction = 0.5;       // share of KV heads kept as retrieval heads
  std::vector<std::vector<double>> scores;     // [layer][kv head]: relative output error of streaming
  std::vector<std::vector<bool>> retrieval;    // [layer][kv head]
};

// The L2 error of each KV head's attention output (its group's query heads pooled) when it
// attends to sink + recent keys instead of every key, relative to the RMS norm of the head's
// value vectors (so a head whose output is a near-zero average of many values does not look
// worse than one that retrieves a single far value), on `rows` query rows evenly spaced over
// the second half of the prompt. Never forms the n×n matrix: one row at a time.
std::vector<double> score_streaming_error(const AttnInput& in, std::int64_t sink, std::int64_t recent,
                                          std::int64_t rows);

// Marks the `fraction` of KV heads with the largest scores, over all layers, as retrieval heads.
void choose_retrieval_heads(DuoProfile& profile);

void save_duo_profile(const DuoProfile& profile, const std::string& path);
DuoProfile load_duo_profile(const std::string& path);  // throws ls::Error on a malformed file

}  // namespace ls
