// The method registry: maps a spec "name" or "name:key=value,..." to a configured method,
// and lists every method with its phase, parameters (name, default, meaning, range) and paper.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "methods/decode_method.h"
#include "methods/method.h"

namespace ls {

struct ParamSpec {
  std::string name;
  std::string default_value;
  std::string meaning;
  enum class Kind { Int, Float, Bool, String } kind = Kind::Int;
  double min = 0;  // inclusive bounds for Int and Float
  double max = 1e18;
  std::vector<std::string> choices;  // allowed values for String (empty: any)
};

// Parameter values after parsing and validation; every declared parameter is present.
class Params {
 public:
  std::int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  const std::map<std::string, std::string>& values() const { return values_; }
  void set(const std::string& name, std::string value) { values_[name] = std::move(value); }

 private:
  std::map<std::string, std::string> values_;
};

struct MethodInfo {
  std::string name;
  std::string phase;    // "prefill" or "decode"
  std::string paper;    // e.g. "MInference (Jiang et al., NeurIPS 2024), §3.2"
  std::string summary;  // one line
  std::vector<ParamSpec> params;
  std::function<std::unique_ptr<PrefillMethod>(const Params&)> make_prefill;  // phase "prefill"
  std::function<std::unique_ptr<DecodeSelector>(const Params&)> make_decode;  // phase "decode"
};

// A parsed spec before validation.
struct MethodSpec {
  std::string name;
  std::vector<std::pair<std::string, std::string>> values;  // in the order written
};

// Splits "name:key=value,key=value". Throws ls::Error on a malformed spec.
MethodSpec parse_method_spec(std::string_view spec);

class MethodRegistry {
 public:
  static MethodRegistry& instance();
  void add(MethodInfo info);
  // All methods, sorted by phase then name.
  std::vector<const MethodInfo*> list() const;
  // A name may exist in both phases (streaming, dense); `phase` "prefill" or "decode" picks
  // one, "" the first registered in the order prefill, decode. Throws ls::Error listing the
  // known methods of the phase when `name` is unknown.
  const MethodInfo& find(std::string_view name, std::string_view phase = "") const;
  // Parses and validates a spec against the method's parameters: unknown keys and values
  // out of range are errors that list what is valid. Defaults fill what the spec omits.
  Params resolve(const MethodSpec& spec, std::string_view phase = "") const;
  // Canonical spec string "name:k=v,..." with every parameter.
  std::string canonical(const std::string& name, const Params& params, std::string_view phase = "") const;
  // Spec string -> configured prefill method.
  std::unique_ptr<PrefillMethod> make_prefill(std::string_view spec) const;
  // Spec string -> configured decode selector.
  std::unique_ptr<DecodeSelector> make_decode(std::string_view spec) const;

 private:
  const MethodInfo* lookup(std::string_view name, std::string_view phase) const;
  std::map<std::pair<std::string, std::string>, MethodInfo> methods_;  // (phase, name)
};

// Registers a method at static-initialisation time: LS_REGISTER_METHOD(make_info());
#define LS_REGISTER_METHOD_CAT2(a, b) a##b
#define LS_REGISTER_METHOD_CAT(a, b) LS_REGISTER_METHOD_CAT2(a, b)
#define LS_REGISTER_METHOD(info_expr)                                                   \
  static const bool LS_REGISTER_METHOD_CAT(ls_method_registered_, __LINE__) = [] {     \
    ::ls::MethodRegistry::instance().add(info_expr);                                   \
    return true;                                                                        \
  }()

}  // namespace ls
