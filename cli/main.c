/* cli/main.c — process entry: the CLI dispatcher (the TUI arrives with issue #5). */
#include "cli/cli.h"

int main(int argc, char **argv) { return qs_cli_main(argc, argv); }
