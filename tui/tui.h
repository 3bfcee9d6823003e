/* tui/tui.h — the workbench: terminal set-up and restore, the poll() loop over the keyboard
 * and the worker's notification pipe, drawing, and the headless script mode
 * (QUANTSCOPE_SCRIPT=file: keys from the file, `:dump FILE` writes the screen as text, the
 * next key waits until the worker is idle; LINES/COLUMNS give the size). */
#ifndef QS_TUI_H
#define QS_TUI_H

typedef struct tui_opts {
    const char *model_path;
    const char *script;      /* NULL: interactive */
    int no_color, no_mouse;
    const char *calib;       /* calibration text for gptq/awq (C), or NULL */
    const char *eval;        /* the text `p` measures perplexity on (NULL: the calibration text) */
    const char *theme;       /* "default", "mono" (NULL: the saved setting) */
} tui_opts;

/* the process's exit statuses (the CLI's and the workbench's) */
enum { QS_EXIT_OK = 0, QS_EXIT_USAGE = 1, QS_EXIT_INPUT = 2 };

/* exit status as the CLI's */
int qs_tui_run(const tui_opts *o);

#endif
