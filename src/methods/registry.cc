#include "methods/registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace ls {

namespace {

std::string trim(std::string_view s) {
  std::size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

bool parse_number(const std::string& text, double& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  value = std::strtod(text.c_str(), &end);
  return errno == 0 && end == text.c_str() + text.size();
}

bool parse_bool(const std::string& text, bool& value) {
  if (text == "1" || text == "true" || text == "on" || text == "yes") return value = true, true;
  if (text == "0" || text == "false" || text == "off" || text == "no") return value = false, true;
  return false;
}

std::string param_names(const MethodInfo& info) {
  std::vector<std::string> names;
  for (const ParamSpec& p : info.params) names.push_back(p.name);
  return names.empty() ? std::string("(none)") : fmt::format("{}", fmt::join(names, ", "));
}

void check_value(const MethodInfo& info, const ParamSpec& p, const std::string& value) {
  double number = 0;
  bool flag = false;
  switch (p.kind) {
    case ParamSpec::Kind::Int:
      LS_CHECK(parse_number(value, number) && number == double(std::int64_t(number)),
               "{}: parameter '{}' must be an integer, got '{}'", info.name, p.name, value);
      LS_CHECK(number >= p.min && number <= p.max, "{}: parameter '{}' = {} is out of range [{}, {}]",
               info.name, p.name, value, p.min, p.max);
      break;
    case ParamSpec::Kind::Float:
      LS_CHECK(parse_number(value, number), "{}: parameter '{}' must be a number, got '{}'", info.name, p.name,
               value);
      LS_CHECK(number >= p.min && number <= p.max, "{}: parameter '{}' = {} is out of range [{}, {}]",
               info.name, p.name, value, p.min, p.max);
      break;
    case ParamSpec::Kind::Bool:
      LS_CHECK(parse_bool(value, flag), "{}: parameter '{}' must be true or false, got '{}'", info.name,
               p.name, value);
      break;
    case ParamSpec::Kind::String:
      LS_CHECK(p.choices.empty() || std::find(p.choices.begin(), p.choices.end(), value) != p.choices.end(),
               "{}: parameter '{}' must be one of {}, got '{}'", info.name, p.name, fmt::join(p.choices, ", "),
               value);
      break;
  }
}

}  // namespace

std::int64_t Params::get_int(const std::string& name) const {
  return std::int64_t(std::strtod(get_string(name).c_str(), nullptr));
}

double Params::get_float(const std::string& name) const { return std::strtod(get_string(name).c_str(), nullptr); }

bool Params::get_bool(const std::string& name) const {
  bool value = false;
  parse_bool(get_string(name), value);
  return value;
}

const std::string& Params::get_string(const std::string& name) const {
  auto it = values_.find(name);
  LS_CHECK(it != values_.end(), "internal: parameter '{}' was not declared", name);
  return it->second;
}

MethodSpec parse_method_spec(std::string_view text) {
  MethodSpec spec;
  std::size_t colon = text.find(':');
  spec.name = trim(text.substr(0, colon));
  LS_CHECK(!spec.name.empty(), "empty method spec '{}': expected name or name:key=value,...", text);
  if (colon == std::string_view::npos) return spec;
  std::string_view rest = text.substr(colon + 1);
  while (!rest.empty()) {
    std::size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    std::size_t eq = item.find('=');
    LS_CHECK(eq != std::string_view::npos, "method spec '{}': '{}' is not key=value", text, item);
    std::string key = trim(item.substr(0, eq)), value = trim(item.substr(eq + 1));
    LS_CHECK(!key.empty() && !value.empty(), "method spec '{}': '{}' is not key=value", text, item);
    spec.values.emplace_back(key, value);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return spec;
}

MethodRegistry& MethodRegistry::instance() {
  static MethodRegistry registry;
  return registry;
}

void MethodRegistry::add(MethodInfo info) {
  LS_CHECK(info.phase == "prefill" || info.phase == "decode", "method '{}' has phase '{}'", info.name, info.phase);
  LS_CHECK(info.phase == "prefill" ? bool(info.make_prefill) : bool(info.make_decode),
           "method '{}' has no {} constructor", info.name, info.phase);
  auto key = std::make_pair(info.phase, info.name);
  if (methods_.count(key)) fail("{} method '{}' registered twice", info.phase, info.name);
  for (const ParamSpec& p : info.params) check_value(info, p, p.default_value);
  methods_.emplace(std::move(key), std::move(info));
}

std::vector<const MethodInfo*> MethodRegistry::list() const {
  std::vector<const MethodInfo*> all;
  for (const auto& [key, info] : methods_) all.push_back(&info);
  std::stable_sort(all.begin(), all.end(), [](const MethodInfo* a, const MethodInfo* b) {
    return a->phase != b->phase ? a->phase > b->phase : a->name < b->name;  // prefill first
  });
  return all;
}

const MethodInfo* MethodRegistry::lookup(std::string_view name, std::string_view phase) const {
  for (const char* p : {"prefill", "decode"}) {
    if (!phase.empty() && phase != p) continue;
    auto it = methods_.find(std::make_pair(std::string(p), std::string(name)));
    if (it != methods_.end()) return &it->second;
  }
  return nullptr;
}

const MethodInfo& MethodRegistry::find(std::string_view name, std::string_view phase) const {
  if (const MethodInfo* info = lookup(name, phase)) return *info;
  std::vector<std::string> names;
  for (const auto& [key, info] : methods_)
    if (phase.empty() || key.first == phase) names.push_back(key.second);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (!phase.empty() && lookup(name, "")) {
    fail("method '{}' is a {} method, not a {} method; valid {} methods: {}", name, lookup(name, "")->phase, phase,
         phase, fmt::join(names, ", "));
  }
  fail("unknown method '{}'; valid{}: {}", name, phase.empty() ? std::string() : " " + std::string(phase) + " methods",
       fmt::join(names, ", "));
}

Params MethodRegistry::resolve(const MethodSpec& spec, std::string_view phase) const {
  const MethodInfo& info = find(spec.name, phase);
  Params params;
  for (const ParamSpec& p : info.params) params.set(p.name, p.default_value);
  for (const auto& [key, value] : spec.values) {
    auto it = std::find_if(info.params.begin(), info.params.end(), [&](const ParamSpec& p) { return p.name == key; });
    LS_CHECK(it != info.params.end(), "unknown parameter '{}' for {}; valid: {}", key, info.name, param_names(info));
    check_value(info, *it, value);
    params.set(key, value);
  }
  return params;
}

std::string MethodRegistry::canonical(const std::string& name, const Params& params, std::string_view phase) const {
  const MethodInfo& info = find(name, phase);
  if (info.params.empty()) return name;
  std::vector<std::string> items;
  for (const ParamSpec& p : info.params) items.push_back(p.name + "=" + params.get_string(p.name));
  return fmt::format("{}:{}", name, fmt::join(items, ","));
}

std::unique_ptr<PrefillMethod> MethodRegistry::make_prefill(std::string_view text) const {
  MethodSpec spec = parse_method_spec(text);
  const MethodInfo& info = find(spec.name, "prefill");
  Params params = resolve(spec, "prefill");
  std::unique_ptr<PrefillMethod> method = info.make_prefill(params);
  method->set_spec(canonical(info.name, params, "prefill"));
  return method;
}

std::unique_ptr<DecodeSelector> MethodRegistry::make_decode(std::string_view text) const {
  MethodSpec spec = parse_method_spec(text);
  const MethodInfo& info = find(spec.name, "decode");
  Params params = resolve(spec, "decode");
  std::unique_ptr<DecodeSelector> selector = info.make_decode(params);
  selector->set_spec(canonical(info.name, params, "decode"));
  return selector;
}

}  // namespace ls
