// Policy: which prefill method runs in each (layer, query head) (docs/DESIGN.md §6).
//   - one spec everywhere ("vertical-slash", "streaming:sink=4,window=2000", ...);
//   - `dense_layers`: layers that stay dense whatever else is set (MASFormer / LongGen style
//     hybrid layers), e.g. "0,1" or "0-3,12";
//   - a per-head profile (from MInference-style pattern search, pattern_search.h) assigning a
//     spec to every (layer, head); layers the profile does not cover use the default spec.
// Precedence: dense_layers, then the profile, then the default spec.
//
// Plans are rows per (query head, query block), so a layer whose heads use different methods
// gets one Plan: each method builds its plan for the whole layer once, and head h takes its
// rows from its own method's plan (assemble_plan). Plans with different block sizes are first
// refined to the smallest one, which is exact when the sizes divide each other.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "methods/method.h"

namespace ls {

struct HeadAssignment {
  std::string spec;     // canonical method spec
  double recall = -1;   // attention mass its plan kept during the search; -1 when unknown
};

// [layers][heads] assignments; every layer has the same number of heads.
struct HeadProfile {
  std::string model;  // free text: which model / calibration it came from
  std::vector<std::vector<HeadAssignment>> layers;
  int heads() const { return layers.empty() ? 0 : int(layers.front().size()); }
};

// JSON file: {"format": "longsparse-head-profile", "version": 1, "model": "...",
//             "layers": [[{"spec": "...", "recall": 0.97}, ...], ...]}.
// Loading checks the structure and resolves every spec through the registry; errors name the
// file, the layer and the head.
HeadProfile load_profile(const std::string& path);
void save_profile(const HeadProfile& profile, const std::string& path);

// "0,1,4-6" -> {0, 1, 4, 5, 6}; throws ls::Error on anything else.
std::vector<int> parse_layer_list(std::string_view text);

// Copies the plan's index arrays to finer blocks; block_q and block_k must divide the plan's.
Plan refine_plan(const Plan& plan, int block_q, int block_k);

// One plan whose rows for head h are those of head_plans[h] (all for the same input; any
// row_heads; block sizes are refined to the smallest). Rows are per query head.
Plan assemble_plan(std::span<const Plan* const> head_plans);

class Policy {
 public:
  explicit Policy(const std::string& default_spec = "dense");
  void set_dense_layers(std::vector<int> layers);
  void set_profile(HeadProfile profile);

  const std::string& spec(int layer, int head) const;
  const PrefillMethod& method(int layer, int head) const;
  // True when every head of the layer runs the same method.
  bool uniform(int layer, int heads) const;
  // The cap on the relative distance RoPE sees that the layer's methods ask for
  // (PrefillMethod::rope_distance_limit; 0: none). Throws ls::Error when the layer's heads
  // ask for different caps: the forward pass applies one per layer.
  std::int64_t distance_limit(int layer, int heads) const;
  // The layer's plan: each distinct method builds once; heads take rows from their own.
  Plan build_plan(const AttnInput& in, int layer) const;
  // One line: default spec, dense layers, profile size.
  std::string describe() const;

 private:
  const PrefillMethod& make(const std::string& spec);
  std::string default_spec_;
  std::vector<int> dense_layers_;
  HeadProfile profile_;
  std::map<std::string, std::unique_ptr<PrefillMethod>, std::less<>> methods_;  // by canonical spec
};

}  // namespace ls
