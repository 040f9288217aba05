// SVG line charts and heatmaps for the evaluation report.
#include "eval/svg_plot.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace ls::eval {

namespace {

constexpr double kWidth = 720, kHeight = 460;
constexpr double kLeft = 70, kRight = 220, kTop = 40, kBottom = 60;  // margins; legend on the right
const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string header(double width, double height, const std::string& title) {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{3}</text>\n",
      width, height, width / 2, xml_escape(title));
}

std::string number_label(double v) {
  if (std::fabs(v) >= 1000 && std::fmod(v, 1024) == 0) return fmt::format("{}k", v / 1024);
  if (std::fabs(v - std::round(v)) < 1e-9) return fmt::format("{}", static_cast<long long>(std::round(v)));
  return fmt::format("{:.2g}", v);
}

// "Nice" tick positions covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  double span = hi - lo;
  if (span <= 0) return {lo};
  double step = std::pow(10.0, std::floor(std::log10(span / 5)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (span / (step * m) <= 6) {
      step *= m;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + 1e-9 * span; t += step) out.push_back(t);
  return out;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string score_colour(double value) {
  double v = std::clamp(value, 0.0, 1.0);
  // red (215,48,39) -> yellow (254,224,139) -> green (26,152,80)
  auto mix = [](double a, double b, double t) { return static_cast<int>(std::lround(a + (b - a) * t)); };
  int r, g, b;
  if (v < 0.5) {
    double t = v / 0.5;
    r = mix(215, 254, t), g = mix(48, 224, t), b = mix(39, 139, t);
  } else {
    double t = (v - 0.5) / 0.5;
    r = mix(254, 26, t), g = mix(224, 152, t), b = mix(139, 80, t);
  }
  return fmt::format("#{:02x}{:02x}{:02x}", r, g, b);
}

std::string render_line_chart(const LineChart& chart) {
  auto tx = [&](double x) { return chart.log2_x ? std::log2(std::max(x, 1e-12)) : x; };
  double x_lo = 1e300, x_hi = -1e300, y_lo = 1e300, y_hi = -1e300;
  for (const auto& s : chart.series)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      x_lo = std::min(x_lo, tx(s.x[i])), x_hi = std::max(x_hi, tx(s.x[i]));
      y_lo = std::min(y_lo, s.y[i]), y_hi = std::max(y_hi, s.y[i]);
    }
  if (x_lo > x_hi) x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;  // no data: empty axes
  if (chart.x_min) x_lo = tx(*chart.x_min);
  if (chart.x_max) x_hi = tx(*chart.x_max);
  if (chart.y_min) y_lo = *chart.y_min;
  if (chart.y_max) y_hi = *chart.y_max;
  if (chart.reference_y) y_lo = std::min(y_lo, *chart.reference_y), y_hi = std::max(y_hi, *chart.reference_y);
  if (x_hi - x_lo < 1e-12) x_lo -= 0.5, x_hi += 0.5;
  if (y_hi - y_lo < 1e-12) y_lo -= 0.5, y_hi += 0.5;
  if (!chart.y_min && !chart.y_max) {  // breathing room
    double pad = 0.05 * (y_hi - y_lo);
    y_lo -= pad, y_hi += pad;
  }
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (tx(x) - x_lo) / (x_hi - x_lo) * plot_w; };
  auto py = [&](double y) { return kTop + (1 - (y - y_lo) / (y_hi - y_lo)) * plot_h; };

  std::string svg = header(kWidth, kHeight, chart.title);
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", kLeft,
                     kTop, plot_w, plot_h);
  for (double t : ticks(y_lo, y_hi)) {
    svg += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>"
                       "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
                       kLeft, kLeft + plot_w, py(t), kLeft - 6, py(t) + 4, number_label(t));
  }
  std::vector<double> x_ticks;
  if (chart.log2_x) {
    for (double e = std::ceil(x_lo - 1e-9); e <= x_hi + 1e-9; e += 1) x_ticks.push_back(std::exp2(e));
  } else {
    x_ticks = ticks(x_lo, x_hi);
  }
  for (double t : x_ticks) {
    svg += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#ddd\"/>"
                       "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
                       px(t), kTop, kTop + plot_h, kTop + plot_h + 18, number_label(t));
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", kLeft + plot_w / 2,
                     kHeight - 15, xml_escape(chart.x_label));
  svg += fmt::format("<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                     kTop + plot_h / 2, xml_escape(chart.y_label));
  if (chart.reference_y)
    svg += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#555\" "
                       "stroke-dasharray=\"5,4\"/>\n", kLeft, kLeft + plot_w, py(*chart.reference_y));
  for (std::size_t k = 0; k < chart.series.size(); ++k) {
    const Series& s = chart.series[k];
    const char* colour = kPalette[k % 10];
    std::string points;
    for (std::size_t i = 0; i < s.x.size(); ++i) points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
    if (s.x.size() > 1)
      svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", points, colour);
    for (std::size_t i = 0; i < s.x.size(); ++i)
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/>\n", px(s.x[i]), py(s.y[i]), colour);
    const double ly = kTop + 10 + 18 * double(k);
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{}\"/>"
                       "<text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>\n",
                       kWidth - kRight + 12, ly - 4, colour, kWidth - kRight + 30, ly + 1,
                       xml_escape(s.name.size() > 30 ? s.name.substr(0, 29) + "…" : s.name));
  }
  return svg + "</svg>\n";
}

std::string render_heatmap(const Heatmap& map) {
  const double cell_w = std::clamp(480.0 / std::max<std::size_t>(1, map.columns.size()), 40.0, 90.0);
  const double cell_h = std::clamp(320.0 / std::max<std::size_t>(1, map.rows.size()), 18.0, 40.0);
  const double left = 80, top = 45;
  const double width = left + cell_w * double(map.columns.size()) + 30;
  const double height = top + cell_h * double(map.rows.size()) + 55;
  std::string svg = header(std::max(width, 300.0), height, map.title);
  for (std::size_t r = 0; r < map.rows.size(); ++r) {
    const double y = top + cell_h * double(r);
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 6, y + cell_h / 2 + 4,
                       xml_escape(map.rows[r]));
    for (std::size_t c = 0; c < map.columns.size(); ++c) {
      const double x = left + cell_w * double(c);
      const auto& v = map.values[r][c];
      svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" stroke=\"white\"/>",
                         x, y, cell_w, cell_h, v ? score_colour(*v) : std::string("#eeeeee"));
      if (v)
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"10\">{:.2f}</text>", x + cell_w / 2,
                           y + cell_h / 2 + 4, *v);
      svg += "\n";
    }
  }
  const double bottom = top + cell_h * double(map.rows.size());
  for (std::size_t c = 0; c < map.columns.size(); ++c)
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                       left + cell_w * (double(c) + 0.5), bottom + 16, xml_escape(map.columns[c]));
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                     left + cell_w * double(map.columns.size()) / 2, bottom + 38, xml_escape(map.x_label));
  svg += fmt::format("<text transform=\"translate(16,{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                     top + cell_h * double(map.rows.size()) / 2, xml_escape(map.y_label));
  return svg + "</svg>\n";
}

}  // namespace ls::eval
