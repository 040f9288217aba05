// Report: aggregation, paired comparison with dense, markdown tables, SVG plots.
#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "core/error.h"
#include "eval/svg_plot.h"

namespace ls::eval {

namespace fs = std::filesystem;

std::string default_baseline() { return method_label("dense", "dense", "", ""); }

namespace {

// The space-separated parts of a method label ("prefill=SPEC decode=SPEC ...").
std::vector<std::string> label_parts(const std::string& label) {
  std::vector<std::string> parts;
  std::size_t pos = 0;
  while (pos < label.size()) {
    std::size_t end = label.find(' ', pos);
    if (end == std::string::npos) end = label.size();
    parts.push_back(label.substr(pos, end - pos));
    pos = end + 1;
  }
  return parts;
}

}  // namespace

std::string short_method(const std::string& label) {
  std::string out;
  for (const std::string& part : label_parts(label)) {
    if (part.rfind("prefill=", 0) == 0) {
      out = part.substr(8) + out;
    } else if (part != "decode=dense") {
      out += " " + part;
    }
  }
  return out.empty() ? label : out;
}

std::optional<std::int64_t> decode_budget(const std::string& label) {
  for (const std::string& part : label_parts(label)) {
    if (part.rfind("decode=", 0) != 0) continue;
    const std::size_t at = part.find("budget=");
    if (at == std::string::npos) return std::nullopt;
    return std::strtoll(part.c_str() + at + 7, nullptr, 10);
  }
  return std::nullopt;
}

namespace {

// The decode part of a label ("decode=quest:budget=1024" -> "quest"), "dense" when absent.
std::string decode_family(const std::string& label) {
  for (const std::string& part : label_parts(label))
    if (part.rfind("decode=", 0) == 0) return part.substr(7, part.find(':') == std::string::npos ? std::string::npos : part.find(':') - 7);
  return "dense";
}

// The label with its decode part dropped: the prefill a decode selector continued.
std::string prefill_part(const std::string& label) {
  std::string out;
  for (const std::string& part : label_parts(label))
    if (part.rfind("decode=", 0) != 0) out += (out.empty() ? "" : " ") + part;
  return out;
}

// What prefill attention cost a sample: the kernels plus the method's plan building.
double sparse_cost(const ResultRecord& r) { return r.attention_ms + r.estimate_ms; }

// The label without parameter values: one line per family in accuracy-vs-density plots.
std::string method_family(const std::string& label) {
  std::string out;
  for (std::string part : label_parts(label)) {
    if (std::size_t colon = part.find(':'); colon != std::string::npos) part = part.substr(0, colon);
    out += (out.empty() ? "" : " ") + part;
  }
  return short_method(out);
}

std::string file_safe(const std::string& text) {
  std::string out;
  for (char c : text) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
  return out;
}

std::string fmt_opt(const std::optional<double>& v, const char* format) {
  return v ? fmt::format(fmt::runtime(format), *v) : std::string("–");
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  LS_CHECK(out, "cannot write '{}'", path);
  out << text;
  LS_CHECK(out.good(), "writing '{}' failed", path);
}

}  // namespace

std::vector<GroupStats> aggregate(const std::vector<ResultRecord>& records, const std::string& baseline) {
  // Last record wins when an id/method pair occurs twice (a re-run appended to the file).
  std::map<std::pair<std::string, std::string>, const ResultRecord*> unique;
  for (const auto& r : records) unique[{r.id, r.method}] = &r;
  std::map<std::string, const ResultRecord*> base;  // id -> baseline result
  for (const auto& [key, r] : unique)
    if (r->method == baseline) base[r->id] = r;
  std::map<std::tuple<std::string, std::int64_t, std::string>, std::vector<const ResultRecord*>> groups;
  for (const auto& [key, r] : unique) groups[{r->task, r->length, r->method}].push_back(r);
  std::vector<GroupStats> out;
  for (const auto& [key, rs] : groups) {
    GroupStats g;
    std::tie(g.task, g.length, g.method) = key;
    g.n = static_cast<std::int64_t>(rs.size());
    double base_attention = 0, method_attention = 0, diff = 0;
    for (const auto* r : rs) {
      g.score += r->score;
      g.density += r->density;
      g.attention_ms += r->attention_ms;
      g.estimate_ms += r->estimate_ms;
      g.prefill_ms += r->prefill_ms;
      g.decode_ms_per_token += r->decode_ms_per_token;
      g.decode_keys += r->decode_keys_attended;
      g.decode_attention_ms += r->decode_attention_ms_per_token;
      if (g.method == baseline) continue;
      auto it = base.find(r->id);
      if (it == base.end()) continue;
      ++g.pairs;
      base_attention += sparse_cost(*it->second);
      method_attention += sparse_cost(*r);
      const double d = r->score - it->second->score;
      diff += d;
      if (std::fabs(d) < 1e-12) ++g.ties;
      else if (d > 0) ++g.wins;
      else ++g.losses;
    }
    g.score /= double(g.n), g.density /= double(g.n), g.attention_ms /= double(g.n), g.estimate_ms /= double(g.n);
    g.prefill_ms /= double(g.n), g.decode_ms_per_token /= double(g.n);
    g.decode_keys /= double(g.n), g.decode_attention_ms /= double(g.n);
    if (g.pairs > 0) {
      g.score_diff = diff / double(g.pairs);
      if (method_attention > 0 && base_attention > 0) g.speedup = base_attention / method_attention;
    }
    if (g.method == baseline && g.attention_ms > 0) g.speedup = 1.0;
    out.push_back(g);
  }
  return out;
}

ReportOutput write_report(const std::vector<ResultRecord>& records, const std::string& out_dir,
                          const std::string& baseline, const std::string& source) {
  LS_CHECK(!records.empty(), "report: no results to report");
  fs::create_directories(out_dir);
  const auto groups = aggregate(records, baseline);
  ReportOutput output;
  output.files.push_back((fs::path(out_dir) / "report.md").string());
  std::set<std::string> models, methods, tasks;
  for (const auto& r : records) models.insert(r.model), methods.insert(r.method), tasks.insert(r.task);
  std::string md = "# Evaluation report\n\n";
  md += fmt::format("Source: {} ({} results; models: {}). Baseline for paired comparisons: `{}`.\n\n", source,
                    records.size(), fmt::join(models, ", "), baseline);
  md += "Score: mean over samples, in [0, 1]. Density: computed causal pairs / all causal pairs in prefill "
        "attention. Speed-up: baseline (attention + estimate) ms / method (attention + estimate) ms over the "
        "samples both ran; estimate ms is the time a method spends building its plans. "
        "Δ: mean score difference with the baseline on the same sample ids; W/T/L: samples where the method "
        "scored higher / the same / lower.\n\n";
  md += "## Scores by task, length and method\n\n";
  md += "| task | length | method | n | score | density | attn ms | est ms | prefill ms | decode ms/tok | speed-up | Δ score | W/T/L |\n";
  md += "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const auto& g : groups) {
    md += fmt::format("| {} | {} | {} | {} | {:.3f} | {:.3f} | {:.1f} | {:.1f} | {:.1f} | {:.2f} | {} | {} | {} |\n",
                      g.task, g.length, short_method(g.method), g.n, g.score, g.density, g.attention_ms, g.estimate_ms,
                      g.prefill_ms,
                      g.decode_ms_per_token, fmt_opt(g.speedup, "{:.2f}×"), fmt_opt(g.score_diff, "{:+.3f}"),
                      g.pairs ? fmt::format("{}/{}/{}", g.wins, g.ties, g.losses) : std::string("–"));
  }
  // Mean over tasks per method and length (tasks weighted equally).
  std::map<std::pair<std::string, std::int64_t>, std::vector<const GroupStats*>> by_method_length;
  for (const auto& g : groups) by_method_length[{g.method, g.length}].push_back(&g);
  md += "\n## Mean over tasks\n\n| method | length | tasks | score | density | speed-up |\n|---|---:|---:|---:|---:|---:|\n";
  for (const auto& [key, gs] : by_method_length) {
    double score = 0, density = 0, speed = 0;
    int speeds = 0;
    for (const auto* g : gs) {
      score += g->score, density += g->density;
      if (g->speedup) speed += *g->speedup, ++speeds;
    }
    md += fmt::format("| {} | {} | {} | {:.3f} | {:.3f} | {} |\n", short_method(key.first), key.second, gs.size(),
                      score / double(gs.size()), density / double(gs.size()),
                      speeds ? fmt::format("{:.2f}×", speed / speeds) : std::string("–"));
  }

  // Decode selectors: what each attended and cost per generated token, and accuracy against
  // the decode budget (each selector against dense decode after the same prefill).
  const bool any_decode = std::any_of(records.begin(), records.end(), [](const ResultRecord& r) {
    return r.decode_keys_attended > 0 && decode_family(r.method) != "dense";
  });
  std::vector<std::pair<std::string, std::string>> decode_plots;  // (task, file)
  if (any_decode) {
    md += "\n## Decode\n\nKeys: keys one KV head attended per layer and generated token (mean over all layers, "
          "dense ones included). Decode attn: selection + attention per generated token, all layers. Speed-up: "
          "dense decode's attn ms / the selector's, after the same prefill, over the samples both ran.\n\n";
    md += "| task | length | method | n | score | Δ score vs dense decode | keys | decode attn ms/tok | decode speed-up |\n";
    md += "|---|---:|---|---:|---:|---:|---:|---:|---:|\n";
    std::map<std::pair<std::string, std::string>, const ResultRecord*> unique;  // (id, method)
    for (const auto& r : records) unique[{r.id, r.method}] = &r;
    for (const auto& g : groups) {
      if (g.decode_keys <= 0) continue;
      // The same prefill with dense decode, paired by sample id.
      const std::string dense_label = prefill_part(g.method) + " decode=dense";
      double diff = 0, base_ms = 0, ms = 0;
      std::int64_t pairs = 0;
      for (const auto& [key, r] : unique) {
        if (r->method != g.method || r->task != g.task || r->length != g.length) continue;
        auto it = unique.find({r->id, dense_label});
        if (it == unique.end()) continue;
        ++pairs, diff += r->score - it->second->score;
        base_ms += it->second->decode_attention_ms_per_token, ms += r->decode_attention_ms_per_token;
      }
      md += fmt::format("| {} | {} | {} | {} | {:.3f} | {} | {:.0f} | {:.2f} | {} |\n", g.task, g.length,
                        short_method(g.method), g.n, g.score,
                        pairs ? fmt::format("{:+.3f}", diff / double(pairs)) : std::string("–"), g.decode_keys,
                        g.decode_attention_ms, pairs && ms > 0 ? fmt::format("{:.2f}×", base_ms / ms) : std::string("–"));
    }
    for (const auto& task : tasks) {
      LineChart chart;
      chart.title = "Accuracy vs decode budget: " + task;
      chart.x_label = "decode budget (keys per KV head)";
      chart.y_label = "score";
      chart.log2_x = true;
      chart.y_min = 0, chart.y_max = 1;
      std::map<std::string, std::map<std::int64_t, std::pair<double, int>>> lines;  // family -> budget -> (score, n)
      std::map<std::string, std::pair<double, int>> dense_scores;                   // prefill -> (score, n)
      std::int64_t lo = 0, hi = 0;
      for (const auto& g : groups) {
        if (g.task != task) continue;
        const auto budget = decode_budget(g.method);
        if (budget) {
          auto& p = lines[prefill_part(short_method(g.method)) + " + " + decode_family(g.method)][*budget];
          p.first += g.score, ++p.second;
          lo = lo ? std::min(lo, *budget) : *budget, hi = std::max(hi, *budget);
        } else if (decode_family(g.method) == "dense") {
          auto& p = dense_scores[prefill_part(short_method(g.method))];
          p.first += g.score, ++p.second;
        }
      }
      if (lines.empty()) continue;
      for (const auto& [family, points] : lines) {
        Series s{family, {}, {}};
        for (const auto& [budget, p] : points) s.x.push_back(double(budget)), s.y.push_back(p.first / p.second);
        chart.series.push_back(s);
      }
      for (const auto& [prefill, p] : dense_scores)
        chart.series.push_back({prefill + " + dense decode", {double(lo), double(hi)},
                                {p.first / p.second, p.first / p.second}});
      const std::string name = "accuracy_vs_decode_budget_" + file_safe(task) + ".svg";
      write_file((fs::path(out_dir) / name).string(), render_line_chart(chart));
      output.files.push_back((fs::path(out_dir) / name).string());
      decode_plots.push_back({task, name});
    }
  }

  md += "\n## Plots\n\n";
  for (const auto& [task, name] : decode_plots) md += fmt::format("![accuracy vs decode budget, {0}]({1})\n\n", task, name);
  // Accuracy vs density per task: one line per method family, one point per parameter setting
  // (averaged over the task's lengths).
  for (const auto& task : tasks) {
    std::map<std::string, std::map<std::string, std::pair<double, double>>> family_points;  // family -> label -> (density, score) sums
    std::map<std::string, int> counts;
    for (const auto& g : groups) {
      if (g.task != task) continue;
      auto& p = family_points[method_family(g.method)][g.method];
      p.first += g.density, p.second += g.score;
      ++counts[g.method];
    }
    LineChart chart;
    chart.title = "Accuracy vs density: " + task;
    chart.x_label = "density (computed / causal pairs)";
    chart.y_label = "score";
    chart.y_min = 0, chart.y_max = 1, chart.x_min = 0, chart.x_max = 1;
    for (const auto& [family, points] : family_points) {
      std::vector<std::pair<double, double>> xy;
      for (const auto& [label, sums] : points) xy.push_back({sums.first / counts[label], sums.second / counts[label]});
      std::sort(xy.begin(), xy.end());
      Series s{family, {}, {}};
      for (auto [x, y] : xy) s.x.push_back(x), s.y.push_back(y);
      chart.series.push_back(s);
    }
    const std::string name = "accuracy_vs_density_" + file_safe(task) + ".svg";
    write_file((fs::path(out_dir) / name).string(), render_line_chart(chart));
    output.files.push_back((fs::path(out_dir) / name).string());
    md += fmt::format("![accuracy vs density, {0}]({1})\n\n", task, name);
  }
  // Attention speed-up vs length: paired, summed over all tasks at each length.
  {
    std::map<std::string, std::map<std::int64_t, std::pair<double, double>>> sums;  // method -> length -> (base, method) ms
    std::map<std::string, const ResultRecord*> base;
    for (const auto& r : records)
      if (r.method == baseline) base[r.id] = &r;
    for (const auto& r : records) {
      if (r.method == baseline) continue;
      auto it = base.find(r.id);
      if (it == base.end() || r.attention_ms <= 0 || it->second->attention_ms <= 0) continue;
      auto& s = sums[r.method][r.length];
      s.first += sparse_cost(*it->second), s.second += sparse_cost(r);
    }
    LineChart chart;
    chart.title = "Prefill attention speed-up vs dense";
    chart.x_label = "length (tokens)";
    chart.y_label = "speed-up vs dense (attention + estimate)";
    chart.log2_x = true;
    chart.reference_y = 1.0;
    chart.y_min = 0;
    for (const auto& [method, by_length] : sums) {
      Series s{short_method(method), {}, {}};
      for (const auto& [length, ms] : by_length) s.x.push_back(double(length)), s.y.push_back(ms.first / ms.second);
      chart.series.push_back(s);
    }
    const std::string name = "speedup_vs_length.svg";
    write_file((fs::path(out_dir) / name).string(), render_line_chart(chart));
    output.files.push_back((fs::path(out_dir) / name).string());
    md += fmt::format("![attention speed-up vs length]({})\n\n", name);
    if (sums.empty()) md += "(No paired timings with the baseline: the speed-up plot is empty.)\n\n";
  }
  // Depth × length heatmaps for tasks whose samples record a needle depth.
  std::map<std::pair<std::string, std::string>, std::vector<const ResultRecord*>> with_depth;
  for (const auto& r : records)
    if (r.depth) with_depth[{r.task, r.method}].push_back(&r);
  for (const auto& [key, rs] : with_depth) {
    std::set<long> distinct;
    std::set<std::int64_t> lengths;
    for (const auto* r : rs) distinct.insert(std::lround(*r->depth)), lengths.insert(r->length);
    const bool binned = distinct.size() > 11;  // random depths: 10 bins of 10 %
    auto row_of = [&](double depth) { return binned ? std::min<long>(9, static_cast<long>(depth / 10)) : std::lround(depth); };
    std::set<long> rows;
    for (const auto* r : rs) rows.insert(row_of(*r->depth));
    Heatmap map;
    map.title = fmt::format("{} · {}", key.first, short_method(key.second));
    map.x_label = "length (tokens)";
    map.y_label = "needle depth (%)";
    for (auto l : lengths) map.columns.push_back(std::to_string(l));
    for (auto row : rows) map.rows.push_back(binned ? fmt::format("{}–{}", row * 10, row * 10 + 10) : std::to_string(row));
    std::map<std::pair<long, std::int64_t>, std::pair<double, int>> cells;
    for (const auto* r : rs) {
      auto& c = cells[{row_of(*r->depth), r->length}];
      c.first += r->score, ++c.second;
    }
    for (auto row : rows) {
      map.values.emplace_back();
      for (auto l : lengths) {
        auto it = cells.find({row, l});
        map.values.back().push_back(it == cells.end() ? std::nullopt : std::optional<double>(it->second.first / it->second.second));
      }
    }
    const std::string name = "heatmap_" + file_safe(key.first) + "_" + file_safe(short_method(key.second)) + ".svg";
    write_file((fs::path(out_dir) / name).string(), render_heatmap(map));
    output.files.push_back((fs::path(out_dir) / name).string());
    md += fmt::format("![depth × length, {}, {}]({})\n\n", key.first, short_method(key.second), name);
  }
  write_file(output.files[0], md);
  output.markdown = md;
  return output;
}

}  // namespace ls::eval
