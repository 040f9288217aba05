// Per-layer / per-head method policies, head profiles and per-head plan assembly (see policy.h).
#include "methods/policy.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "methods/registry.h"

namespace ls {

namespace {

constexpr const char* kProfileFormat = "longsparse-head-profile";

std::string canonical_spec(const std::string& spec) { return MethodRegistry::instance().make_prefill(spec)->spec(); }

int parse_int(std::string_view text, std::string_view whole) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  LS_CHECK(ec == std::errc() && end == text.data() + text.size() && value >= 0,
           "layer list '{}': '{}' is not a layer number (expected e.g. 0,1,4-6)", whole, text);
  return value;
}

}  // namespace

HeadProfile load_profile(const std::string& path) {
  std::ifstream file(path);
  LS_CHECK(file.good(), "cannot open head profile '{}'", path);
  nlohmann::json json;
  try {
    file >> json;
  } catch (const nlohmann::json::exception& e) {
    fail("head profile '{}' is not valid JSON: {}", path, e.what());
  }
  LS_CHECK(json.is_object() && json.value("format", "") == kProfileFormat,
           "head profile '{}': expected an object with \"format\": \"{}\"", path, kProfileFormat);
  LS_CHECK(json.value("version", 0) == 1, "head profile '{}': unsupported version {} (this build reads 1)", path,
           json.value("version", 0));
  LS_CHECK(json.contains("layers") && json["layers"].is_array() && !json["layers"].empty(),
           "head profile '{}': \"layers\" must be a non-empty array of layers", path);
  HeadProfile profile;
  profile.model = json.value("model", "");
  const auto& layers = json["layers"];
  for (std::size_t l = 0; l < layers.size(); ++l) {
    LS_CHECK(layers[l].is_array() && !layers[l].empty(), "head profile '{}': layer {} must be a non-empty array of heads",
             path, l);
    LS_CHECK(l == 0 || layers[l].size() == layers[0].size(),
             "head profile '{}': layer {} has {} heads, layer 0 has {}", path, l, layers[l].size(), layers[0].size());
    std::vector<HeadAssignment> heads;
    for (std::size_t h = 0; h < layers[l].size(); ++h) {
      const auto& entry = layers[l][h];
      LS_CHECK(entry.is_object() && entry.contains("spec") && entry["spec"].is_string(),
               "head profile '{}': layer {} head {} needs a \"spec\" string", path, l, h);
      HeadAssignment a;
      try {
        a.spec = canonical_spec(entry["spec"].get<std::string>());
      } catch (const Error& e) {
        fail("head profile '{}': layer {} head {}: {}", path, l, h, e.what());
      }
      if (entry.contains("recall")) {
        LS_CHECK(entry["recall"].is_number(), "head profile '{}': layer {} head {}: \"recall\" must be a number",
                 path, l, h);
        a.recall = entry["recall"].get<double>();
      }
      heads.push_back(std::move(a));
    }
    profile.layers.push_back(std::move(heads));
  }
  return profile;
}

void save_profile(const HeadProfile& profile, const std::string& path) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& layer : profile.layers) {
    nlohmann::json heads = nlohmann::json::array();
    for (const HeadAssignment& a : layer) {
      nlohmann::json entry = {{"spec", a.spec}};
      if (a.recall >= 0) entry["recall"] = a.recall;
      heads.push_back(entry);
    }
    layers.push_back(heads);
  }
  nlohmann::json json = {{"format", kProfileFormat}, {"version", 1}, {"model", profile.model}, {"layers", layers}};
  std::ofstream file(path);
  LS_CHECK(file.good(), "cannot write head profile '{}'", path);
  file << json.dump(1) << "\n";
  LS_CHECK(file.good(), "error while writing head profile '{}'", path);
}

std::vector<int> parse_layer_list(std::string_view text) {
  std::vector<int> layers;
  std::string_view rest = text;
  while (!rest.empty()) {
    std::size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    std::size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      layers.push_back(parse_int(item, text));
    } else {
      int first = parse_int(item.substr(0, dash), text), last = parse_int(item.substr(dash + 1), text);
      LS_CHECK(first <= last, "layer list '{}': range '{}' runs backwards", text, item);
      for (int l = first; l <= last; ++l) layers.push_back(l);
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
    LS_CHECK(!rest.empty(), "layer list '{}' ends with a comma", text);
  }
  std::sort(layers.begin(), layers.end());
  layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  return layers;
}

Plan refine_plan(const Plan& plan, int block_q, int block_k) {
  if (plan.block_q == block_q && plan.block_k == block_k) return plan;
  LS_CHECK(block_q > 0 && block_k > 0 && plan.block_q % block_q == 0 && plan.block_k % block_k == 0,
           "cannot refine a {}x{} plan to {}x{} blocks: the new sizes must divide the old ones", plan.block_q,
           plan.block_k, block_q, block_k);
  const std::int64_t ratio_k = plan.block_k / block_k;
  PlanBuilder builder(plan.heads, plan.row_heads, plan.n_q, plan.n_k, block_q, block_k);
  const std::int64_t q_blocks = builder.q_blocks();
  for (std::int64_t r = 0; r < builder.rows(); ++r) {
    const std::int64_t head_row = r / q_blocks, qb = r % q_blocks;
    const std::int64_t source = head_row * plan.q_blocks() + (qb * block_q) / plan.block_q;
    for (const BlockRange& range : plan.row_ranges(source))
      builder.add_blocks(r, std::int64_t(range.begin) * ratio_k, std::int64_t(range.end) * ratio_k);
    for (std::int32_t key : plan.row_columns(source)) builder.add_column(r, key);
  }
  return builder.finish();
}

Plan assemble_plan(std::span<const Plan* const> head_plans) {
  LS_CHECK(!head_plans.empty(), "assemble_plan: no plans");
  const Plan& first = *head_plans[0];
  const int heads = first.heads;
  LS_CHECK(std::int64_t(head_plans.size()) == heads, "assemble_plan: {} plans for {} heads", head_plans.size(), heads);
  int block_q = first.block_q, block_k = first.block_k;
  for (const Plan* p : head_plans) {
    LS_CHECK(p->heads == heads && p->n_q == first.n_q && p->n_k == first.n_k,
             "assemble_plan: plans for different inputs (heads {} / {}, n_q {} / {}, n_k {} / {})", p->heads, heads,
             p->n_q, first.n_q, p->n_k, first.n_k);
    block_q = std::min(block_q, p->block_q);
    block_k = std::min(block_k, p->block_k);
  }
  // Refine each distinct plan once.
  std::map<const Plan*, Plan> refined;
  for (const Plan* p : head_plans)
    if (!refined.count(p)) refined.emplace(p, refine_plan(*p, block_q, block_k));
  Plan out;
  out.heads = heads;
  out.row_heads = heads;
  out.n_q = first.n_q;
  out.n_k = first.n_k;
  out.block_q = block_q;
  out.block_k = block_k;
  for (int h = 0; h < heads; ++h) {
    const Plan& source = refined.at(head_plans[h]);
    for (std::int64_t qb = 0; qb < out.q_blocks(); ++qb) {
      const std::int64_t r = source.row(h, qb);
      auto ranges = source.row_ranges(r);
      auto cols = source.row_columns(r);
      out.ranges.insert(out.ranges.end(), ranges.begin(), ranges.end());
      out.columns.insert(out.columns.end(), cols.begin(), cols.end());
      out.range_offsets.push_back(std::int64_t(out.ranges.size()));
      out.column_offsets.push_back(std::int64_t(out.columns.size()));
    }
  }
  return out;
}

Policy::Policy(const std::string& default_spec) : default_spec_(canonical_spec(default_spec)) {
  make(default_spec_);
  make("dense");
}

const PrefillMethod& Policy::make(const std::string& spec) {
  auto it = methods_.find(spec);
  if (it != methods_.end()) return *it->second;
  auto method = MethodRegistry::instance().make_prefill(spec);
  std::string canonical = method->spec();
  // The same method may already be there under its canonical spec: keep that one.
  return *methods_.try_emplace(std::move(canonical), std::move(method)).first->second;
}

void Policy::set_dense_layers(std::vector<int> layers) {
  std::sort(layers.begin(), layers.end());
  dense_layers_ = std::move(layers);
}

void Policy::set_profile(HeadProfile profile) {
  for (auto& layer : profile.layers)
    for (HeadAssignment& a : layer) a.spec = make(a.spec).spec();
  profile_ = std::move(profile);
}

const std::string& Policy::spec(int layer, int head) const {
  static const std::string dense = "dense";
  if (std::binary_search(dense_layers_.begin(), dense_layers_.end(), layer)) return dense;
  if (layer >= 0 && layer < int(profile_.layers.size())) {
    const auto& heads = profile_.layers[layer];
    LS_CHECK(head >= 0 && head < int(heads.size()), "head profile has {} heads per layer; head {} asked for",
             heads.size(), head);
    return heads[head].spec;
  }
  return default_spec_;
}

const PrefillMethod& Policy::method(int layer, int head) const { return *methods_.at(spec(layer, head)); }

bool Policy::uniform(int layer, int heads) const {
  for (int h = 1; h < heads; ++h)
    if (spec(layer, h) != spec(layer, 0)) return false;
  return true;
}

std::int64_t Policy::distance_limit(int layer, int heads) const {
  const std::int64_t limit = method(layer, 0).rope_distance_limit();
  for (int h = 1; h < heads; ++h)
    LS_CHECK(method(layer, h).rope_distance_limit() == limit,
             "layer {}: heads 0 and {} ask for different RoPE distance caps ({} and {}: '{}', '{}'); one cap per "
             "layer is supported",
             layer, h, limit, method(layer, h).rope_distance_limit(), spec(layer, 0), spec(layer, h));
  return limit;
}

Plan Policy::build_plan(const AttnInput& in, int layer) const {
  const int heads = in.shape.heads;
  if (layer >= 0 && layer < int(profile_.layers.size()))
    LS_CHECK(profile_.heads() == heads, "head profile has {} heads per layer but layer {} has {} query heads",
             profile_.heads(), layer, heads);
  PlanContext context;
  context.layer = layer;
  if (uniform(layer, heads)) return method(layer, 0).build_plan(in, context);
  std::map<std::string, Plan> plans;  // one build per distinct spec
  for (int h = 0; h < heads; ++h) {
    const std::string& s = spec(layer, h);
    if (!plans.count(s)) plans.emplace(s, method(layer, h).build_plan(in, context));
  }
  std::vector<const Plan*> per_head(heads);
  for (int h = 0; h < heads; ++h) per_head[h] = &plans.at(spec(layer, h));
  return assemble_plan(per_head);
}

std::string Policy::describe() const {
  return fmt::format("default {}; dense layers [{}]; profile: {} layers x {} heads", default_spec_,
                     fmt::join(dense_layers_, ","), profile_.layers.size(), profile_.heads());
}

}  // namespace ls
