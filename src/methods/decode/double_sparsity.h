// Label channels for the double-sparsity decode selector: per layer and KV head, the few key
// channels whose products with the query dominate q·k ("outlier channels"), found offline on a
// calibration text (`longsparse calibrate`) and loaded by the selector (see double_sparsity.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attn/attention.h"

namespace ls {

// The criterion `channel_qk_statistic` computes, as written to and checked in the file.
inline constexpr const char* kLabelCriterion = "qk";

struct LabelChannels {
  std::string model;  // what it was calibrated on (free text)
  std::string criterion = kLabelCriterion;
  int kv_heads = 0, head_dim = 0, channels = 0;
  std::vector<std::vector<std::vector<int>>> heads;  // [layer][kv head] -> `channels` channels, largest first
};

// Double Sparsity's "qk" outlier statistic of one layer's captured attention: for KV head g
// and channel c, the mean over every position t of Σ_h |q[h][t][c] · k[g][t][c]| over the
// group's query heads h (each token against its own key, as the official calibration does).
// O(n · heads · dim); never forms the n×n matrix. Returns [kv_heads][dim].
std::vector<std::vector<double>> channel_qk_statistic(const AttnInput& in);

// The `count` channels of largest statistic, the largest first (ties: the lower channel).
std::vector<int> top_channels(const std::vector<double>& statistic, int count);

void save_label_channels(const LabelChannels& labels, const std::string& path);
// Throws ls::Error on a missing or malformed file (naming it).
LabelChannels load_label_channels(const std::string& path);

}  // namespace ls
