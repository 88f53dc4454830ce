#!/usr/bin/env bash
# Start Platform Monitor on http://127.0.0.1:8501 with its embedded default: the simulated
# AutoMatrix, RelayCore and NeuroWeaver exporters on 127.0.0.1:9101-9103 and the collector.
# Extra arguments go to `streamlit run`, e.g. `scripts/run.sh --server.port 8600`.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements.txt
# Before the server starts, because Streamlit checks for a pages/ folder at the first visit.
.venv/bin/python -m app_pages.leftovers
exec .venv/bin/streamlit run streamlit_app.py "$@"
