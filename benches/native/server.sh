# Sourced by the scripts in this folder: starts a release server for one run.
#
# start_server DIR [SERVE FLAGS...] starts `$B serve` on two free loopback ports with its
# data in DIR/data (io_uring unless SHARDLINE_IO says otherwise), waits until it prints
# both addresses, and sets `pid`, `e` (the HTTP endpoint URL) and `n` (the native address).
start_server() {
    local dir=$1
    shift
    SHARDLINE_IO=${SHARDLINE_IO:-uring} $B serve "$@" --listen 127.0.0.1:0 \
        --native-listen 127.0.0.1:0 --data-dir "$dir/data" > "$dir/out" 2> "$dir/err" &
    pid=$!
    for _ in $(seq 100); do
        [ "$(wc -l < "$dir/out")" -ge 2 ] && break
        sleep 0.1
    done
    e=http://$(sed -n 1p "$dir/out" | grep -oE '[0-9.]+:[0-9]+')
    n=$(sed -n 2p "$dir/out" | grep -oE '[0-9.]+:[0-9]+')
}
