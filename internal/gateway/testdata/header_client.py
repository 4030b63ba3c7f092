# Sends one GET with the header fields given as NAME=VALUE arguments, over
# HTTP/1.1 with requests or over HTTP/2 with httpx, presenting a client
# certificate, and prints the response body.
# usage: header_client.py h1|h2 URL CERT KEY CA NAME=VALUE...
import sys

proto, url, cert, key, ca = sys.argv[1:6]
headers = [tuple(a.split("=", 1)) for a in sys.argv[6:]]
if proto == "h2":
    import httpx

    with httpx.Client(http2=True, http1=False, cert=(cert, key), verify=ca) as c:
        r = c.get(url, headers=headers)
        assert r.http_version == "HTTP/2", r.http_version
else:
    import requests

    r = requests.get(url, headers=dict(headers), cert=(cert, key), verify=ca)
r.raise_for_status()
sys.stdout.write(r.text)
