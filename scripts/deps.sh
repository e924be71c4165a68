#!/bin/sh
# deps.sh — make sure the Debian packages pockettts needs are installed.
#
#   sh scripts/deps.sh          build + run dependencies
#   sh scripts/deps.sh --test   also what `make test` needs (ffmpeg, pocketsphinx, node, ...)
#
# Idempotent: installs only what is missing. As root it runs apt-get; otherwise it prints
# the one apt-get line to run and exits non-zero if anything is missing.
set -eu

BUILD_PKGS="build-essential pkg-config libmicrohttpd-dev libcjson-dev libopenblas-dev \
libespeak-ng-dev espeak-ng-data libmp3lame-dev libopusenc-dev libflac-dev libavcodec-dev \
libavutil-dev libsoxr-dev libsonic-dev libcurl4-openssl-dev"
TEST_PKGS="ffmpeg pocketsphinx pocketsphinx-en-us sox clang curl chromium"

want="$BUILD_PKGS"
[ "${1:-}" = "--test" ] && want="$want $TEST_PKGS"
# Node.js 20+ may come from elsewhere (the machine image); only ask Debian when absent.
if [ "${1:-}" = "--test" ] && ! command -v node >/dev/null 2>&1; then
    want="$want nodejs npm"
fi

missing=""
for p in $want; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
    echo "deps: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >&2
else
    echo "deps: missing packages. Run:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
fi
