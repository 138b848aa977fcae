#!/usr/bin/env bash
# The local stack without Docker: the real Apache Kafka broker (KRaft, assembled from Maven Central)
# on 127.0.0.1:9092 and MariaDB on 127.0.0.1:3306. Everything it downloads, logs or stores lives
# under .stack/ (git-ignored).
#
#   stack/stack.sh up | down | status | deps
#
# PYTHON must point at the project's virtualenv interpreter (the Makefile sets it); it is used to
# wait for a real Kafka metadata answer and to bootstrap the warehouse database.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK=${STACK_DIR:-$ROOT/.stack}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
KAFKA_HOME=$STACK/kafka
MYSQL_HOME=$STACK/mysql
LOGS=$STACK/logs
KAFKA_PORT=9092
CONTROLLER_PORT=9093
MYSQL_PORT_LOCAL=3306
# The scripts read .env too (python-dotenv): the stack must create the user they will log in as.
dotenv() {  # dotenv NAME: its value in .env, quotes removed; empty when absent
  [ -f "$ROOT/.env" ] || return 0
  sed -n "s/^[[:space:]]*\(export[[:space:]]\+\)\?$1[[:space:]]*=[[:space:]]*//p" "$ROOT/.env" | tail -n 1 \
    | sed -e 's/^"\(.*\)"[[:space:]]*$/\1/' -e "s/^'\(.*\)'[[:space:]]*$/\1/"
}
MYSQL_DATABASE=${MYSQL_DATABASE:-$(dotenv MYSQL_DATABASE)}
MYSQL_USER=${MYSQL_USER:-$(dotenv MYSQL_USER)}
MYSQL_PASSWORD=${MYSQL_PASSWORD:-$(dotenv MYSQL_PASSWORD)}
MYSQL_DATABASE=${MYSQL_DATABASE:-data_warehouse}
MYSQL_USER=${MYSQL_USER:-lakehouse}
MYSQL_PASSWORD=${MYSQL_PASSWORD:-lakehouse}

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------------------------------------------------------------- system packages
deps() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v mariadbd >/dev/null || missing+=(mariadb-server mariadb-client)
  command -v kcat >/dev/null || missing+=(kcat)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v chromium >/dev/null || missing+=(chromium)  # the tests open the HTML status report in it
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (install them with apt-get as root)"
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$LOGS/apt.log" 2>&1 || true
  apt-get install -y -qq "${missing[@]}" >>"$LOGS/apt.log" 2>&1 || die "apt-get install failed, see $LOGS/apt.log"
}

# ---------------------------------------------------------------- kafka
kafka_libs() {
  local stamp=$KAFKA_HOME/libs/.pom.sha
  local want; want=$(sha256sum "$ROOT/stack/kafka/pom.xml" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  say "resolving the Kafka broker from Maven Central (stack/kafka/pom.xml)"
  rm -rf "$KAFKA_HOME/libs"
  mvn -q -B -f "$ROOT/stack/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs" >"$LOGS/maven.log" 2>&1 \
      || die "maven could not resolve the Kafka broker, see $LOGS/maven.log"
  echo "$want" >"$stamp"
}

kafka_java() {
  java -Xms256m -Xmx1g -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.properties" \
       -cp "$KAFKA_HOME/libs/*" "$@"
}

# Kafka's command-line tools (the classes behind kafka-consumer-groups.sh and friends) beside the broker's jars, which
# hold all they need: java -cp '.stack/kafka/libs/*' org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ...
# Also when the broker answering is not this checkout's (then its jars are resolved here first, nothing runs them).
kafka_tools() {
  [ -f "$KAFKA_HOME/libs/.pom.sha" ] || kafka_libs
  local version; version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/stack/kafka/pom.xml")
  [ -f "$KAFKA_HOME/libs/kafka-tools-$version.jar" ] && return 0
  say "resolving Kafka's command-line tools from Maven Central"
  mvn -q -B dependency:copy -Dartifact="org.apache.kafka:kafka-tools:$version" \
      -DoutputDirectory="$KAFKA_HOME/libs" >>"$LOGS/maven.log" 2>&1 \
      || die "maven could not resolve kafka-tools $version, see $LOGS/maven.log"
}

kafka_answers() {
  "$PYTHON" - "$KAFKA_PORT" "${1:-90}" <<'PY'
import sys, time
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}", "log_level": 0})
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        admin.list_topics(timeout=2)
        break
    except Exception:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.5)
PY
}

kafka_up() {
  if pid_alive "$KAFKA_HOME/kafka.pid"; then say "kafka already running (pid $(cat "$KAFKA_HOME/kafka.pid")) on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  if port_open "$KAFKA_PORT"; then
    kafka_answers 5 || die "port $KAFKA_PORT is taken by a process that is not a Kafka broker; stop it or free the port"
    say "a Kafka broker already answers on 127.0.0.1:$KAFKA_PORT and is not this checkout's; using it"
    return 0
  fi
  port_open "$CONTROLLER_PORT" && die "port $CONTROLLER_PORT (KRaft controller) is taken by another process; free it"
  kafka_libs
  mkdir -p "$KAFKA_HOME/data"
  local config=$KAFKA_HOME/server.properties
  { cat "$ROOT/stack/kafka/server.properties"; echo "log.dirs=$KAFKA_HOME/data"; } >"$config"
  if [ ! -f "$KAFKA_HOME/data/meta.properties" ]; then
    say "formatting Kafka storage (KRaft)"
    local cluster_id; cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
    kafka_java kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$config" \
      >"$LOGS/kafka-format.log" 2>&1 || die "kafka storage format failed, see $LOGS/kafka-format.log"
  fi
  say "starting kafka"
  # setsid: the broker outlives the shell (and the make run) that started it
  setsid java -Xms256m -Xmx1g -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.properties" \
      -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$config" >"$LOGS/kafka.log" 2>&1 </dev/null &
  echo $! >"$KAFKA_HOME/kafka.pid"
  kafka_answers 90 || { tail -n 30 "$LOGS/kafka.log" >&2; die "kafka did not answer a metadata request, see $LOGS/kafka.log"; }
  say "kafka ready on 127.0.0.1:$KAFKA_PORT"
}

# ---------------------------------------------------------------- mariadb
mysql_root() { mariadb --no-defaults --socket="$MYSQL_HOME/mysql.sock" -uroot "$@"; }

mysql_up() {
  if pid_alive "$MYSQL_HOME/mysql.pid"; then say "mariadb already running (pid $(cat "$MYSQL_HOME/mysql.pid")) on 127.0.0.1:$MYSQL_PORT_LOCAL"; return 0; fi
  if port_open "$MYSQL_PORT_LOCAL"; then
    say "a MySQL-protocol server already listens on 127.0.0.1:$MYSQL_PORT_LOCAL and is not this stack's; using it"
    say "(it needs database '$MYSQL_DATABASE' and user '$MYSQL_USER' with the password from MYSQL_PASSWORD)"
    return 0
  fi
  mkdir -p "$MYSQL_HOME"
  if [ ! -d "$MYSQL_HOME/data/mysql" ]; then
    say "initialising mariadb data directory"
    mariadb-install-db --no-defaults --datadir="$MYSQL_HOME/data" --user="$(id -un)" \
      --auth-root-authentication-method=socket >"$LOGS/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed, see $LOGS/mariadb-install.log"
  fi
  say "starting mariadb"
  # Adaptive hash index on: a warehouse upsert finds each existing key several times (duplicate check, read,
  # update); it makes LOAD DATA ... REPLACE over existing rows about 20% faster (bench_warehouse).
  setsid mariadbd --no-defaults --datadir="$MYSQL_HOME/data" --user="$(id -un)" \
      --bind-address=127.0.0.1 --port="$MYSQL_PORT_LOCAL" --socket="$MYSQL_HOME/mysql.sock" \
      --pid-file="$MYSQL_HOME/mariadbd.pid" --log-error="$LOGS/mariadb.err" \
      --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
      --local-infile=1 --skip-name-resolve --max-connections=300 \
      --innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit=1 \
      --innodb-adaptive-hash-index=ON \
      >"$LOGS/mariadb.log" 2>&1 </dev/null &
  echo $! >"$MYSQL_HOME/mysql.pid"
  for _ in $(seq 1 120); do
    mysql_root -e 'SELECT 1' >/dev/null 2>&1 && break
    pid_alive "$MYSQL_HOME/mysql.pid" || { tail -n 20 "$LOGS/mariadb.err" >&2; die "mariadb exited, see $LOGS/mariadb.err"; }
    sleep 0.5
  done
  mysql_root -e 'SELECT 1' >/dev/null 2>&1 || die "mariadb did not start, see $LOGS/mariadb.err"
  # The project user may own data_warehouse and scratch databases named data_warehouse_* (tests).
  mysql_root <<SQL
CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'%';
GRANT ALL PRIVILEGES ON \`${MYSQL_DATABASE}\\_%\`.* TO '$MYSQL_USER'@'%';
GRANT ALL PRIVILEGES ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'localhost';
GRANT ALL PRIVILEGES ON \`${MYSQL_DATABASE}\\_%\`.* TO '$MYSQL_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
  say "mariadb ready on 127.0.0.1:$MYSQL_PORT_LOCAL (database $MYSQL_DATABASE, user $MYSQL_USER)"
}

# ---------------------------------------------------------------- commands
stop_pid() {
  local name=$1 pidfile=$2
  if pid_alive "$pidfile"; then
    local pid; pid=$(cat "$pidfile")
    say "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  else
    say "$name is not running"
  fi
  rm -f "$pidfile"
}

status() {
  local rc=0
  if pid_alive "$KAFKA_HOME/kafka.pid"; then say "kafka: running (pid $(cat "$KAFKA_HOME/kafka.pid")) on 127.0.0.1:$KAFKA_PORT"
  elif port_open "$KAFKA_PORT"; then say "kafka: port $KAFKA_PORT answers, but not this stack's broker"
  else say "kafka: stopped"; rc=1; fi
  if pid_alive "$MYSQL_HOME/mysql.pid"; then say "mariadb: running (pid $(cat "$MYSQL_HOME/mysql.pid")) on 127.0.0.1:$MYSQL_PORT_LOCAL"
  elif port_open "$MYSQL_PORT_LOCAL"; then say "mysql: an outside server answers on 127.0.0.1:$MYSQL_PORT_LOCAL"
  else say "mariadb: stopped"; rc=1; fi
  return $rc
}

mkdir -p "$STACK" "$LOGS"
case "${1:-}" in
  deps) deps ;;
  up)
    deps  # first, also when the stack is up already: the tests need some packages too (chromium)
    if port_open "$KAFKA_PORT" && port_open "$MYSQL_PORT_LOCAL" && kafka_answers 5; then
      kafka_tools; say "stack already up; nothing to do"; status; exit 0
    fi
    kafka_up; kafka_tools; mysql_up ;;
  down) stop_pid kafka "$KAFKA_HOME/kafka.pid"; stop_pid mariadb "$MYSQL_HOME/mysql.pid" ;;
  status) status ;;
  *) echo "usage: $0 up|down|status|deps" >&2; exit 2 ;;
esac
