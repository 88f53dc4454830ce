#!/usr/bin/env bash
# Start the whole stack on 127.0.0.1, and stop all of it on Ctrl-C. The parts are:
#   the simulated platform (python -m exporters) on ports 9101-9103,
#   Prometheus (Debian's prometheus) on 9090 with monitoring/prometheus/, data in .data/prometheus,
#   Alertmanager (Debian's prometheus-alertmanager) on 9093, data in .data/alertmanager,
#   Platform Monitor on 8501, reading that Prometheus (monitoring/platform-monitor.prometheus.toml).
# Other ports: STACK_PROMETHEUS_PORT, STACK_ALERTMANAGER_PORT, STACK_APP_PORT and
# STACK_EXPORTER_PORTS (comma-separated, three ports); the configuration is then rewritten into
# .data/stack/. Extra arguments go to `streamlit run`.
set -euo pipefail
cd "$(dirname "$0")/.."

prometheus_port=${STACK_PROMETHEUS_PORT:-9090}
alertmanager_port=${STACK_ALERTMANAGER_PORT:-9093}
app_port=${STACK_APP_PORT:-8501}
exporter_ports=${STACK_EXPORTER_PORTS:-9101,9102,9103}
IFS=, read -r port_automatrix port_relaycore port_neuroweaver <<<"$exporter_ports"

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements.txt

# The shipped configuration names the default ports; write a copy with the chosen ones.
config_dir=.data/stack
mkdir -p "$config_dir" .data/prometheus .data/alertmanager
sed -e "s/127.0.0.1:9093/127.0.0.1:$alertmanager_port/" \
    -e "s/127.0.0.1:9101/127.0.0.1:$port_automatrix/" \
    -e "s/127.0.0.1:9102/127.0.0.1:$port_relaycore/" \
    -e "s/127.0.0.1:9103/127.0.0.1:$port_neuroweaver/" \
    monitoring/prometheus/prometheus.yml >"$config_dir/prometheus.yml"
cp monitoring/prometheus/alerts.yml "$config_dir/alerts.yml"
sed -e "s|http://127.0.0.1:9090|http://127.0.0.1:$prometheus_port|" \
    monitoring/platform-monitor.prometheus.toml >"$config_dir/platform-monitor.toml"

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo "Stopping the stack..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

.venv/bin/python -m exporters --host 127.0.0.1 --ports "$exporter_ports" &
pids+=($!)
/usr/bin/prometheus \
  --config.file="$config_dir/prometheus.yml" \
  --storage.tsdb.path=.data/prometheus \
  --web.listen-address="127.0.0.1:$prometheus_port" \
  >.data/prometheus.log 2>&1 &
pids+=($!)
/usr/bin/prometheus-alertmanager \
  --config.file=monitoring/alertmanager/alertmanager.yml \
  --storage.path=.data/alertmanager \
  --web.listen-address="127.0.0.1:$alertmanager_port" \
  --cluster.listen-address= \
  >.data/alertmanager.log 2>&1 &
pids+=($!)

echo "Prometheus:   http://127.0.0.1:$prometheus_port (log .data/prometheus.log)"
echo "Alertmanager: http://127.0.0.1:$alertmanager_port (log .data/alertmanager.log)"
echo "Exporters:    127.0.0.1 ports $exporter_ports"
echo "App:          http://127.0.0.1:$app_port (Ctrl-C stops everything)"
.venv/bin/python -m app_pages.leftovers
PLATFORM_MONITOR_CONFIG="$config_dir/platform-monitor.toml" \
  .venv/bin/python -m streamlit run streamlit_app.py --server.address 127.0.0.1 \
  --server.port "$app_port" --server.headless true "$@" &
pids+=($!)
wait -n "${pids[@]}" || true
