// `longsparse report`: markdown tables and SVG plots from results files.
#include <cstdio>
#include <filesystem>

#include "cli/command.h"
#include "core/error.h"
#include "eval/report.h"
#include "eval/results.h"

namespace ls::cli {
namespace {

struct ReportArgs {
  std::vector<std::string> results;
  std::string out = "report";
  std::string baseline;
};

void setup_report(CLI::App& app) {
  auto args = std::make_shared<ReportArgs>();
  app.add_option("results", args->results, "results JSONL files (eval / sweep output)")->required();
  app.add_option("--out", args->out, "output directory (report.md and the SVG plots)");
  app.add_option("--baseline", args->baseline, "method label to compare with (default: dense prefill and decode)");
  app.callback([args] {
    std::vector<eval::ResultRecord> records;
    for (const auto& path : args->results) {
      LS_CHECK(std::filesystem::exists(path), "cannot open results file '{}'", path);
      auto part = eval::read_results(path);
      records.insert(records.end(), part.begin(), part.end());
    }
    const std::string baseline = args->baseline.empty() ? eval::default_baseline() : args->baseline;
    std::string source;
    for (const auto& p : args->results) source += (source.empty() ? "" : ", ") + p;
    auto output = eval::write_report(records, args->out, baseline, source);
    std::fputs(output.markdown.substr(0, output.markdown.find("\n## Plots")).c_str(), stdout);
    std::fprintf(stderr, "report: wrote %zu files to %s\n", output.files.size(), args->out.c_str());
  });
}

}  // namespace

LS_REGISTER_COMMAND(report, "Summarise results files: markdown tables and SVG plots", setup_report);

}  // namespace ls::cli
