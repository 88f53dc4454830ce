"""Tests of `python -m exporters`: argument parsing and a real run on free ports."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from exporters.__main__ import TOKEN_ENVIRONMENT_VARIABLE, build_parser, parse_ports

REPOSITORY = Path(__file__).resolve().parents[1]


def test_parse_ports_accepts_three() -> None:
    assert parse_ports("9101, 9102,0") == [9101, 9102, 0]


@pytest.mark.parametrize("text", ["9101,9102", "9101,9102,x", "1,2,70000", "1,2,-3"])
def test_parse_ports_rejects_bad_lists(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_ports(text)


def test_parser_defaults() -> None:
    args = build_parser().parse_args([])

    assert args.seed == 42
    assert args.host == "127.0.0.1"
    assert args.ports == [9101, 9102, 9103]
    assert not args.no_demo_incidents


@pytest.mark.timeout(60)
def test_module_serves_until_sigterm() -> None:
    environment = {**os.environ, TOKEN_ENVIRONMENT_VARIABLE: "cli-token"}
    process = subprocess.Popen(
        [sys.executable, "-m", "exporters", "--seed", "3", "--ports", "0,0,0",
         "--no-demo-incidents"],
        cwd=REPOSITORY,
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        urls: dict[str, str] = {}
        while len(urls) < 3:
            line = process.stderr.readline()
            assert line, "the exporter process exited before serving"
            match = re.search(r"Serving (\w+) at (http://\S+)", line)
            if match:
                urls[match.group(1)] = match.group(2)

        for display_name, url in urls.items():
            assert url.startswith("http://127.0.0.1:"), display_name
            assert httpx.get(url).status_code == 401, display_name
            response = httpx.get(url, headers={"Authorization": "Bearer cli-token"})
            assert response.status_code == 200, display_name
            assert "process_start_time_seconds" in response.text, display_name
        assert set(urls) == {"AutoMatrix", "RelayCore", "NeuroWeaver"}
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=20)
    assert exit_code == 0


def test_module_reports_port_in_use() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy_port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "exporters", "--ports", f"0,{busy_port},0"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert "Cannot listen" in result.stderr
