// longsparse._core: the Python bindings (nanobind). The Python package (python/longsparse)
// re-exports these names with its own docstrings where they read better in Python.
//
// Arrays: float32, C-contiguous, on the CPU, from numpy or anything nanobind imports (the
// buffer protocol, DLPack: torch CPU tensors); read in place, never copied. Any other dtype,
// layout, device or rank is a ValueError that names the argument. Kernels run with the GIL
// released. Results are new numpy arrays owned by Python.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "attn/analysis.h"
#include "attn/flash.h"
#include "attn/plan.h"
#include "attn/plan_io.h"
#include "cli/command.h"
#include "cli/eval_model.h"
#include "cli/runtime.h"
#include "core/error.h"
#include "core/parallel.h"
#include "methods/registry.h"
#include "model/chat.h"
#include "model/generate.h"
#include "model/gguf.h"
#include "model/model_path.h"
#include "model/sparse_prefill.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using Array = nb::ndarray<nb::ro>;

// A float32 C-contiguous CPU array of rank `rank`, or ValueError naming `name`.
Array float_array(nb::handle object, const char* name, std::size_t rank) {
  Array a;
  if (!nb::try_cast<Array>(object, a, false))
    throw nb::value_error(fmt::format("{} must be an array (numpy, a torch CPU tensor, or anything with the buffer "
                                      "protocol or DLPack), not {}",
                                      name, nb::type_name(object.type()).c_str())
                              .c_str());
  if (a.device_type() != nb::device::cpu::value)
    throw nb::value_error(fmt::format("{} must be in CPU memory", name).c_str());
  if (a.dtype() != nb::dtype<float>())
    throw nb::value_error(fmt::format("{} must be float32 (convert with .astype(numpy.float32))", name).c_str());
  if (a.ndim() != rank)
    throw nb::value_error(fmt::format("{} must have {} dimensions, got {}", name, rank, a.ndim()).c_str());
  std::int64_t expected = 1;
  for (std::size_t i = rank; i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expected)
      throw nb::value_error(
          fmt::format("{} must be C-contiguous (use numpy.ascontiguousarray or .contiguous())", name).c_str());
    expected *= std::int64_t(a.shape(i));
  }
  return a;
}

const float* data_of(const Array& a) { return static_cast<const float*>(a.data()); }

// A new numpy float32 array of `shape` that owns `data` (from std::aligned_alloc).
nb::ndarray<nb::numpy, float> owned_float(float* data, std::vector<std::size_t> shape) {
  nb::capsule owner(data, [](void* p) noexcept { std::free(p); });
  return nb::ndarray<nb::numpy, float>(data, shape.size(), shape.data(), owner);
}

float* alloc_floats(std::size_t count) {
  const std::size_t bytes = ((std::max<std::size_t>(count, 1) * sizeof(float) + 63) / 64) * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  return p;
}

template <typename T>
nb::ndarray<nb::numpy, T> owned_copy(const T* values, std::vector<std::size_t> shape) {
  std::size_t count = 1;
  for (std::size_t d : shape) count *= d;
  T* data = new T[std::max<std::size_t>(count, 1)];
  if (count) std::memcpy(data, values, count * sizeof(T));
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  return nb::ndarray<nb::numpy, T>(data, shape.size(), shape.data(), owner);
}

// Q [heads][n_q][dim], K and V [kv_heads][n_k][dim] checked against each other.
struct QkvArrays {
  Array q, k, v;
  ls::AttnShape shape;
  ls::AttnInput input() const { return {data_of(q), data_of(k), v.is_valid() ? data_of(v) : data_of(k), shape}; }
};

QkvArrays qkv_arrays(nb::handle q, nb::handle k, nb::handle v, std::int64_t window, double scale) {
  QkvArrays a;
  a.q = float_array(q, "q", 3);
  a.k = float_array(k, "k", 3);
  if (!v.is_none()) {
    a.v = float_array(v, "v", 3);
    if (a.v.shape(0) != a.k.shape(0) || a.v.shape(1) != a.k.shape(1) || a.v.shape(2) != a.k.shape(2))
      throw nb::value_error(fmt::format("v must have k's shape ({}, {}, {}), got ({}, {}, {})", a.k.shape(0),
                                        a.k.shape(1), a.k.shape(2), a.v.shape(0), a.v.shape(1), a.v.shape(2))
                                .c_str());
  }
  if (a.q.shape(2) != a.k.shape(2))
    throw nb::value_error(
        fmt::format("q and k must have the same head dimension, got {} and {}", a.q.shape(2), a.k.shape(2)).c_str());
  if (a.q.shape(1) > a.k.shape(1))
    throw nb::value_error(fmt::format("q has {} queries but k only {} keys: the queries are the last positions of "
                                      "the keys",
                                      a.q.shape(1), a.k.shape(1))
                              .c_str());
  if (a.k.shape(0) == 0 || a.q.shape(0) % a.k.shape(0) != 0)
    throw nb::value_error(
        fmt::format("q's {} heads are not a multiple of k's {} KV heads", a.q.shape(0), a.k.shape(0)).c_str());
  if (window < 0) throw nb::value_error("window must be >= 0");
  if (!(scale >= 0)) throw nb::value_error("scale must be > 0 (or 0 / None for 1/sqrt(dim))");
  a.shape.heads = int(a.q.shape(0));
  a.shape.kv_heads = int(a.k.shape(0));
  a.shape.n_q = std::int64_t(a.q.shape(1));
  a.shape.n_k = std::int64_t(a.k.shape(1));
  a.shape.dim = int(a.q.shape(2));
  a.shape.window = window;
  a.shape.scale = float(scale);
  a.shape.validate();
  return a;
}

// A plan with what its density and file need beside the CSR arrays.
struct PyPlan {
  ls::Plan plan;
  std::string spec;
  int layer = -1;
  std::int64_t window = 0;
  double scale = 0.0;  // the softmax scale it was built with (0: 1/sqrt(dim)); quality() uses it
};

void check_plan_fits(const PyPlan& p, const ls::AttnShape& shape) {
  const ls::Plan& plan = p.plan;
  if (plan.heads != shape.heads || plan.n_q != shape.n_q || plan.n_k != shape.n_k)
    throw nb::value_error(fmt::format("the plan is for {} heads, {} queries and {} keys, but the input has {}, {} "
                                      "and {}",
                                      plan.heads, plan.n_q, plan.n_k, shape.heads, shape.n_q, shape.n_k)
                              .c_str());
}

nb::dict csr_of(const PyPlan& p) {
  const ls::Plan& plan = p.plan;
  const std::vector<std::int32_t> ranges = ls::flat_ranges(plan);
  nb::dict d;
  d["heads"] = plan.heads;
  d["row_heads"] = plan.row_heads;
  d["n_q"] = plan.n_q;
  d["n_k"] = plan.n_k;
  d["block_q"] = plan.block_q;
  d["block_k"] = plan.block_k;
  d["range_offsets"] = owned_copy(plan.range_offsets.data(), {plan.range_offsets.size()});
  d["ranges"] = owned_copy(ranges.data(), {plan.ranges.size(), 2});
  d["column_offsets"] = owned_copy(plan.column_offsets.data(), {plan.column_offsets.size()});
  d["columns"] = owned_copy(plan.columns.data(), {plan.columns.size()});
  return d;
}

// 1-D integer array → vector, or ValueError naming it.
template <typename T>
std::vector<T> int_vector(nb::handle object, const char* name) {
  nb::object np = nb::module_::import_("numpy");
  nb::object a = np.attr("asarray")(object);
  if (nb::cast<int>(a.attr("ndim")) != 1)
    throw nb::value_error(fmt::format("{} must be one-dimensional", name).c_str());
  if (!nb::cast<bool>(np.attr("issubdtype")(a.attr("dtype"), np.attr("integer"))) && nb::cast<std::size_t>(a.attr("size")) > 0)
    throw nb::value_error(fmt::format("{} must hold integers", name).c_str());
  nb::object c = np.attr("ascontiguousarray")(a, "dtype"_a = std::is_same_v<T, std::int64_t> ? "int64" : "int32");
  if (!nb::cast<bool>(np.attr("array_equal")(c, a)))
    throw nb::value_error(fmt::format("{} has values out of range for {}", name, sizeof(T) == 8 ? "int64" : "int32").c_str());
  auto arr = nb::cast<nb::ndarray<nb::ro, const T, nb::ndim<1>>>(c);
  const T* data = arr.data();
  return std::vector<T>(data, data + arr.shape(0));
}

PyPlan plan_from_csr(int heads, int row_heads, std::int64_t n_q, std::int64_t n_k, int block_q, int block_k,
                     nb::handle range_offsets, nb::handle ranges, nb::handle column_offsets, nb::handle columns,
                     std::int64_t window, const std::string& spec, int layer) {
  if (heads < 1 || row_heads < 1 || heads % row_heads != 0)
    throw nb::value_error(fmt::format("heads ({}) must be a positive multiple of row_heads ({})", heads, row_heads).c_str());
  if (block_q < 1 || block_k < 1) throw nb::value_error("block_q and block_k must be positive");
  if (n_q < 1 || n_k < n_q) throw nb::value_error(fmt::format("need 1 <= n_q <= n_k, got n_q={}, n_k={}", n_q, n_k).c_str());
  if (window < 0) throw nb::value_error("window must be >= 0");
  PyPlan p;
  p.plan.heads = heads, p.plan.row_heads = row_heads, p.plan.n_q = n_q, p.plan.n_k = n_k;
  p.plan.block_q = block_q, p.plan.block_k = block_k;
  p.plan.range_offsets = int_vector<std::int64_t>(range_offsets, "range_offsets");
  nb::object np = nb::module_::import_("numpy");
  nb::object r = np.attr("asarray")(ranges);
  if (!(nb::cast<int>(r.attr("ndim")) == 2 && nb::cast<int>(r.attr("shape")[1]) == 2) && nb::cast<std::size_t>(r.attr("size")) > 0)
    throw nb::value_error("ranges must have shape (count, 2): [begin, end) key blocks");
  const std::vector<std::int32_t> flat = int_vector<std::int32_t>(r.attr("reshape")(-1), "ranges");
  for (std::size_t i = 0; i + 1 < flat.size(); i += 2) p.plan.ranges.push_back({flat[i], flat[i + 1]});
  p.plan.column_offsets = int_vector<std::int64_t>(column_offsets, "column_offsets");
  p.plan.columns = int_vector<std::int32_t>(columns, "columns");
  ls::validate(p.plan);  // ls::Error (a ValueError) naming the first problem
  p.spec = spec, p.window = window, p.layer = layer;
  return p;
}

std::vector<std::int64_t> query_rows(nb::handle rows, std::int64_t n_q) {
  std::vector<std::int64_t> out = int_vector<std::int64_t>(rows, "rows");
  for (std::int64_t r : out)
    if (r < 0 || r >= n_q) throw nb::value_error(fmt::format("row {} is outside [0, {})", r, n_q).c_str());
  return out;
}

nb::dict registry_entry(const ls::MethodInfo& info) {
  nb::dict d;
  d["name"] = info.name;
  d["phase"] = info.phase;
  d["paper"] = info.paper;
  d["summary"] = info.summary;
  nb::list params;
  for (const ls::ParamSpec& p : info.params) {
    nb::dict q;
    q["name"] = p.name;
    q["default"] = p.default_value;
    q["meaning"] = p.meaning;
    static const char* const kinds[] = {"int", "float", "bool", "string"};
    q["kind"] = kinds[int(p.kind)];
    if (p.kind == ls::ParamSpec::Kind::Int || p.kind == ls::ParamSpec::Kind::Float) {
      q["min"] = p.min;
      q["max"] = p.max;
    }
    if (!p.choices.empty()) q["choices"] = p.choices;
    params.append(q);
  }
  d["params"] = params;
  return d;
}

class PyMethod {
 public:
  explicit PyMethod(const std::string& spec) {
    const ls::MethodSpec parsed = ls::parse_method_spec(spec);
    const ls::MethodInfo& info = ls::MethodRegistry::instance().find(parsed.name);
    if (info.phase != "prefill")
      throw ls::Error(fmt::format("'{}' is a decode selector: it runs inside Model.generate(decode=...), not on "
                                  "Q/K/V; Method takes prefill methods",
                                  parsed.name));
    method_ = ls::MethodRegistry::instance().make_prefill(spec);
    name_ = info.name;
  }
  const std::string& spec() const { return method_->spec(); }
  const std::string& name() const { return name_; }

  PyPlan plan(nb::handle q, nb::handle k, nb::handle v, int layer, std::int64_t window, double scale) const {
    const QkvArrays a = qkv_arrays(q, k, v, window, scale);
    PyPlan p;
    {
      nb::gil_scoped_release release;
      p.plan = method_->build_plan(a.input(), ls::PlanContext{layer});
    }
    ls::validate(p.plan);
    p.spec = method_->spec(), p.layer = layer, p.window = window, p.scale = scale;
    return p;
  }

 private:
  std::unique_ptr<ls::PrefillMethod> method_;
  std::string name_;
};

nb::object attention(nb::handle q, nb::handle k, nb::handle v, bool causal, std::int64_t window, double scale,
                     const PyPlan* plan, bool return_lse) {
  if (!causal)
    throw nb::value_error("causal=False is not supported: longsparse's kernels compute causal (prefill) attention, "
                          "the queries being the last positions of the keys");
  const QkvArrays a = qkv_arrays(q, k, v, window, scale);
  if (v.is_none()) throw nb::value_error("v is required");
  if (plan) check_plan_fits(*plan, a.shape);
  const std::size_t outputs = std::size_t(a.shape.heads) * std::size_t(a.shape.n_q) * std::size_t(a.shape.dim);
  float* out = alloc_floats(outputs);
  float* lse = return_lse ? alloc_floats(std::size_t(a.shape.heads) * std::size_t(a.shape.n_q)) : nullptr;
  try {
    nb::gil_scoped_release release;
    const ls::AttnInput in = a.input();
    if (plan || return_lse) {
      const ls::Plan dense = plan ? ls::Plan{} : ls::make_dense_plan(a.shape.heads, a.shape.kv_heads, a.shape.n_q, a.shape.n_k);
      if (return_lse) ls::plan_attention(in, plan ? plan->plan : dense, out, lse);
      else ls::plan_attention(in, plan->plan, out);
    } else {
      ls::flash_attention(in, out);
    }
  } catch (...) {
    std::free(out), std::free(lse);
    throw;
  }
  nb::object o = nb::cast(owned_float(out, {std::size_t(a.shape.heads), std::size_t(a.shape.n_q), std::size_t(a.shape.dim)}));
  if (!return_lse) return o;
  nb::object l = nb::cast(owned_float(lse, {std::size_t(a.shape.heads), std::size_t(a.shape.n_q)}));
  return nb::make_tuple(o, l);
}

nb::dict quality(const PyPlan& p, nb::handle q, nb::handle k, nb::handle v, int rows, std::uint64_t seed) {
  if (rows < 1) throw nb::value_error("rows must be positive");
  const QkvArrays a = qkv_arrays(q, k, v, p.window, p.scale);
  check_plan_fits(p, a.shape);
  ls::PlanQuality result;
  {
    nb::gil_scoped_release release;
    const ls::AttnInput in = a.input();
    std::vector<float> out;
    if (!v.is_none()) {
      out.resize(std::size_t(a.shape.heads) * std::size_t(a.shape.n_q) * std::size_t(a.shape.dim));
      ls::plan_attention(in, p.plan, out.data());
    }
    result = ls::measure_plan(in, p.plan, out.empty() ? nullptr : out.data(), rows, seed);
  }
  nb::dict d;
  d["recall"] = result.recall;
  d["min_recall"] = result.min_recall;
  if (!v.is_none()) d["rel_err"] = result.rel_err;
  d["rows"] = result.rows;
  return d;
}

// A loaded model and tokenizer; one call at a time (the forward pass owns its activations).
class PyModel {
 public:
  explicit PyModel(const std::string& name_or_path) {
    path_ = ls::resolve_model_path(name_or_path);
    file_ = ls::GgufFile::open(path_);
    model_ = std::make_unique<ls::Transformer>(*file_);
    tokenizer_ = std::make_unique<ls::Tokenizer>(ls::tokenizer_data_from_gguf(*file_));
  }
  const std::string& path() const { return path_; }

  nb::dict config() const {
    const ls::ModelConfig& c = model_->config();
    nb::dict d;
    d["architecture"] = c.architecture;
    d["name"] = c.name;
    d["layers"] = c.layers;
    d["heads"] = c.heads;
    d["kv_heads"] = c.kv_heads;
    d["head_dim"] = c.head_dim;
    d["embedding"] = c.embedding;
    d["vocab"] = c.vocab;
    d["context_length"] = c.context_length;
    d["sliding_window"] = c.sliding_window;
    d["layer_pattern"] = c.layer_pattern();
    d["global_layers"] = c.global_layers();
    d["summary"] = c.summary();
    return d;
  }

  std::vector<std::int32_t> tokenize(const std::string& text, bool special, bool chat) const {
    return tokenizer_->encode(chat ? chat_prompt(text) : text, special);
  }
  nb::bytes detokenize_bytes(const std::vector<std::int32_t>& ids, bool special) const {
    const std::string s = tokenizer_->decode(ids, special);
    return nb::bytes(s.data(), s.size());
  }

  nb::dict generate(const std::string& prompt, std::int64_t max_tokens, double temperature, int top_k, double top_p,
                    double min_p, std::uint64_t seed, const std::string& prefill, const std::string& decode,
                    const std::string& policy, const std::string& dense_layers, bool chat, std::int64_t context,
                    const std::string& cache_type_k, const std::string& cache_type_v,
                    std::optional<std::int64_t> ubatch_arg) {
    std::lock_guard lock(mutex_);
    if (max_tokens < 0) throw nb::value_error("max_tokens must be >= 0");
    if (ubatch_arg && *ubatch_arg < 0) throw nb::value_error("ubatch must be >= 0");
    const ls::ModelConfig& config = model_->config();
    const std::int64_t ctx = context > 0 ? context : config.context_length;
    if (ctx > config.context_length)
      throw ls::Error(fmt::format("context {} is beyond {}'s trained context of {} tokens", ctx, config.name,
                                  config.context_length));
    ls::SamplerConfig sampler;
    sampler.temperature = float(temperature), sampler.top_k = top_k, sampler.top_p = float(top_p);
    sampler.min_p = float(min_p), sampler.seed = seed;
    ls::validate(sampler);
    const ls::KvType key_type = ls::parse_kv_type(cache_type_k), value_type = ls::parse_kv_type(cache_type_v);
    const std::vector<std::int32_t> tokens = tokenizer_->encode(chat ? chat_prompt(prompt) : prompt, true);
    const std::vector<std::int32_t> fitted = ls::fit_prompt(tokens, ctx - max_tokens, ls::Truncation::None);
    const std::string prefill_spec = prefill == "dense" ? "" : prefill;
    std::unique_ptr<ls::SparsePrefill> sparse =
        ls::cli::make_sparse_prefill(prefill_spec, policy, dense_layers, config.layers, config.heads);
    std::unique_ptr<ls::DecodeSelector> selector = ls::cli::make_decode_selector(decode, ctx);
    const std::int64_t ubatch =
        ls::cli::resolve_ubatch(ubatch_arg.value_or(ls::cli::CacheOptions::kAuto), sparse != nullptr, false);
    ls::GenerateResult result;
    ls::KvCache cache = model_->make_cache(ctx, key_type, value_type);
    {
      nb::gil_scoped_release release;
      ls::GenerateOptions options;
      options.max_tokens = max_tokens;
      options.sampler = sampler;
      options.hooks.attention = sparse.get();
      options.ubatch = ubatch;
      options.decode = selector.get();
      result = ls::generate(*model_, *tokenizer_, fitted, cache, options);
    }
    // run --json's fields, through Python's json module (nested kernels included).
    nlohmann::json fields = ls::cli::generation_json(result, cache, config, sparse.get(), selector.get());
    fields["ubatch"] = ubatch;
    return nb::cast<nb::dict>(nb::module_::import_("json").attr("loads")(fields.dump(-1, ' ', false,
                                                                                    nlohmann::json::error_handler_t::replace)));
  }

  nb::dict capture(const std::string& text, const std::vector<int>& layers, bool chat) {
    std::lock_guard lock(mutex_);
    const ls::ModelConfig& config = model_->config();
    if (layers.empty()) throw nb::value_error("layers names no layer");
    std::set<int> wanted;
    for (int l : layers) {
      if (l < 0 || l >= config.layers)
        throw nb::value_error(fmt::format("layer {} does not exist: {} has layers 0-{}", l, config.name,
                                          config.layers - 1)
                                  .c_str());
      wanted.insert(l);
    }
    const std::vector<std::int32_t> tokens = tokenizer_->encode(chat ? chat_prompt(text) : text, true);
    if (tokens.empty()) throw nb::value_error("the text gives no tokens");
    if (std::int64_t(tokens.size()) > config.context_length)
      throw ls::Error(fmt::format("the text is {} tokens, more than {}'s context of {}", tokens.size(), config.name,
                                  config.context_length));
    struct Layer {
      int layer;
      ls::AttnShape shape;
      float *q, *k, *v;
    };
    std::vector<Layer> captured;
    struct Stop {};
    try {
      nb::gil_scoped_release release;
      ls::KvCache cache = model_->make_cache(std::int64_t(tokens.size()));
      std::vector<float> logits(std::size_t(config.vocab));
      ls::PrefillHooks hooks;
      hooks.capture = [&](int layer, const ls::AttnInput& in) {
        if (wanted.count(layer)) {
          const ls::AttnShape& s = in.shape;
          const std::size_t nq = std::size_t(s.heads) * s.n_q * s.dim, nk = std::size_t(s.kv_heads) * s.n_k * s.dim;
          Layer c{layer, s, alloc_floats(nq), nullptr, nullptr};
          captured.push_back(c);
          captured.back().k = alloc_floats(nk);
          captured.back().v = alloc_floats(nk);
          std::memcpy(captured.back().q, in.q, nq * sizeof(float));
          std::memcpy(captured.back().k, in.k, nk * sizeof(float));
          std::memcpy(captured.back().v, in.v, nk * sizeof(float));
        }
        if (layer >= *wanted.rbegin()) throw Stop{};  // the rest of the pass is not needed
      };
      model_->prefill(tokens, cache, logits.data(), hooks);
    } catch (const Stop&) {
    } catch (...) {
      for (Layer& c : captured) std::free(c.q), std::free(c.k), std::free(c.v);
      throw;
    }
    nb::dict out;
    for (Layer& c : captured) {
      const ls::AttnShape& s = c.shape;
      nb::dict d;
      d["q"] = owned_float(c.q, {std::size_t(s.heads), std::size_t(s.n_q), std::size_t(s.dim)});
      d["k"] = owned_float(c.k, {std::size_t(s.kv_heads), std::size_t(s.n_k), std::size_t(s.dim)});
      d["v"] = owned_float(c.v, {std::size_t(s.kv_heads), std::size_t(s.n_k), std::size_t(s.dim)});
      d["scale"] = s.softmax_scale();
      d["window"] = s.window;
      d["tokens"] = s.n_k;
      out[nb::int_(c.layer)] = d;
    }
    return out;
  }

 private:
  std::string chat_prompt(const std::string& text) const {
    const ls::ChatMessage message{"user", text};
    return ls::apply_chat_template(tokenizer_->data(), {&message, 1}, /*add_generation_prompt=*/true);
  }

  std::string path_;
  std::unique_ptr<ls::GgufFile> file_;
  std::unique_ptr<ls::Transformer> model_;
  std::unique_ptr<ls::Tokenizer> tokenizer_;
  std::mutex mutex_;
};

int run_cli(const std::vector<std::string>& args) {
  std::vector<std::string> storage = args;
  storage.insert(storage.begin(), "longsparse");
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  nb::gil_scoped_release release;
  return ls::cli::run_cli(int(storage.size()), argv.data(), /*rethrow=*/true);
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "longsparse's C++ engine (the package `longsparse` wraps it)";
  nb::exception<ls::Error>(m, "Error", PyExc_ValueError);
  ls::cli::apply_threads(0);

  m.def("set_threads", [](int threads) { return ls::cli::apply_threads(threads); }, "threads"_a,
        "Sets the threads the kernels use (0: every core this process may run on); returns the count in use.");
  m.def("threads", &ls::num_threads, "The threads the kernels use.");
  m.def("kernels_json", [] { return ls::cli::kernels_json().dump(); },
        "The CPU and the kernels that run on it, as JSON (what `run --json` reports as kernels).");

  m.def("attention", &attention, "q"_a, "k"_a, "v"_a, "causal"_a = true, "window"_a = 0, "scale"_a = 0.0,
        "plan"_a = nb::none(), "return_lse"_a = false);

  m.def("methods", [] {
    nb::list out;
    for (const ls::MethodInfo* info : ls::MethodRegistry::instance().list()) out.append(registry_entry(*info));
    return out;
  });

  nb::class_<PyPlan>(m, "Plan")
      .def_prop_ro("heads", [](const PyPlan& p) { return p.plan.heads; })
      .def_prop_ro("row_heads", [](const PyPlan& p) { return p.plan.row_heads; })
      .def_prop_ro("n_q", [](const PyPlan& p) { return p.plan.n_q; })
      .def_prop_ro("n_k", [](const PyPlan& p) { return p.plan.n_k; })
      .def_prop_ro("block_q", [](const PyPlan& p) { return p.plan.block_q; })
      .def_prop_ro("block_k", [](const PyPlan& p) { return p.plan.block_k; })
      .def_prop_ro("window", [](const PyPlan& p) { return p.window; })
      .def_prop_ro("layer", [](const PyPlan& p) { return p.layer; })
      .def_prop_ro("spec", [](const PyPlan& p) { return p.spec; })
      .def_prop_ro("density", [](const PyPlan& p) { return ls::density(p.plan, p.window); })
      .def_prop_ro("nbytes", [](const PyPlan& p) { return p.plan.bytes(); })
      .def("to_csr", &csr_of)
      .def("to_mask",
           [](const PyPlan& p, int head, nb::handle rows) {
             if (head < 0 || head >= p.plan.heads)
               throw nb::value_error(fmt::format("head {} is outside [0, {})", head, p.plan.heads).c_str());
             const std::vector<std::int64_t> r = query_rows(rows, p.plan.n_q);
             const std::size_t n_k = std::size_t(p.plan.n_k);
             bool* mask = new bool[std::max<std::size_t>(r.size() * n_k, 1)];
             ls::AttnShape shape;
             shape.n_q = p.plan.n_q, shape.n_k = p.plan.n_k, shape.window = p.window;
             for (std::size_t i = 0; i < r.size(); ++i) {
               const std::int64_t position = shape.position(r[i]), first = shape.first_key(position);
               for (std::size_t key = 0; key < n_k; ++key)
                 mask[i * n_k + key] = std::int64_t(key) >= first && std::int64_t(key) <= position &&
                                       p.plan.selects(head, r[i], std::int64_t(key));
             }
             nb::capsule owner(mask, [](void* q) noexcept { delete[] static_cast<bool*>(q); });
             const std::size_t shape2[2] = {r.size(), n_k};
             return nb::ndarray<nb::numpy, bool>(mask, 2, shape2, owner);
           },
           "head"_a, "rows"_a)
      .def("quality", &quality, "q"_a, "k"_a, "v"_a = nb::none(), "rows"_a = 64, "seed"_a = 1)
      .def("save",
           [](const PyPlan& p, const std::string& path) { ls::save_plan(p.plan, path, {p.spec, p.layer, p.window}); },
           "path"_a)
      .def_static("from_csr", &plan_from_csr, "heads"_a, "row_heads"_a, "n_q"_a, "n_k"_a, "block_q"_a, "block_k"_a,
                  "range_offsets"_a, "ranges"_a, "column_offsets"_a, "columns"_a, "window"_a = 0, "spec"_a = "",
                  "layer"_a = -1)
      .def("__repr__", [](const PyPlan& p) {
        return fmt::format("<longsparse.Plan {} heads={} n={} blocks {}x{} density={:.4f}>",
                           p.spec.empty() ? "(user)" : p.spec, p.plan.heads, p.plan.n_k, p.plan.block_q,
                           p.plan.block_k, ls::density(p.plan, p.window));
      });

  nb::class_<PyMethod>(m, "Method")
      .def(nb::init<const std::string&>(), "spec"_a)
      .def_prop_ro("spec", &PyMethod::spec)
      .def_prop_ro("name", &PyMethod::name)
      .def("plan", &PyMethod::plan, "q"_a, "k"_a, "v"_a = nb::none(), "layer"_a = -1, "window"_a = 0,
           "scale"_a = 0.0)
      .def("__repr__", [](const PyMethod& m) { return "<longsparse.Method " + m.spec() + ">"; });

  nb::class_<PyModel>(m, "Model")
      .def(nb::init<const std::string&>(), "model"_a)
      .def_prop_ro("path", &PyModel::path)
      .def_prop_ro("config", &PyModel::config)
      .def("tokenize", &PyModel::tokenize, "text"_a, "special"_a = true, "chat"_a = false)
      .def("detokenize_bytes", &PyModel::detokenize_bytes, "ids"_a, "special"_a = false)
      .def("generate", &PyModel::generate, "prompt"_a, "max_tokens"_a = 128, "temperature"_a = 0.0, "top_k"_a = 40,
           "top_p"_a = 0.95, "min_p"_a = 0.05, "seed"_a = 0, "prefill"_a = "dense", "decode"_a = "dense",
           "policy"_a = "", "dense_layers"_a = "", "chat"_a = false, "context"_a = 0, "cache_type_k"_a = "f16",
           "cache_type_v"_a = "f16", "ubatch"_a = nb::none())
      .def("capture", &PyModel::capture, "text"_a, "layers"_a, "chat"_a = false);

  m.def("cli", &run_cli, "args"_a,
        "Runs one `longsparse` command in this process (args without the program name); returns its exit "
        "status; errors raise longsparse.Error.");
}
