#!/usr/bin/env bash
# Start `chatkit chat` in tmux with the real default model, ask a question, open its first source, and
# check that an answer with sources is on screen; then quit with ctrl+q and check the app is gone.
# Skips (exit 0) when tmux is missing. Usage: scripts/tmux_chat_check.sh ["question"]
# Env: CHATKIT_HOME (default: .test-home, shared with the slow tests so the model is converted once),
#      CHATKIT_BIN, CHECK_TIMEOUT (seconds to wait for the model and the answer, default 600),
#      CHAT_ARGS (more `chat` options, e.g. "--adapter tutor --set generation.backend=llamacpp").
set -euo pipefail

if ! command -v tmux >/dev/null 2>&1; then
    echo "SKIP: tmux is not installed (apt-get install tmux)"
    exit 0
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CHATKIT_BIN:-$ROOT/.venv/bin/chatkit}
DATA=${CHATKIT_HOME:-$ROOT/.test-home}
QUESTION=${1:-"What is LoRA and why is it cheaper than full fine-tuning?"}
TIMEOUT=${CHECK_TIMEOUT:-600}
SESSION="chatkit-check-$$"
SCREEN_FILE=$(mktemp)

cleanup() { tmux kill-session -t "$SESSION" 2>/dev/null || true; rm -f "$SCREEN_FILE"; }
trap cleanup EXIT

screen() { tmux capture-pane -p -t "$SESSION" 2>/dev/null > "$SCREEN_FILE" || true; cat "$SCREEN_FILE"; }

# wait_for REGEX [ABSENT_REGEX]: poll the pane until REGEX shows (and ABSENT_REGEX does not).
wait_for() {
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! tmux has-session -t "$SESSION" 2>/dev/null; then
            echo "FAIL: the app exited early"; return 1
        fi
        if screen | grep -Eq "$1" && { [ -z "${2:-}" ] || ! grep -Eq "$2" "$SCREEN_FILE"; }; then
            return 0
        fi
        sleep 1
    done
    echo "FAIL: timed out waiting for /$1/"; screen; return 1
}

mkdir -p "$DATA"
tmux new-session -d -s "$SESSION" -x 120 -y 40 \
    "env CHATKIT_HOME='$DATA' TERM=xterm-256color '$BIN' chat --new ${CHAT_ARGS:-}; sleep 30"

# The status bar names the model once it is loaded (first run: converts the model, indexes the corpora).
wait_for "adapter .* · .* k=[0-9]+" "^ *loading|no model"
tmux send-keys -t "$SESSION" -l "$QUESTION"
tmux send-keys -t "$SESSION" Enter
# Finished: the line under the answer lists its sources as [1] Title, and nothing is answering any more.
wait_for "▌ \[1\] [^ ]" "answering|searching your documents"
tmux send-keys -t "$SESSION" BTab
sleep 1
tmux send-keys -t "$SESSION" 1
# The sources pane: its title, then the passage's source path.
wait_for "(▏|▕) (Sources|Closest sources)" ""
wait_for "(▏|▕) .*\.(md|rst|txt|pdf|html)" ""
screen

tmux send-keys -t "$SESSION" C-q
sleep 3
if tmux capture-pane -p -t "$SESSION" 2>/dev/null | grep -q "tok/s"; then
    echo "FAIL: ctrl+q did not quit the app"; exit 1
fi
echo "OK: an answer with sources was on screen, and ctrl+q quit cleanly"
