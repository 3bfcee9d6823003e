#!/usr/bin/env bash
# tmux smoke test of the workbench in a real terminal: start, resize storm (too-small screen
# and back), SIGINT (Ctrl-C) ends it with status 130 and the terminal restored (the shell
# prompt of the pane comes back in cooked mode); then SIGHUP does the same. Usage: tmux_smoke.sh QUANTSCOPE MODEL
set -u
bin=$1 model=$2
sock="qs-smoke-$$"
t() { tmux -L "$sock" -f /dev/null "$@"; }
cleanup() { t kill-server 2>/dev/null; rm -rf "/tmp/qs-config-$$"; }
trap cleanup EXIT
wait_for() { # text, seconds
    for _ in $(seq 1 $(( $2 * 20 ))); do
        t capture-pane -p -t qs 2>/dev/null | grep -q -- "$1" && return 0
        sleep 0.05
    done
    echo "timeout waiting for '$1'; screen:"; t capture-pane -p -t qs; return 1
}
t new-session -d -s qs -x 100 -y 30 "bash --norc --noprofile" || exit 1
t set-option -t qs remain-on-exit on
t send-keys -t qs "stty -a > /tmp/qs-stty-before-$$; XDG_CONFIG_HOME=/tmp/qs-config-$$ TERM=xterm-256color $bin $model; echo EXIT=\$?; stty -a > /tmp/qs-stty-after-$$" Enter
wait_for "Knobs + metrics" 20 || exit 1
t send-keys -t qs j j
for size in "60 20" "100 30" "40 10" "120 40"; do
    set -- $size
    t resize-window -t qs -x "$1" -y "$2"
done
t resize-window -t qs -x 50 -y 15
wait_for "terminal too small" 10 || exit 1
t resize-window -t qs -x 100 -y 30
wait_for "Knobs + metrics" 10 || exit 1
t send-keys -t qs C-c
wait_for "EXIT=130" 10 || exit 1
sleep 0.2
if ! diff -q /tmp/qs-stty-before-$$ /tmp/qs-stty-after-$$ >/dev/null; then
    echo "terminal settings differ after Ctrl-C:"; diff /tmp/qs-stty-before-$$ /tmp/qs-stty-after-$$; exit 1
fi
rm -f /tmp/qs-stty-before-$$ /tmp/qs-stty-after-$$
# SIGHUP (the terminal went away) restores the terminal as SIGTERM does
t send-keys -t qs "clear; stty -a > /tmp/qs-stty-before-$$; XDG_CONFIG_HOME=/tmp/qs-config-$$ TERM=xterm-256color sh -c 'echo \$\$ > /tmp/qs-pid-$$; exec $bin $model'; echo EXIT2=\$?; stty -a > /tmp/qs-stty-after-$$" Enter
wait_for "Knobs + metrics" 20 || exit 1
kill -HUP "$(cat /tmp/qs-pid-$$)"
wait_for "EXIT2=130" 10 || exit 1
sleep 0.2
if ! diff -q /tmp/qs-stty-before-$$ /tmp/qs-stty-after-$$ >/dev/null; then
    echo "terminal settings differ after SIGHUP:"; diff /tmp/qs-stty-before-$$ /tmp/qs-stty-after-$$; exit 1
fi
rm -f /tmp/qs-stty-before-$$ /tmp/qs-stty-after-$$ /tmp/qs-pid-$$
echo "tmux smoke: ok"
