#!/usr/bin/env bash
# A whole fleet on one machine: a Redis master, its replica and a Sentinel;
# the demo's GitHub stand-in; three gateway instances on that Sentinel; and
# nginx balancing them round-robin at http://127.0.0.1:8088.
#
#   examples/fleet/run.sh           start it all; open http://127.0.0.1:8088/auth/login
#                                   (log in as ada, grace or linus); Ctrl-C stops it all
#   examples/fleet/run.sh --check   start it, log a person in through the balancer,
#                                   check that every instance knows them, and stop
#
# Needs redis-server, redis-sentinel (Debian's redis-server package) and nginx
# (nginx-light will do). Nothing leaves the machine: GitHub is the demo's
# stand-in, and Pusher's API is pointed at 127.0.0.1:6001 (start sockudo there
# with the demo's app to see connections ended; without it the gateway logs
# that it could not reach Pusher).
set -euo pipefail
cd "$(dirname "$0")/../.."

check=false
[[ "${1:-}" == "--check" ]] && check=true

BALANCER=8088 DEMO=8090 MASTER=6380 REPLICA=6381 SENTINEL=26380
GATEWAYS=(8091 8092 8093)
bin=${CHANNELGATE_BIN:-target/release/channelgate}
for tool in redis-server redis-cli nginx curl; do
  command -v "$tool" >/dev/null || { echo "fleet: $tool is missing (apt-get install redis-server nginx-light curl)" >&2; exit 1; }
done
[[ -x "$bin" ]] || cargo build --release --quiet

work=$(mktemp -d)
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f "$work/nginx.pid" ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  for port in "$SENTINEL" "$REPLICA" "$MASTER"; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

wait_for() { # PORT WHAT
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "fleet: $2 did not start on port $1 (logs in $work)" >&2; exit 1
}

echo "fleet: Redis master :$MASTER, replica :$REPLICA, Sentinel :$SENTINEL (service \"fleet\")"
redis-server --port "$MASTER" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --logfile "$work/master.log"
redis-server --port "$REPLICA" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --logfile "$work/replica.log" \
  --replicaof 127.0.0.1 "$MASTER"
cat > "$work/sentinel.conf" <<CONF
port $SENTINEL
bind 127.0.0.1
sentinel monitor fleet 127.0.0.1 $MASTER 1
sentinel down-after-milliseconds fleet 2000
sentinel failover-timeout fleet 10000
CONF
redis-server "$work/sentinel.conf" --sentinel --daemonize yes --logfile "$work/sentinel.log"
wait_for "$SENTINEL" "Redis Sentinel"

echo "fleet: the demo's GitHub stand-in at http://127.0.0.1:$DEMO/_github"
"$bin" demo --listen "127.0.0.1:$DEMO" --callback "http://127.0.0.1:$BALANCER/auth/callback" \
  >"$work/demo.out" 2>"$work/demo.log" &
pids+=($!)
wait_for "$DEMO" "the demo"

# One key for the whole fleet: every instance opens every session.
key=$(head -c 32 /dev/urandom | base64)
upstreams=""
for port in "${GATEWAYS[@]}"; do
  cat > "$work/gateway-$port.toml" <<CONF
[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$BALANCER"
trusted_proxies = ["127.0.0.1/32"]

[github]
client_id = "Iv1.channelgate-demo"
client_secret = "channelgate-demo-client-secret"
web_url = "http://127.0.0.1:$DEMO/_github"
api_url = "http://127.0.0.1:$DEMO/_github/api/v3"

[pusher]
app_id = "channelgate-demo"
key = "channelgate-demo-key"
secret = "channelgate-demo-secret"
api_url = "http://127.0.0.1:6001"

[session]
store = "redis-sentinel://127.0.0.1:$SENTINEL/fleet"
encryption_key_base64 = "$key"

[limits]
login_per_minute = 20

[[rules]]
channel = "private-user-{login}"

[[rules]]
channel = "presence-org-{org}"

[[rules]]
channel = "private-secret"
teams = ["acme/secret-agents"]
CONF
  "$bin" serve --config "$work/gateway-$port.toml" 2>"$work/gateway-$port.log" &
  pids+=($!)
  upstreams+="    server 127.0.0.1:$port;"$'\n'
done
for port in "${GATEWAYS[@]}"; do wait_for "$port" "the gateway"; done
echo "fleet: three gateways at :${GATEWAYS[*]}"

cat > "$work/nginx.conf" <<CONF
pid $work/nginx.pid;
error_log $work/nginx.log;
events {}
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  upstream gateways {
$upstreams  }
  server {
    listen 127.0.0.1:$BALANCER;
    location / {
      proxy_pass http://gateways;
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work"
wait_for "$BALANCER" "nginx"
echo "fleet: nginx balancing them at http://127.0.0.1:$BALANCER"

if ! $check; then
  echo "fleet: open http://127.0.0.1:$BALANCER/auth/login and log in as ada; Ctrl-C stops everything"
  wait "${pids[0]}"
  exit 0
fi

# A login through the balancer: each step may reach another instance.
base="http://127.0.0.1:$BALANCER"
jar="$work/cookies"
authorize=$(curl -fsS -o /dev/null -c "$jar" -w '%{redirect_url}' "$base/auth/login")
callback=$(curl -fsS -o /dev/null -w '%{redirect_url}' --data "${authorize#*\?}&login=ada" "${authorize%%\?*}")
status=$(curl -sS -o /dev/null -b "$jar" -c "$jar" -w '%{http_code}' "$callback")
[[ "$status" == 303 ]] || { echo "fleet: the callback answered $status, not 303" >&2; exit 1; }
for port in "${GATEWAYS[@]}"; do
  login=$(curl -fsS -b "$jar" "$base/auth/me" | sed -n 's/.*"login":"\([^"]*\)".*/\1/p')
  [[ "$login" == ada ]] || { echo "fleet: /auth/me through the balancer gave \"$login\"" >&2; exit 1; }
  signed=$(curl -fsS -b "$jar" -o /dev/null -w '%{http_code}' --data 'socket_id=1234.5678&channel_name=private-user-ada' "$base/pusher/auth")
  [[ "$signed" == 200 ]] || { echo "fleet: /pusher/auth through the balancer answered $signed" >&2; exit 1; }
  # Straight to each instance too: every one knows the session.
  direct=$(curl -sS -b "$jar" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/auth/me")
  [[ "$direct" == 200 ]] || { echo "fleet: instance :$port answered $direct for the session" >&2; exit 1; }
done
echo "fleet: ada logged in through the balancer; all three instances know her session and sign her channel"
