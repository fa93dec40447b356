#!/usr/bin/env python3
"""A fault-injecting HTTP proxy between cerveza and moto (test harness).

    faultproxy.py UPSTREAM_URL RULES_JSON

Listens on 127.0.0.1 (a free port, printed as the first line of stdout), forwards every
request to UPSTREAM_URL (moto) and injects the faults the rules ask for. The AWS SDK
sends every service to the one endpoint, so the proxy reads the service and region from
the request's SigV4 credential scope, the EC2 action from its form body and the
DynamoDB one from X-Amz-Target.

RULES_JSON: {"seed": 1, "rules": [RULE, ...]} where a RULE is

    {"fault": KIND, "rate": 0.3, "service": "ec2", "region": "eu-west-1",
     "action": "RunInstances", "when": "before", "spare_last": true, ...}

KIND:
    status     answer `status` (500, 503) with the service's InternalError body
    throttle   answer the service's throttling error (RequestLimitExceeded,
               ThrottlingException, SlowDown, Throttling)
    reset      reset the connection (TCP RST)
    delay      wait `seconds`, then forward
    blackhole  accept and never answer
    refuse     answer `status` (403) with error `code` (UnauthorizedOperation) and
               `message`: a permission the caller lacks
    pair       hold a request until a rival with the same `key` arrives (see
               wait_for_rival), at most `seconds`; STATS["paired"] counts the pairs
    hide       new instances are invisible for `seconds` after RunInstances answered:
               requests naming them get InvalidInstanceID.NotFound and DescribeInstances
               leaves them out (EC2's eventual consistency); counted as hide:ec2:ACTION

`rate` is the chance a matching request gets the fault (default 1). `when: "after"`
forwards the request first and then fails the answer: the cloud did the work but the
client never hears of it (status and reset only). `spare_last` (default true) never
fails the SDK's last attempt (the `amz-sdk-request: attempt=N; max=M` header), so a
single run can converge; set it false to fail calls outright.

ClientToken idempotency, the lab's normal eventual consistency, state timings and EC2's
throttling buckets are the lab cloud's own (scripts/labcloud.py); the proxy only adds
faults on top.

GET /__proxy/stats answers JSON: requests per service/action, faults injected, the most
requests seen in any one second per region, and retried attempts.
"""

import http.client
import json
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
CONFIG = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {"rules": []}
RULES = CONFIG.get("rules", [])
RNG = random.Random(CONFIG.get("seed", 1))
LOCK = threading.Lock()

STATS = {
    "requests": Counter(),  # "service:Action" -> count
    "faults": Counter(),  # "kind:service:Action" -> count
    "retries": 0,  # attempts after the first
    "max_per_second": {},  # region -> most requests in any one second
    "paired": 0,  # requests a `pair` rule held until their rival arrived
}
PAIRS = {}  # (rule index, key) -> Event set when the rival arrives
WINDOWS = defaultdict(deque)  # region -> arrival times in the last second
HIDDEN = {}  # instance id -> visible-from (monotonic)

SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


def classify(headers, body):
    """(service, region, action) of a request."""
    m = SCOPE.search(headers.get("authorization", ""))
    service, region = (m.group(2), m.group(1)) if m else ("?", "?")
    action = "?"
    if service == "ec2":
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        action = form.get("Action", ["?"])[0]
    elif service == "dynamodb":
        action = headers.get("x-amz-target", "?").rsplit(".", 1)[-1]
    else:
        action = headers.get("__method__", "?")
    return service, region, action


def attempt(headers):
    """(attempt, max) from the SDK's amz-sdk-request header, (1, 1) without one."""
    h = headers.get("amz-sdk-request", "")
    a = re.search(r"attempt=(\d+)", h)
    m = re.search(r"max=(\d+)", h)
    return (int(a.group(1)) if a else 1, int(m.group(1)) if m else 1)


def matches(rule, service, region, action, headers):
    for key, have in (("service", service), ("region", region), ("action", action)):
        want = rule.get(key)
        if want is not None and have not in (want if isinstance(want, list) else [want]):
            return False
    n, most = attempt(headers)
    if rule.get("spare_last", True) and n >= most and rule["fault"] not in ("delay", "hide", "pair", "refuse"):
        return False
    with LOCK:
        return RNG.random() < rule.get("rate", 1.0)


def wait_for_rival(index, rule, body):
    """A `pair` rule: the first request whose body holds `body_contains` and whose
    `key` (a regex, group 1) is K waits until a second one with key K arrives (or
    `seconds` pass); the second goes on at once. Two operators' claims of one hostname
    thus reach the cloud together, however their processes were scheduled."""
    text = body.decode("utf-8", "replace")
    if rule.get("body_contains", "") not in text:
        return
    m = re.search(rule["key"], text)
    if not m:
        return
    with LOCK:
        event = PAIRS.get((index, m.group(1)))
        if event is None:
            event = PAIRS[(index, m.group(1))] = threading.Event()
            first = True
        else:
            first = False
            if not event.is_set():
                event.set()
                STATS["paired"] += 1
    if first:
        event.wait(rule.get("seconds", 10))


def error_body(service, code, message):
    """(status, content-type, body) of an AWS error in the service's own format."""
    if service == "dynamodb":
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})
        return "application/x-amz-json-1.0", body.encode()
    if service == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
            f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>faultproxy</RequestID></Response>"
        )
        return "text/xml", body.encode()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><ErrorResponse><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>faultproxy</RequestId></ErrorResponse>"
    )
    if service == "s3":
        body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return "text/xml", body.encode()


THROTTLE = {
    "ec2": (503, "RequestLimitExceeded"),
    "dynamodb": (400, "ThrottlingException"),
    "s3": (503, "SlowDown"),
    "route53": (400, "Throttling"),
}


def request_ids(body):
    """Instance ids a form-encoded EC2 request names."""
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return {v for k, vs in form.items() for v in vs if v.startswith("i-")}


def hidden_now():
    now = time.monotonic()
    with LOCK:
        return {i for i, t in HIDDEN.items() if t > now}


def strip_hidden(body, hidden):
    """A DescribeInstances answer without the hidden instances, and how many it left out."""
    root = ET.fromstring(body)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    ET.register_namespace("", ns.strip("{}"))
    rs = root.find(f"{ns}reservationSet")
    if rs is None:
        return body, 0
    removed = 0
    for res in list(rs):
        items = res.find(f"{ns}instancesSet")
        for item in list(items) if items is not None else []:
            if item.findtext(f"{ns}instanceId") in hidden:
                items.remove(item)
                removed += 1
        if items is not None and len(items) == 0:
            rs.remove(res)
    return ET.tostring(root, xml_declaration=True, encoding="UTF-8"), removed


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def forward(self, body):
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding",)}
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, resp.getheaders(), data

    def handle_one(self):
        if self.path == "/__proxy/stats":
            with LOCK:
                data = json.dumps(STATS, sort_keys=True).encode()
            return self.reply(200, [("Content-Type", "application/json")], data)
        body = self.read_body()
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        hdrs["__method__"] = self.command
        service, region, action = classify(hdrs, body)
        n, _ = attempt(hdrs)
        now = time.monotonic()
        with LOCK:
            STATS["requests"][f"{service}:{action}"] += 1
            STATS["retries"] += 1 if n > 1 else 0
            win = WINDOWS[region]
            win.append(now)
            while win and win[0] <= now - 1.0:
                win.popleft()
            STATS["max_per_second"][region] = max(STATS["max_per_second"].get(region, 0), len(win))

        after = None
        for index, rule in enumerate(RULES):
            kind = rule["fault"]
            if kind == "hide" or not matches(rule, service, region, action, hdrs):
                continue
            if kind == "pair":
                wait_for_rival(index, rule, body)
                continue
            with LOCK:
                STATS["faults"][f"{kind}:{service}:{action}"] += 1
            if kind == "blackhole":
                time.sleep(3600)
                return self.reset()
            if kind == "delay":
                time.sleep(rule.get("seconds", 1))
                continue
            if rule.get("when") == "after":
                after = rule
                break
            if kind == "reset":
                return self.reset()
            if kind == "status":
                ctype, b = error_body(service, "InternalError", "injected by faultproxy")
                return self.reply(rule.get("status", 500), [("Content-Type", ctype)], b)
            if kind == "refuse":
                ctype, b = error_body(service, rule.get("code", "UnauthorizedOperation"),
                                      rule.get("message", "You are not authorized to perform this operation."))
                return self.reply(rule.get("status", 403), [("Content-Type", ctype)], b)
            if kind == "throttle":
                status, code = THROTTLE.get(service, (503, "Throttling"))
                ctype, b = error_body(service, code, "Rate exceeded (faultproxy)")
                return self.reply(status, [("Content-Type", ctype)], b)

        hide = next((r for r in RULES if r["fault"] == "hide"), None)
        hidden = hidden_now() if hide and service == "ec2" else set()
        if hidden and action != "DescribeInstances" and request_ids(body) & hidden:
            with LOCK:
                STATS["faults"][f"hide:ec2:{action}"] += 1
            ctype, b = error_body("ec2", "InvalidInstanceID.NotFound", "The instance ID does not exist (faultproxy)")
            return self.reply(400, [("Content-Type", ctype)], b)

        status, headers, data = self.forward(body)
        if hide and service == "ec2" and action == "RunInstances" and status == 200:
            ids = re.findall(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", data)
            with LOCK:
                for i in ids:
                    HIDDEN[i.decode()] = time.monotonic() + hide.get("seconds", 3)
        if hidden and action == "DescribeInstances" and status == 200:
            data, removed = strip_hidden(data, hidden)
            if removed:
                with LOCK:
                    STATS["faults"]["hide:ec2:DescribeInstances"] += removed
        if after:
            if after["fault"] == "reset":
                return self.reset()
            ctype, b = error_body(service, "InternalError", "injected by faultproxy after the work was done")
            return self.reply(after.get("status", 500), [("Content-Type", ctype)], b)
        self.reply(status, headers, data)

    def handle_any(self):
        try:
            self.handle_one()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
