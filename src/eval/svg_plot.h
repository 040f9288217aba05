// Plots written directly as SVG: no plotting program is needed at run time, files are small
// text that diffs and renders in any browser or markdown viewer.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ls::eval {

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length; drawn in the given order
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log2_x = false;                 // lengths: 1k, 2k, 4k ... evenly spaced
  std::optional<double> y_min, y_max;  // fixed range (e.g. scores in [0, 1]); else from data
  std::optional<double> x_min, x_max;
  std::optional<double> reference_y;   // dashed horizontal line (e.g. speed-up 1)
};

std::string render_line_chart(const LineChart& chart);

struct Heatmap {
  std::string title, x_label, y_label;
  std::vector<std::string> columns, rows;  // x categories (left to right), y categories (top to bottom)
  std::vector<std::vector<std::optional<double>>> values;  // [row][column], in [0, 1]; empty cells allowed
};

// Cells coloured red (0) – yellow (0.5) – green (1), each labelled with its value.
std::string render_heatmap(const Heatmap& map);

// The red–yellow–green colour of a value in [0, 1] as "#rrggbb".
std::string score_colour(double value);

std::string xml_escape(const std::string& text);

}  // namespace ls::eval
