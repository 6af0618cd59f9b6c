# Helpers shared by the bench/ scripts (sourced): installing peers, the Vigil binary, a
# work directory whose processes are stopped by PID on exit, loopback ports, CPU ticks.

need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    echo "installing $2 (for $1)" >&2
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "$2" >/dev/null
}
vigil=${VIGIL_BIN:-}
if [ -z "$vigil" ]; then
    cargo build --release --locked --quiet
    vigil=target/release/vigil
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # wait_port PORT
    for _ in $(seq 1 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2; exit 1
}
# CPU time of a process in ns: the sum of its threads' run time (/proc/PID/task/*/schedstat),
# far finer than the 10 ms ticks of /proc/PID/stat (a thread that exits takes its share along).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'; }
