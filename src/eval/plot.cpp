#include "eval/plot.h"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>

#include "core/atomic_file.h"
#include "core/error.h"

namespace ropepp::eval {
namespace {

struct Rgb {
  double r, g, b;
};

// Tableau-like palette with distinct hues for up to ten curves.
const Rgb kPalette[] = {{0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
                        {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50},
                        {0.74, 0.74, 0.13}, {0.09, 0.75, 0.81}};

// A perceptually ordered dark-blue -> green -> yellow colour map (viridis-like),
// as control points interpolated linearly.
Rgb colormap(double t) {
  static const Rgb points[] = {{0.267, 0.005, 0.329}, {0.283, 0.141, 0.458}, {0.254, 0.265, 0.530},
                               {0.207, 0.372, 0.553}, {0.164, 0.471, 0.558}, {0.128, 0.567, 0.551},
                               {0.135, 0.659, 0.518}, {0.267, 0.749, 0.441}, {0.478, 0.821, 0.318},
                               {0.741, 0.873, 0.150}, {0.993, 0.906, 0.144}};
  const int last = static_cast<int>(std::size(points)) - 1;
  t = std::clamp(t, 0.0, 1.0) * last;
  const int i = std::min(static_cast<int>(t), last - 1);
  const double f = t - i;
  return {points[i].r + f * (points[i + 1].r - points[i].r), points[i].g + f * (points[i + 1].g - points[i].g),
          points[i].b + f * (points[i + 1].b - points[i].b)};
}

struct SurfaceDeleter {
  void operator()(cairo_surface_t* surface) const { cairo_surface_destroy(surface); }
};
struct ContextDeleter {
  void operator()(cairo_t* context) const { cairo_destroy(context); }
};
using Surface = std::unique_ptr<cairo_surface_t, SurfaceDeleter>;
using Context = std::unique_ptr<cairo_t, ContextDeleter>;

cairo_status_t write_to_file(void* closure, const unsigned char* data, unsigned int length) {
  auto* file = static_cast<std::FILE*>(closure);
  return std::fwrite(data, 1, length, file) == length ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

void save_png(cairo_surface_t* surface, const std::filesystem::path& path) {
  cairo_surface_flush(surface);
  write_file_atomic(path, [&](std::FILE* file) {
    const cairo_status_t status = cairo_surface_write_to_png_stream(surface, write_to_file, file);
    if (status != CAIRO_STATUS_SUCCESS) {
      fail("writing the PNG {} failed: {}", path.string(), cairo_status_to_string(status));
    }
  });
}

void set_color(cairo_t* cr, const Rgb& color) { cairo_set_source_rgb(cr, color.r, color.g, color.b); }

double text_width(cairo_t* cr, const std::string& text) {
  cairo_text_extents_t extents;
  cairo_text_extents(cr, text.c_str(), &extents);
  return extents.x_advance;
}

// Draws text anchored at (x, y). align_x: 0 left, 0.5 centre, 1 right.
// align_y: 0 top, 0.5 middle, 1 baseline.
void draw_text(cairo_t* cr, const std::string& text, double x, double y, double align_x, double align_y) {
  cairo_font_extents_t font;
  cairo_font_extents(cr, &font);
  // The visual middle of a line of mixed text sits about 0.35 ascents above the baseline.
  const double drop = align_y == 0.5 ? 0.35 * font.ascent : (1.0 - align_y) * font.ascent;
  cairo_move_to(cr, x - text_width(cr, text) * align_x, y + drop);
  cairo_show_text(cr, text.c_str());
}

void draw_vertical_text(cairo_t* cr, const std::string& text, double x, double y) {
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, -M_PI / 2);
  draw_text(cr, text, 0, 0, 0.5, 0.5);
  cairo_restore(cr);
}

// Tick values at "nice" steps (1, 2, 5 x 10^k) covering [low, high].
std::vector<double> nice_ticks(double low, double high, int target) {
  std::vector<double> ticks;
  if (!(high > low)) {
    ticks.push_back(low);
    return ticks;
  }
  const double raw = (high - low) / std::max(target, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    step = factor * magnitude;
    if (step >= raw) break;
  }
  for (double value = std::ceil(low / step - 1e-9) * step; value <= high + step * 1e-9; value += step) {
    ticks.push_back(std::abs(value) < step * 1e-9 ? 0.0 : value);
  }
  return ticks;
}

std::string format_tick(double value) {
  const double magnitude = std::abs(value);
  if (magnitude != 0.0 && (magnitude >= 1e5 || magnitude < 1e-3)) return fmt::format("{:.0e}", value);
  if (magnitude >= 1000 && std::fmod(magnitude, 1024.0) == 0.0) return fmt::format("{}k", value / 1024.0);
  return fmt::format("{:g}", value);
}

void fill_background(cairo_t* cr) {
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
}

void draw_title(cairo_t* cr, const std::string& title, double centre_x, double y) {
  if (title.empty()) return;
  cairo_save(cr);
  cairo_set_font_size(cr, 17);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_source_rgb(cr, 0, 0, 0);
  draw_text(cr, title, centre_x, y, 0.5, 0);
  cairo_restore(cr);
}

void validate_line_plot(const LinePlot& plot) {
  for (const Series& series : plot.series) {
    ROPEPP_CHECK(series.xs.size() == series.ys.size(), "plot '{}': series '{}' has {} x values but {} y values",
                 plot.title, series.name, series.xs.size(), series.ys.size());
    for (size_t i = 0; i < series.xs.size(); ++i) {
      ROPEPP_CHECK(!plot.log_x || series.xs[i] > 0, "plot '{}': series '{}' has x = {} on a logarithmic x axis",
                   plot.title, series.name, series.xs[i]);
    }
  }
}

}  // namespace

void write_line_plot(const std::filesystem::path& path, const LinePlot& plot, int width, int height) {
  validate_line_plot(plot);

  // Data range over finite points (and positive y on a log axis).
  double x_low = std::numeric_limits<double>::infinity(), x_high = -x_low;
  double y_low = x_low, y_high = -x_low;
  for (const Series& series : plot.series) {
    for (size_t i = 0; i < series.xs.size(); ++i) {
      const double y = series.ys[i];
      if (!std::isfinite(y) || !std::isfinite(series.xs[i]) || (plot.log_y && y <= 0)) continue;
      x_low = std::min(x_low, series.xs[i]);
      x_high = std::max(x_high, series.xs[i]);
      y_low = std::min(y_low, y);
      y_high = std::max(y_high, y);
    }
  }
  if (!std::isfinite(x_low)) x_low = 0, x_high = 1, y_low = 0, y_high = 1;
  if (plot.y_min < plot.y_max) y_low = plot.y_min, y_high = plot.y_max;

  // Axis transforms: log axes are linear in log2(x) / log10(y).
  auto tx = [&](double x) { return plot.log_x ? std::log2(x) : x; };
  auto ty = [&](double y) { return plot.log_y ? std::log10(y) : y; };
  double ax_low = tx(x_low), ax_high = tx(x_high), ay_low = ty(y_low), ay_high = ty(y_high);
  if (ax_high <= ax_low) ax_low -= 0.5, ax_high += 0.5;
  if (ay_high <= ay_low) ay_low -= 0.5, ay_high += 0.5;
  const double y_pad = 0.05 * (ay_high - ay_low);
  if (!(plot.y_min < plot.y_max)) ay_low -= y_pad, ay_high += y_pad;

  const double left = 80, right = width - 20.0, top = 50, bottom = height - 60.0;
  auto px = [&](double x) { return left + (tx(x) - ax_low) / (ax_high - ax_low) * (right - left); };
  auto py = [&](double y) { return bottom - (ty(y) - ay_low) / (ay_high - ay_low) * (bottom - top); };

  Surface surface(cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height));
  Context context(cairo_create(surface.get()));
  cairo_t* cr = context.get();
  fill_background(cr);
  draw_title(cr, plot.title, width / 2.0, 14);

  // Grid, ticks and tick labels.
  cairo_set_font_size(cr, 12);
  cairo_set_line_width(cr, 1);
  std::vector<double> x_ticks;
  if (plot.log_x) {
    for (double e = std::ceil(ax_low - 1e-9); e <= ax_high + 1e-9; e += 1) x_ticks.push_back(std::exp2(e));
    while (x_ticks.size() > 12) {
      std::vector<double> thinned;
      for (size_t i = 0; i < x_ticks.size(); i += 2) thinned.push_back(x_ticks[i]);
      x_ticks = thinned;
    }
  } else {
    x_ticks = nice_ticks(ax_low, ax_high, 8);
  }
  std::vector<double> y_ticks;
  if (plot.log_y) {
    for (double e = std::ceil(ay_low - 1e-9); e <= ay_high + 1e-9; e += 1) y_ticks.push_back(std::pow(10.0, e));
    if (y_ticks.size() < 2) {
      for (double t : nice_ticks(std::pow(10.0, ay_low), std::pow(10.0, ay_high), 6)) {
        if (t > 0) y_ticks.push_back(t);
      }
    }
  } else {
    y_ticks = nice_ticks(ay_low, ay_high, 6);
  }
  for (double x : x_ticks) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, px(x), top);
    cairo_line_to(cr, px(x), bottom);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    draw_text(cr, format_tick(x), px(x), bottom + 6, 0.5, 0);
  }
  for (double y : y_ticks) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, left, py(y));
    cairo_line_to(cr, right, py(y));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    draw_text(cr, format_tick(y), left - 6, py(y), 1, 0.5);
  }
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_rectangle(cr, left, top, right - left, bottom - top);
  cairo_stroke(cr);

  cairo_set_font_size(cr, 14);
  draw_text(cr, plot.x_label, (left + right) / 2, height - 24.0, 0.5, 0);
  draw_vertical_text(cr, plot.y_label, 18, (top + bottom) / 2);

  // Curves, clipped to the plot area.
  cairo_save(cr);
  cairo_rectangle(cr, left, top, right - left, bottom - top);
  cairo_clip(cr);
  cairo_set_line_width(cr, 2);
  for (size_t s = 0; s < plot.series.size(); ++s) {
    const Series& series = plot.series[s];
    set_color(cr, kPalette[s % std::size(kPalette)]);
    bool pen_down = false;
    for (size_t i = 0; i < series.xs.size(); ++i) {
      const double y = series.ys[i];
      if (!std::isfinite(y) || (plot.log_y && y <= 0)) {
        pen_down = false;
        continue;
      }
      if (pen_down) {
        cairo_line_to(cr, px(series.xs[i]), py(y));
      } else {
        cairo_move_to(cr, px(series.xs[i]), py(y));
      }
      pen_down = true;
    }
    cairo_stroke(cr);
    if (plot.markers && series.xs.size() <= 64) {
      for (size_t i = 0; i < series.xs.size(); ++i) {
        if (!std::isfinite(series.ys[i]) || (plot.log_y && series.ys[i] <= 0)) continue;
        cairo_arc(cr, px(series.xs[i]), py(series.ys[i]), 3.5, 0, 2 * M_PI);
        cairo_fill(cr);
      }
    }
  }
  cairo_restore(cr);

  // Legend in the top-right corner on a white box.
  if (!plot.series.empty()) {
    cairo_set_font_size(cr, 12);
    double legend_width = 0;
    for (const Series& series : plot.series) legend_width = std::max(legend_width, text_width(cr, series.name));
    legend_width += 40;
    const double line_height = 18;
    const double legend_height = line_height * plot.series.size() + 8;
    const double lx = right - legend_width - 10, ly = top + 10;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, lx, ly, legend_width, legend_height);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (size_t s = 0; s < plot.series.size(); ++s) {
      const double y = ly + 4 + line_height * (s + 0.5);
      set_color(cr, kPalette[s % std::size(kPalette)]);
      cairo_set_line_width(cr, 2);
      cairo_move_to(cr, lx + 6, y);
      cairo_line_to(cr, lx + 28, y);
      cairo_stroke(cr);
      cairo_set_source_rgb(cr, 0, 0, 0);
      draw_text(cr, plot.series[s].name, lx + 34, y, 0, 0.5);
    }
  }

  save_png(surface.get(), path);
}

void write_heatmaps(const std::filesystem::path& path, const std::string& title, const std::vector<Heatmap>& panels,
                    int panel_width, int panel_height) {
  ROPEPP_CHECK(!panels.empty(), "heatmap '{}' has no panels", title);
  for (const Heatmap& heatmap : panels) {
    ROPEPP_CHECK(heatmap.rows > 0 && heatmap.columns > 0 &&
                     heatmap.values.size() == static_cast<size_t>(heatmap.rows) * heatmap.columns,
                 "heatmap '{}': expected {} x {} values, found {}", heatmap.title, heatmap.rows, heatmap.columns,
                 heatmap.values.size());
    ROPEPP_CHECK(heatmap.row_labels.empty() || heatmap.row_labels.size() == static_cast<size_t>(heatmap.rows),
                 "heatmap '{}': {} row labels for {} rows", heatmap.title, heatmap.row_labels.size(), heatmap.rows);
    ROPEPP_CHECK(heatmap.column_labels.empty() ||
                     heatmap.column_labels.size() == static_cast<size_t>(heatmap.columns),
                 "heatmap '{}': {} column labels for {} columns", heatmap.title, heatmap.column_labels.size(),
                 heatmap.columns);
  }

  const int header = title.empty() ? 0 : 34;
  const int width = panel_width * static_cast<int>(panels.size());
  const int height = panel_height + header;
  Surface surface(cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height));
  Context context(cairo_create(surface.get()));
  cairo_t* cr = context.get();
  fill_background(cr);
  draw_title(cr, title, width / 2.0, 8);

  for (size_t p = 0; p < panels.size(); ++p) {
    const Heatmap& map = panels[p];
    const double origin_x = p * static_cast<double>(panel_width);
    const double origin_y = header;
    const double left = origin_x + 78, right = origin_x + panel_width - 80.0;
    const double top = origin_y + 34, bottom = origin_y + panel_height - 58.0;

    double low = map.value_min, high = map.value_max;
    if (!(low < high)) {
      low = std::numeric_limits<double>::infinity();
      high = -low;
      for (double v : map.values) {
        if (std::isfinite(v)) low = std::min(low, v), high = std::max(high, v);
      }
      if (!std::isfinite(low)) low = 0, high = 1;
      if (high <= low) high = low + 1;
    }

    // Cells.
    const double cell_w = (right - left) / map.columns, cell_h = (bottom - top) / map.rows;
    for (int r = 0; r < map.rows; ++r) {
      for (int c = 0; c < map.columns; ++c) {
        const double v = map.values[static_cast<size_t>(r) * map.columns + c];
        if (std::isfinite(v)) {
          set_color(cr, colormap((v - low) / (high - low)));
        } else {
          cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
        }
        // Overlap by a fraction of a pixel so large maps show no seams.
        cairo_rectangle(cr, left + c * cell_w, top + r * cell_h, cell_w + 0.5, cell_h + 0.5);
        cairo_fill(cr);
        if (map.annotate && std::isfinite(v)) {
          cairo_set_font_size(cr, std::clamp(std::min(cell_w, cell_h) * 0.3, 7.0, 13.0));
          const double t = (v - low) / (high - low);
          cairo_set_source_rgb(cr, t > 0.6 ? 0 : 1, t > 0.6 ? 0 : 1, t > 0.6 ? 0 : 1);
          draw_text(cr, fmt::format("{:.2g}", v), left + (c + 0.5) * cell_w, top + (r + 0.5) * cell_h, 0.5, 0.5);
        }
      }
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, left, top, right - left, bottom - top);
    cairo_stroke(cr);

    // Tick labels: at most ~10 per axis.
    cairo_set_font_size(cr, 11);
    const int column_step = std::max(1, (map.columns + 9) / 10);
    for (int c = 0; c < map.columns; c += column_step) {
      const std::string label = map.column_labels.empty() ? std::to_string(c) : map.column_labels[c];
      draw_text(cr, label, left + (c + 0.5) * cell_w, bottom + 5, 0.5, 0);
    }
    const int row_step = std::max(1, (map.rows + 9) / 10);
    for (int r = 0; r < map.rows; r += row_step) {
      const std::string label = map.row_labels.empty() ? std::to_string(r) : map.row_labels[r];
      draw_text(cr, label, left - 5, top + (r + 0.5) * cell_h, 1, 0.5);
    }

    cairo_set_font_size(cr, 13);
    draw_text(cr, map.x_label, (left + right) / 2, bottom + 24, 0.5, 0);
    draw_vertical_text(cr, map.y_label, origin_x + 14, (top + bottom) / 2);
    cairo_set_font_size(cr, 14);
    draw_text(cr, map.title, (left + right) / 2, origin_y + 10, 0.5, 0);

    // Colour bar with min, middle and max values.
    const double bar_left = right + 14, bar_right = right + 28;
    for (int i = 0; i < 100; ++i) {
      set_color(cr, colormap(1.0 - i / 99.0));
      const double y0 = top + (bottom - top) * i / 100.0;
      cairo_rectangle(cr, bar_left, y0, bar_right - bar_left, (bottom - top) / 100.0 + 0.5);
      cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, bar_left, top, bar_right - bar_left, bottom - top);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 10);
    draw_text(cr, fmt::format("{:.3g}", high), bar_right + 3, top, 0, 0.5);
    draw_text(cr, fmt::format("{:.3g}", (low + high) / 2), bar_right + 3, (top + bottom) / 2, 0, 0.5);
    draw_text(cr, fmt::format("{:.3g}", low), bar_right + 3, bottom, 0, 0.5);
  }

  save_png(surface.get(), path);
}

}  // namespace ropepp::eval
