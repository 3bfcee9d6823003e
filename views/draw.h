/* views/draw.h — drawing primitives on stdscr and the semantic colour roles (a scheme table
 * with 256-colour, 8-colour and monochrome variants). Views call only these and read their
 * view-models; they compute nothing. */
#ifndef QS_DRAW_H
#define QS_DRAW_H

#include <curses.h>
#include <stdbool.h>

#include "views/plot.h"

typedef enum role {
    TH_NORMAL, TH_TITLE, TH_SEL, TH_SEL_DIM, TH_HEADER, TH_DIM, TH_GOOD, TH_WARN, TH_BAD, TH_BAR, TH_BAR_DEQ,
    TH_GRID, TH_FKEY, TH_FLABEL, TH_FOCUS, TH_HEAT0, TH_COUNT = TH_HEAT0 + 8
} role;

#define TH_HEAT_LEVELS 8

/* mono: attributes only (NO_COLOR, headless tests) */
void theme_init(bool colour);
/* ASCII glyphs instead of UTF-8 ones (a terminal codeset that is not UTF-8) */
void draw_set_ascii(bool ascii);
attr_t theme(role r);
bool theme_has_colour(void);
/* the role of a relative error: dim (not measured, < 0), good, warn (≥ 0.05), bad (≥ 0.15) */
role theme_error_role(float rel_err);

/* text clipped to w columns (UTF-8; every character counts one column) */
/* Text that does not fit in w columns ends with "…" at a word boundary — never a number or word
 * clipped silently. Control characters are escaped (core/escape.h). */
void draw_text(int y, int x, int w, const char *s, attr_t a);
/* s word-wrapped over at most max_lines rows of w columns from (y, x) (the last row ends in "…"
 * if the text goes on); returns the rows used */
int draw_wrap(int y, int x, int w, int max_lines, const char *s, attr_t a);
/* n fields (f[i], at most 63 bytes) joined by two spaces; when they do not fit, whole fields are
 * dropped — the one with the lowest keep[i] first — so no value is ever cut */
void draw_fields(int y, int x, int w, attr_t a, char (*f)[64], const int *keep, int n);
void draw_textf(int y, int x, int w, attr_t a, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void draw_fill(rect r, attr_t a);
void draw_vline(int y, int x, int h, attr_t a);
void draw_pane_title(rect r, const char *title, bool focused);

#endif
