# Sourced by bench/client.sh and bench/client_instr.sh: the two Graph API peers they send to.
# Needs $NGINX; makes the scratch directory $tmp and, on exit, stops whatever was started and
# removes $tmp (a trap on EXIT). Sets NGINX_PORT, SIM_PID and SIM_PORT.

SIM_PID=""
tmp=$(mktemp -d)

. bench/ports.sh

# nginx answering every POST .../messages with the Cloud API's fixed send response.
start_graph_nginx() {
  local try
  # A port free when looked at may be taken (by an outgoing connection) when nginx binds it.
  for try in 1 2 3 4 5; do
    NGINX_PORT=$(free_port)
    cat >"$tmp/nginx.conf" <<CONF
daemon on;
master_process off;
worker_processes 1;
error_log $tmp/error.log warn;
pid $tmp/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/body;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location ~ /messages\$ {
      default_type application/json;
      return 200 '{"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]}';
    }
  }
}
CONF
    if "$NGINX" -p "$tmp/" -c "$tmp/nginx.conf" -e "$tmp/error.log" 2>"$tmp/nginx.err"; then break; fi
    [ "$try" = 5 ] && { cat "$tmp/nginx.err" >&2; exit 1; }
  done
  for _ in $(seq 50); do [ -f "$tmp/nginx.pid" ] && break; sleep 0.1; done
}

# The project's simulator in a process of its own (Lua 5.4).
start_graph_simulator() {
  LUA_CPATH="./build/lua5.4/?.so;;" lua5.4 bench/sim_server.lua 0 >"$tmp/sim.out" &
  SIM_PID=$!
  for _ in $(seq 50); do grep -q PORT "$tmp/sim.out" 2>/dev/null && break; sleep 0.1; done
  SIM_PORT=$(awk '/PORT/ {print $2}' "$tmp/sim.out")
}

stop_graph_peers() {
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
}

trap 'stop_graph_peers; rm -rf "$tmp"' EXIT
