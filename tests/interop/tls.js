'use strict';
// grpc-js over TLS against an Echo server that requires client certificates (mutual TLS).
//
//   node tls.js --target 127.0.0.1:PORT --ca CA.pem --cert CLIENT.pem --key CLIENT-KEY.pem [--case NAME]... [--list]
//
// Prints one JSON line per case; exits 1 if any failed.
const fs = require('fs');
const { grpc, loadEcho } = require('./lib/echo');

const { Echo } = loadEcho();
const { status } = grpc;

class CaseFailure extends Error {}
function check(condition, message) { if (!condition) throw new CaseFailure(message); }
function codeName(code) { return Object.keys(status).find((k) => status[k] === code) ?? String(code); }

function say(client, request) {
  return new Promise((resolve, reject) => {
    client.Say(request, { deadline: new Date(Date.now() + 15000) }, (e, r) => (e ? reject(e) : resolve(r)));
  });
}

const cases = {
  async mutual_tls(opts) {
    const creds = grpc.credentials.createSsl(opts.ca, opts.key, opts.cert);
    const client = new Echo(opts.target, creds);
    try {
      const reply = await say(client, { message: 'over mTLS' });
      check(reply.message === 'over mTLS', `reply message ${JSON.stringify(reply.message)}`);
    } finally { client.close(); }
  },

  async no_client_certificate_is_refused(opts) {
    const client = new Echo(opts.target, grpc.credentials.createSsl(opts.ca));
    try {
      let err = null;
      try { await say(client, { message: 'no cert' }); } catch (e) { err = e; }
      check(err, 'a call without a client certificate succeeded');
      check(err.code === status.UNAVAILABLE, `expected UNAVAILABLE without a client certificate, got ${codeName(err.code)}: ${err.details}`);
    } finally { client.close(); }
  },

  async untrusted_server_is_refused(opts) {
    // Trusting only some other CA (our own client certificate stands in for one) must fail the handshake.
    const client = new Echo(opts.target, grpc.credentials.createSsl(opts.cert, opts.key, opts.cert));
    try {
      let err = null;
      try { await say(client, { message: 'wrong ca' }); } catch (e) { err = e; }
      check(err, 'a call to a server signed by an untrusted CA succeeded');
      check(err.code === status.UNAVAILABLE, `expected UNAVAILABLE for an untrusted server, got ${codeName(err.code)}: ${err.details}`);
    } finally { client.close(); }
  },
};

async function main() {
  const argv = process.argv.slice(2);
  const opts = { target: null };
  const names = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--list') { console.log(Object.keys(cases).join('\n')); return 0; }
    if (a === '--target') opts.target = argv[++i];
    else if (a === '--ca') opts.ca = fs.readFileSync(argv[++i]);
    else if (a === '--cert') opts.cert = fs.readFileSync(argv[++i]);
    else if (a === '--key') opts.key = fs.readFileSync(argv[++i]);
    else if (a === '--case') names.push(argv[++i]);
    else { console.error(`unknown argument ${a}`); return 2; }
  }
  if (!opts.target || !opts.ca || !opts.cert || !opts.key) { console.error('--target, --ca, --cert and --key are required'); return 2; }
  const run = names.length ? names : Object.keys(cases);
  const unknown = run.filter((n) => !cases[n]);
  if (unknown.length) { console.error(`unknown case(s): ${unknown.join(', ')}`); return 2; }
  let failures = 0;
  for (const name of run) {
    const started = Date.now();
    try {
      await cases[name](opts);
      console.log(JSON.stringify({ case: name, ok: true, ms: Date.now() - started }));
    } catch (err) {
      failures++;
      const error = err instanceof CaseFailure ? err.message : `unexpected ${err.code !== undefined ? codeName(err.code) + ': ' : ''}${err.details ?? err.message}`;
      console.log(JSON.stringify({ case: name, ok: false, ms: Date.now() - started, error }));
    }
  }
  return failures ? 1 : 0;
}

main().then((code) => process.exit(code), (err) => { console.error(err); process.exit(3); });
