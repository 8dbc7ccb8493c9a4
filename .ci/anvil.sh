#!/usr/bin/env bash
# Install anvil from the npm registry (@foundry-rs/anvil, pinned) into a project-local cache
# and start it on loopback for the JSON-RPC chain tests and `clearway chain selftest
# --rpc-url`. Idempotent: if anvil already answers on the port, nothing is started.
#
#   export CLEARWAY_TEST_RPC_URL="$(bash .ci/anvil.sh)"   # the URL is the only stdout line
#   source .ci/anvil.sh                                  # or: exports CLEARWAY_TEST_RPC_URL
#
# Needs node and npm. Overrides: CLEARWAY_ANVIL_VERSION (default 1.7.1),
# CLEARWAY_ANVIL_PREFIX (install folder, default $HOME/.cache/clearway-anvil),
# CLEARWAY_ANVIL_PORT (default 8545), CLEARWAY_ANVIL_HARDFORK (default prague, the fork the
# embedded chain runs). Logs go to stderr and to $PREFIX/anvil-$PORT.log; the pid is in
# $PREFIX/anvil-$PORT.pid (stop it with: kill "$(cat "$PREFIX/anvil-$PORT.pid")").

_clearway_anvil() (
    set -euo pipefail
    version="${CLEARWAY_ANVIL_VERSION:-1.7.1}"
    prefix="${CLEARWAY_ANVIL_PREFIX:-$HOME/.cache/clearway-anvil}"
    port="${CLEARWAY_ANVIL_PORT:-8545}"
    hardfork="${CLEARWAY_ANVIL_HARDFORK:-prague}"
    url="http://127.0.0.1:$port"
    log() { echo "anvil.sh: $*" >&2; }

    answers() {
        curl -sf -m 2 -H 'Content-Type: application/json' \
            -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$url" >/dev/null 2>&1
    }

    if answers; then
        log "a node already answers on $url"
        echo "$url"
        return 0
    fi
    for tool in node npm curl; do
        command -v "$tool" >/dev/null || { log "$tool is required"; return 1; }
    done
    bin="$prefix/node_modules/.bin/anvil"
    if ! [ -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "Version: $version"; then
        log "installing @foundry-rs/anvil@$version into $prefix"
        mkdir -p "$prefix"
        npm install --silent --no-audit --no-fund --prefix "$prefix" "@foundry-rs/anvil@$version" >&2
    fi
    "$bin" --version | head -n 1 >&2

    log "starting anvil on $url (hardfork $hardfork)"
    nohup "$bin" --host 127.0.0.1 --port "$port" --hardfork "$hardfork" --silent \
        >"$prefix/anvil-$port.log" 2>&1 </dev/null &
    echo $! >"$prefix/anvil-$port.pid"
    for _ in $(seq 1 100); do
        if answers; then
            echo "$url"
            return 0
        fi
        sleep 0.1
    done
    log "anvil did not answer on $url; see $prefix/anvil-$port.log"
    return 1
)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    # sourced: export the URL for the tests
    if _clearway_anvil_url="$(_clearway_anvil)"; then
        export CLEARWAY_TEST_RPC_URL="$_clearway_anvil_url"
        unset _clearway_anvil_url
    else
        unset _clearway_anvil_url
        return 1
    fi
else
    _clearway_anvil
fi
