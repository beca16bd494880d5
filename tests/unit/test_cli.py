"""The `pyk8s` command line: flags to ServerConfig and back, kubectl passthrough, and the
background-server bookkeeping (start, readiness, stop) with stand-in processes."""

from __future__ import annotations

import http.server
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pyk8s.cli import main as cli
from pyk8s.cluster import daemon
from pyk8s.cluster.kubeconfig import write_kubeconfig
from pyk8s.cluster.pki import ensure_pki, server_ssl_context
from pyk8s.cluster.server import ServerConfig


def parse(*argv: str) -> ServerConfig:
    return cli.server_config_from_args(cli.build_parser().parse_args(list(argv)))


def test_server_flags_become_server_config(tmp_path):
    config = parse("server", "--data-dir", str(tmp_path), "--bind-address", "10.0.0.5", "--https-port", "7443",
                   "--advertise-address", "10.0.0.6", "--datastore", f"sqlite:{tmp_path}/s.db",
                   "--service-cidr", "10.96.0.0/12", "--cluster-cidr", "10.244.0.0/16", "--disable-agent",
                   "--tls-san", "a.example", "--tls-san", "b.example,192.0.2.1", "c.example")
    assert config == ServerConfig(data_dir=tmp_path, bind_address="10.0.0.5", https_port=7443,
                                  advertise_address="10.0.0.6", datastore=f"sqlite:{tmp_path}/s.db",
                                  service_cidr="10.96.0.0/12", cluster_cidr="10.244.0.0/16", disable_agent=True,
                                  extra_sans=["a.example", "b.example", "192.0.2.1", "c.example"])


def test_no_flags_give_server_config_defaults(monkeypatch):
    monkeypatch.delenv("PYK8S_DATA_DIR", raising=False)
    assert parse("server") == ServerConfig()


def test_data_dir_defaults_to_PYK8S_DATA_DIR_and_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("PYK8S_DATA_DIR", str(tmp_path / "cluster"))
    assert parse("up").data_dir == tmp_path / "cluster"
    monkeypatch.chdir(tmp_path)
    assert parse("up", "--data-dir", "relative").data_dir == tmp_path / "relative"


def test_isolated_binds_loopback_unless_told_otherwise():
    assert parse("up", "--isolated").bind_address == "127.0.0.1"
    assert parse("up", "--isolated", "--bind-address", "0.0.0.0").bind_address == "0.0.0.0"
    assert parse("up").bind_address == "0.0.0.0"


def test_up_and_down_options():
    args = cli.build_parser().parse_args(["up", "--isolated", "--timeout", "5"])
    assert (args.isolated, args.timeout) == (True, 5.0)
    assert cli.build_parser().parse_args(["reset", "-y"]).yes is True


def test_server_argv_round_trips_to_the_same_config(tmp_path):
    config = parse("up", "--data-dir", str(tmp_path), "--https-port", "7443", "--disable-agent",
                   "--tls-san", "x.example", "--advertise-address", "10.1.1.1", "--datastore", "sqlite:/tmp/s.db",
                   "--proxy-mode", "iptables")
    argv = cli.server_argv(config)
    assert argv[:4] == [sys.executable, "-m", "pyk8s", "server"]
    assert cli.server_config_from_args(cli.build_parser().parse_args(argv[3:])) == config


def test_kubectl_arguments_pass_through_untouched(tmp_path, monkeypatch):
    monkeypatch.delenv("PYK8S_DATA_DIR", raising=False)
    assert cli.split_kubectl_args(["get", "pods", "-n", "kube-system", "--data-dir", "x"]) == (
        Path("/var/lib/pyk8s"), ["get", "pods", "-n", "kube-system", "--data-dir", "x"])
    assert cli.split_kubectl_args(["--data-dir", str(tmp_path), "--", "-n", "a", "get", "pods"]) == (
        tmp_path, ["-n", "a", "get", "pods"])
    assert cli.split_kubectl_args([f"--data-dir={tmp_path}", "version"]) == (tmp_path, ["version"])


def test_kubectl_runs_inside_the_netns_of_an_isolated_cluster(tmp_path):
    daemon.write_state(daemon.ServerState(pid=1, url="https://127.0.0.1:6443", data_dir=str(tmp_path), netns="pyk8s"))
    command = cli.kubectl_command(tmp_path, ["get", "nodes"])
    assert command[:2] == ["nsenter", "--net=/var/run/netns/pyk8s"]
    assert command[3:] == ["--kubeconfig", str(tmp_path / "kubeconfig.yaml"), "get", "nodes"]


def test_kubectl_runs_directly_for_a_cluster_on_the_host(tmp_path):
    command = cli.kubectl_command(tmp_path, ["version"])
    assert command[0] == cli.kubectl_binary()
    assert command[1:] == ["--kubeconfig", str(tmp_path / "kubeconfig.yaml"), "version"]


def test_venv_kubectl_is_preferred():
    assert cli.kubectl_binary() == str(Path(sys.executable).parent / "kubectl")


def test_kubectl_without_a_cluster_explains_how_to_start_one(tmp_path, capsys):
    assert cli.main(["kubectl", "--data-dir", str(tmp_path), "get", "nodes"]) == 1
    assert "pyk8s up" in capsys.readouterr().err


def test_down_and_status_without_a_server(tmp_path, capsys):
    assert cli.main(["down", "--data-dir", str(tmp_path)]) == 0
    assert "not running" in capsys.readouterr().out
    assert cli.main(["status", "--data-dir", str(tmp_path)]) == 1
    assert "not running" in capsys.readouterr().out


def test_reset_without_yes_refuses_when_not_interactive(tmp_path, monkeypatch):
    (tmp_path / "keep").write_text("x")
    monkeypatch.setattr(sys, "stdin", open("/dev/null"))
    assert cli.main(["reset", "--data-dir", str(tmp_path)]) == 1
    assert (tmp_path / "keep").exists()


def test_reset_wipes_data_dir_content_and_user_kubeconfig_entries(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    pki = ensure_pki(data_dir / "server" / "tls", ["127.0.0.1"])
    write_kubeconfig(data_dir / "kubeconfig.yaml", "https://127.0.0.1:6443", pki)
    user_config = tmp_path / "user-config"
    monkeypatch.setenv("KUBECONFIG", str(user_config))
    from pyk8s.cluster.kubeconfig import merge_into_user_config
    merge_into_user_config(data_dir / "kubeconfig.yaml")
    assert cli.main(["reset", "--yes", "--data-dir", str(data_dir)]) == 0
    assert data_dir.exists() and list(data_dir.iterdir()) == []
    assert not user_config.exists()


# --- background server bookkeeping, with stand-in processes ------------------------------

def stand_in_server(tmp_path, *, ignore_sigterm=False) -> subprocess.Popen:
    """A process whose command line mentions pyk8s, like the real server's."""
    code = "import signal, time\n"
    if ignore_sigterm:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(120)\n"
    process = subprocess.Popen([sys.executable, "-c", code, "pyk8s-stand-in"], stdout=subprocess.PIPE)
    process.stdout.readline()  # signal handler installed
    daemon.write_state(daemon.ServerState(pid=process.pid, url="https://127.0.0.1:1", data_dir=str(tmp_path)))
    return process


def test_down_stops_the_recorded_server_and_forgets_it(tmp_path, capsys):
    process = stand_in_server(tmp_path)
    assert daemon.running_server(tmp_path).pid == process.pid
    assert cli.main(["down", "--data-dir", str(tmp_path)]) == 0
    assert f"pid {process.pid}" in capsys.readouterr().out
    assert process.poll() == -signal.SIGTERM
    assert not (tmp_path / "server.pid").exists() and not (tmp_path / "server.json").exists()


def test_stop_kills_a_server_that_ignores_sigterm_after_the_deadline(tmp_path):
    process = stand_in_server(tmp_path, ignore_sigterm=True)
    assert daemon.stop_server(tmp_path, timeout=0.5) == process.pid
    assert process.wait(5) == -signal.SIGKILL


def test_recorded_pid_of_another_program_is_not_our_server(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        daemon.write_state(daemon.ServerState(pid=sleeper.pid, url="", data_dir=str(tmp_path)))
        assert daemon.running_server(tmp_path) is None
        assert daemon.stop_server(tmp_path) is None
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_up_reports_the_log_when_the_server_dies_before_ready(tmp_path, monkeypatch, capsys):
    crash = [sys.executable, "-c", "import sys; print('pyk8s: cannot open datastore'); sys.exit(3)"]
    monkeypatch.setattr(cli, "server_argv", lambda config: crash)
    assert cli.main(["up", "--data-dir", str(tmp_path), "--timeout", "20"]) == 1
    captured = capsys.readouterr()
    assert "status 3" in captured.err and "cannot open datastore" in captured.err
    assert daemon.read_state(tmp_path) is None


def test_up_stops_a_server_that_is_not_ready_in_time(tmp_path, monkeypatch, capsys):
    hang = [sys.executable, "-c", "import time; time.sleep(60)", "pyk8s"]
    monkeypatch.setattr(cli, "server_argv", lambda config: hang)
    assert cli.main(["up", "--data-dir", str(tmp_path), "--timeout", "0.5"]) == 1
    assert "not ready within 0.5s" in capsys.readouterr().err
    assert daemon.read_state(tmp_path) is None


@pytest.fixture
def readyz_server(tmp_path):
    """An HTTPS server on 127.0.0.1 answering /readyz 200 only to a client certificate."""
    pki = ensure_pki(tmp_path / "tls", ["127.0.0.1"])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            authenticated = bool(self.connection.getpeercert())
            self.send_response(200 if self.path == "/readyz" and authenticated else 401)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_ssl_context(pki).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield pki, f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_readiness_probe_authenticates_with_the_kubeconfig_admin_cert(tmp_path, readyz_server):
    pki, url = readyz_server
    state = daemon.ServerState(pid=0, url=url, data_dir=str(tmp_path))
    assert daemon.probe_ready(state) is False  # no kubeconfig yet
    write_kubeconfig(tmp_path / "kubeconfig.yaml", url, pki)
    assert daemon.probe_ready(state) is True


def test_wait_until_ready_returns_once_the_kubeconfig_appears(tmp_path, readyz_server):
    pki, url = readyz_server
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "pyk8s"])
    try:
        state = daemon.ServerState(pid=process.pid, url=url, data_dir=str(tmp_path))
        timer = threading.Timer(0.3, write_kubeconfig, (tmp_path / "kubeconfig.yaml", url, pki))
        timer.start()
        started = time.monotonic()
        assert daemon.wait_until_ready(process, state, timeout=10) is True
        assert time.monotonic() - started < 5
    finally:
        process.kill()
        process.wait()


def test_pod_logs_go_to_var_log_only_with_the_default_data_dir(tmp_path):
    from pyk8s.cli import agent_command
    from pyk8s.cluster.server import ServerConfig

    assert ServerConfig().pod_log_root == Path("/var/log")
    assert ServerConfig(data_dir=tmp_path).pod_log_root == tmp_path / "agent" / "logs"
    assert agent_command._default_log_root(Path("/var/lib/pyk8s/agent")) == Path("/var/log")
    assert agent_command._default_log_root(tmp_path) is None
