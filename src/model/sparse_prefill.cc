// Sparse prefill attention (see sparse_prefill.h).
#include "model/sparse_prefill.h"

#include <charconv>
#include <string>

#include "attn/flash.h"
#include "attn/plan.h"
#include "core/error.h"
#include "core/timer.h"

namespace ls {

SparsePrefill::SparsePrefill(std::unique_ptr<PrefillMethod> method, std::set<int> dense_layers)
    : method_(std::move(method)), dense_layers_(std::move(dense_layers)) {
  LS_CHECK(method_ != nullptr, "no prefill method");
}

void SparsePrefill::prefill(int layer, const AttnInput& in, float* out) {
  if (dense_layers_.count(layer)) {
    Timer timer;
    dense_attention(in, out);
    attention_ms_ += timer.ms();
    return;
  }
  Timer estimate;
  const Plan plan = method_->build_plan(in, PlanContext{layer});
  estimate_ms_ += estimate.ms();
  density_sum_ += density(plan, in.shape.window);
  ++planned_layers_;
  Timer attention;
  plan_attention(in, plan, out);
  attention_ms_ += attention.ms();
}

std::set<int> parse_layer_list(std::string_view list, int layers) {
  std::set<int> out;
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    int layer = -1;
    const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), layer);
    LS_CHECK(error == std::errc() && end == item.data() + item.size() && layer >= 0 && layer < layers,
             "bad layer '{}' in --dense-layers: expected comma-separated layer numbers in 0..{}",
             std::string(item), layers - 1);
    out.insert(layer);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  return out;
}

}  // namespace ls
