#!/usr/bin/env python3
"""Local stand-ins for AWS, for esproxy's SigV4 integration tests. Listens on loopback only.

One process serves, each on its own free port of --host (a loopback address):
  verifier   an HTTP front for osmem-server that checks every request's SigV4 signature with
             botocore (a second implementation, not esproxy's) from the exact bytes that
             arrived, and answers 403 on any mismatch, as AWS does: unknown or expired key,
             wrong session token, region or service, X-Amz-Date more than 5 minutes off,
             x-amz-content-sha256 missing, UNSIGNED-PAYLOAD or not the hash of the body,
             a chunked body, or a signature that differs. Good requests go to osmem-server.
  sts        STS AssumeRole (its own signature checked the same way) and
             AssumeRoleWithWebIdentity (the token file's contents checked).
  imds       EC2 IMDSv2: a token from PUT /latest/api/token is required for every GET.
  container  ECS/EKS container credentials (Authorization token checked).
  keyurl     Arkime's credential URL over HTTPS, refusing clients without a certificate signed
             by --client-ca.
Every temporary key it hands out expires --ttl seconds later; the verifier refuses it after that.
The first stdout line is a JSON banner with the ports; GET /stats on the verifier port (with
header X-Stand-In: stats) answers the counts as JSON.
"""
import argparse
import datetime
import hashlib
import http.client
import http.server
import json
import secrets
import ssl
import sys
import threading
import time
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LOCK = threading.Lock()
KEYS = {}  # access key id -> (secret, token or None, expiry epoch or None)
STATS = {"verified": 0, "refused": 0, "reasons": [], "keys_used": [], "issued": 0,
         "by_source": {}, "paths": []}
ARGS = None


def issue(source):
    """A new temporary key pair that expires --ttl seconds from now."""
    akid = "ASIA" + secrets.token_hex(8).upper()
    secret = secrets.token_urlsafe(30)
    token = "tok-" + secrets.token_urlsafe(24)
    expiry = time.time() + ARGS.ttl
    with LOCK:
        KEYS[akid] = (secret, token, expiry)
        STATS["issued"] += 1
        STATS["by_source"][source] = STATS["by_source"].get(source, 0) + 1
    return akid, secret, token, expiry


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_query(query):
    """The query as AWS reads it: %XX decoded ('+' stays '+'), then re-encoded by botocore."""
    pairs = {}
    for part in query.split("&") if query else []:
        k, _, v = part.partition("=")
        pairs[urllib.parse.unquote(k)] = urllib.parse.unquote(v)
    return pairs


def verify(method, target, headers, body, service, region, payload_header=True):
    """None when the request is correctly signed, else why not. `payload_header`: the
    x-amz-content-sha256 header is required (OpenSearch; the SDK's STS calls hash the payload
    without sending it)."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    akid, date, reg, svc, term = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    if (reg, svc, term) != (region, service, "aws4_request"):
        return f"scope {reg}/{svc}/{term}, expected {region}/{service}"
    with LOCK:
        key = KEYS.get(akid)
    if key is None:
        return f"unknown access key {akid}"
    secret, token, expiry = key
    if expiry is not None and time.time() > expiry:
        return f"expired key {akid}"
    if token is not None and headers.get("x-amz-security-token") != token:
        return "missing or wrong x-amz-security-token"
    amz_date = headers.get("x-amz-date", "")
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return f"bad x-amz-date {amz_date!r}"
    if abs(time.time() - t.timestamp()) > 300 or date != amz_date[:8]:
        return "x-amz-date out of range"
    sha = headers.get("x-amz-content-sha256")
    if payload_header and (sha is None or sha == "UNSIGNED-PAYLOAD"):
        return f"x-amz-content-sha256 is {sha!r}"
    if sha is not None and sha != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 is not the hash of the body that arrived"
    for h in ("host", "x-amz-date") + (("x-amz-content-sha256",) if payload_header else ()):
        if h not in signed:
            return f"{h} not signed"
    if "transfer-encoding" in headers:
        return "chunked body (SigV4 needs the length)"
    path, _, query = target.partition("?")
    req = AWSRequest(method=method, url="http://" + headers["host"] + path, data=body,
                     headers={h: headers.get(h, "") for h in signed},
                     params=canonical_query(query))
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(akid, secret, token), service, region)
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if expected != fields["Signature"]:
        return "signature mismatch"
    with LOCK:
        if akid not in STATS["keys_used"]:
            STATS["keys_used"].append(akid)
    return None


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, body, ctype="application/json"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a health check's timeout); nothing to tell it


class Verifier(Quiet):
    def handle_one(self):
        body = self.body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        if headers.get("x-stand-in") == "stats":
            with LOCK:
                return self.answer(200, json.dumps(STATS))
        why = verify(self.command, self.path, headers, body, ARGS.service, ARGS.region)
        with LOCK:
            if why:
                STATS["refused"] += 1
                STATS["reasons"].append(f"{self.command} {self.path}: {why}")
            else:
                STATS["verified"] += 1
        if why:
            return self.answer(403, json.dumps({"message": why}))
        conn = http.client.HTTPConnection(ARGS.osmem_host, ARGS.osmem_port, timeout=60)
        fwd = {k: v for k, v in self.headers.items()
               if k.lower() in ("content-type", "content-encoding")}
        conn.request(self.command, self.path, body=body, headers=fwd)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        self.answer(r.status, data, r.getheader("Content-Type", "application/json"))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_one


def sts_xml(action, akid, secret, token, expiry):
    extra = ("<SubjectFromWebIdentityToken>esproxy-test</SubjectFromWebIdentityToken>"
             if action == "AssumeRoleWithWebIdentity" else "")
    return (f'<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<{action}Result><Credentials><AccessKeyId>{akid}</AccessKeyId>"
            f"<SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken>"
            f"<Expiration>{iso(expiry)}</Expiration></Credentials>{extra}"
            "<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/esproxy/arkime-esproxy</Arn>"
            "<AssumedRoleId>AROAEXAMPLE:arkime-esproxy</AssumedRoleId></AssumedRoleUser>"
            f"</{action}Result><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>"
            f"</{action}Response>")


class Sts(Quiet):
    def do_POST(self):
        body = self.body()
        form = dict(urllib.parse.parse_qsl(body.decode()))
        action = form.get("Action")
        if action == "AssumeRole":
            headers = {k.lower(): v for k, v in self.headers.items()}
            region = headers.get("authorization", "").split("Credential=")[-1].split("/")[2:3]
            why = verify("POST", self.path, headers, body, "sts", region[0] if region else "?",
                         payload_header=False)
            if why:
                with LOCK:
                    STATS["reasons"].append(f"sts AssumeRole: {why}")
                return self.answer(403, f"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>{why}</Message></Error></ErrorResponse>", "text/xml")
        elif action == "AssumeRoleWithWebIdentity":
            if form.get("WebIdentityToken") != ARGS.web_identity_token:
                return self.answer(403, "<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>", "text/xml")
        else:
            return self.answer(400, f"unsupported action {action}", "text/plain")
        self.answer(200, sts_xml(action, *issue(action)), "text/xml")


class Imds(Quiet):
    tokens = set()

    def do_PUT(self):
        self.body()
        if self.path != "/latest/api/token":
            return self.answer(404, "", "text/plain")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if ttl is None:
            return self.answer(400, "", "text/plain")
        t = secrets.token_urlsafe(16)
        with LOCK:
            Imds.tokens.add(t)
        body = t.encode()
        self.send_response(200)
        self.send_header("X-aws-ec2-metadata-token-ttl-seconds", ttl)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with LOCK:
            ok = self.headers.get("X-aws-ec2-metadata-token") in Imds.tokens
        if not ok:
            return self.answer(401, "", "text/plain")
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == base:
            return self.answer(200, "esproxy-role", "text/plain")
        if self.path == base + "esproxy-role":
            akid, secret, token, expiry = issue("imds")
            return self.answer(200, json.dumps({
                "Code": "Success", "LastUpdated": iso(time.time()), "Type": "AWS-HMAC",
                "AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
                "Expiration": iso(expiry)}))
        self.answer(404, "", "text/plain")


class Container(Quiet):
    def do_GET(self):
        if self.headers.get("Authorization") != ARGS.container_token:
            return self.answer(401, "", "text/plain")
        akid, secret, token, expiry = issue("container")
        self.answer(200, json.dumps({"AccessKeyId": akid, "SecretAccessKey": secret,
                                     "Token": token, "Expiration": iso(expiry)}))


class KeyUrl(Quiet):
    def do_GET(self):
        akid, secret, token, expiry = issue("keyurl")
        # camelCase under "credentials" (esProxy.js reads both cases, wrapped or not).
        self.answer(200, json.dumps({"credentials": {
            "accessKeyId": akid, "secretAccessKey": secret, "sessionToken": token,
            "expiration": iso(expiry)}}))


def serve(handler, tls=None):
    srv = http.server.ThreadingHTTPServer((ARGS.host, 0), handler)
    srv.daemon_threads = True
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--osmem", required=True, help="host:port of osmem-server")
    p.add_argument("--region", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--ttl", type=float, default=900)
    p.add_argument("--static", action="append", default=[], help="AKID:SECRET (no expiry)")
    p.add_argument("--web-identity-token", default="")
    p.add_argument("--container-token", default="")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--client-ca")
    ARGS = p.parse_args()
    host, _, port = ARGS.osmem.rpartition(":")
    ARGS.osmem_host, ARGS.osmem_port = host, int(port)
    for kv in ARGS.static:
        akid, secret = kv.split(":", 1)
        KEYS[akid] = (secret, None, None)
    ports = {"verifier": serve(Verifier), "sts": serve(Sts), "imds": serve(Imds),
             "container": serve(Container)}
    if ARGS.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(ARGS.client_ca)
        ports["keyurl"] = serve(KeyUrl, ctx)
    print(json.dumps(ports), flush=True)
    # Ends with its parent (the test closes our stdin, or dies).
    sys.stdin.read()


if __name__ == "__main__":
    main()
