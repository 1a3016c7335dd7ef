#!/usr/bin/python3
"""A Shared Signals receiver as a relying party would run one, with only python3-jwcrypto.

  ssf_receiver.py push --port P --jwks URL --ca FILE --out FILE [--issuer ISS]
      Serves RFC 8935 push delivery on 127.0.0.1:P. Each POSTed SET is verified against the
      issuer's JWKS (typ secevent+jwt, ES256, iss); a verified one is answered 202 and appended
      to FILE as one JSON line {"jti", "iss", "aud", "iat", "sub_id", "events", "received_at"};
      a bad one 400 with an RFC 8935 error body and a line {"error": ...}.
  ssf_receiver.py verify --jwks URL --ca FILE [--issuer ISS] < sets.json
      Verifies the SETs of an RFC 8936 poll response ({"sets": {jti: jwt}}) and prints one JSON
      line per SET as above.
Used by tests/e2e/ssf_e2e_test.cpp and bench/bench_ssf.cpp.
"""
import argparse
import http.server
import json
import ssl
import sys
import threading
import time
import urllib.request

from jwcrypto import jwk, jws

MAX_BODY = 64 * 1024


class Verifier:
    def __init__(self, jwks_url, ca, issuer):
        self.jwks_url = jwks_url
        self.ctx = ssl.create_default_context(cafile=ca)
        self.issuer = issuer
        self.keys = None
        self.lock = threading.Lock()

    def _load(self):
        with urllib.request.urlopen(self.jwks_url, context=self.ctx, timeout=5) as r:
            self.keys = jwk.JWKSet.from_json(r.read().decode())

    def verify(self, token):
        with self.lock:
            if self.keys is None:
                self._load()
            keys = self.keys
        obj = jws.JWS()
        obj.deserialize(token)
        header = obj.jose_header
        if header.get("typ") != "secevent+jwt":
            raise ValueError("typ is %r, not secevent+jwt" % header.get("typ"))
        if header.get("alg") != "ES256":
            raise ValueError("alg is %r, not ES256" % header.get("alg"))
        key = keys.get_key(header.get("kid"))
        if key is None:  # a key rotated in since the set was fetched
            with self.lock:
                self._load()
                key = self.keys.get_key(header.get("kid"))
            if key is None:
                raise ValueError("no key %r in the issuer's JWKS" % header.get("kid"))
        obj.verify(key, alg="ES256")
        claims = json.loads(obj.payload)
        if self.issuer and claims.get("iss") != self.issuer:
            raise ValueError("iss is %r, not %r" % (claims.get("iss"), self.issuer))
        for name in ("jti", "iat", "events"):
            if name not in claims:
                raise ValueError("claim %s missing" % name)
        if "exp" in claims:
            raise ValueError("a SET has no exp (RFC 8417 section 2.2)")
        return {k: claims.get(k) for k in ("jti", "iss", "aud", "iat", "sub_id", "events", "txn")}


def push(args):
    verifier = Verifier(args.jwks, args.ca, args.issuer)
    out = open(args.out, "a", buffering=1)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def answer(self, status, body=b""):
            self.send_response(status)
            if body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self.answer(413)
            body = self.rfile.read(length).decode("ascii", "replace")
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/secevent+jwt":
                return self.answer(400, json.dumps({"err": "invalid_request",
                                                    "description": "content type"}).encode())
            if args.authorization and self.headers.get("Authorization") != args.authorization:
                return self.answer(401)
            try:
                record = verifier.verify(body)
            except Exception as e:  # noqa: BLE001 - every failure is a refused SET
                with lock:
                    out.write(json.dumps({"error": str(e)}) + "\n")
                return self.answer(400, json.dumps({"err": "invalid_request",
                                                    "description": str(e)}).encode())
            record["received_at"] = time.time()
            with lock:
                out.write(json.dumps(record) + "\n")
            self.answer(202)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening", flush=True)
    server.serve_forever()


def verify(args):
    verifier = Verifier(args.jwks, args.ca, args.issuer)
    doc = json.load(sys.stdin)
    for jti, token in doc.get("sets", {}).items():
        record = verifier.verify(token)
        if record["jti"] != jti:
            raise SystemExit("poll: set under %r has jti %r" % (jti, record["jti"]))
        print(json.dumps(record))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    for name in ("push", "verify"):
        s = sub.add_parser(name)
        s.add_argument("--jwks", required=True)
        s.add_argument("--ca", required=True)
        s.add_argument("--issuer", default="")
        if name == "push":
            s.add_argument("--port", type=int, required=True)
            s.add_argument("--out", required=True)
            s.add_argument("--authorization", default="")
    args = p.parse_args()
    push(args) if args.mode == "push" else verify(args)


if __name__ == "__main__":
    main()
