// PNG plots drawn with cairo: line charts and heatmaps with labelled axes, a
// title and a legend (line charts) or a colour bar (heatmaps).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ropepp::eval {

// One named curve. xs and ys have equal length; non-finite y values leave a
// gap in the line.
struct Series {
  std::string name;
  std::vector<double> xs;
  std::vector<double> ys;
};

struct LinePlot {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<Series> series;
  bool log_x = false;  // base-2 logarithmic axis; needs x > 0
  bool log_y = false;  // base-10 logarithmic axis; needs y > 0
  bool markers = true;
  // Optional fixed y range; used when y_min < y_max.
  double y_min = 0.0;
  double y_max = 0.0;
};

// A matrix of values, row 0 drawn at the top. row_labels and column_labels,
// when not empty, label each row and column; otherwise ticks are numbered.
struct Heatmap {
  std::string title;
  std::string x_label;
  std::string y_label;
  int rows = 0;
  int columns = 0;
  std::vector<double> values;  // [rows][columns]; NaN cells are drawn grey
  std::vector<std::string> row_labels;
  std::vector<std::string> column_labels;
  // Colour range; used when value_min < value_max, else the data's range.
  double value_min = 0.0;
  double value_max = 0.0;
  bool annotate = false;  // print each cell's value (small grids only)
};

// Writes the plot as a PNG atomically. Throws ropepp::Error when a series is
// malformed (sizes differ, non-positive values on a log axis) or the file
// cannot be written.
void write_line_plot(const std::filesystem::path& path, const LinePlot& plot, int width = 900, int height = 600);

// Writes several heatmaps side by side in one PNG under a common title.
void write_heatmaps(const std::filesystem::path& path, const std::string& title, const std::vector<Heatmap>& panels,
                    int panel_width = 520, int panel_height = 480);

inline void write_heatmap(const std::filesystem::path& path, const Heatmap& heatmap) {
  write_heatmaps(path, "", {heatmap});
}

}  // namespace ropepp::eval
