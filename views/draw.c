#include "views/draw.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "core/util/escape.h"

static attr_t roles[TH_COUNT];
static bool has_colour, ascii_only;

void draw_set_ascii(bool ascii) { ascii_only = ascii; }

void theme_init(bool colour)
{
    has_colour = colour && has_colors();
    attr_t mono[TH_COUNT] = {
        [TH_TITLE] = A_REVERSE, [TH_SEL] = A_REVERSE, [TH_SEL_DIM] = A_UNDERLINE, [TH_HEADER] = A_BOLD,
        [TH_DIM] = A_DIM, [TH_WARN] = A_BOLD, [TH_BAD] = A_BOLD | A_UNDERLINE, [TH_FKEY] = A_NORMAL,
        [TH_FLABEL] = A_REVERSE, [TH_FOCUS] = A_BOLD | A_REVERSE, [TH_GRID] = A_BOLD};
    memcpy(roles, mono, sizeof roles);
    if (!has_colour) return;
    start_color();
    use_default_colors();
    bool c256 = COLORS >= 256;
    struct { role r; short fg, bg; attr_t extra; } def[] = {
        {TH_TITLE, COLOR_BLACK, COLOR_CYAN, 0}, {TH_SEL, COLOR_BLACK, COLOR_CYAN, 0},
        {TH_SEL_DIM, COLOR_CYAN, -1, A_REVERSE}, {TH_HEADER, COLOR_CYAN, -1, A_BOLD},
        {TH_DIM, c256 ? 244 : COLOR_WHITE, -1, c256 ? 0 : A_DIM}, {TH_GOOD, COLOR_GREEN, -1, 0},
        {TH_WARN, COLOR_YELLOW, -1, 0}, {TH_BAD, COLOR_RED, -1, A_BOLD}, {TH_BAR, COLOR_BLUE, -1, 0},
        {TH_BAR_DEQ, COLOR_MAGENTA, -1, 0}, {TH_GRID, COLOR_YELLOW, -1, A_BOLD}, {TH_FKEY, COLOR_WHITE, -1, 0},
        {TH_FLABEL, COLOR_BLACK, COLOR_CYAN, 0}, {TH_FOCUS, COLOR_BLACK, COLOR_YELLOW, A_BOLD}};
    short pair = 1;
    for (size_t i = 0; i < sizeof def / sizeof *def; i++, pair++) {
        init_pair(pair, def[i].fg, def[i].bg);
        roles[def[i].r] = COLOR_PAIR(pair) | def[i].extra;
    }
    /* heat ramp: viridis-like through the 6×6×6 cube, or the 8 basic colours */
    static const short ramp256[TH_HEAT_LEVELS] = {17, 24, 30, 36, 71, 148, 184, 226};
    static const short ramp8[TH_HEAT_LEVELS] = {COLOR_BLACK, COLOR_BLUE, COLOR_BLUE, COLOR_CYAN, COLOR_GREEN,
                                                COLOR_GREEN, COLOR_YELLOW, COLOR_YELLOW};
    for (int k = 0; k < TH_HEAT_LEVELS; k++, pair++) {
        init_pair(pair, c256 ? ramp256[k] : ramp8[k], -1);
        roles[TH_HEAT0 + k] = COLOR_PAIR(pair);
    }
}

attr_t theme(role r) { return r >= 0 && r < TH_COUNT ? roles[r] : A_NORMAL; }
bool theme_has_colour(void) { return has_colour; }

void draw_text(int y, int x, int w, const char *s, attr_t a)
{
    if (w <= 0 || y < 0 || x < 0) return;
    char plain[1024], esc[1024];
    s = qs_escape(s, esc, sizeof esc); /* names and values from model files: no escape sequences */
    if (ascii_only) plot_ascii(s, plain, sizeof plain), s = plain;
    wchar_t buf[1024];
    size_t n = mbstowcs(buf, s, sizeof buf / sizeof *buf - 1);
    if (n == (size_t)-1) { /* invalid UTF-8: show bytes as '?' */
        n = 0;
        for (const char *p = s; *p && n < sizeof buf / sizeof *buf - 1; p++) buf[n++] = (unsigned char)*p < 128 ? (wchar_t)*p : L'?';
    }
    if ((int)n > w) {
        /* never clip mid-way silently: text that does not fit ends at a word boundary (if one is
         * not too far back) with an ellipsis; only trailing blanks are cut plainly */
        size_t k = (size_t)w;
        while (k < n && buf[k] == L' ') k++;
        if (k < n) {
            size_t cut = (size_t)w - 1;
            while (cut > (size_t)w / 2 && buf[cut] != L' ' && buf[cut - 1] != L' ') cut--;
            if (cut <= (size_t)w / 2) cut = (size_t)w - 1;
            while (cut > 0 && buf[cut - 1] == L' ') cut--;
            buf[cut] = ascii_only ? L'~' : L'\u2026';
            n = cut + 1;
        } else
            n = (size_t)w;
    }
    attrset(a);
    mvaddnwstr(y, x, buf, (int)n);
    attrset(A_NORMAL);
}

void draw_textf(int y, int x, int w, attr_t a, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    draw_text(y, x, w, buf, a);
}

int draw_wrap(int y, int x, int w, int max_lines, const char *s, attr_t a)
{
    int rows = 0;
    while (*s && rows < max_lines && w > 0) {
        while (*s == ' ') s++;
        /* the longest prefix of whole words within w columns (a longer word is split) */
        const char *p = s, *brk = NULL;
        int cols = 0;
        while (*p && cols < w) {
            if (*p == ' ') brk = p;
            p++;
            while ((*p & 0xC0) == 0x80) p++;
            cols++;
        }
        if (*p && *p != ' ' && brk) p = brk;
        char line[1024];
        size_t len = rows + 1 < max_lines || !*p ? (size_t)(p - s) : strlen(s); /* the last row: draw_text ends it */
        len = len < sizeof line - 1 ? len : sizeof line - 1;
        memcpy(line, s, len), line[len] = '\0';
        draw_text(y + rows++, x, w, line, a);
        s = p;
        if (rows == max_lines) break;
    }
    return rows;
}

static int columns(const char *s)
{
    int c = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) c += (*p & 0xC0) != 0x80;
    return c;
}

void draw_fields(int y, int x, int w, attr_t a, char (*f)[64], const int *keep, int n)
{
    bool on[16];
    for (int i = 0; i < n && i < 16; i++) on[i] = true;
    for (;;) {
        int total = 0, shown = 0;
        for (int i = 0; i < n && i < 16; i++)
            if (on[i]) total += columns(f[i]) + (shown++ ? 2 : 0);
        if (total <= w || shown <= 1) break;
        int drop = -1;
        for (int i = 0; i < n && i < 16; i++)
            if (on[i] && (drop < 0 || keep[i] < keep[drop])) drop = i;
        on[drop] = false;
    }
    char line[1024];
    size_t o = 0;
    for (int i = 0; i < n && i < 16; i++)
        if (on[i]) o += (size_t)snprintf(line + o, sizeof line - o, "%s%s", o ? "  " : "", f[i]);
    draw_text(y, x, w, line, a);
}

void draw_fill(rect r, attr_t a)
{
    attrset(a);
    for (int y = r.y; y < r.y + r.h; y++) mvhline(y, r.x, ' ', r.w);
    attrset(A_NORMAL);
}

void draw_vline(int y, int x, int h, attr_t a)
{
    for (int i = 0; i < h; i++) draw_text(y + i, x, 1, "│", a);
}

void draw_pane_title(rect r, const char *title, bool focused)
{
    draw_fill((rect){r.y, r.x, 1, r.w}, focused ? theme(TH_FOCUS) : theme(TH_HEADER));
    draw_text(r.y, r.x + 1, r.w - 2, title, focused ? theme(TH_FOCUS) : theme(TH_HEADER));
}

role theme_error_role(float e)
{
    return e < 0 ? TH_DIM : e < 0.05f ? TH_GOOD : e < 0.15f ? TH_WARN : TH_BAD;
}
