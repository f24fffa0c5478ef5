'use strict';
// A stock grpc-js server for mftest.v1.Echo, for MigrationFabric's own gRPC client to call.
// Listens on 127.0.0.1:0 (or --port N) and prints one line "LISTENING <port>" on stdout once bound.
// Semantics mirror the C# Echo service of tests/MigrationFabric.Rpc.Tests:
//   - delay_ms: wait before answering (stops early when the call is cancelled);
//   - fail_code/fail_message: end the call with that status (streams: after the replies already sent);
//   - reply_payload_size: > 0 reply with that many bytes, < 0 no payload, 0 echo the request payload;
//   - echo_metadata_keys: copy those request-metadata values into EchoReply.metadata (-bin as base64, the
//     last value when a key repeats) and send them back as trailers "echo-" + key (also on errors);
//   - response headers always carry "x-echo-server: grpc-js".
const { grpc, loadEcho, MAX_MESSAGE, metadataValueToString } = require('./lib/echo');

const { Echo } = loadEcho();
const args = process.argv.slice(2);
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : 0;

function delay(call, ms) {
  if (!ms || ms <= 0) return Promise.resolve(!call.cancelled);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { call.off('cancelled', onCancel); resolve(!call.cancelled); }, ms);
    function onCancel() { clearTimeout(timer); resolve(false); }
    call.once('cancelled', onCancel);
  });
}

function statusOf(request) {
  return { code: request.fail_code, details: request.fail_message };
}

function echoedMetadata(call, keys) {
  const map = {};
  for (const key of keys) {
    const values = call.metadata.get(key);
    if (values.length > 0) map[key] = metadataValueToString(key, values[values.length - 1]);
  }
  return map;
}

function responseHeaders(call, keys) {
  const md = new grpc.Metadata();
  md.set('x-echo-server', 'grpc-js');
  return md;
}

function responseTrailers(call, keys) {
  const md = new grpc.Metadata();
  for (const key of keys) {
    const values = call.metadata.get(key);
    if (values.length > 0) md.add('echo-' + key, values[values.length - 1]);
  }
  return md;
}

function replyFor(call, request, index, receivedBytes) {
  let payload;
  if (request.reply_payload_size > 0) payload = Buffer.alloc(request.reply_payload_size, index & 0xff);
  else if (request.reply_payload_size < 0) payload = Buffer.alloc(0);
  else payload = request.payload;
  return {
    message: request.message,
    payload,
    index,
    received_bytes: receivedBytes,
    metadata: echoedMetadata(call, request.echo_metadata_keys),
  };
}

function failWith(call, request, keys) {
  const status = statusOf(request);
  status.metadata = responseTrailers(call, keys);
  return status;
}

const handlers = {
  async Say(call, callback) {
    const request = call.request;
    const keys = request.echo_metadata_keys;
    call.sendMetadata(responseHeaders(call, keys));
    if (!(await delay(call, request.delay_ms))) return;
    if (request.fail_code !== 0) return callback(failWith(call, request, keys));
    callback(null, replyFor(call, request, 0, request.payload.length), responseTrailers(call, keys));
  },

  async Expand(call) {
    const request = call.request;
    const keys = request.echo_metadata_keys;
    call.sendMetadata(responseHeaders(call, keys));
    if (!(await delay(call, request.delay_ms))) return;
    for (let i = 0; i < request.count; i++) {
      if (call.cancelled) return;
      const ok = call.write(replyFor(call, request, i, request.payload.length));
      if (!ok) await new Promise((resolve) => call.once('drain', resolve));
    }
    if (call.cancelled) return;
    if (request.fail_code !== 0) return call.emit('error', failWith(call, request, keys));
    call.end(responseTrailers(call, keys));
  },

  Collect(call, callback) {
    let count = 0;
    let received = 0;
    let last = null;
    let keys = [];
    let done = false;
    let headersSent = false;
    call.on('data', (request) => {
      if (done) return;
      if (!headersSent) { keys = request.echo_metadata_keys; call.sendMetadata(responseHeaders(call, keys)); headersSent = true; }
      count++;
      received += request.payload.length;
      last = request;
      if (request.fail_code !== 0) { done = true; callback(failWith(call, request, keys)); }
    });
    call.on('end', async () => {
      if (done) return;
      done = true;
      const request = last ?? { message: '', payload: Buffer.alloc(0), reply_payload_size: -1, echo_metadata_keys: [], delay_ms: 0 };
      if (!(await delay(call, request.delay_ms))) return;
      const reply = replyFor(call, request, count, received);
      callback(null, reply, responseTrailers(call, keys));
    });
    call.on('error', () => { done = true; });
  },

  Chat(call) {
    let index = 0;
    let received = 0;
    let keys = [];
    let headersSent = false;
    let failed = false;
    // Requests are answered strictly in order, each after its own delay.
    let chain = Promise.resolve();
    call.on('data', (request) => {
      if (!headersSent) { keys = request.echo_metadata_keys; call.sendMetadata(responseHeaders(call, keys)); headersSent = true; }
      received += request.payload.length;
      const receivedNow = received;
      chain = chain.then(async () => {
        if (failed || call.cancelled) return;
        if (!(await delay(call, request.delay_ms))) return;
        if (request.fail_code !== 0) { failed = true; call.emit('error', failWith(call, request, keys)); return; }
        const ok = call.write(replyFor(call, request, index++, receivedNow));
        if (!ok) { call.pause(); await new Promise((resolve) => call.once('drain', resolve)); call.resume(); }
      });
    });
    call.on('end', () => {
      chain = chain.then(() => {
        if (failed || call.cancelled) return;
        if (!headersSent) call.sendMetadata(responseHeaders(call, keys));
        call.end(responseTrailers(call, keys));
      });
    });
    call.on('error', () => { failed = true; });
  },
};

const server = new grpc.Server({
  'grpc.max_receive_message_length': MAX_MESSAGE,
  'grpc.max_send_message_length': MAX_MESSAGE,
});
server.addService(Echo.service, handlers);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, boundPort) => {
  if (err) {
    console.error(`bind failed: ${err.message}`);
    process.exit(2);
  }
  console.log(`LISTENING ${boundPort}`);
});

function shutdown() {
  server.tryShutdown(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// The test harness closes our stdin when it is done; exit then so no orphan server outlives a test run.
process.stdin.on('end', shutdown);
process.stdin.resume();
