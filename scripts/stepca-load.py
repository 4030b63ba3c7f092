#!/usr/bin/env python3
"""Issuance load against step-ca's /1.0/sign for scripts/bench-stepca.sh.

Prepares COUNT P-256 CSRs and one-time JWK provisioner tokens (ES256,
signed with the provisioner key decrypted by `step crypto jwe decrypt`)
before measuring, then sends them over CLIENTS keep-alive connections for
at most DURATION seconds and prints the count, the errors, the elapsed
time and step-ca's CPU time over the sending (from /proc/PID/stat).

usage: stepca-load.py CA_URL ROOT PROVISIONER JWK PID COUNT CLIENTS DURATION
"""
import base64, json, os, sys, threading, time, uuid

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_int(s):
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def main():
    url, root, prov, jwk_path, pid, count, clients, duration = sys.argv[1:9]
    pid, count, clients, duration = int(pid), int(count), int(clients), float(duration)
    jwk = json.load(open(jwk_path))
    key = ec.EllipticCurvePrivateNumbers(
        b64u_int(jwk["d"]), ec.EllipticCurvePublicNumbers(b64u_int(jwk["x"]), b64u_int(jwk["y"]), ec.SECP256R1())
    ).private_key()
    aud = url.rstrip("/") + "/1.0/sign"
    work = []
    t0 = time.time()
    for i in range(count):
        name = f"svc-{i}.bench.example.org"
        k = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
               .sign(k, hashes.SHA256()))
        now = int(time.time())
        hdr = {"alg": "ES256", "kid": jwk["kid"], "typ": "JWT"}
        claims = {"iss": prov, "aud": aud, "sub": name, "sans": [name], "iat": now, "nbf": now - 5,
                  "exp": now + 600, "jti": uuid.uuid4().hex}
        signing = b64u(json.dumps(hdr).encode()) + "." + b64u(json.dumps(claims).encode())
        r, s = decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
        tok = signing + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        work.append(json.dumps({"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "ott": tok}))
    print(f"prepared {count} CSRs and tokens in {time.time() - t0:.1f}s (not measured)", flush=True)
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "err": 0, "first": None}
    deadline = time.time() + duration

    def run():
        s = requests.Session()
        s.verify = root
        while time.time() < deadline:
            with lock:
                i = state["next"]
                if i >= count:
                    return
                state["next"] = i + 1
            try:
                r = s.post(aud, data=work[i], headers={"Content-Type": "application/json"}, timeout=30, verify=root)
                ok = r.status_code == 201 and "crt" in r.json()
                msg = None if ok else f"status {r.status_code}: {r.text[:200]}"
            except Exception as e:  # counted and reported, the run goes on
                ok, msg = False, repr(e)
            with lock:
                if ok:
                    state["ok"] += 1
                else:
                    state["err"] += 1
                    state["first"] = state["first"] or msg

    c0, t1 = cpu(pid), time.time()
    ts = [threading.Thread(target=run) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    el, c = time.time() - t1, cpu(pid) - c0
    print(f"step-ca issued {state['ok']} errors {state['err']} in {el:.2f}s, server CPU {c:.2f}s, "
          f"{state['ok'] / el:.0f}/s, per server CPU-second {state['ok'] / c if c else 0:.0f}")
    if state["first"]:
        print("first error:", state["first"])


if __name__ == "__main__":
    main()
