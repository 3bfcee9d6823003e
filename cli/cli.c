/* cli/cli.c — command dispatch, usage text, shared error reporting. */
#include "cli/cli.h"
#include "tui/settings.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/model/backend.h"
#include "core/util/err.h"
#include "core/util/fileio.h"
#include "tui/tui.h"

#include <signal.h>
#include <unistd.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis;
} command;

static const command commands[] = {
    {"info", qs_cli_info, "info MODEL [--json] [--kv]      architecture, tokenizer, tensor table, totals"},
    {"dump", qs_cli_dump, "dump MODEL TENSOR [--rows A:B] [--cols C:D]   dequantized values"},
    {"quant", qs_cli_quant, "quant MODEL TENSOR --method NAME [knobs] [--imatrix F] [--out F] | --compare\n"
                            "                                  quantize one tensor: bpw and error metrics"},
    {"methods", qs_cli_methods, "methods                         quantization methods, knobs and ranges"},
    {"tokenize", qs_cli_tokenize, "tokenize MODEL TEXT [--no-bos] [--parse-special]   token ids and pieces"},
    {"generate", qs_cli_generate, "generate MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S]\n"
                                  "                                  continue a prompt (greedy with --temp 0)"},
    {"ppl", qs_cli_ppl, "ppl MODEL --text FILE [--ctx N] [--chunks N] [--kld-base OUT | --kld-against BASE]\n"
                        "       [--recipe R.json] [--act intB:dynamic|intB:static[:per-channel|:pNN] [--smooth A] [--calib TEXT]]\n"
                        "                                  perplexity like llama-perplexity; KL divergence (also --kld FILE);\n"
                        "                                  simulated activation quantization (W8A8 …), SmoothQuant α"},
    {"acts", qs_cli_acts, "acts MODEL --calib TEXT [--calib-chunks N] [--calib-ctx N] [--recipe R.json] [--smooth A] [--act SPEC]\n"
                          "                                  activation ranges and outlier channels of every linear input;\n"
                          "                                  the output error of each product under SPEC"},
    {"imatrix", qs_cli_imatrix, "imatrix MODEL --text FILE -o OUT.gguf [--ctx N] [--chunks N]\n"
                                "                                  importance matrix in llama-imatrix's GGUF format"},
    {"scan", qs_cli_scan, "scan MODEL --config CONFIG --text FILE --csv OUT.csv [--per block|tensor] [--chunks N] [--resume]\n"
                          "                                  sensitivity: KLD and dPPL of quantizing each tensor alone, ranked"},
    {"suggest", qs_cli_suggest, "suggest MODEL --scans A.csv,B.csv,… (--bpw B | --size MiB) -o R.json [--pareto]\n"
                                "                                  mixed precision: per-tensor configs with the least summed KLD"},
    {"recipe", qs_cli_recipe, "recipe MODEL [--preset NAME] [--default CONFIG] [--set PATTERN=CONFIG …] -o R.json | recipe show R.json [--model M]\n"
                              "                                  write or show a per-tensor quantization recipe"},
    {"export", qs_cli_export, "export MODEL (--recipe R.json | --type T | --preset P) -o OUT.gguf [--imatrix F] [--ftype NAME]\n"
                              "       [--vocab TOKENIZER.gguf] [--calib TEXT] [--llama-quantize [--tensor-type-file TYPES.txt]]\n"
                              "       | export MODEL --recipe R.json --format gptq|awq -o DIR [--calib TEXT] | export MODEL --hf DIR\n"
                              "                                  write the quantized GGUF (llama-quantize's layout) or a GPTQ/AWQ checkpoint"},
    {"vocab", qs_cli_vocab, "vocab --data TEXT [--size N] -o VOCAB.gguf   train a SentencePiece-style BPE vocabulary"},
    {"train", qs_cli_train, "train --config tiny|small|C.json --data TEXT --vocab VOCAB.gguf -o MODEL.gguf [--eval TEXT]\n"
                            "       [--steps N] [--log LOSS.csv] [--checkpoint-every N] [--resume CKPT]\n"
                            "                                  train a llama model from scratch"},
    {"qat", qs_cli_qat, "qat MODEL (--recipe R.json | --type CONFIG) --text TRAIN -o OUT.gguf [--masters M.gguf] [--steps N]\n"
                        "       [--lr F] [--batch N] [--seq N] [--eval TEXT] …\n"
                        "                                  quantization-aware training with the recipe, then export"},
    {"synth", qs_cli_synth, "synth --shape tiny|small|tinyllama|llama-1b|llama-8b -o OUT.gguf [--type T] [--seed N] [--vocab VOCAB.gguf]\n"
                            "                                  a random-weight llama GGUF of a real shape (--type: f16, q4_K, Q4_K_M …; --list)"},
    {"devices", qs_cli_devices, "devices                         CPU cores and CUDA devices"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: quantscope [MODEL] [--calib TEXT] [--eval TEXT] [--theme default|mono] [--no-color] [--no-mouse]   the workbench\n"
               "       quantscope COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  quantscope %s\n", commands[i].synopsis);
    fprintf(f, "\nMODEL is a GGUF file, a .safetensors file, a model.safetensors.index.json,\n"
               "or a directory holding an HF checkpoint (config.json + safetensors).\n"
               "exit status: 0 ok, 1 usage error, 2 bad input\n");
}

double qs_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

qs_cli_prog qs_cli_prog_start(const char *what) { return (qs_cli_prog){what, qs_cli_now()}; }

void qs_cli_progress(void *ctx, int64_t done, int64_t total)
{
    const qs_cli_prog *p = ctx;
    double el = qs_cli_now() - p->t0;
    fprintf(stderr, "\r%s %lld/%lld, %.1f s, ETA %.1f s   ", p->what, (long long)done, (long long)total, el,
            done ? el / (double)done * (double)(total - done) : 0.0);
    if (done == total) fputc('\n', stderr);
}

int qs_cli_fail(const char *what, const qs_err *err)
{
    fprintf(stderr, "quantscope: %s: %s\n", QS_ESC(what), QS_ESC(err->msg));
    return err->code == QS_E_USAGE ? QS_EXIT_USAGE : QS_EXIT_INPUT;
}

int qs_cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("quantscope: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    return QS_EXIT_USAGE;
}

int qs_cli_devices(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) return qs_cli_usage_error("devices takes no arguments");
    qs_backend_info b;
    qs_backend_query(&b);
    printf("cpu:  %d cores\n", b.cpu_cores);
    printf("cuda: %s%s\n", b.cuda_built ? "" : "", b.cuda_desc);
    if (b.cuda_built) printf("cuda devices: %d\n", b.cuda_devices);
    return QS_EXIT_OK;
}

/* the model the workbench opens when none is named */
static const char *default_model(void)
{
    static const char *const candidates[] = {"sample_models/kjv-small.gguf", "sample_models/kjv-tiny.gguf",
                                             "../shared/models/stories260K.gguf"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
        if (access(candidates[i], R_OK) == 0) return candidates[i];
    return NULL;
}

static int run_tui(int argc, char **argv)
{
    tui_opts o = {NULL, getenv("QUANTSCOPE_SCRIPT"), 0, 0, NULL, NULL, NULL};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-color") || !strcmp(argv[i], "--no-colour")) o.no_color = 1;
        else if (!strcmp(argv[i], "--no-mouse")) o.no_mouse = 1;
        else if (!strcmp(argv[i], "--script") && i + 1 < argc) o.script = argv[++i];
        else if (!strcmp(argv[i], "--calib") && i + 1 < argc) o.calib = argv[++i];
        else if (!strcmp(argv[i], "--eval") && i + 1 < argc) o.eval = argv[++i];
        else if (!strcmp(argv[i], "--theme") && i + 1 < argc) {
            o.theme = argv[++i];
            if (!settings_theme_known(o.theme)) return qs_cli_usage_error("--theme: 'default' or 'mono', not '%s'", o.theme);
        }
        else if (argv[i][0] == '-') return qs_cli_usage_error("unknown option '%s'", argv[i]);
        else if (!o.model_path) o.model_path = argv[i];
        else return qs_cli_usage_error("unexpected argument '%s'", argv[i]);
    }
    if (!o.script && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))) {
        usage(stderr);
        return qs_cli_usage_error("the workbench needs a terminal: run a COMMAND, or set QUANTSCOPE_SCRIPT");
    }
    if (!o.model_path && !(o.model_path = default_model()))
        return qs_cli_usage_error("no model given and no sample model found (make sample-models)");
    return qs_tui_run(&o);
}

/* a command killed by a signal leaves no temporary file behind */
static void on_signal(int sig)
{
    qs_tmp_cleanup_signal_safe();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* every existing file or directory named on the command line is an input an output must not
 * replace — except the values of the options that name outputs (and --resume, whose checkpoint
 * the run overwrites by design) */
static void register_inputs(int argc, char **argv)
{
    static const char *const outputs[] = {"-o", "--out", "--csv", "--hf", "--tensor-type-file", "--log", "--kld-base",
                                          "--resume", NULL};
    for (int i = 2; i < argc; i++) {
        bool out = false;
        for (const char *const *o = outputs; *o && !out; o++) out = !strcmp(argv[i - 1], *o);
        if (!out) qs_input_register(argv[i]);
    }
}

static void command_setup(int argc, char **argv)
{
    register_inputs(argc, argv);
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction cur;
        if (sigaction(sigs[i], NULL, &cur) == 0 && cur.sa_handler != SIG_IGN) signal(sigs[i], on_signal); /* nohup stays */
    }
    qs_fault_guard_install();
}

int qs_cli_main(int argc, char **argv)
{
    if (argc < 2 || (argv[1][0] == '-' && strcmp(argv[1], "-h") && strcmp(argv[1], "--help")))
        return run_tui(argc, argv); /* the workbench, with options only */
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return QS_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            command_setup(argc, argv);
            return commands[i].run(argc - 1, argv + 1);
        }
    if (access(argv[1], R_OK) == 0) return run_tui(argc, argv); /* quantscope MODEL: the workbench */
    fprintf(stderr, "quantscope: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return QS_EXIT_USAGE;
}
