#!/usr/bin/python3
"""Checks Warden's tokens with independent libraries (Debian python3-jwcrypto, cbor2, cryptography).

Usage: token_interop.py DIR   (DIR holds jwks.json, token.jwt, proof.jwt, token.cwt, expected.json)
"""
import base64
import hashlib
import json
import sys

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwcrypto import jwk, jws, jwt


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main(d: str) -> int:
    expected = json.load(open(f"{d}/expected.json"))
    keyset = jwk.JWKSet.from_json(open(f"{d}/jwks.json").read())
    token = open(f"{d}/token.jwt").read().strip()

    # 1. JWT verifies with our JWKS (jwcrypto picks the key by kid).
    t = jwt.JWT(jwt=token, key=keyset, algs=["ES256"], check_claims={"aud": expected["aud"]})
    claims = json.loads(t.claims)
    header = json.loads(t.header)
    assert header["typ"] == "at+jwt", header
    assert claims["sub"] == expected["sub"], claims
    key = keyset.get_key(header["kid"])
    assert key.thumbprint() == header["kid"], "kid is the RFC 7638 thumbprint"

    # 2. DPoP proof: signature with the embedded jwk, ath, and cnf.jkt == thumbprint(jwk).
    proof = open(f"{d}/proof.jwt").read().strip()
    p = jws.JWS()
    p.deserialize(proof)
    ph = p.jose_header
    assert ph["typ"] == "dpop+jwt", ph
    pkey = jwk.JWK(**ph["jwk"])
    assert not pkey.has_private
    p.verify(pkey, alg="ES256")
    pc = json.loads(p.payload)
    assert pc["htm"] == expected["htm"] and pc["htu"] == expected["htu"], pc
    assert pc["ath"] == b64url(hashlib.sha256(token.encode()).digest()), "ath"
    assert claims["cnf"]["jkt"] == pkey.thumbprint(), "cnf.jkt"

    # 3. COSE_Sign1 CWT: rebuild Sig_structure from the received protected bytes.
    raw = open(f"{d}/token.cwt", "rb").read()
    msg = cbor2.loads(raw)
    assert isinstance(msg, cbor2.CBORTag) and msg.tag == 18, msg
    protected, unprotected, payload, signature = msg.value
    assert cbor2.loads(protected) == {1: -7}, protected
    kid = unprotected[4].decode()
    cwt_key = keyset.get_key(kid)
    pub = cwt_key.get_op_key("verify")
    tbs = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    pub.verify(der, tbs, ec.ECDSA(hashes.SHA256()))
    cwt_claims = cbor2.loads(payload)
    assert cwt_claims[2] == expected["sub"] and cwt_claims[3] == expected["aud"], cwt_claims
    assert cwt_claims[265] == expected["eat_profile"], cwt_claims
    cose_key = cwt_claims[8][1]
    assert cose_key[1] == 2 and cose_key[-1] == 1, cose_key
    try:
        pub.verify(der, tbs + b"x", ec.ECDSA(hashes.SHA256()))
        raise AssertionError("tampered Sig_structure verified")
    except InvalidSignature:
        pass
    print("interop OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
