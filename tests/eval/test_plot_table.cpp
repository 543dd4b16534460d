#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <unistd.h>

#include "core/error.h"
#include "eval/plot.h"
#include "eval/table.h"

namespace ropepp::eval {
namespace {

namespace fs = std::filesystem;

fs::path temporary_folder(const std::string& name) {
  const fs::path folder = fs::temp_directory_path() / ("ropepp_eval_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(folder);
  fs::create_directories(folder);
  return folder;
}

bool is_png(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::string head(8, '\0');
  file.read(head.data(), 8);
  return file && head == "\x89PNG\r\n\x1a\n" && fs::file_size(path) > 1000;
}

TEST(Plot, LinePlotWritesPng) {
  const fs::path folder = temporary_folder("line");
  LinePlot plot;
  plot.title = "test";
  plot.x_label = "x";
  plot.y_label = "y";
  plot.log_x = true;
  plot.log_y = true;
  plot.series.push_back({"a", {1, 2, 4, 8}, {10, 5, NAN, 1}});
  plot.series.push_back({"b", {1, 8}, {3, 300}});
  write_line_plot(folder / "line.png", plot);
  EXPECT_TRUE(is_png(folder / "line.png"));

  plot.series.push_back({"bad", {0}, {1}});
  EXPECT_THROW(write_line_plot(folder / "bad.png", plot), Error) << "x = 0 on a log axis";
  plot.series.back() = {"bad", {1, 2}, {1}};
  EXPECT_THROW(write_line_plot(folder / "bad.png", plot), Error) << "sizes differ";
  EXPECT_FALSE(fs::exists(folder / "bad.png"));
  fs::remove_all(folder);
}

TEST(Plot, HeatmapsWritePng) {
  const fs::path folder = temporary_folder("heat");
  Heatmap map;
  map.title = "grid";
  map.rows = 2;
  map.columns = 3;
  map.values = {0, 0.5, 1, NAN, 0.25, 0.75};
  map.row_labels = {"a", "b"};
  map.annotate = true;
  write_heatmaps(folder / "heat.png", "two panels", {map, map});
  EXPECT_TRUE(is_png(folder / "heat.png"));

  map.values.pop_back();
  EXPECT_THROW(write_heatmap(folder / "bad.png", map), Error);
  EXPECT_THROW(write_heatmaps(folder / "bad.png", "none", {}), Error);
  fs::remove_all(folder);
}

TEST(Table, CsvQuotesAndMarkdownEscapes) {
  Table table({"name", "value"});
  table.add_row({"plain", "1"});
  table.add_row({"with,comma", "say \"hi\""});
  table.add_row({"a|b", "line\nbreak"});
  EXPECT_EQ(table.to_csv(), "name,value\nplain,1\n\"with,comma\",\"say \"\"hi\"\"\"\na|b,\"line\nbreak\"\n");
  EXPECT_EQ(table.to_markdown(),
            "| name | value |\n|---|---|\n| plain | 1 |\n| with,comma | say \"hi\" |\n| a\\|b | line break |\n");
  EXPECT_THROW(table.add_row({"short"}), Error);
}

TEST(Table, NumbersAndStatistics) {
  EXPECT_EQ(format_number(3.14159, 4), "3.142");
  EXPECT_EQ(format_number(259.0, 4), "259.0");
  EXPECT_EQ(format_number(12345.6, 4), "12346");
  EXPECT_EQ(format_number(NAN), "nan");
  const MeanStd stats = mean_std({1.0, 2.0, 3.0});
  EXPECT_DOUBLE_EQ(stats.mean, 2.0);
  EXPECT_DOUBLE_EQ(stats.stddev, 1.0);
  EXPECT_EQ(mean_std({5.0}).stddev, 0.0);
  EXPECT_EQ(format_mean_std(stats, 3), "2.00 ± 1.0");
  EXPECT_EQ(format_mean_std(mean_std({5.0}), 3), "5.00");
}

}  // namespace
}  // namespace ropepp::eval
