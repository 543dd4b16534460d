#include "eval/table.h"

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"

namespace ropepp::eval {
namespace {

std::string csv_cell(const std::string& cell) {
  if (cell.find_first_of(",\"\r\n") == std::string::npos) return cell;
  std::string quoted = "\"";
  for (char c : cell) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string markdown_cell(const std::string& cell) {
  std::string escaped;
  for (char c : cell) {
    if (c == '|') {
      escaped += "\\|";
    } else if (c == '\n' || c == '\r') {
      escaped += ' ';
    } else {
      escaped += c;
    }
  }
  return escaped;
}

}  // namespace

Table::Table(std::vector<std::string> columns) : columns_(std::move(columns)) {}

void Table::add_row(std::vector<std::string> cells) {
  ROPEPP_CHECK(cells.size() == columns_.size(), "table row has {} cells but the table has {} columns", cells.size(),
               columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::to_csv() const {
  std::string text;
  auto append_line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i > 0) text += ',';
      text += csv_cell(cells[i]);
    }
    text += '\n';
  };
  append_line(columns_);
  for (const auto& row : rows_) append_line(row);
  return text;
}

std::string Table::to_markdown() const {
  std::string text;
  auto append_line = [&](const std::vector<std::string>& cells) {
    text += '|';
    for (const auto& cell : cells) {
      text += ' ';
      text += markdown_cell(cell);
      text += " |";
    }
    text += '\n';
  };
  append_line(columns_);
  text += '|';
  for (size_t i = 0; i < columns_.size(); ++i) text += "---|";
  text += '\n';
  for (const auto& row : rows_) append_line(row);
  return text;
}

void Table::write_csv(const std::filesystem::path& path) const { write_file_atomic(path, to_csv()); }

std::string format_number(double value, int digits) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  const double magnitude = std::abs(value);
  if (magnitude != 0.0 && (magnitude >= 1e6 || magnitude < 1e-3)) return fmt::format("{:.{}e}", value, digits - 1);
  // Fixed notation with `digits` significant digits, and no fewer than zero decimals.
  const int exponent = magnitude == 0.0 ? 0 : static_cast<int>(std::floor(std::log10(magnitude)));
  const int decimals = std::max(0, digits - 1 - exponent);
  return fmt::format("{:.{}f}", value, decimals);
}

MeanStd mean_std(const std::vector<double>& values) {
  MeanStd result;
  result.count = static_cast<int>(values.size());
  if (values.empty()) return result;
  double sum = 0.0;
  for (double v : values) sum += v;
  result.mean = sum / values.size();
  if (values.size() > 1) {
    double squares = 0.0;
    for (double v : values) squares += (v - result.mean) * (v - result.mean);
    result.stddev = std::sqrt(squares / (values.size() - 1));
  }
  return result;
}

std::string format_mean_std(const MeanStd& value, int digits) {
  if (value.count > 1) return format_number(value.mean, digits) + " ± " + format_number(value.stddev, 2);
  return format_number(value.mean, digits);
}

}  // namespace ropepp::eval
