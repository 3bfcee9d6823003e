#include "views/actions.h"

#include <curses.h>

const action qs_actions[] = {
    {ACT_HELP, "help", {'?', KEY_F(1)}, "? F1", "General", "this help", "Help"},
    {ACT_FILTER, "filter", {'/', KEY_F(3)}, "/ F3", "General", "filter the layer list (regex or substring)", "Filter"},
    {ACT_EXPLAIN, "explain", {'x', KEY_F(4)}, "x F4", "General", "explain the current method with numbers from this tensor", "Explain"},
    {ACT_SAVE, "save", {'e', KEY_F(5)}, "e F5", "General", "save the recipe (JSON) beside the model name in the current directory", "Save"},
    {ACT_LOAD, "load", {'O'}, "O", "General", "load the recipe e saved (MODEL.recipe.json in the current directory), one undoable edit", NULL},
    {ACT_EXPORT, "export", {'E'}, "E", "General", "export the recipe as a quantized GGUF (MODEL.quant.gguf in the current directory; gptq/awq use the calibration)", NULL},
    {ACT_CHECKPOINT, "checkpoint", {'W'}, "W", "General", "write the recipe as a GPTQ (or, all awq, AWQ GEMM) HF checkpoint directory MODEL.gptq/", NULL},
    {ACT_RECIPE, "recipe", {'r', KEY_F(6)}, "r F6", "General", "recipe view: every tensor, totals, llama-quantize presets (keys 1-0), NF4, RTN", "Recipe"},
    {ACT_CALIBRATE, "calibrate", {'C'}, "C", "General", "run the calibration text through the model: gptq and awq need it, every method then shows its output error", NULL},
    {ACT_SCAN, "scan", {'S'}, "S", "General", "sensitivity scan: every tensor alone with this tensor's config, ranked by KLD; colours the layer list", NULL},
    {ACT_PARETO, "pareto", {'P'}, "P", "General", "Pareto plot: summed KLD against bpw of suggested K-quant mixes and of llama-quantize's presets", NULL},
    {ACT_PPL, "perplexity", {'p'}, "p", "General", "perplexity and KL divergence of the current recipe against the original (eval text)", NULL},
    {ACT_PROMPT, "prompt", {'i'}, "i", "General", "edit the generation prompt (Enter generates, Esc keeps the old one)", NULL},
    {ACT_CANCEL, "cancel", {27}, "Esc", "General", "cancel the running calibration or scan", NULL},
    {ACT_UNDO, "undo", {'u'}, "u", "General", "undo the last configuration change", NULL},
    {ACT_REDO, "redo", {'U'}, "U", "General", "redo", NULL},
    {ACT_QUIT, "quit", {'q', 'Q', KEY_F(10)}, "q F10", "General", "quit (asks when the recipe has unsaved changes)", "Quit"},
    {ACT_SORT, "sort", {'o'}, "o", "Panes", "order the layers by file order, name, size or error", NULL},
    {ACT_NEXT_PANE, "next-pane", {'\t'}, "Tab", "Panes", "focus the next pane", NULL},
    {ACT_PREV_PANE, "prev-pane", {KEY_BTAB}, "S-Tab", "Panes", "focus the previous pane", NULL},
    {ACT_UP, "up", {KEY_UP, 'k'}, "Up k", "Move", "previous tensor / knob", NULL},
    {ACT_DOWN, "down", {KEY_DOWN, 'j'}, "Down j", "Move", "next tensor / knob", NULL},
    {ACT_PAGE_UP, "page-up", {KEY_PPAGE}, "PgUp", "Move", "ten up", NULL},
    {ACT_PAGE_DOWN, "page-down", {KEY_NPAGE}, "PgDn", "Move", "ten down", NULL},
    {ACT_FIRST, "first", {'g', KEY_HOME}, "g Home", "Move", "first entry", NULL},
    {ACT_LAST, "last", {'G', KEY_END}, "G End", "Move", "last entry", NULL},
    {ACT_LEFT, "left", {KEY_LEFT, 'h'}, "Left h", "Move", "previous pane; in Knobs: lower the value", NULL},
    {ACT_RIGHT, "right", {KEY_RIGHT, 'l'}, "Right l", "Move", "next pane; in Knobs: raise the value", NULL},
    {ACT_OPEN, "open", {'\n', '\r', KEY_ENTER, ' '}, "Enter Space", "Move", "expand/collapse a block; in Knobs: next value", NULL},
    {ACT_INC, "raise", {'+', '=', KEY_F(8)}, "+ F8", "Knobs", "next value of the focused knob (method, bits, group …)", "Knob+"},
    {ACT_DEC, "lower", {'-', KEY_F(7)}, "- F7", "Knobs", "previous value of the focused knob", "Knob-"},
    {ACT_TAB_HIST, "histogram", {'1'}, "1", "Tensor view", "histogram with the quantization grid", "Hist"},
    {ACT_TAB_HEAT, "heatmap", {'2'}, "2", "Tensor view", "outlier heatmap (max |w| or |error| per tile)", "Heat"},
    {ACT_TAB_CHANNELS, "channels", {'3'}, "3", "Tensor view", "outlier channels (rows by max/median)", "Chan"},
    {ACT_NEXT_TAB, "next-tab", {'t'}, "t", "Tensor view", "next tab", NULL},
    {ACT_LOG, "log-counts", {'L'}, "L", "Tensor view", "histogram: linear or logarithmic counts", NULL},
    {ACT_TAILS, "tails", {'z'}, "z", "Tensor view", "histogram: zoom on the tails (|w| beyond 3 sigma) or the whole range", NULL},
    {ACT_HEAT_MODE, "heat-mode", {'m'}, "m", "Tensor view", "heatmap: max |w|, |error| or group scale per cell; focused: arrows, + - zoom", NULL},
};
const int qs_n_actions = (int)(sizeof qs_actions / sizeof *qs_actions);

action_id qs_action_for_key(int key)
{
    for (int i = 0; i < qs_n_actions; i++)
        for (int k = 0; k < 4 && qs_actions[i].keys[k]; k++)
            if (qs_actions[i].keys[k] == key) return qs_actions[i].id;
    return ACT_NONE;
}
