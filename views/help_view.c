/* views/help_view.c — help generated from the action table. */
#include <string.h>

#include "views/actions.h"
#include "views/draw.h"
#include "views/views.h"

void help_view_draw(rect r)
{
    draw_fill(r, A_NORMAL);
    draw_pane_title((rect){r.y, r.x, 1, r.w}, "quantscope — keys (any key closes)", true);
    int y = r.y + 2, col = 0, colw = r.w / 2;
    const char *group = "";
    for (int i = 0; i < qs_n_actions; i++) {
        const action *ac = &qs_actions[i];
        if (strcmp(group, ac->group)) {
            group = ac->group;
            if (y >= r.y + r.h - 1) y = r.y + 2, col++;
            draw_text(y++, r.x + 2 + col * colw, colw - 3, group, theme(TH_HEADER));
        }
        if (y >= r.y + r.h) y = r.y + 2, col++;
        if (col > 1) break;
        draw_textf(y++, r.x + 2 + col * colw, colw - 3, A_NORMAL, "%-12s %s", ac->key_label, ac->help);
    }
}
