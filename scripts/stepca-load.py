#!/usr/bin/env python3
"""Issuance and renewal load against step-ca for scripts/bench-stepca.sh.

Issuance (default): prepares COUNT P-256 CSRs and one-time JWK provisioner
tokens (ES256, signed with the provisioner key decrypted by `step crypto
jwe decrypt`) before measuring, then sends them to /1.0/sign over CLIENTS
keep-alive connections for at most DURATION seconds and prints the count,
the errors, the elapsed time and step-ca's CPU time over the sending (from
/proc/PID/stat).

Renewal (--rekey): before measuring, enrolls COUNT clients through
/1.0/sign as above (certificate and P-256 key written 0600 under WORKDIR)
and prepares for each a new P-256 key, a CSR and an ssl.SSLContext holding
its current certificate. Then, for at most DURATION seconds with CLIENTS
in flight, each renewal opens a NEW TLS connection (full handshake,
presenting the current certificate), sends POST /1.0/rekey {"csr": PEM}
with Connection: close and reads the answer; it prints the same figures
plus latency p50/p99 (dial to answer). Python's ssl is used because the
handshake and the I/O run in OpenSSL with the GIL released, so threads
overlap; the CSRs and contexts are made beforehand to keep the load
generator's own CPU out of the way.

--rekey-prepare WORKDIR stops after the enrollment and writes each
client's rekey body to WORKDIR/rekey-I.json for the Go load generator
scripts/stepca-rekey, which bench-stepca.sh uses by default: this one
drives step-ca to only about a quarter of its core from one core.

--sign-prepare WORKDIR stops after making the CSRs and tokens and writes
each /1.0/sign body to WORKDIR/sign-I.json for "stepca-rekey -sign", the
Go sender bench-stepca.sh uses for issuance by default (the Python sender
drove step-ca to only 29-40% of its core).

usage: stepca-load.py [--rekey WORKDIR | --rekey-prepare WORKDIR | --sign-prepare WORKDIR] CA_URL ROOT PROVISIONER JWK PID COUNT CLIENTS DURATION
"""
import base64, json, os, socket, ssl, sys, threading, time, uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

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


def measured(pid, clients, run):
    """Runs run on clients threads; returns the wall seconds and the
    server's CPU seconds they took."""
    c0, t1 = cpu(pid), time.time()
    ts = [threading.Thread(target=run) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.time() - t1, cpu(pid) - c0


def main():
    args = sys.argv[1:]
    rekey_dir, prepare_only, sign_dir = None, False, None
    if args and args[0] == "--sign-prepare":
        sign_dir, args = args[1], args[2:]
    if args and args[0] in ("--rekey", "--rekey-prepare"):
        prepare_only = args[0] == "--rekey-prepare"
        rekey_dir, args = args[1], args[2:]
    url, root, prov, jwk_path, pid, count, clients, duration = args[:8]
    pid, count, clients, duration = int(pid), int(count), int(clients), float(duration)
    jwk = json.load(open(jwk_path))
    key = ec.EllipticCurvePrivateNumbers(
        b64u_int(jwk["d"]), ec.EllipticCurvePublicNumbers(b64u_int(jwk["x"]), b64u_int(jwk["y"]), ec.SECP256R1())
    ).private_key()
    aud = url.rstrip("/") + "/1.0/sign"
    work, keys = [], []
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
        keys.append(k)
    print(f"prepared {count} CSRs and tokens in {time.time() - t0:.1f}s (not measured)", flush=True)
    if sign_dir is not None:
        for i, body in enumerate(work):
            with open(os.path.join(sign_dir, f"sign-{i}.json"), "w") as f:
                f.write(body)
        return
    if rekey_dir is not None:
        return rekey(url, root, aud, work, keys, rekey_dir, pid, count, clients, duration, prepare_only)
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

    el, c = measured(pid, clients, run)
    print(f"step-ca issued {state['ok']} errors {state['err']} in {el:.2f}s, server CPU {c:.2f}s, "
          f"{state['ok'] / el:.0f}/s, per server CPU-second {state['ok'] / c if c else 0:.0f}")
    if state["first"]:
        print("first error:", state["first"])


def rekey(url, root, aud, work, keys, workdir, pid, count, clients, duration, prepare_only):
    """Enrolls every client (not measured), then measures /1.0/rekey."""
    t0 = time.time()
    local = threading.local()

    def enroll(i):
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        r = s.post(aud, data=work[i], headers={"Content-Type": "application/json"}, timeout=60, verify=root)
        if r.status_code != 201:
            raise RuntimeError(f"enrolling client {i}: status {r.status_code}: {r.text[:200]}")
        path = os.path.join(workdir, f"rekey-{i}.pem")
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(r.json()["crt"])
            f.write(keys[i].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()).decode())
        os.replace(path + ".tmp", path)
        ctx = ssl.create_default_context(cafile=root)
        ctx.load_cert_chain(path)
        name = f"svc-{i}.bench.example.org"
        k = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
               .sign(k, hashes.SHA256()))
        body = json.dumps({"csr": csr.public_bytes(serialization.Encoding.PEM).decode()}).encode()
        if prepare_only:
            with open(os.path.join(workdir, f"rekey-{i}.json"), "wb") as f:
                f.write(body)
        return ctx, body

    with ThreadPoolExecutor(8) as ex:
        prepared = list(ex.map(enroll, range(count)))
    print(f"enrolled {count} clients and prepared their rekey CSRs in {time.time() - t0:.1f}s (not measured)",
          flush=True)
    if prepare_only:
        return
    u = urlsplit(url)
    host, port = u.hostname, u.port or 443
    addr = ("127.0.0.1", port)

    def one(i):
        ctx, body = prepared[i]
        start = time.perf_counter()
        with socket.create_connection(addr, timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as c:
                c.sendall((f"POST /1.0/rekey HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
                chunks = []
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    chunks.append(b)
        el = time.perf_counter() - start
        resp = b"".join(chunks)
        head, _, payload = resp.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1].decode() if b" " in head else "?"
        if status != "201" or b'"crt"' not in payload:
            raise RuntimeError(f"status {status}: {payload[:200]!r}")
        return el

    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "err": 0, "first": None, "lat": []}
    deadline = time.time() + duration

    def run():
        while time.time() < deadline:
            with lock:
                i = state["next"]
                if i >= count:
                    return
                state["next"] = i + 1
            try:
                el, msg = one(i), None
            except Exception as e:  # counted and reported, the run goes on
                el, msg = None, repr(e)
            with lock:
                if msg is None:
                    state["ok"] += 1
                    state["lat"].append(el)
                else:
                    state["err"] += 1
                    state["first"] = state["first"] or msg

    el, c = measured(pid, clients, run)
    lat = sorted(state["lat"])

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0

    print(f"step-ca renewed {state['ok']} errors {state['err']} in {el:.2f}s, server CPU {c:.2f}s "
          f"({100 * c / el:.0f}% of one core), {state['ok'] / el:.0f}/s, latency p50 {q(0.5):.1f}ms "
          f"p99 {q(0.99):.1f}ms, per server CPU-second {state['ok'] / c if c else 0:.0f}")
    if state["first"]:
        print("first error:", state["first"])


if __name__ == "__main__":
    main()
