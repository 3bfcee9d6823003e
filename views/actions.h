/* views/actions.h — the one action table: identifier, name, keys, help group and text,
 * function-bar label. Key dispatch, the help screen and the function bar are generated
 * from it. */
#ifndef QS_ACTIONS_H
#define QS_ACTIONS_H

typedef enum action_id {
    ACT_NONE, ACT_HELP, ACT_QUIT, ACT_NEXT_PANE, ACT_PREV_PANE, ACT_UP, ACT_DOWN, ACT_PAGE_UP, ACT_PAGE_DOWN,
    ACT_FIRST, ACT_LAST, ACT_LEFT, ACT_RIGHT, ACT_INC, ACT_DEC, ACT_OPEN, ACT_FILTER, ACT_TAB_HIST, ACT_TAB_HEAT,
    ACT_TAB_CHANNELS, ACT_NEXT_TAB, ACT_LOG, ACT_HEAT_MODE, ACT_EXPLAIN, ACT_UNDO, ACT_REDO, ACT_SAVE, ACT_RECIPE, ACT_CALIBRATE, ACT_CANCEL, ACT_SCAN, ACT_PARETO, ACT_EXPORT, ACT_PPL, ACT_SORT, ACT_PROMPT, ACT_TAILS, ACT_LOAD, ACT_CHECKPOINT, ACT_COUNT
} action_id;

typedef struct action {
    action_id id;
    const char *name;
    int keys[4];          /* 0-terminated */
    const char *key_label;
    const char *group;
    const char *help;
    const char *fbar;     /* function-bar label or NULL */
} action;

extern const action qs_actions[];
extern const int qs_n_actions;
action_id qs_action_for_key(int key);

#endif
