"""The MQTT sink against a real broker (mosquitto on 127.0.0.1, started by each test): the
JSON-lines record in every message, every frame once and in order, across a broker restart in
the middle of a run, a bounded buffer whose drops are counted, TLS with a user and password."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from broker import Broker, Subscriber
from trtssd.core.detections import Detections
from trtssd.core.errors import EnvironmentProblem, InputError
from trtssd.io.sinks import JsonLinesSink, open_sink
from trtssd.io.sources import Frame

pytest.importorskip("paho.mqtt.client", reason="the MQTT sink needs paho-mqtt "
                                               "(pip install paho-mqtt)")
from trtssd.io import mqtt  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELS = ["???", "person", "bicycle", "car"]


def frames(n, source="cam0", start=0, seed=0):
    """(Frame, Detections) pairs with random boxes, a different count each frame."""
    rng = np.random.RandomState(seed + start)
    for i in range(start, start + n):
        k = int(rng.randint(0, 4))
        xy = rng.uniform(0, 500, (k, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(1, 100, (k, 2))], axis=1)
        yield Frame(i, None, source), Detections(boxes, rng.uniform(0.3, 1, k),
                                                 rng.randint(1, 4, k))


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def url(broker, topic="trtssd/test", query=""):
    return "mqtt://127.0.0.1:%d/%s%s" % (broker.port, topic, query)


def test_urls():
    c = mqtt.parse_url("mqtts://al%40ice:p%3Ass@broker.local/fleet/cam%201?qos=0&buffer=5")
    assert (c["tls"], c["host"], c["port"], c["topic"]) == (True, "broker.local", 8883,
                                                            "fleet/cam 1")
    assert (c["username"], c["password"]) == ("al@ice", "p:ss")
    assert c["options"] == {"qos": "0", "buffer": "5"}
    assert mqtt.parse_url("mqtt://h:1999/t")["port"] == 1999
    assert mqtt.parse_url("mqtt://h/t")["port"] == 1883
    for bad, why in (("mqtt://h", "topic"), ("mqtt://h/a/#", "wildcards"),
                     ("mqtt:///t", "host"), ("mqtt://h:x/t", "port"),
                     ("mqtt://h/t?color=red", "unknown option color"),
                     ("http://h/t", "mqtt://")):
        with pytest.raises(InputError, match=why):
            mqtt.parse_url(bad)
    assert mqtt.default_client_id().startswith("trtssd-")
    assert mqtt.default_client_id().endswith("-%d" % os.getpid())


def test_without_paho_the_error_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(EnvironmentProblem, match="pip install paho-mqtt"):
        open_sink("mqtt://127.0.0.1:1/t")


def test_every_frame_once_in_order_with_the_jsonl_record(broker, tmp_path):
    sub = Subscriber(broker.port, "trtssd/test")
    path = str(tmp_path / "same.jsonl")
    sink = open_sink(url(broker, query="?client_id=cam-7"), labels=LABELS)
    assert isinstance(sink, mqtt.MqttSink) and sink.client_id == "cam-7" and sink.qos == 1
    with sink, JsonLinesSink(path, LABELS) as js:
        for f, d in frames(1500):
            sink.write(f, d)
            js.write(f, d)
    assert sink.delivered == sink.published == 1500 and sink.dropped == 0
    sub.wait_for(1500)
    sub.close()
    with open(path) as f:
        want = [json.loads(line) for line in f]
    assert sub.messages == want          # the same records, each once, in order


def test_a_broker_restart_in_the_middle_of_a_run(broker):
    sub = Subscriber(broker.port, "trtssd/test")
    logs = []
    sink = mqtt.MqttSink(url(broker), labels=LABELS, log=logs.append)
    gen = frames(900)
    for _ in range(300):
        sink.write(*next(gen))
    assert sub.wait_for(300) == 300
    broker.stop()                         # the broker goes away with the sink still writing
    for _ in range(300):
        sink.write(*next(gen))
        time.sleep(0.002)
    assert sink.waiting() > 0             # buffered while away
    broker.start()
    for _ in range(300):
        sink.write(*next(gen))
        time.sleep(0.001)
    sink.close()
    assert sink.dropped == 0 and sink.waiting() == 0
    assert sub.wait_for(900) == 900
    sub.close()
    assert [m["frame"] for m in sub.messages] == list(range(900))     # once each, in order
    assert sub.dups == 0
    assert any("lost the broker" in line for line in logs)
    assert any("is back; sending" in line for line in logs)


def test_a_full_buffer_drops_the_oldest_and_counts_them(broker):
    sub = Subscriber(broker.port, "trtssd/test")      # its session outlives the broker
    broker.stop()
    logs = []
    sink = mqtt.MqttSink(url(broker, query="?buffer=100"), labels=LABELS, log=logs.append,
                         connect_timeout_s=0.5)
    assert any("not reachable yet" in line for line in logs)
    for f, d in frames(350):
        sink.write(f, d)
    assert sink.dropped == 250 and sink.waiting() == 100
    broker.start()
    sink.close()
    assert sub.wait_for(100) == 100
    sub.close()
    assert [m["frame"] for m in sub.messages] == list(range(250, 350))
    assert any("250 messages dropped" in line for line in logs)


def _make_certs(folder):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make the test's TLS certificates)")
    ca_key, ca, key, csr, cert = (os.path.join(folder, n) for n in
                                  ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = os.path.join(folder, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run = lambda *a: subprocess.check_call(a, stdout=subprocess.DEVNULL,  # noqa: E731
                                           stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=trtssd test CA", "-keyout", ca_key, "-out", ca)
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", key, "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", ext, "-out", cert)
    return {"ca": ca, "cert": cert, "key": key}


def test_tls_with_a_user_and_password_from_the_url(tmp_path):
    tls = _make_certs(str(tmp_path))
    b = Broker(tmp_path, tls=tls, users={"cam": "s3cret:x"}).start()
    try:
        sub = Subscriber(b.port, "fleet/#", tls_ca=tls["ca"], username="cam",
                         password="s3cret:x")
        base = "mqtts://cam:%s@127.0.0.1:%d/fleet/{client_id}?ca=" % ("s3cret%3Ax", b.port)
        sink = open_sink(base + tls["ca"] + "&client_id=jetson-3", labels=LABELS)
        assert sink.topic == "fleet/jetson-3"
        with sink:
            for f, d in frames(20):
                sink.write(f, d)
        assert sub.wait_for(20) == 20
        assert [m["frame"] for m in sub.messages] == list(range(20))
        sub.close()
        with pytest.raises(InputError, match="refused the connection"):
            open_sink(base.replace("s3cret%3Ax", "wrong") + tls["ca"])
        with pytest.raises(InputError, match="TLS settings"):
            open_sink(base + str(tmp_path / "missing-ca.pem"))
    finally:
        b.stop()


def test_the_command_publishes(broker, tmp_path, tflite_model, label_file):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skimage")
    import cv2
    from skimage import data
    pic = str(tmp_path / "cat.png")
    cv2.imwrite(pic, np.ascontiguousarray(data.chelsea()[..., ::-1]))
    sub = Subscriber(broker.port, "trtssd/test")
    p = subprocess.run([sys.executable, "-m", "trtssd", "detect", pic, "--loop", "3",
                        "--model", tflite_model, "--labels", label_file, "--backend",
                        "onnxruntime", "-o", url(broker)], cwd=REPO, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert sub.wait_for(3) == 3
    sub.close()
    assert [(m["source"], m["frame"]) for m in sub.messages] == [(pic, i) for i in range(3)]
    assert all(m["detections"][0]["label"] == "cat" for m in sub.messages)
