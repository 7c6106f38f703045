"""Webhook delivery: a receiver on 127.0.0.1 that is down, then up, with the engine restarted
in between; every alert arrives (once, by idempotency key) and every signature verifies."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from watch.pictures import copies

from picorigin import Engine
from picorigin._errors import SettingError
from picorigin._watch import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify, watcher
from picorigin._watch._deliver import backoff, sign

SETTINGS = {"stages": "local", "workers": 1, "measure_detail": False,
            "webhook_retry_seconds": 0.05, "webhook_max_attempts": 50}


class Receiver:
    """A webhook receiver on a fixed port: records each POST; ``fail_first`` answers 500 after
    reading that many requests (a receiver that took the alert but did not say so)."""

    def __init__(self, port: int, fail_first: int = 0) -> None:
        self.port, self.fail_first = port, fail_first
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                failing = len(receiver.received) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_alerts_reach_a_receiver_that_was_down_across_a_restart(tmp_path, watched_dir):
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    folder = tmp_path / "db"
    sources = {name: data for name, (_, data) in copies().items()}
    with Engine(folder, settings=SETTINGS) as engine:
        watching = watcher(engine)
        secret = watching.add([watched_dir], webhook=hook)["secret"]
        for name, data in sources.items():
            engine.add(data, uri=f"https://copies.example/{name}.jpg")
        first = watching.run()  # the receiver is down: every attempt fails, is recorded
        assert (first["alerts"], first["delivered"], first["retrying"]) == (4, 0, 4)
        for delivery in engine._catalog.deliveries():
            assert delivery["status"] == "pending" and delivery["attempts"] == 1
            assert "could not fetch" in delivery["history"][0]["error"]
    # Restarted with the receiver up; it drops the first two answers (so those are re-sent).
    with Receiver(port, fail_first=2) as receiver, Engine(folder, settings=SETTINGS) as engine:
        watching = watcher(engine)
        deadline = time.monotonic() + 20
        while (sum(d["status"] == "delivered" for d in engine._catalog.deliveries()) < 4
               and time.monotonic() < deadline):
            watching.run()
            time.sleep(0.05)
        deliveries = engine._catalog.deliveries()
        assert [d["status"] for d in deliveries] == ["delivered"] * 4
        alerts = {a["id"]: a for a in watching.alerts()}
    by_key: dict[str, dict] = {}
    for request in receiver.received:
        headers, body = request["headers"], request["body"]
        assert verify(secret, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        payload = json.loads(body)
        previous = by_key.setdefault(headers["Idempotency-Key"], payload)
        assert previous["alert_id"] == payload["alert_id"]  # a repeat is the same alert
    assert len(receiver.received) == 6  # 4 alerts + the 2 whose answers were lost
    assert sorted(p["alert_id"] for p in by_key.values()) == sorted(alerts)
    for payload in by_key.values():
        alert = alerts[payload["alert_id"]]
        assert (payload["kind"], payload["watch"]["picture_id"]) == (alert["kind"],
                                                                     alert["picture_id"])
        assert payload["image"]["uri"].startswith("https://copies.example/")
        assert "likely_original" in payload and "pages" in payload and "boxes" in payload
    assert max(len(d["history"]) for d in deliveries) >= 2  # every attempt recorded


def test_signatures_and_backoff():
    body = b'{"a":1}'
    signature = sign("k", "1700000000", body)
    assert verify("k", "1700000000", body, signature, now=1700000100)
    assert not verify("k", "1700000000", body + b" ", signature, now=1700000100)
    assert not verify("other", "1700000000", body, signature, now=1700000100)
    assert not verify("k", "1700000000", body, signature, now=1700009999)  # stale: a replay
    assert [backoff(n, 30) for n in (1, 2, 3)] == [30, 60, 120] and backoff(30, 30) == 3600


def test_a_webhook_is_given_up_after_its_attempts_and_private_addresses_need_consent(
        tmp_path, watched_dir):
    port = free_port()
    settings = {**SETTINGS, "webhook_max_attempts": 2}
    with Engine(tmp_path / "db", settings=settings) as engine:
        watching = watcher(engine)
        # Given through the API (not by the operator): a loopback receiver is refused.
        watching.add([watched_dir / "coffee.jpg"], webhook=f"http://127.0.0.1:{port}/",
                     allow_private=False)
        engine.add(copies()["coffee-crop"][1])
        with Receiver(port) as receiver:
            assert watching.run()["retrying"] == 1
            time.sleep(0.1)
            assert watching.run()["failed"] == 1
        assert receiver.received == []
        (delivery,) = engine._catalog.deliveries()
        assert delivery["status"] == "failed" and "private" in delivery["history"][0]["error"]
        with pytest.raises(SettingError):
            watching.add([watched_dir], webhook="ftp://example.org/")
