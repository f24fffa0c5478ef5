'use strict';
// A stock grpc-js client that drives a mftest.v1.Echo server (MigrationFabric's own, in the interop
// tests) through every call kind and failure mode a grpc-js user would hit.
//
//   node client.js --target 127.0.0.1:PORT [--case NAME]... [--server-max-message BYTES] [--list]
//
// Prints one JSON line per case ({"case","ok","ms",...,"error"}) and exits 1 if any case failed,
// 2 on bad arguments.
const crypto = require('crypto');
const { grpc, loadEcho, MAX_MESSAGE } = require('./lib/echo');

const MiB = 1024 * 1024;
const { Echo } = loadEcho();
const { status } = grpc;

// ---------------------------------------------------------------------------------------------- helpers
class CaseFailure extends Error {}

function check(condition, message) {
  if (!condition) throw new CaseFailure(message);
}

function equal(actual, expected, what) {
  if (actual !== expected) throw new CaseFailure(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

function codeName(code) {
  return Object.keys(status).find((k) => status[k] === code) ?? String(code);
}

function expectStatus(err, code, what) {
  check(err, `${what}: expected status ${codeName(code)}, but the call succeeded`);
  check(err.code === code, `${what}: expected status ${codeName(code)}, got ${codeName(err.code)} (${err.details})`);
}

function deadlineIn(ms) {
  return new Date(Date.now() + ms);
}

function randomBytes(n) {
  return crypto.randomBytes(n);
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function unary(client, method, request, metadata = new grpc.Metadata(), options = {}) {
  let headers = null;
  let outcome = null;
  // grpc-js calls back before it emits 'status', so settle on 'status' to have the trailers too.
  return new Promise((resolve, reject) => {
    const call = client[method](request, metadata, options, (err, reply) => { outcome = { err, reply }; });
    call.on('metadata', (md) => { headers = md; });
    call.on('status', (s) => {
      const { err, reply } = outcome ?? { err: Object.assign(new Error(s.details), s), reply: null };
      if (err) { err.headers = headers; reject(err); } else resolve({ reply, headers, trailers: s.metadata });
    });
  });
}

// Collects a server stream: resolves {replies, headers, trailers} or rejects with the status error
// (carrying the replies received before it as err.replies).
function collectStream(call) {
  const replies = [];
  let headers = null;
  return new Promise((resolve, reject) => {
    call.on('metadata', (md) => { headers = md; });
    call.on('data', (reply) => replies.push(reply));
    call.on('error', (err) => { err.replies = replies; err.headers = headers; reject(err); });
    call.on('status', (s) => { if (s.code === status.OK) resolve({ replies, headers, trailers: s.metadata }); });
  });
}

function settleOrTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new CaseFailure(`${what}: no outcome within ${ms} ms`)), ms); }),
  ]);
}

async function rejects(promise) {
  try {
    await promise;
    return null;
  } catch (err) {
    if (err instanceof CaseFailure) throw err;
    return err;
  }
}

// ------------------------------------------------------------------------------------------------ cases
const cases = {
  async unary(client) {
    const payload = randomBytes(1024);
    const { reply } = await unary(client, 'Say', { message: 'hello from grpc-js', payload });
    equal(reply.message, 'hello from grpc-js', 'message');
    check(reply.payload.equals(payload), 'payload differs from the one sent');
    equal(reply.index, 0, 'index');
    equal(reply.received_bytes, 1024, 'received_bytes');
  },

  async unary_empty(client) {
    const { reply } = await unary(client, 'Say', {});
    equal(reply.message, '', 'message');
    equal(reply.payload.length, 0, 'payload length');
  },

  async unary_reply_size(client) {
    const { reply } = await unary(client, 'Say', { message: 'sized', payload: randomBytes(10), reply_payload_size: 4096 });
    equal(reply.payload.length, 4096, 'reply payload length');
    const { reply: none } = await unary(client, 'Say', { payload: randomBytes(10), reply_payload_size: -1 });
    equal(none.payload.length, 0, 'reply payload length for reply_payload_size < 0');
  },

  async server_stream(client) {
    const { replies } = await collectStream(client.Expand({ message: 'many', count: 5, reply_payload_size: 100 }));
    equal(replies.length, 5, 'reply count');
    replies.forEach((r, i) => {
      equal(r.index, i, `reply ${i} index`);
      equal(r.message, 'many', `reply ${i} message`);
      equal(r.payload.length, 100, `reply ${i} payload length`);
    });
  },

  async server_stream_empty(client) {
    const { replies } = await collectStream(client.Expand({ message: 'none', count: 0 }));
    equal(replies.length, 0, 'reply count');
  },

  async client_stream(client) {
    const reply = await new Promise((resolve, reject) => {
      const call = client.Collect((err, r) => (err ? reject(err) : resolve(r)));
      for (let i = 0; i < 10; i++) call.write({ message: `part ${i}`, payload: randomBytes(1000), reply_payload_size: -1 });
      call.end();
    });
    equal(reply.index, 10, 'index (number of requests)');
    equal(reply.received_bytes, 10000, 'received_bytes');
  },

  async client_stream_empty(client) {
    const reply = await new Promise((resolve, reject) => {
      const call = client.Collect((err, r) => (err ? reject(err) : resolve(r)));
      call.end();
    });
    equal(reply.index, 0, 'index (number of requests)');
    equal(reply.received_bytes, 0, 'received_bytes');
  },

  async duplex(client) {
    // Ping-pong: each request is written only after the previous reply arrived.
    const call = client.Chat();
    const replies = [];
    let waiter = null;
    call.on('data', (r) => { replies.push(r); if (waiter) waiter(); });
    const ended = new Promise((resolve, reject) => { call.on('error', reject); call.on('status', (s) => { if (s.code === status.OK) resolve(); }); });
    let sent = 0;
    for (let i = 0; i < 10; i++) {
      const payload = randomBytes(100 + i);
      sent += payload.length;
      const arrived = new Promise((resolve) => { waiter = resolve; });
      call.write({ message: `ping ${i}`, payload });
      await settleOrTimeout(arrived, 10000, `reply ${i}`);
      const r = replies[i];
      equal(r.index, i, `reply ${i} index`);
      equal(r.message, `ping ${i}`, `reply ${i} message`);
      check(r.payload.equals(payload), `reply ${i} payload differs`);
      equal(r.received_bytes, sent, `reply ${i} received_bytes`);
    }
    call.end();
    await ended;
    equal(replies.length, 10, 'reply count');
  },

  async deadline_unary(client) {
    const started = Date.now();
    const err = await rejects(unary(client, 'Say', { delay_ms: 10000 }, new grpc.Metadata(), { deadline: deadlineIn(300) }));
    expectStatus(err, status.DEADLINE_EXCEEDED, 'Say past its deadline');
    check(Date.now() - started < 5000, `deadline took ${Date.now() - started} ms to fire`);
  },

  async deadline_server_stream(client) {
    const call = client.Expand({ count: 3, delay_ms: 10000 }, new grpc.Metadata(), { deadline: deadlineIn(300) });
    const err = await rejects(collectStream(call));
    expectStatus(err, status.DEADLINE_EXCEEDED, 'Expand past its deadline');
  },

  async deadline_duplex(client) {
    const call = client.Chat(new grpc.Metadata(), { deadline: deadlineIn(300) });
    const done = collectStream(call);
    call.write({ message: 'slow', delay_ms: 10000 });
    const err = await rejects(done);
    expectStatus(err, status.DEADLINE_EXCEEDED, 'Chat past its deadline');
  },

  async error_unary(client) {
    const message = 'page 42 not found: ünïcödé ✓ 100% (with %25 and\ttab)';
    const err = await rejects(unary(client, 'Say', { fail_code: status.NOT_FOUND, fail_message: message }));
    expectStatus(err, status.NOT_FOUND, 'Say with fail_code');
    equal(err.details, message, 'grpc-message');
  },

  async error_codes(client) {
    for (const code of [status.CANCELLED, status.INVALID_ARGUMENT, status.ALREADY_EXISTS, status.PERMISSION_DENIED,
      status.RESOURCE_EXHAUSTED, status.FAILED_PRECONDITION, status.ABORTED, status.OUT_OF_RANGE,
      status.UNIMPLEMENTED, status.INTERNAL, status.UNAVAILABLE, status.DATA_LOSS, status.UNAUTHENTICATED]) {
      const err = await rejects(unary(client, 'Say', { fail_code: code, fail_message: `code ${code}` }));
      expectStatus(err, code, `Say with fail_code ${code}`);
      equal(err.details, `code ${code}`, `grpc-message for code ${code}`);
    }
  },

  async error_after_stream(client) {
    const err = await rejects(collectStream(client.Expand({ message: 'x', count: 3, fail_code: status.ABORTED, fail_message: 'stopped after three' })));
    expectStatus(err, status.ABORTED, 'Expand with fail_code');
    equal(err.details, 'stopped after three', 'grpc-message');
    equal(err.replies.length, 3, 'replies before the error');
  },

  async error_client_stream(client) {
    const err = await rejects(new Promise((resolve, reject) => {
      const call = client.Collect((e, r) => (e ? reject(e) : resolve(r)));
      call.write({ message: 'ok' });
      call.write({ fail_code: status.INVALID_ARGUMENT, fail_message: 'bad part' });
      call.end();
    }));
    expectStatus(err, status.INVALID_ARGUMENT, 'Collect with fail_code');
    equal(err.details, 'bad part', 'grpc-message');
  },

  async error_duplex(client) {
    const call = client.Chat();
    const done = collectStream(call);
    call.write({ message: 'first' });
    call.write({ fail_code: status.FAILED_PRECONDITION, fail_message: 'second fails' });
    call.end();
    const err = await rejects(done);
    expectStatus(err, status.FAILED_PRECONDITION, 'Chat with fail_code');
    equal(err.details, 'second fails', 'grpc-message');
    equal(err.replies.length, 1, 'replies before the error');
    equal(err.replies[0].message, 'first', 'first reply message');
  },

  async metadata(client) {
    const binary = Buffer.from([0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff]);
    const md = new grpc.Metadata();
    md.set('x-mf-text', 'hello, metadata');
    md.set('x-mf-data-bin', binary);
    const keys = ['x-mf-text', 'x-mf-data-bin', 'x-mf-absent'];
    const { reply, headers, trailers } = await unary(client, 'Say', { message: 'md', echo_metadata_keys: keys }, md);
    equal(reply.metadata['x-mf-text'], 'hello, metadata', 'server saw x-mf-text');
    equal(reply.metadata['x-mf-data-bin'], binary.toString('base64'), 'server saw x-mf-data-bin (base64)');
    check(!('x-mf-absent' in reply.metadata), 'server reported a key that was not sent');
    check(trailers, 'no trailers');
    equal(String(trailers.get('echo-x-mf-text')[0]), 'hello, metadata', 'trailer echo-x-mf-text');
    const tb = trailers.get('echo-x-mf-data-bin')[0];
    check(Buffer.isBuffer(tb) && tb.equals(binary), `trailer echo-x-mf-data-bin: got ${tb && tb.toString('hex')}`);
    check(trailers.get('echo-x-mf-absent').length === 0, 'trailer for a key that was not sent');
    check(headers, 'no response headers');
  },

  async metadata_on_error(client) {
    const md = new grpc.Metadata();
    md.set('x-mf-text', 'on error');
    const err = await rejects(unary(client, 'Say', { fail_code: status.NOT_FOUND, fail_message: 'nope', echo_metadata_keys: ['x-mf-text'] }, md));
    expectStatus(err, status.NOT_FOUND, 'Say with fail_code');
    equal(String(err.metadata.get('echo-x-mf-text')[0]), 'on error', 'trailer on an error status');
  },

  async message_16mib(client) {
    const payload = randomBytes(16 * MiB);
    const { reply } = await unary(client, 'Say', { message: 'big', payload });
    equal(reply.payload.length, payload.length, 'reply payload length');
    equal(sha256(reply.payload), sha256(payload), 'reply payload sha256');
    equal(reply.received_bytes, 16 * MiB, 'received_bytes');
  },

  async message_too_large(client, opts) {
    const size = opts.serverMaxMessage + MiB;
    const err = await rejects(unary(client, 'Say', { payload: Buffer.alloc(size, 7), reply_payload_size: -1 }));
    expectStatus(err, status.RESOURCE_EXHAUSTED, `a ${size}-byte request to a server limited to ${opts.serverMaxMessage}`);
    // The connection stays usable after the refusal.
    const { reply } = await unary(client, 'Say', { message: 'still here' });
    equal(reply.message, 'still here', 'message after the refusal');
  },

  async duplex_1gib(client) {
    // 1024 requests of 1 MiB up, a small acknowledgement per request down; flow control both ways.
    const total = 1024;
    const chunk = Buffer.alloc(MiB);
    for (let i = 0; i < chunk.length; i += 4096) chunk.writeUInt32LE(i, i);
    const call = client.Chat();
    let replies = 0;
    let lastReceived = 0;
    let orderError = null;
    const done = new Promise((resolve, reject) => {
      call.on('data', (r) => {
        if (!orderError && (r.index !== replies || r.received_bytes !== (replies + 1) * MiB)) {
          orderError = `reply ${replies}: index ${r.index}, received_bytes ${r.received_bytes}`;
        }
        replies++;
        lastReceived = r.received_bytes;
      });
      call.on('error', reject);
      call.on('status', (s) => { if (s.code === status.OK) resolve(); });
    });
    const started = Date.now();
    for (let i = 0; i < total; i++) {
      if (!call.write({ payload: chunk, reply_payload_size: -1 })) await new Promise((resolve) => call.once('drain', resolve));
    }
    call.end();
    await done;
    const ms = Date.now() - started;
    check(!orderError, orderError);
    equal(replies, total, 'replies');
    equal(lastReceived, total * MiB, 'received_bytes after the last request');
    return { bytes: total * MiB, MBps: Math.round((total * MiB) / 1e6 / (ms / 1000)) };
  },

  async server_stream_1gib(client) {
    // 1 GiB down: 1024 replies of 1 MiB each.
    const total = 1024;
    const call = client.Expand({ count: total, reply_payload_size: MiB, payload: Buffer.alloc(0) });
    let count = 0;
    let bytes = 0;
    let orderError = null;
    const started = Date.now();
    await new Promise((resolve, reject) => {
      call.on('data', (r) => {
        if (!orderError && (r.index !== count || r.payload.length !== MiB)) orderError = `reply ${count}: index ${r.index}, ${r.payload.length} bytes`;
        count++;
        bytes += r.payload.length;
      });
      call.on('error', reject);
      call.on('status', (s) => { if (s.code === status.OK) resolve(); });
    });
    const ms = Date.now() - started;
    check(!orderError, orderError);
    equal(count, total, 'replies');
    equal(bytes, total * MiB, 'bytes received');
    return { bytes, MBps: Math.round(bytes / 1e6 / (ms / 1000)) };
  },

  async cancel_unary(client) {
    const started = Date.now();
    const err = await rejects(new Promise((resolve, reject) => {
      const call = client.Say({ delay_ms: 10000 }, (e, r) => (e ? reject(e) : resolve(r)));
      setTimeout(() => call.cancel(), 200);
    }));
    expectStatus(err, status.CANCELLED, 'Say cancelled by the client');
    check(Date.now() - started < 5000, 'cancellation took too long');
    // The channel is still usable after a cancelled call.
    const { reply } = await unary(client, 'Say', { message: 'after cancel' });
    equal(reply.message, 'after cancel', 'message after cancellation');
  },

  async cancel_server_stream(client) {
    // An endless-looking stream (1e6 replies) cancelled after 10 replies.
    const call = client.Expand({ count: 1000000, reply_payload_size: 1024 });
    let seen = 0;
    const err = await rejects(new Promise((resolve, reject) => {
      call.on('data', () => { if (++seen === 10) call.cancel(); });
      call.on('error', reject);
      call.on('status', (s) => { if (s.code === status.OK) resolve(); });
    }));
    expectStatus(err, status.CANCELLED, 'Expand cancelled by the client');
    check(seen >= 10 && seen < 1000000, `saw ${seen} replies`);
  },

  async cancel_duplex(client) {
    const call = client.Chat();
    const done = collectStream(call);
    call.write({ message: 'a' });
    call.write({ message: 'b', delay_ms: 10000 });
    setTimeout(() => call.cancel(), 200);
    const err = await rejects(done);
    expectStatus(err, status.CANCELLED, 'Chat cancelled by the client');
  },

  async unimplemented(client) {
    const ident = (x) => x;
    const call = (path) => new Promise((resolve, reject) => {
      client.makeUnaryRequest(path, ident, ident, Buffer.alloc(0), (e, r) => (e ? reject(e) : resolve(r)));
    });
    expectStatus(await rejects(call('/mftest.v1.Echo/NoSuchMethod')), status.UNIMPLEMENTED, 'unknown method');
    expectStatus(await rejects(call('/mftest.v1.NoSuchService/Say')), status.UNIMPLEMENTED, 'unknown service');
  },

  async concurrent(client) {
    // 64 unary calls and 8 duplex streams in flight at once on one channel (one HTTP/2 connection).
    const calls = [];
    for (let i = 0; i < 64; i++) {
      const payload = randomBytes(1 + i * 997);
      calls.push(unary(client, 'Say', { message: `c${i}`, payload, delay_ms: i % 5 }).then(({ reply }) => {
        equal(reply.message, `c${i}`, `call ${i} message`);
        check(reply.payload.equals(payload), `call ${i} payload`);
      }));
    }
    for (let s = 0; s < 8; s++) {
      const call = client.Chat();
      const done = collectStream(call);
      for (let i = 0; i < 20; i++) call.write({ message: `s${s}m${i}`, payload: Buffer.alloc(4096, s) });
      call.end();
      calls.push(done.then(({ replies }) => {
        equal(replies.length, 20, `stream ${s} replies`);
        replies.forEach((r, i) => equal(r.message, `s${s}m${i}`, `stream ${s} reply ${i}`));
      }));
    }
    await Promise.all(calls);
  },
};

// ------------------------------------------------------------------------------------------------- main
function parseArgs(argv) {
  const opts = { target: null, cases: [], serverMaxMessage: 32 * MiB, list: false, timeoutMs: 120000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--target') opts.target = argv[++i];
    else if (a === '--case') opts.cases.push(argv[++i]);
    else if (a === '--server-max-message') opts.serverMaxMessage = Number(argv[++i]);
    else if (a === '--timeout-ms') opts.timeoutMs = Number(argv[++i]);
    else if (a === '--list') opts.list = true;
    else { console.error(`unknown argument ${a}`); process.exit(2); }
  }
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.list) { console.log(Object.keys(cases).join('\n')); return 0; }
  if (!opts.target) { console.error('--target HOST:PORT is required'); return 2; }
  const names = opts.cases.length ? opts.cases : Object.keys(cases);
  const unknown = names.filter((n) => !cases[n]);
  if (unknown.length) { console.error(`unknown case(s): ${unknown.join(', ')}; --list shows them`); return 2; }
  if (!Number.isFinite(opts.serverMaxMessage) || opts.serverMaxMessage <= 0) { console.error('--server-max-message must be a positive byte count'); return 2; }

  const client = new Echo(opts.target, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_MESSAGE,
    'grpc.max_send_message_length': MAX_MESSAGE,
  });
  let failures = 0;
  for (const name of names) {
    const started = Date.now();
    try {
      const extra = await settleOrTimeout(Promise.resolve().then(() => cases[name](client, opts)), opts.timeoutMs, name);
      console.log(JSON.stringify({ case: name, ok: true, ms: Date.now() - started, ...(extra ?? {}) }));
    } catch (err) {
      failures++;
      const error = err instanceof CaseFailure ? err.message : `unexpected ${err.code !== undefined ? codeName(err.code) + ': ' : ''}${err.details ?? err.message}`;
      console.log(JSON.stringify({ case: name, ok: false, ms: Date.now() - started, error }));
    }
  }
  client.close();
  return failures ? 1 : 0;
}

main().then((code) => process.exit(code), (err) => { console.error(err); process.exit(3); });
