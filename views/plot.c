#include "views/plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void layout_compute(int cols, int lines, layout *l)
{
    memset(l, 0, sizeof *l);
    l->full = (rect){0, 0, lines, cols};
    l->too_small = cols < QS_MIN_COLS || lines < QS_MIN_LINES;
    if (l->too_small) return;
    int gen_h = lines >= 30 ? 6 : 4, body = lines - 3 - gen_h;
    int lw = cols * 30 / 100, kw = cols * 30 / 100;
    lw = lw < 26 ? 26 : lw > 48 ? 48 : lw;
    kw = kw < 26 ? 26 : kw > 46 ? 46 : kw;
    l->title = (rect){0, 0, 1, cols};
    l->layers = (rect){1, 0, body, lw};
    l->knobs = (rect){1, cols - kw, body, kw};
    l->tensor = (rect){1, lw + 1, body, cols - lw - kw - 2};
    l->gen = (rect){1 + body, 0, gen_h, cols};
    l->status = (rect){lines - 2, 0, 1, cols};
    l->fbar = (rect){lines - 1, 0, 1, cols};
}

void plot_rebin(const int64_t *counts, int n, int out_n, int64_t *out)
{
    for (int i = 0; i < out_n; i++) {
        int a = (int)((int64_t)i * n / out_n), b = (int)((int64_t)(i + 1) * n / out_n);
        int64_t s = 0;
        for (int k = a; k < b; k++) s += counts[k];
        out[i] = s;
    }
}

int plot_bar_eighths(int64_t count, int64_t max, int rows, bool log)
{
    if (count <= 0 || max <= 0) return 0;
    double f = log ? log1p((double)count) / log1p((double)max) : (double)count / (double)max;
    int e = (int)lround(f * rows * 8);
    return e < 1 ? 1 : e > rows * 8 ? rows * 8 : e;
}

const char *plot_eighth_glyph(int eighths)
{
    static const char *const g[9] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    return g[eighths < 0 ? 0 : eighths > 8 ? 8 : eighths];
}

int plot_heat_level(float v, float vmax, int levels)
{
    if (!(vmax > 0) || !(v > 0)) return 0;
    int k = (int)(v / vmax * (float)levels);
    return k >= levels ? levels - 1 : k;
}

const char *plot_fmt(double v, char *buf, size_t n)
{
    if (isinf(v)) snprintf(buf, n, v > 0 ? "inf" : "-inf");
    else if (v != 0 && (fabs(v) < 1e-3 || fabs(v) >= 1e5)) {
        snprintf(buf, n, "%.3e", v);
        char *e = strchr(buf, 'e');
        if (e && (e[1] == '-' || e[1] == '+') && e[2] == '0') memmove(e + 2, e + 3, strlen(e + 3) + 1);
        if (e && e[1] == '+') memmove(e + 1, e + 2, strlen(e + 2) + 1);
    } else snprintf(buf, n, "%.4g", v);
    return buf;
}

int plot_scatter(const double *x, const double *y, const char *mark, int n, bool logy, int w, int h, char *grid,
                 double range[4])
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (logy && !(y[i] > 0)) continue;
        double v = logy ? log10(y[i]) : y[i];
        x0 = fmin(x0, x[i]), x1 = fmax(x1, x[i]), y0 = fmin(y0, v), y1 = fmax(y1, v);
    }
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) y1 = y0 + 1;
    for (int r = 0; r < h; r++) {
        memset(grid + r * (w + 1), ' ', (size_t)w);
        grid[r * (w + 1) + w] = '\0';
    }
    int placed = 0;
    for (int i = 0; i < n; i++) {
        if ((logy && !(y[i] > 0)) || !isfinite(x[i])) continue;
        double v = logy ? log10(y[i]) : y[i];
        int c = (int)lround((x[i] - x0) / (x1 - x0) * (w - 1)), r = (int)lround((y1 - v) / (y1 - y0) * (h - 1));
        char *cell = grid + r * (w + 1) + c;
        if (*cell == ' ' || *cell == '*') *cell = mark[i];
        placed++;
    }
    range[0] = x0, range[1] = x1, range[2] = y0, range[3] = y1;
    return placed;
}

/* a code point's ASCII stand-in */
static char ascii_of(uint32_t c)
{
    static const struct { uint32_t lo, hi; char a; } map[] = {
        {0x2581, 0x2582, '.'}, {0x2583, 0x2584, ':'}, {0x2585, 0x2586, '+'}, {0x2587, 0x2588, '#'}, {0x2580, 0x2580, '#'},
        {0x2591, 0x2591, '.'}, {0x2592, 0x2592, ':'}, {0x2593, 0x2593, '#'}, {0x2502, 0x2502, '|'}, {0x2500, 0x2500, '-'},
        {0x253C, 0x253C, '+'}, {0x25CF, 0x25CF, '*'}, {0x25C2, 0x25C2, '<'}, {0x25B8, 0x25B8, '>'}, {0x25B2, 0x25B2, '^'},
        {0x25BC, 0x25BC, 'v'}, {0x25BE, 0x25BE, 'v'}, {0x2192, 0x2192, '>'}, {0x21B5, 0x21B5, '~'}, {0x2026, 0x2026, '~'},
        {0x2013, 0x2014, '-'}, {0x00B7, 0x00B7, '.'}, {0x00D7, 0x00D7, 'x'}, {0x2801, 0x28FF, ':'}, {0x2800, 0x2800, ' '},
        {0x2264, 0x2264, '<'}, {0x2265, 0x2265, '>'}, {0x2248, 0x2248, '~'}, {0x03C3, 0x03C3, 's'}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (c >= map[i].lo && c <= map[i].hi) return map[i].a;
    return '?';
}

size_t plot_ascii(const char *s, char *out, size_t n)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && o + 1 < n) {
        uint32_t c = *p;
        int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        if (len > 1) {
            c &= 0x3Fu >> (len - 1);
            for (int k = 1; k < len; k++) {
                if ((p[k] & 0xC0) != 0x80) { /* a broken sequence: one '?' for its first byte */
                    len = 1, c = 0xFFFD;
                    break;
                }
                c = c << 6 | (p[k] & 0x3Fu);
            }
        } else if (c >= 0x80) c = 0xFFFD;
        out[o++] = c < 0x80 ? (char)c : ascii_of(c);
        p += len;
    }
    out[o] = '\0';
    return o;
}

void plot_heat_grid(rect pane, int64_t nr, int64_t nc, int max_r, int max_c, int *pr, int *pc)
{
    int w = pane.w - 2, h = pane.h - 6;
    int64_t r = 2 * (h > 1 ? h : 1), c = w > 1 ? w : 1;
    r = r < nr ? r : nr, c = c < nc ? c : nc;
    *pr = (int)(r < max_r ? r : max_r), *pc = (int)(c < max_c ? c : max_c);
}
