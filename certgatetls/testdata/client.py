"""Call a URL through the certgate gateway with a certgate-issued certificate.

Usage: client.py URL CERT KEY BUNDLE   (CERT and KEY may be "" for none)

Prints one JSON object: {"lib", "status", "body"} for an HTTP answer, or
{"lib", "error"} when there was none (e.g. the handshake was refused).
Uses requests when it is installed, else the standard library.
"""
import json
import ssl
import sys

url, cert, key, bundle = sys.argv[1:5]

try:
    import requests
except ImportError:
    requests = None
lib = "requests" if requests else "urllib"


def main():
    if requests:
        r = requests.get(url, cert=(cert, key) if cert else None, verify=bundle, timeout=10)
        return {"lib": lib, "status": r.status_code, "body": r.text}
    import urllib.error
    import urllib.request
    ctx = ssl.create_default_context(cafile=bundle)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key)
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            return {"lib": lib, "status": resp.status, "body": resp.read().decode()}
    except urllib.error.HTTPError as e:
        return {"lib": lib, "status": e.code, "body": e.read().decode()}


try:
    result = main()
except Exception as e:  # the caller reads the reason from the JSON
    result = {"lib": lib, "error": "%s: %s" % (type(e).__name__, e)}
print(json.dumps(result))
