// `longsparse info -m MODEL [--json] [--tensors]`: what a GGUF file holds — version,
// alignment, metadata (long arrays and strings abbreviated), totals by tensor type and, with
// --tensors, one line per tensor (name, type, dims, bytes, offset).
#include <fmt/format.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "model/gguf.h"
#include "model/model_config.h"
#include "model/model_path.h"

namespace ls::cli {
namespace {

struct InfoOptions {
  std::string model = "smollm2";
  bool json = false;
  bool tensors = false;
};

constexpr std::size_t kShownItems = 8;  // array elements shown before "…"

std::string dims_text(const GgufTensor& t) {
  std::string s = "[";
  for (std::size_t i = 0; i < t.dims.size(); ++i) s += (i ? ", " : "") + std::to_string(t.dims[i]);
  return s + "]";
}

std::string megabytes(std::uint64_t bytes) {
  return fmt::format("{:.2f} MB", static_cast<double>(bytes) / 1e6);
}

struct TypeTotal {
  int count = 0;
  std::uint64_t bytes = 0;
  std::int64_t elements = 0;
};

std::map<std::string, TypeTotal> totals_by_type(const GgufFile& file) {
  std::map<std::string, TypeTotal> totals;
  for (const GgufTensor& t : file.tensors()) {
    TypeTotal& total = totals[ggml_type_name(t.type)];
    ++total.count;
    total.bytes += t.bytes;
    total.elements += t.elements();
  }
  return totals;
}

// A metadata value as JSON; arrays longer than kShownItems keep their first items and count.
nlohmann::ordered_json value_json(const GgufValue& v) {
  using T = GgufValue::Type;
  switch (v.type) {
    case T::Bool: return v.as_bool();
    case T::String: return v.as_string();
    case T::F32: return std::stod(fmt::format("{}", static_cast<float>(v.as_float())));
    case T::F64: return v.as_float();
    case T::U64: return std::get<std::uint64_t>(v.value);
    case T::Array: {
      const auto& items = v.as_array();
      nlohmann::ordered_json shown = nlohmann::ordered_json::array();
      for (std::size_t i = 0; i < items.size() && i < kShownItems; ++i) {
        shown.push_back(value_json(items[i]));
      }
      if (items.size() <= kShownItems) return shown;
      return {{"element_type", gguf_type_name(v.element_type)}, {"count", items.size()}, {"first", shown}};
    }
    default: return v.as_int();
  }
}

void print_json(const GgufFile& file, bool with_tensors) {
  nlohmann::ordered_json out;
  out["path"] = file.path();
  out["file_size"] = file.file_size();
  out["version"] = file.version();
  out["alignment"] = file.alignment();
  out["data_start"] = file.data_start();
  nlohmann::ordered_json metadata = nlohmann::ordered_json::object();
  for (const auto& [key, value] : file.metadata()) metadata[key] = value_json(value);
  out["metadata"] = metadata;
  out["tensor_count"] = file.tensors().size();
  nlohmann::ordered_json totals = nlohmann::ordered_json::array();
  for (const auto& [type, total] : totals_by_type(file)) {
    totals.push_back({{"type", type}, {"count", total.count}, {"bytes", total.bytes},
                      {"elements", total.elements}});
  }
  out["totals"] = totals;
  try {
    const ModelConfig c = ModelConfig::from_gguf(file);
    out["model"] = {{"summary", c.summary()},       {"architecture", c.architecture}, {"layers", c.layers},
                    {"layer_pattern", c.layer_pattern()}, {"global_layers", c.global_layers()},
                    {"sliding_window", c.sliding_window}, {"context_length", c.context_length},
                    {"finetune", c.finetune}};
  } catch (const Error& e) {
    out["model"] = {{"error", e.what()}};
  }
  if (with_tensors) {
    nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
    for (const GgufTensor& t : file.tensors()) {
      tensors.push_back({{"name", t.name}, {"type", ggml_type_name(t.type)}, {"dims", t.dims},
                         {"bytes", t.bytes}, {"offset", t.offset}, {"supported", t.supported()}});
    }
    out["tensors"] = tensors;
  }
  // Strings from the file need not be valid UTF-8; replace bad bytes rather than fail.
  fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

void print_text(const GgufFile& file, bool with_tensors) {
  fmt::print("file       {} ({})\n", file.path(), megabytes(file.file_size()));
  fmt::print("format     GGUF v{}, alignment {}, tensor data at byte {}\n", file.version(),
             file.alignment(), file.data_start());
  fmt::print("\nmetadata ({} keys)\n", file.metadata().size());
  std::size_t width = 0;
  for (const auto& [key, value] : file.metadata()) width = std::max(width, key.size());
  for (const auto& [key, value] : file.metadata()) {
    const std::string type = value.type == GgufValue::Type::Array
                                 ? std::string(gguf_type_name(value.element_type)) + "[]"
                                 : std::string(gguf_type_name(value.type));
    fmt::print("  {:<{}} {:<8} {}\n", key, width, type, value.to_string(kShownItems));
  }
  try {
    const ModelConfig c = ModelConfig::from_gguf(file);
    fmt::print("\nmodel      {}\n", c.summary());
    fmt::print("layers     {} (L: local, sliding window {}; G: global)\n", c.layer_pattern(), c.sliding_window);
  } catch (const Error& e) {
    fmt::print("\nmodel      not loadable: {}\n", e.what());
  }
  if (with_tensors) {
    std::size_t name_width = 4;
    for (const GgufTensor& t : file.tensors()) name_width = std::max(name_width, t.name.size());
    fmt::print("\ntensors\n  {:<{}} {:<6} {:<18} {:>12} {:>12}\n", "name", name_width, "type", "dims",
               "bytes", "offset");
    for (const GgufTensor& t : file.tensors()) {
      fmt::print("  {:<{}} {:<6} {:<18} {:>12} {:>12}{}\n", t.name, name_width, ggml_type_name(t.type),
                 dims_text(t), t.bytes, t.offset, t.supported() ? "" : "  (cannot dequantize)");
    }
  }
  std::uint64_t all_bytes = 0;
  std::int64_t all_elements = 0;
  fmt::print("\ntensors by type\n  {:<8} {:>6} {:>14} {:>14} {:>12}\n", "type", "count", "elements",
             "bytes", "bits/weight");
  for (const auto& [type, total] : totals_by_type(file)) {
    fmt::print("  {:<8} {:>6} {:>14} {:>14} {:>12.2f}\n", type, total.count, total.elements,
               total.bytes, 8.0 * static_cast<double>(total.bytes) / static_cast<double>(total.elements));
    all_bytes += total.bytes;
    all_elements += total.elements;
  }
  fmt::print("  {:<8} {:>6} {:>14} {:>14}   ({})\n", "total", file.tensors().size(), all_elements,
             all_bytes, megabytes(all_bytes));
}

void setup_info(CLI::App& app) {
  auto options = std::make_shared<InfoOptions>();
  app.add_option("-m,--model", options->model,
                 "GGUF file, or the name of a cached model (smollm2)")
      ->capture_default_str();
  app.add_flag("--json", options->json, "Print JSON instead of text");
  app.add_flag("--tensors", options->tensors, "List every tensor (name, type, dims, bytes, offset)");
  app.callback([options] {
    const auto file = GgufFile::open(resolve_model_path(options->model));
    if (options->json) {
      print_json(*file, options->tensors);
    } else {
      print_text(*file, options->tensors);
    }
  });
}

}  // namespace

LS_REGISTER_COMMAND(info, "Describe a GGUF model file: metadata, tensor types and sizes", setup_info);

}  // namespace ls::cli
