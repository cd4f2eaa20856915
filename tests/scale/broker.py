"""A real MQTT broker for the tests: Debian's mosquitto on 127.0.0.1, a free port, its own
config and persistence folder (so sessions and queued messages survive a restart), stopped by
the test; and a subscriber that records what arrives."""
import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from support.net import free_port


def mosquitto_path():
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)),
        None)


class Broker(object):
    def __init__(self, folder, tls=None, users=None):
        exe = mosquitto_path()
        if exe is None:
            pytest.skip("the MQTT broker mosquitto is not installed (apt-get install -y "
                        "mosquitto; `tools/ensure_deps.py test` tries it)")
        self.exe, self.folder, self.port = exe, str(folder), free_port()
        self.proc = None
        lines = ["listener %d 127.0.0.1" % self.port,
                 "persistence true",
                 "persistence_location %s/" % self.folder,
                 "autosave_interval 0",
                 "max_queued_messages 100000",
                 "log_dest file %s/broker.log" % self.folder,
                 "user %s" % getpass.getuser()]
        if users:
            pw = os.path.join(self.folder, "passwords")
            for i, (name, password) in enumerate(sorted(users.items())):
                subprocess.check_call(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else [])
                                      + [pw, name, password])
            lines += ["allow_anonymous false", "password_file %s" % pw]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += ["cafile %s" % tls["ca"], "certfile %s" % tls["cert"],
                      "keyfile %s" % tls["key"]]
        self.conf = os.path.join(self.folder, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout_s=10.0):
        self.proc = subprocess.Popen([self.exe, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: %s" % self.proc.stderr.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen on port %d" % self.port)

    def stop(self):
        """SIGTERM: mosquitto saves its sessions and queued messages, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Subscriber(object):
    """A persistent-session QoS 1 subscriber: ``messages`` in arrival order (parsed JSON)."""

    def __init__(self, port, topic, client_id="trtssd-test-subscriber", tls_ca=None,
                 username=None, password=None):
        import json
        import paho.mqtt.client as mqtt
        self.messages, self.dups = [], 0
        self.subscribed = threading.Event()
        if hasattr(mqtt, "CallbackAPIVersion"):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                            clean_session=False)
        else:
            c = mqtt.Client(client_id=client_id, clean_session=False)
        if username:
            c.username_pw_set(username, password)
        if tls_ca:
            c.tls_set(ca_certs=tls_ca)

        def on_connect(client, userdata, flags, rc, *rest):
            if int(getattr(rc, "value", rc)) == 0:
                client.subscribe(topic, qos=1)

        def on_subscribe(*args):
            self.subscribed.set()

        def on_message(client, userdata, msg):
            self.messages.append(json.loads(msg.payload.decode("utf-8")))
            self.dups += int(bool(msg.dup))

        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
        c.reconnect_delay_set(1, 2)
        c.connect("127.0.0.1", port, 30)
        c.loop_start()
        self.client = c
        if not self.subscribed.wait(10):
            raise RuntimeError("the test subscriber did not subscribe")

    def wait_for(self, count, timeout_s=30.0):
        t_end = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < t_end:
            time.sleep(0.02)
        time.sleep(0.2)               # and a little longer, so repeats would show
        return len(self.messages)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()
