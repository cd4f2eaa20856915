"""MQTT: every frame's detections published to a broker, for fleets of cameras.

    trtssd detect 0 -o "mqtt://broker.local:1883/cameras/{client_id}/detections"
    trtssd detect 0 -o "mqtts://USER:PASSWORD@broker:8883/dets?ca=/etc/ssl/broker-ca.pem"

One message a frame, the JSON-lines sink's record (``{"source", "frame", "detections"}``, see
trtssd.io.sinks), at QoS 1 (``?qos=0|1|2``), from a client id per device (default
``trtssd-<hostname>-<pid>``; ``?client_id=``; ``{client_id}`` in the topic is replaced by it).
``mqtts://`` is TLS (port 8883 by default; ``?ca=``, ``?cert=``, ``?key=``, ``?insecure=1``),
and a user and password come from the URL or the keywords of :class:`MqttSink`.

While the broker is away the messages wait in a buffer (``?buffer=``, 10,000 by default; when
it is full the oldest is dropped, and drops are counted and reported at the end) and go out in
order when it is back. The sink keeps the messages handed to the client until the broker
acknowledges them and, after a reconnection, sends the unacknowledged ones again before
anything newer, so frames arrive in order. QoS 1 is at-least-once: a broker that dies after
taking a message but before acknowledging it gets it twice; every message carries its source
and frame, so a consumer can drop repeats. ``close()`` waits up to ``?flush_s=`` (10) seconds
for the backlog to be acknowledged and reports what was not.

The client is paho-mqtt (``pip install paho-mqtt``), version 2 or 1, imported when a sink is
made.
"""
import collections
import json
import os
import socket
import sys
import threading
import time

from ..core.errors import EnvironmentProblem, InputError
from .sinks import Sink, frame_record

SCHEMES = ("mqtt", "mqtts")
# CONNACK codes after which retrying cannot help: MQTT 3.1.1 (1, 2, 4, 5) and 5 (132...140)
_REFUSED = {1: "unacceptable protocol version", 2: "client id rejected",
            4: "bad user name or password", 5: "not authorised", 132: "unsupported protocol",
            133: "client id rejected", 134: "bad user name or password",
            135: "not authorised", 138: "banned", 140: "bad authentication method"}


def _paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise EnvironmentProblem("-o mqtt://... needs the MQTT client paho-mqtt: pip install "
                                 "paho-mqtt (or pip install trtssd[mqtt])")
    return mqtt


def _flag(text):
    return str(text).strip().lower() in ("1", "true", "yes", "on")


def parse_url(url):
    """``mqtt[s]://[USER[:PASS]@]HOST[:PORT]/TOPIC[?key=value&...]`` -> a dict of settings."""
    from urllib.parse import parse_qsl, unquote, urlsplit
    u = urlsplit(str(url))
    scheme = u.scheme.lower()
    if scheme not in SCHEMES:
        raise InputError("output %r: an MQTT output starts with mqtt:// or mqtts:// (TLS)"
                         % (url,))
    example = "e.g. -o mqtt://broker:1883/cameras/detections"
    try:
        host, port = u.hostname, u.port
    except ValueError:
        raise InputError("output %r: the port must be a number, %s" % (url, example))
    if not host:
        raise InputError("output %r: name the broker's host, %s" % (url, example))
    topic = unquote(u.path[1:] if u.path.startswith("/") else u.path)
    if not topic or "+" in topic or "#" in str(url):
        raise InputError("output %r: give a topic to publish on, without the wildcards + and "
                         "#, %s" % (url, example))
    options = dict(parse_qsl(u.query, keep_blank_values=True))
    known = ("qos", "client_id", "buffer", "keepalive", "ca", "cert", "key", "insecure",
             "flush_s", "window")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError("output %r: unknown option %s; the options are %s"
                         % (url, ", ".join(unknown), ", ".join(known)))
    return {"tls": scheme == "mqtts", "host": host,
            "port": port or (8883 if scheme == "mqtts" else 1883), "topic": topic,
            "username": unquote(u.username) if u.username else None,
            "password": unquote(u.password) if u.password is not None else None,
            "options": options}


def _number(options, name, default, cast, low):
    if name not in options:
        return default
    try:
        v = cast(options[name])
    except ValueError:
        v = None
    if v is None or v < low:
        raise InputError("MQTT option %s=%r: must be a number >= %s" % (name, options[name], low))
    return v


def default_client_id():
    """``trtssd-<hostname>-<pid>``: one per device, and one per process on it."""
    host = socket.gethostname().split(".")[0] or "host"
    keep = "".join(c if (c.isalnum() or c in "-_") else "-" for c in host)
    return "trtssd-%s-%d" % (keep, os.getpid())


class MqttSink(Sink):
    """Publishes each frame's detections (see the module docstring). Keywords override what
    the URL says: ``qos``, ``client_id``, ``username``, ``password``, ``ca_certs``,
    ``certfile``, ``keyfile``, ``insecure``, ``buffer`` (messages kept while the broker is
    away), ``window`` (messages sent but not yet acknowledged), ``keepalive``,
    ``flush_timeout_s``; ``connect_timeout_s``: how long the first connection is waited for
    before the run goes on buffering; ``log``: a function taking one line (default stderr)."""

    def __init__(self, url, labels=None, qos=None, client_id=None, username=None,
                 password=None, ca_certs=None, certfile=None, keyfile=None, insecure=None,
                 buffer=None, window=None, keepalive=None, flush_timeout_s=None,
                 connect_timeout_s=5.0, log=None):
        mqtt = _paho()
        cfg = parse_url(url)
        o = cfg["options"]
        self.labels = labels
        self.log = log or (lambda line: sys.stderr.write("trtssd: %s\n" % line))
        self.qos = int(qos if qos is not None else _number(o, "qos", 1, int, 0))
        if self.qos not in (0, 1, 2):
            raise InputError("MQTT option qos=%r: choose 0, 1 or 2" % (self.qos,))
        self.buffer = int(buffer or _number(o, "buffer", 10000, int, 1))
        self.window = int(window or _number(o, "window", 100, int, 1))
        self.flush_timeout_s = float(flush_timeout_s if flush_timeout_s is not None
                                     else _number(o, "flush_s", 10.0, float, 0))
        keepalive = int(keepalive or _number(o, "keepalive", 30, int, 5))
        self.client_id = client_id or o.get("client_id") or default_client_id()
        self.topic = cfg["topic"].replace("{client_id}", self.client_id)
        self.host, self.port = cfg["host"], cfg["port"]
        self.where = "%s:%d" % (self.host, self.port)
        # counts: handed to the client, acknowledged, dropped from a full buffer
        self.published = self.delivered = self.dropped = 0
        self._backlog = collections.deque()      # payloads not handed to the client yet
        self._pending = collections.OrderedDict()   # mid -> payload, handed, not acknowledged
        self._acks = collections.deque()          # mids the client reported acknowledged
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._connected = False
        self._ever_connected = threading.Event()
        self._fatal = None
        self._last_error = None
        self._closing = False
        self._stop = False

        if hasattr(mqtt, "CallbackAPIVersion"):           # paho-mqtt 2
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                 clean_session=True)
        else:                                              # paho-mqtt 1
            client = mqtt.Client(client_id=self.client_id, clean_session=True)
        client.max_inflight_messages_set(self.window)
        client.max_queued_messages_set(0)
        username = username if username is not None else cfg["username"]
        password = password if password is not None else cfg["password"]
        if username is not None:
            client.username_pw_set(username, password)
        ca_certs = ca_certs or o.get("ca")
        certfile = certfile or o.get("cert")
        keyfile = keyfile or o.get("key")
        if cfg["tls"] or ca_certs or certfile:
            import ssl
            try:
                client.tls_set(ca_certs=ca_certs, certfile=certfile, keyfile=keyfile,
                               cert_reqs=ssl.CERT_REQUIRED)
            except (IOError, OSError, ValueError, ssl.SSLError) as e:
                raise InputError("MQTT TLS settings (ca=%s, cert=%s, key=%s): %s; give "
                                 "readable PEM files" % (ca_certs, certfile, keyfile, e))
            if insecure if insecure is not None else _flag(o.get("insecure", "0")):
                client.tls_insecure_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.reconnect_delay_set(1, 4)
        self._client = client
        try:
            client.connect_async(self.host, self.port, keepalive)
        except (ValueError, OSError) as e:
            raise InputError("MQTT broker %s: %s" % (self.where, e))
        client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="trtssd-mqtt-sender")
        self._sender.daemon = True
        self._sender.start()
        if not self._ever_connected.wait(connect_timeout_s):
            if self._fatal:
                self._shutdown()
                raise InputError(self._fatal)
            self.log("mqtt: broker %s not reachable yet (%s); buffering up to %d messages and "
                     "retrying" % (self.where, self._last_error or "no answer", self.buffer))
        elif self._fatal:
            self._shutdown()
            raise InputError(self._fatal)

    # -- the client's callbacks (its network thread) ---------------------------------------

    def _on_connect(self, client, userdata, flags, rc, *rest):
        code = int(getattr(rc, "value", rc))
        if code != 0:
            self._last_error = "refused: %s" % rc
            if code in _REFUSED:
                self._fatal = ("MQTT broker %s refused the connection (%s); check the user and "
                               "password (mqtt://USER:PASS@HOST/TOPIC) and the broker's access "
                               "rules" % (self.where, _REFUSED[code]))
                self._ever_connected.set()
                client.disconnect()
            return
        with self._lock:
            # what the broker had not acknowledged goes again, first; the client's own copies
            # are dropped so it does not resend them out of order
            self._take_acks()
            if hasattr(client, "drop_out_messages"):
                client.drop_out_messages()
            else:                                    # paho-mqtt 1 has no public call for it
                with client._out_message_mutex:
                    client._out_messages.clear()
                    client._inflight_messages = 0
            self._backlog.extendleft(reversed(list(self._pending.values())))
            self._pending.clear()
            self._trim()
            self._connected = True
        if self._ever_connected.is_set():
            self.log("mqtt: broker %s is back; sending %d buffered messages"
                     % (self.where, len(self._backlog)))
        self._ever_connected.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, *rest):
        if self._connected and not self._closing:
            self.log("mqtt: lost the broker %s; buffering up to %d messages"
                     % (self.where, self.buffer))
        self._connected = False
        self._last_error = "disconnected"

    def _on_publish(self, client, userdata, mid, *rest):
        self._acks.append(mid)       # no lock here: the client holds its own while calling
        self._wake.set()

    # -- the sender thread ----------------------------------------------------------------

    def _take_acks(self):
        while self._acks:
            if self._pending.pop(self._acks.popleft(), None) is not None:
                self.delivered += 1

    def _trim(self):
        extra = len(self._backlog) + len(self._pending) - self.buffer - self.window
        while extra > 0 and self._backlog:
            self._backlog.popleft()
            self.dropped += 1
            extra -= 1

    def _send_loop(self):
        while not self._stop:
            self._wake.wait(0.1)
            self._wake.clear()
            while not self._stop:
                # one publisher; each message taken, handed over and recorded under the lock
                # on_connect takes, so nothing overtakes a resend; writers wait for one
                # message at most
                with self._lock:
                    self._take_acks()
                    if not (self._connected and self._backlog
                            and len(self._pending) < self.window):
                        break
                    payload = self._backlog.popleft()
                    info = self._client.publish(self.topic, payload, qos=self.qos)
                    self._pending[info.mid] = payload
                    self.published += 1

    # -- the Sink ---------------------------------------------------------------------------

    def write(self, frame, detections):
        if self._fatal:
            raise InputError(self._fatal)
        payload = json.dumps(frame_record(frame, detections, self.labels))
        with self._lock:
            if len(self._backlog) >= self.buffer:
                self._backlog.popleft()
                self.dropped += 1
            idle = not self._backlog
            self._backlog.append(payload)
        if idle:              # a sender draining the backlog takes this one too
            self._wake.set()

    def waiting(self):
        """Messages not yet acknowledged by the broker (buffered or in flight)."""
        with self._lock:
            self._take_acks()
            return len(self._backlog) + len(self._pending)

    def flush(self, timeout_s=None):
        """Wait until the broker acknowledged everything (or ``timeout_s``); True if it did."""
        t_end = time.monotonic() + (self.flush_timeout_s if timeout_s is None else timeout_s)
        while self.waiting():
            if self._fatal or time.monotonic() > t_end:
                return False
            self._wake.set()
            time.sleep(0.01)
        return True

    def stats(self):
        return {"published": self.published, "delivered": self.delivered,
                "dropped": self.dropped, "waiting": self.waiting()}

    def _shutdown(self):
        self._closing = True
        self._stop = True
        self._wake.set()
        self._sender.join(2.0)
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def close(self):
        if self._stop:
            return
        self.flush()
        left = self.waiting()
        self._shutdown()
        if self.dropped:
            self.log("mqtt: %d messages dropped while the broker %s was away (buffer of %d; "
                     "?buffer=N keeps more)" % (self.dropped, self.where, self.buffer))
        if left:
            self.log("mqtt: %d messages not acknowledged by %s when the run ended (waited "
                     "%.0f s; ?flush_s=S waits longer)" % (left, self.where,
                                                          self.flush_timeout_s))

    def __repr__(self):
        return "MqttSink(%s/%s as %s)" % (self.where, self.topic, self.client_id)


def open_mqtt_sink(url, labels=None, **kw):
    """The sink for an ``-o mqtt://...`` or ``mqtts://...`` output."""
    return MqttSink(url, labels=labels, **kw)

