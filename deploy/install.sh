#!/bin/sh
# Install btsbot as a system service, from this checkout. Run as root; safe to re-run (upgrades btsbot,
# never overwrites /etc/btsbot/btsbot.yaml or btsbot.env once they exist):
#   sudo deploy/install.sh
#   sudo BTSBOT_MODEL_MIRROR=/data/models:/data/example_data deploy/install.sh   # models from local dirs
# PYTHON (default /usr/bin/python3) builds the venv: a Python >= 3.11.4 every user can run (not a pyenv
# under /root). The paths below are the ones deploy/btsbot.service and deploy/supervisord.conf use.
set -eu

PREFIX=/opt/btsbot                 # the venv: ExecStart=/opt/btsbot/bin/btsbot
ETC=/etc/btsbot                    # btsbot.yaml (root:btsbot 640), btsbot.env (root 600)
STATE=/var/lib/btsbot              # the btsbot user's home: the journal and the model cache
CACHE=$STATE/cache                 # BTSBOT_CACHE_DIR
LOG=/var/log/btsbot                # supervisord.conf's log (systemd: journalctl -u btsbot)
UNIT=/etc/systemd/system/btsbot.service
PYTHON=${PYTHON:-/usr/bin/python3}
SRC=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo $0)" >&2; exit 1; }
if [ ! -f "$SRC/pyproject.toml" ] || [ ! -f "$SRC/deploy/btsbot.service" ]; then
    echo "install.sh: $SRC is not a btsbot checkout" >&2; exit 1
fi

echo "== user btsbot, $ETC, $STATE, $LOG"
if ! getent passwd btsbot >/dev/null; then
    useradd --system --user-group --home-dir "$STATE" --no-create-home \
        --shell "$(command -v nologin || echo /bin/false)" --comment "btsbot daemon" btsbot
fi
install -d -o root -g btsbot -m 750 "$ETC"
install -d -o btsbot -g btsbot -m 750 "$STATE" "$CACHE" "$LOG"

cd "$STATE"

echo "== venv $PREFIX with btsbot from $SRC"
# a Python >= 3.11 the btsbot user can run, whose tarfile has extraction filters (3.11.4+; `models pull`)
CHECK='import sys, tarfile; sys.exit(sys.version_info < (3, 11) or not hasattr(tarfile, "data_filter"))'
usable() { runuser -u btsbot -- "$1" -c "$CHECK" 2>/dev/null; }
if ! usable "$PREFIX/bin/python"; then
    if ! usable "$PYTHON"; then
        echo "install.sh: $PYTHON is not a Python >= 3.11.4 that the btsbot user can run (Debian 12's 3.11.2" >&2
        echo "  lacks tarfile's extraction filters): PYTHON=/path/to/python3 $0" >&2
        exit 1
    fi
    "$PYTHON" -m venv --clear "$PREFIX"
fi
"$PREFIX/bin/pip" install --quiet "$SRC"

echo "== config"
[ -e "$ETC/btsbot.yaml" ] || install -o root -g btsbot -m 640 "$SRC/deploy/btsbot.yaml" "$ETC/btsbot.yaml"
[ -e "$ETC/btsbot.env" ] || install -o root -g root -m 600 "$SRC/deploy/btsbot.env.example" "$ETC/btsbot.env"

if [ -d /etc/systemd/system ]; then
    echo "== systemd unit $UNIT"
    cmp -s "$SRC/deploy/btsbot.service" "$UNIT" || install -m 644 "$SRC/deploy/btsbot.service" "$UNIT"
    if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
fi

echo "== models (as btsbot, cache $CACHE)"
# the same config and cache the daemon uses; BTSBOT_MODEL_MIRROR is passed on when set
runuser -u btsbot -- env HOME="$STATE" BTSBOT_CACHE_DIR="$CACHE" BTSBOT_MODEL_MIRROR="${BTSBOT_MODEL_MIRROR:-}" \
    "$PREFIX/bin/btsbot" models pull --config "$ETC/btsbot.yaml"

cat <<EOF

btsbot is installed. What is left to do by hand:
  1. Put the real tokens in $ETC/btsbot.env (KOWALSKI_TOKEN, FRITZ_TOKEN; root, chmod 600).
  2. Check $ETC/btsbot.yaml: mode: dry-run; add policies: with your Fritz group and SEDM allocation
     ids (the defaults' 1001/2001 are the local stand-in's; see config/config.defaults.yaml).
  3. Try one dry-run cycle (as btsbot, with the env file, as the unit runs it):
       sh -c 'set -a; . $ETC/btsbot.env; exec runuser -u btsbot -- env BTSBOT_CACHE_DIR=$CACHE \\
         $PREFIX/bin/btsbot run --once --config $ETC/btsbot.yaml'
  4. systemctl enable --now btsbot   then watch:  journalctl -u btsbot -f
  (supervisord instead of systemd: deploy/supervisord.conf)
EOF
