"""An executed notebook opens in Jupyter as a reader would open it: trusted, valid, with a kernel that starts and stops.

A Jupyter server (the one JupyterLab runs on) is started on a free local port; through its REST API the test opens
one notebook executed by ``reproduce``, checks the contents model and the trust of its cells, starts a kernel
session on it and shuts everything down.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import nbformat
import pytest

from streid_lib import reproduce

pytest.importorskip("jupyter_server", reason="jupyter_server is not installed (it comes with jupyterlab)")

TOKEN = "streid-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | list | None]:
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                text = resp.read()
                return resp.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            return exc.code, None


async def _execute_over_websocket(port: int, kernel_id: str, code: str) -> str:
    """Run ``code`` in the kernel through the server's websocket, as a JupyterLab client does; its plain result."""
    from tornado.websocket import websocket_connect

    ws = await websocket_connect(f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?token={TOKEN}")
    msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
    header = {"msg_id": msg_id, "session": session, "username": "test", "msg_type": "execute_request", "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    request = {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
    await ws.write_message(json.dumps(request))
    result, replied, idle = None, False, False
    deadline = time.monotonic() + 30
    while not (replied and idle) and time.monotonic() < deadline:  # shell reply and iopub outputs: any order
        msg = json.loads(await asyncio.wait_for(ws.read_message(), timeout=30))
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "execute_result":
            result = msg["content"]["data"]["text/plain"]
        elif msg["msg_type"] == "execute_reply":
            assert msg["content"]["status"] == "ok", msg["content"]
            replied = True
        elif msg["msg_type"] == "status":
            idle = msg["content"]["execution_state"] == "idle"
    ws.close()
    return result


def _wait(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_an_executed_notebook_opens_trusted_and_its_kernel_starts_and_stops(tmp_path, monkeypatch):
    env = {
        **os.environ,
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),  # the notary's key and signatures, shared with the server
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    monkeypatch.setenv("JUPYTER_DATA_DIR", env["JUPYTER_DATA_DIR"])
    # One small notebook, executed by reproduce.
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = None\nout_dir = None\nn = 3")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import pandas as pd\npd.DataFrame({'x': range(n)})")]
    nbformat.write(nb, folder / "01_table.ipynb")
    reproduce.run_study("smoke", tmp_path / "run", {"n": 4}, notebook_dir=folder, progress=False)
    executed = tmp_path / "run" / "notebooks" / "01_table.ipynb"
    # A copy changed after execution is not signed: the trust check below can fail.
    changed = nbformat.read(executed, as_version=4)
    changed.cells[-1].outputs[0]["data"]["text/plain"] = "tampered"
    nbformat.write(changed, executed.with_name("changed.ipynb"))

    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={tmp_path}",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",  # containers and CI often run as root
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    api = Server(port)
    try:

        def up():
            try:
                return api.call("GET", "/api/status")[0] == 200
            except OSError:
                return server.poll() is not None  # stop waiting if it died

        _wait("the server", up)
        assert server.poll() is None, (tmp_path / "server.log").read_text()

        # The contents model: a valid notebook, every code cell trusted (its outputs render).
        status, model = api.call("GET", "/api/contents/run/notebooks/01_table.ipynb?content=1")
        assert status == 200
        assert model["type"] == "notebook" and model["format"] == "json"
        assert not model.get("message"), model.get("message")  # the server's validation error, if any
        content = nbformat.from_dict(model["content"])
        nbformat.validate(content)
        code = [c for c in content.cells if c.cell_type == "code"]
        assert code and all(c.metadata.get("trusted") is True for c in code)
        assert any("text/html" in o.get("data", {}) for c in code for o in c.outputs)  # the table renders
        _, other = api.call("GET", "/api/contents/run/notebooks/changed.ipynb?content=1")
        assert not any(c["metadata"].get("trusted") for c in other["content"]["cells"] if c["cell_type"] == "code")

        # A kernel session on it starts, and stops cleanly.
        status, session = api.call(
            "POST",
            "/api/sessions",
            {"path": "run/notebooks/01_table.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}},
        )
        assert status == 201
        kernel_id = session["kernel"]["id"]
        assert asyncio.run(_execute_over_websocket(port, kernel_id, "3 * 7")) == "21"  # as JupyterLab talks to it
        assert api.call("GET", f"/api/kernels/{kernel_id}")[1]["execution_state"] == "idle"
        assert api.call("DELETE", f"/api/sessions/{session['id']}")[0] == 204
        assert api.call("GET", "/api/sessions") == (200, [])
        _wait("the kernel to stop", lambda: api.call("GET", "/api/kernels") == (200, []))
        assert api.call("POST", "/api/shutdown")[0] == 200
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=20)
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert "Traceback" not in text, text
