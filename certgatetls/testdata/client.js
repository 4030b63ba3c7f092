// Call a URL through the certgate gateway with a certgate-issued certificate.
//
// Usage: node client.js URL CERT KEY BUNDLE   (CERT and KEY may be "" for none)
//
// Prints one JSON object: {"status", "body"} for an HTTP answer, or
// {"error"} when there was none (e.g. the handshake was refused).
'use strict';
const fs = require('fs');
const https = require('https');

const [url, cert, key, bundle] = process.argv.slice(2);
const opts = { ca: fs.readFileSync(bundle), minVersion: 'TLSv1.2', agent: false, timeout: 10000 };
if (cert) {
  opts.cert = fs.readFileSync(cert);
  opts.key = fs.readFileSync(key);
}
let done = false;
function report(result) {
  if (!done) {
    done = true;
    console.log(JSON.stringify(result));
  }
}
const req = https.get(url, opts, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk) => { body += chunk; });
  res.on('end', () => report({ lib: 'node https', status: res.statusCode, body }));
  res.on('error', (e) => report({ error: `${e.code || ''} ${e.message}`.trim() }));
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (e) => report({ error: `${e.code || ''} ${e.message}`.trim() }));
