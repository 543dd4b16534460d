// A small table of results written as CSV (for machines) and as a Markdown
// table (for reports and the terminal), plus summary statistics.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ropepp::eval {

class Table {
 public:
  explicit Table(std::vector<std::string> columns);

  // Appends a row; throws ropepp::Error when its size differs from the columns.
  void add_row(std::vector<std::string> cells);

  const std::vector<std::string>& columns() const { return columns_; }
  const std::vector<std::vector<std::string>>& rows() const { return rows_; }

  // RFC 4180 CSV: cells holding a comma, quote or line break are quoted.
  std::string to_csv() const;
  std::string to_markdown() const;
  void write_csv(const std::filesystem::path& path) const;  // atomic

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// Formats a number for a table: fixed with `digits` significant digits for
// ordinary magnitudes, scientific otherwise; "nan" and "inf" as such.
std::string format_number(double value, int digits = 4);

// Mean and sample standard deviation (n - 1 in the denominator; 0 for n < 2).
struct MeanStd {
  double mean = 0.0;
  double stddev = 0.0;
  int count = 0;
};
MeanStd mean_std(const std::vector<double>& values);

// "mean ± stddev" when count > 1, else the mean alone.
std::string format_mean_std(const MeanStd& value, int digits = 4);

}  // namespace ropepp::eval
