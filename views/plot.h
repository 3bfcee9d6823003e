/* views/plot.h — pure view-model helpers (no curses): screen layout from the terminal size,
 * histogram re-binning and bar heights in eighth blocks, heat levels, number formatting.
 * Unit-tested directly. */
#ifndef QS_PLOT_H
#define QS_PLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rect {
    int y, x, h, w;
} rect;

typedef struct layout {
    bool too_small;
    rect title, layers, tensor, knobs, gen, status, fbar, full;
} layout;

#define QS_MIN_COLS 80
#define QS_MIN_LINES 24

void layout_compute(int cols, int lines, layout *l);
/* the heatmap's cell grid in the tensor pane for a window of nr × nc weights: *pr cell rows (two
 * per text row, at most max_r), *pc columns (at most max_c) */
void plot_heat_grid(rect pane, int64_t nr, int64_t nc, int max_r, int max_c, int *pr, int *pc);
/* sums n counts into out_n bins (bin i takes the source bins [i·n/out_n, (i+1)·n/out_n)) */
void plot_rebin(const int64_t *counts, int n, int out_n, int64_t *out);
/* height of a count in eighths of a row for a plot of `rows` rows (log: log1p scale) */
int plot_bar_eighths(int64_t count, int64_t max, int rows, bool log);
/* the glyph for a partial cell: 0…8 eighths (" ▁▂▃▄▅▆▇█") */
const char *plot_eighth_glyph(int eighths);
/* level 0…levels−1 of v on [0, vmax] */
int plot_heat_level(float v, float vmax, int levels);
/* short engineering format: 1.23e-05 → "1.23e-5", 0.5 → "0.5" (into buf) */
const char *plot_fmt(double v, char *buf, size_t n);
/* UTF-8 text as one ASCII character per character, for terminals whose codeset is not UTF-8
 * (spec/tui.md §3): bars and shades by height (. : + #), box lines | - +, arrows < > ^ v,
 * ↵ ~, … ~, braille :, the rest of non-ASCII '?'. Returns the length written. */
size_t plot_ascii(const char *utf8, char *out, size_t n);

/* A scatter plot as text: h rows of w cells (grid holds h·(w+1) chars, each row NUL-terminated),
 * x linear, y as log10 when logy (points with y <= 0 are then left out); a point's mark replaces
 * a blank or a '*' (so labelled points win over plain ones). range: x0, x1, y0, y1 as plotted
 * (y in log10 when logy). Returns how many points were placed. */
int plot_scatter(const double *x, const double *y, const char *mark, int n, bool logy, int w, int h, char *grid,
                 double range[4]);

#endif
