"""The Host check against DNS rebinding, on a real keyless loopback server.

A page on ``attacker.example`` whose name is re-pointed at 127.0.0.1 sends ``Host`` and
``Origin`` that agree with each other, so the cross-origin check alone let it delete images.
"""

from __future__ import annotations

import socket

import httpx
import pytest
from helpers import jpeg_bytes, photo

from picorigin import Engine, SettingError
from picorigin.server import create_app
from picorigin.server import _app as app_module
from picorigin.server._guards import allowed_hosts_from


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def refused(response: httpx.Response) -> str:
    assert response.status_code == 421, response.text
    body = response.json()
    assert body["error"]["status"] == 421
    return body["error"]["message"]


@pytest.fixture(scope="module")
def victim(tmp_path_factory, serve_app):
    """A default server: loopback, no API key, one image."""
    with Engine(tmp_path_factory.mktemp("rebind")) as engine, \
            serve_app(create_app(engine)) as url:
        image_id = engine.add(jpeg_bytes(photo("coffee")))
        yield url, engine, image_id


def test_a_rebinding_page_cannot_delete_or_read(victim):
    url, engine, image_id = victim
    port = port_of(url)
    attacker = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        message = refused(client.delete(f"/api/images/{image_id}", headers=attacker))
        assert "attacker.example" in message and "--allowed-host" in message
        for path in ("/api/stats", f"/api/images/{image_id}", "/api/images", "/",
                     "/collection", f"/api/images/{image_id}/thumbnail", "/healthz", "/docs"):
            refused(client.get(path, headers=attacker))
        upload = client.post("/api/images", headers=attacker,
                             files={"file": ("x.jpg", jpeg_bytes(photo("rocket")))})
        refused(upload)  # answered, not reset, although the body was not wanted
        refused(client.post("/api/search", headers=attacker, json={"url": "http://a.b/c.jpg"}))
    assert engine.info(image_id)["id"] == image_id
    assert engine.stats()["images"] == 1


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "localhost."])
def test_this_machines_names_on_its_port_are_served(victim, name):
    url, _, image_id = victim
    with httpx.Client(base_url=url, timeout=30) as client:
        response = client.get(f"/api/images/{image_id}", headers={"Host": f"{name}:{port_of(url)}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("host", ["127.0.0.1:1", "localhost", "127.0.0.1.nip.io:{port}",
                                  "evil.localhost:{port}", "[::2]:{port}", "10.0.0.1:{port}", ""])
def test_other_hosts_and_ports_are_refused(victim, host):
    url = victim[0]
    with httpx.Client(base_url=url, timeout=30) as client:
        refused(client.get("/api/stats", headers={"Host": host.format(port=port_of(url))}))


def test_a_request_without_host_is_served(victim):
    # HTTP/1.0 without Host cannot come from a browser page; scripts may still send it.
    url = victim[0]
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_allowed_hosts_are_served(tmp_path, serve_app, monkeypatch):
    with Engine(tmp_path / "d") as engine:
        app = create_app(engine, allowed_hosts=["Search.Example", "lan.box:8443"])
        with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            port = port_of(url)
            for host in ("search.example", f"search.example:{port}", "lan.box:8443",
                         f"127.0.0.1:{port}"):
                assert client.get("/api/stats", headers={"Host": host}).status_code == 200, host
            for host in (f"lan.box:{port}", f"other.example:{port}"):
                refused(client.get("/api/stats", headers={"Host": host}))
        monkeypatch.setenv("PICORIGIN_ALLOWED_HOSTS", "a.example, b.example:81")
        app = create_app(engine)
        assert app.state.allowed_hosts == ("a.example", "b.example:81")
        with serve_app(create_app(engine, allowed_hosts=["*"])) as url:
            response = httpx.get(f"{url}/api/stats", headers={"Host": "anything.example"})
            assert response.status_code == 200


@pytest.mark.parametrize("entry", ["http://a.example", "a.example/path", "user@a.example",
                                   ":8000", "a example"])
def test_a_malformed_allowed_host_is_refused(entry):
    with pytest.raises(SettingError, match="allowed host"):
        allowed_hosts_from([entry])
    with pytest.raises(SettingError, match="allowed host"):
        allowed_hosts_from(environ={"PICORIGIN_ALLOWED_HOSTS": f"ok.example,{entry}"})


def test_serve_answers_to_its_bound_name_and_the_cli_option(monkeypatch, tmp_path):
    import uvicorn
    from click.testing import CliRunner

    from picorigin._cli import cli

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.delenv("PICORIGIN_ALLOWED_HOSTS", raising=False)
    with Engine(tmp_path / "d") as engine:
        app_module.serve(engine, host="mybox.lan", port=8123, announce=lambda line: None)
        assert served["app"].state.allowed_hosts == ("mybox.lan:8123",)
    result = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "d"), "--allowed-host",
                                      "a.example", "--allowed-host", "b.example:80"])
    assert result.exit_code == 0, result.output
    assert served["app"].state.allowed_hosts == ("a.example", "b.example:80")
