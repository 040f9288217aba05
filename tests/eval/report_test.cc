// The report on a small hand-made results file: table numbers, paired comparison, plot files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "eval/report.h"
#include "eval/results.h"
#include "eval/svg_plot.h"

namespace ls::eval {
namespace {

const std::string kDense = "prefill=dense decode=dense";
const std::string kSparse = "prefill=topk:k=64 decode=dense";

ResultRecord rec(const std::string& id, const std::string& method, double score, double attention_ms, double density,
                 std::int64_t length = 4096, std::optional<double> depth = std::nullopt) {
  ResultRecord r;
  r.id = id;
  r.task = "passkey";
  r.length = length;
  r.method = method;
  r.score = score;
  r.attention_ms = attention_ms;
  r.density = density;
  r.depth = depth;
  r.model = "m";
  return r;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Well-formed enough for any viewer: one root, every element closed.
void expect_valid_svg(const std::string& path) {
  std::string svg = read(path);
  ASSERT_FALSE(svg.empty()) << path;
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u) << path;
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  std::size_t open_text = 0, close_text = 0;
  for (std::size_t p = 0; (p = svg.find("<text", p)) != std::string::npos; ++p) ++open_text;
  for (std::size_t p = 0; (p = svg.find("</text>", p)) != std::string::npos; ++p) ++close_text;
  EXPECT_EQ(open_text, close_text);
  EXPECT_EQ(svg.find("nan"), std::string::npos) << path;
}

TEST(Report, PairedTableAndPlots) {
  // Dense: scores 1, 1, 0, 1 at 40 ms each. Sparse: 1, 0, 1, 0 at 10 ms, density 0.25; s4 has no dense run.
  std::vector<ResultRecord> records{
      rec("s0", kDense, 1, 40, 1, 4096, 0), rec("s1", kDense, 1, 40, 1, 4096, 50), rec("s2", kDense, 0, 40, 1, 4096, 100),
      rec("s3", kDense, 1, 40, 1, 8192, 0), rec("s0", kSparse, 1, 10, 0.25, 4096, 0),
      rec("s1", kSparse, 0, 10, 0.25, 4096, 50), rec("s2", kSparse, 1, 10, 0.25, 4096, 100),
      rec("s3", kSparse, 0, 20, 0.25, 8192, 0), rec("s4", kSparse, 1, 10, 0.25, 8192, 50)};
  for (int i : {4, 5, 6}) records[i].estimate_ms = 10;  // plan building counts in the sparse cost
  auto groups = aggregate(records, kDense);
  ASSERT_EQ(groups.size(), 4u);
  const GroupStats* sparse4k = nullptr;
  for (const auto& g : groups)
    if (g.method == kSparse && g.length == 4096) sparse4k = &g;
  ASSERT_NE(sparse4k, nullptr);
  EXPECT_EQ(sparse4k->n, 3);
  EXPECT_NEAR(sparse4k->score, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(sparse4k->pairs, 3);
  EXPECT_NEAR(*sparse4k->speedup, 2.0, 1e-12);  // 120 / (30 + 30 estimate)
  EXPECT_NEAR(*sparse4k->score_diff, 0.0, 1e-12);  // (0 - 1 + 1) / 3
  EXPECT_EQ(sparse4k->wins, 1);
  EXPECT_EQ(sparse4k->ties, 1);
  EXPECT_EQ(sparse4k->losses, 1);

  auto dir = std::filesystem::temp_directory_path() / ("ls_report_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto out = write_report(records, dir.string(), kDense, "hand-made");
  const std::string md = read((dir / "report.md").string());
  EXPECT_EQ(md, out.markdown);
  EXPECT_NE(md.find("| passkey | 4096 | topk:k=64 | 3 | 0.667 | 0.250 | 10.0 | 10.0 | 0.0 | 0.00 | 2.00× | +0.000 | 1/1/1 |"),
            std::string::npos) << md;
  // 8192: one pair (s3: 1 -> 0), speed-up 40/20; s4 counts in n but has no pair.
  EXPECT_NE(md.find("| passkey | 8192 | topk:k=64 | 2 | 0.500 | 0.250 | 15.0 | 0.0 | 0.0 | 0.00 | 2.00× | -1.000 | 0/0/1 |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| passkey | 4096 | dense | 3 | 0.667 | 1.000 | 40.0 |"), std::string::npos) << md;
  for (const char* name : {"accuracy_vs_density_passkey.svg", "speedup_vs_length.svg", "heatmap_passkey_dense.svg",
                           "heatmap_passkey_topk_k_64.svg"}) {
    EXPECT_TRUE(std::filesystem::exists(dir / name)) << name;
    expect_valid_svg((dir / name).string());
    EXPECT_NE(md.find(name), std::string::npos) << name;
  }
  // Heatmap cells: depth 0 at 4096 scored 1 (green), depth 100 at 4096 scored 0 for dense (red).
  const std::string heat = read((dir / "heatmap_passkey_dense.svg").string());
  EXPECT_NE(heat.find(score_colour(1.0)), std::string::npos);
  EXPECT_NE(heat.find(score_colour(0.0)), std::string::npos);
  std::filesystem::remove_all(dir);
}

// Decode selectors are compared with dense decode after the same prefill: keys attended,
// decode attention per token, paired score difference, and accuracy against the budget.
TEST(Report, DecodeSectionAndBudgetPlot) {
  const std::string quest512 = "prefill=dense decode=quest:budget=512", quest2k = "prefill=dense decode=quest:budget=2048";
  std::vector<ResultRecord> records;
  for (int i = 0; i < 2; ++i) {
    const std::string id = "s" + std::to_string(i);
    ResultRecord d = rec(id, kDense, 1, 40, 1), a = rec(id, quest512, i, 40, 1), b = rec(id, quest2k, 1, 40, 1);
    d.decode_keys_attended = 4096, d.decode_attention_ms_per_token = 8;
    a.decode_keys_attended = 600, a.decode_attention_ms_per_token = 2;
    b.decode_keys_attended = 2100, b.decode_attention_ms_per_token = 4;
    records.insert(records.end(), {d, a, b});
  }
  EXPECT_EQ(decode_budget(quest512), 512);
  EXPECT_FALSE(decode_budget(kDense).has_value());
  auto dir = std::filesystem::temp_directory_path() / ("ls_report_decode_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::string md = write_report(records, dir.string(), kDense, "hand-made").markdown;
  EXPECT_NE(md.find("| passkey | 4096 | dense decode=quest:budget=512 | 2 | 0.500 | -0.500 | 600 | 2.00 | 4.00× |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| passkey | 4096 | dense decode=quest:budget=2048 | 2 | 1.000 | +0.000 | 2100 | 4.00 | 2.00× |"),
            std::string::npos) << md;
  const auto plot = dir / "accuracy_vs_decode_budget_passkey.svg";
  ASSERT_TRUE(std::filesystem::exists(plot));
  expect_valid_svg(plot.string());
  EXPECT_NE(read(plot.string()).find("dense + quest"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Report, ColoursRunRedYellowGreen) {
  EXPECT_EQ(score_colour(0.0), "#d73027");
  EXPECT_EQ(score_colour(0.5), "#fee08b");
  EXPECT_EQ(score_colour(1.0), "#1a9850");
  EXPECT_EQ(score_colour(2.0), "#1a9850");
}

TEST(Report, ShortMethodNames) {
  EXPECT_EQ(short_method(kDense), "dense");
  EXPECT_EQ(short_method("prefill=flex:g=0.9 decode=quest:pages=8 dense_layers=0,1"),
            "flex:g=0.9 decode=quest:pages=8 dense_layers=0,1");
}

}  // namespace
}  // namespace ls::eval
