// `longsparse methods [SPEC] [--json]`: lists every registered method with its phase, paper and
// parameters (name, default, meaning, range). With a SPEC ("name:key=value,...") it checks the
// spec against the registry and prints the method with every parameter resolved; an unknown
// method, key or out-of-range value is an error that lists what is valid.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "methods/registry.h"

namespace ls::cli {
namespace {

const char* kind_name(ParamSpec::Kind kind) {
  switch (kind) {
    case ParamSpec::Kind::Int: return "int";
    case ParamSpec::Kind::Float: return "float";
    case ParamSpec::Kind::Bool: return "bool";
    case ParamSpec::Kind::String: return "string";
  }
  return "?";
}

std::string range_text(const ParamSpec& p) {
  switch (p.kind) {
    case ParamSpec::Kind::Int:
    case ParamSpec::Kind::Float:
      return p.max >= 1e9 ? fmt::format(">= {}", p.min) : fmt::format("[{}, {}]", p.min, p.max);
    case ParamSpec::Kind::Bool: return "true|false";
    case ParamSpec::Kind::String: return p.choices.empty() ? "any" : fmt::format("{}", fmt::join(p.choices, "|"));
  }
  return "";
}

nlohmann::json method_json(const MethodInfo& info, const Params* values) {
  nlohmann::json params = nlohmann::json::array();
  for (const ParamSpec& p : info.params) {
    nlohmann::json item = {{"name", p.name}, {"default", p.default_value}, {"meaning", p.meaning},
                           {"kind", kind_name(p.kind)}};
    if (p.kind == ParamSpec::Kind::Int || p.kind == ParamSpec::Kind::Float) {
      item["min"] = p.min;
      item["max"] = p.max;
    }
    if (!p.choices.empty()) item["choices"] = p.choices;
    if (values) item["value"] = values->get_string(p.name);
    params.push_back(item);
  }
  return {{"name", info.name}, {"phase", info.phase}, {"paper", info.paper}, {"summary", info.summary},
          {"params", params}};
}

void print_method(const MethodInfo& info, const Params* values) {
  std::printf("%s  [%s]  %s\n    paper: %s\n", info.name.c_str(), info.phase.c_str(), info.summary.c_str(),
              info.paper.c_str());
  for (const ParamSpec& p : info.params) {
    std::string value = values ? fmt::format(" = {}", values->get_string(p.name)) : std::string();
    std::printf("    %-10s default %-7s %-13s %s%s\n", p.name.c_str(), p.default_value.c_str(),
                range_text(p).c_str(), p.meaning.c_str(), value.c_str());
  }
}

void setup_methods(CLI::App& app) {
  auto spec = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  app.add_option("spec", *spec, "check a spec \"name:key=value,...\" and print it resolved");
  app.add_flag("--json", *json, "machine-readable output");
  app.callback([spec, json] {
    const MethodRegistry& registry = MethodRegistry::instance();
    if (!spec->empty()) {
      // A name may be both a prefill and a decode method (dense, streaming): check it as each.
      MethodSpec parsed = parse_method_spec(*spec);
      registry.find(parsed.name);  // unknown everywhere: the error lists every method
      nlohmann::json all = nlohmann::json::array();
      std::string first_error;
      int printed = 0;
      for (const char* phase : {"prefill", "decode"}) {
        const MethodInfo* info = nullptr;
        Params values;
        try {
          info = &registry.find(parsed.name, phase);
          values = registry.resolve(parsed, phase);
          // Constructing it also checks what the parameters cannot express (impossible budgets).
          if (std::string_view(phase) == "prefill") registry.make_prefill(*spec);
          else registry.make_decode(*spec);
        } catch (const Error& e) {
          if (info && first_error.empty()) first_error = e.what();
          continue;
        }
        std::string canonical = registry.canonical(info->name, values, phase);
        ++printed;
        if (*json) {
          nlohmann::json out = method_json(*info, &values);
          out["spec"] = canonical;
          all.push_back(out);
        } else {
          std::printf("spec: %s\n", canonical.c_str());
          print_method(*info, &values);
        }
      }
      LS_CHECK(printed > 0, "{}", first_error);  // valid in no phase
      if (*json) std::printf("%s\n", (all.size() == 1 ? all[0] : all).dump(2).c_str());
      return;
    }
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const MethodInfo* info : registry.list()) out.push_back(method_json(*info, nullptr));
      std::printf("%s\n", nlohmann::json{{"methods", out}}.dump(2).c_str());
      return;
    }
    for (const MethodInfo* info : registry.list()) print_method(*info, nullptr);
  });
}

}  // namespace

LS_REGISTER_COMMAND(methods, "List sparse attention methods and their parameters, or check a spec", setup_methods);

}  // namespace ls::cli
