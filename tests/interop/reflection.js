'use strict';
// Stock reflection and health clients against a gRPC server, the way grpcurl works: nothing about the
// server's services is known up front; descriptors come from server reflection and are then used to
// call a method.
//
//   node reflection.js --target 127.0.0.1:PORT [--case NAME]... [--list]
//
// Protos used are the official ones shipped on npm by the grpc-node project: grpc/reflection/v1alpha
// and v1 from @grpc/reflection, grpc/health/v1 from grpc-health-check. A second, third-party reflection
// client (grpc-js-reflection-client) is run too. Prints one JSON line per case; exits 1 on any failure.
const path = require('path');
const { grpc } = require('./lib/echo');
const protoLoader = require('@grpc/proto-loader');
const descriptor = require('protobufjs/ext/descriptor');

const LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };
const { status } = grpc;

const reflectionProtoDir = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
const healthProtoDir = path.join(path.dirname(require.resolve('grpc-health-check/package.json')), 'proto');

function loadReflection(version) {
  const def = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, { ...LOADER_OPTIONS, includeDirs: [reflectionProtoDir] });
  return grpc.loadPackageDefinition(def).grpc.reflection[version].ServerReflection;
}

function loadHealth() {
  const def = protoLoader.loadSync('health/v1/health.proto', { ...LOADER_OPTIONS, includeDirs: [healthProtoDir] });
  return grpc.loadPackageDefinition(def).grpc.health.v1.Health;
}

class CaseFailure extends Error {}
function check(condition, message) { if (!condition) throw new CaseFailure(message); }
function equal(actual, expected, what) {
  if (actual !== expected) throw new CaseFailure(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}
function codeName(code) { return Object.keys(status).find((k) => status[k] === code) ?? String(code); }

// One ServerReflectionInfo stream; ask() sends one request and resolves with its response (the
// protocol answers requests in order).
class ReflectionSession {
  constructor(ServerReflection, target) {
    this.client = new ServerReflection(target, grpc.credentials.createInsecure());
    this.call = this.client.ServerReflectionInfo({ deadline: new Date(Date.now() + 30000) });
    this.pending = [];
    this.call.on('data', (r) => { const p = this.pending.shift(); if (p) p.resolve(r); });
    this.call.on('error', (e) => { for (const p of this.pending.splice(0)) p.reject(e); this.failed = e; });
  }

  ask(request) {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.call.write(request);
    });
  }

  async listServices() {
    const r = await this.ask({ list_services: '' });
    check(r.message_response === 'list_services_response', `list_services answered with ${r.message_response}: ${JSON.stringify(r.error_response)}`);
    return r.list_services_response.service.map((s) => s.name);
  }

  // The FileDescriptorProto bytes for a symbol plus all of its transitive imports, as grpcurl fetches them.
  async filesForSymbol(symbol) {
    const files = new Map();
    const r = await this.ask({ file_containing_symbol: symbol });
    check(r.message_response === 'file_descriptor_response',
      `file_containing_symbol ${symbol} answered with ${r.message_response}: ${JSON.stringify(r.error_response)}`);
    const queue = [...r.file_descriptor_response.file_descriptor_proto];
    while (queue.length) {
      const bytes = queue.shift();
      const file = descriptor.FileDescriptorProto.decode(bytes);
      if (files.has(file.name)) continue;
      files.set(file.name, bytes);
      for (const dep of file.dependency) {
        if (files.has(dep)) continue;
        const d = await this.ask({ file_by_filename: dep });
        check(d.message_response === 'file_descriptor_response', `file_by_filename ${dep} answered with ${d.message_response}: ${JSON.stringify(d.error_response)}`);
        queue.push(...d.file_descriptor_response.file_descriptor_proto);
      }
    }
    return files;
  }

  close() {
    this.call.end();
    this.client.close();
  }
}

function descriptorSet(files) {
  const set = descriptor.FileDescriptorSet.create({ file: [...files.values()].map((b) => descriptor.FileDescriptorProto.decode(b)) });
  return Buffer.from(descriptor.FileDescriptorSet.encode(set).finish());
}

function lookup(obj, dotted) {
  return dotted.split('.').reduce((o, k) => (o ? o[k] : undefined), obj);
}

function unary(client, method, request, deadlineMs = 10000) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: new Date(Date.now() + deadlineMs) }, (e, r) => (e ? reject(e) : resolve(r)));
  });
}

async function reflectAndCall(version, target) {
  const session = new ReflectionSession(loadReflection(version), target);
  try {
    const services = await session.listServices();
    for (const expected of ['mftest.v1.Echo', 'grpc.health.v1.Health']) {
      check(services.includes(expected), `${version} list_services lacks ${expected}: ${services.join(', ')}`);
    }
    check(services.some((s) => s.startsWith('grpc.reflection.')), `${version} list_services lacks the reflection service itself: ${services.join(', ')}`);

    // Unknown symbols get an error_response (NOT_FOUND), not a broken stream.
    const missing = await session.ask({ file_containing_symbol: 'no.such.Symbol' });
    equal(missing.message_response, 'error_response', `${version} answer for an unknown symbol`);
    equal(missing.error_response.error_code, status.NOT_FOUND, `${version} error_code for an unknown symbol`);

    const files = await session.filesForSymbol('mftest.v1.Echo');
    const pkg = grpc.loadPackageDefinition(protoLoader.loadFileDescriptorSetFromBuffer(descriptorSet(files), LOADER_OPTIONS));
    const Echo = lookup(pkg, 'mftest.v1.Echo');
    check(typeof Echo === 'function', `${version}: descriptors from reflection do not define service mftest.v1.Echo`);
    const methods = Object.keys(Echo.service).sort();
    equal(methods.join(','), 'Chat,Collect,Expand,Say', `${version} methods of mftest.v1.Echo`);
    check(Echo.service.Expand.responseStream && !Echo.service.Expand.requestStream, `${version}: Expand is not server-streaming`);
    check(Echo.service.Chat.responseStream && Echo.service.Chat.requestStream, `${version}: Chat is not duplex`);

    const echo = new Echo(target, grpc.credentials.createInsecure());
    try {
      const reply = await unary(echo, 'Say', { message: `called via ${version} reflection`, payload: Buffer.from('abc') });
      equal(reply.message, `called via ${version} reflection`, 'reply message');
      equal(Buffer.from(reply.payload).toString(), 'abc', 'reply payload');
    } finally { echo.close(); }

    // Health, also from reflected descriptors (what `grpcurl ... grpc.health.v1.Health/Check` does).
    const healthFiles = await session.filesForSymbol('grpc.health.v1.Health');
    const hpkg = grpc.loadPackageDefinition(protoLoader.loadFileDescriptorSetFromBuffer(descriptorSet(healthFiles), LOADER_OPTIONS));
    const Health = lookup(hpkg, 'grpc.health.v1.Health');
    check(typeof Health === 'function', `${version}: descriptors from reflection do not define grpc.health.v1.Health`);
    const health = new Health(target, grpc.credentials.createInsecure());
    try {
      const r = await unary(health, 'Check', { service: '' });
      equal(r.status, 'SERVING', 'health of the server via reflected descriptors');
    } finally { health.close(); }
    return { services };
  } finally {
    session.close();
  }
}

const cases = {
  reflection_v1alpha(target) { return reflectAndCall('v1alpha', target); },

  reflection_v1(target) { return reflectAndCall('v1', target); },

  async health(target) {
    const Health = loadHealth();
    const client = new Health(target, grpc.credentials.createInsecure());
    try {
      equal((await unary(client, 'Check', { service: '' })).status, 'SERVING', 'overall health');
      equal((await unary(client, 'Check', { service: 'mftest.v1.Echo' })).status, 'SERVING', 'health of mftest.v1.Echo');
      let err = null;
      try { await unary(client, 'Check', { service: 'no.such.Service' }); } catch (e) { err = e; }
      check(err && err.code === status.NOT_FOUND, `Check of an unknown service: expected NOT_FOUND, got ${err ? codeName(err.code) : 'OK'}`);

      // Watch streams the current status first and then stays open until cancelled.
      const first = await new Promise((resolve, reject) => {
        const call = client.Watch({ service: '' });
        call.on('data', (r) => { resolve(r); call.cancel(); });
        call.on('error', (e) => { if (e.code !== status.CANCELLED) reject(e); });
        setTimeout(() => reject(new CaseFailure('Watch sent nothing within 10 s')), 10000).unref();
      });
      equal(first.status, 'SERVING', 'first Watch update');
    } finally { client.close(); }
  },

  async stock_reflection_client(target) {
    // grpc-js-reflection-client (third party, npm) as a user would run it.
    const { GrpcReflection } = require('grpc-js-reflection-client');
    const reflection = new GrpcReflection(target, grpc.credentials.createInsecure());
    const services = await reflection.listServices();
    check(services.includes('mftest.v1.Echo'), `listServices lacks mftest.v1.Echo: ${services.join(', ')}`);
    const methods = (await reflection.listMethods('mftest.v1.Echo')).map((m) => m.name).sort();
    equal(methods.join(','), 'Chat,Collect,Expand,Say', 'listMethods of mftest.v1.Echo');
    const d = await reflection.getDescriptorBySymbol('mftest.v1.Echo');
    const Echo = lookup(d.getPackageObject(LOADER_OPTIONS), 'mftest.v1.Echo');
    check(typeof Echo === 'function', 'the reflected package object has no mftest.v1.Echo');
    const echo = new Echo(target, grpc.credentials.createInsecure());
    try {
      const reply = await unary(echo, 'Say', { message: 'called via grpc-js-reflection-client' });
      equal(reply.message, 'called via grpc-js-reflection-client', 'reply message');
    } finally { echo.close(); }
    return { services };
  },
};

async function main() {
  const argv = process.argv.slice(2);
  let target = null;
  const names = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--target') target = argv[++i];
    else if (argv[i] === '--case') names.push(argv[++i]);
    else if (argv[i] === '--list') { console.log(Object.keys(cases).join('\n')); return 0; }
    else { console.error(`unknown argument ${argv[i]}`); return 2; }
  }
  if (!target) { console.error('--target HOST:PORT is required'); return 2; }
  const run = names.length ? names : Object.keys(cases);
  const unknown = run.filter((n) => !cases[n]);
  if (unknown.length) { console.error(`unknown case(s): ${unknown.join(', ')}`); return 2; }
  let failures = 0;
  for (const name of run) {
    const started = Date.now();
    try {
      const extra = await cases[name](target);
      console.log(JSON.stringify({ case: name, ok: true, ms: Date.now() - started, ...(extra ?? {}) }));
    } catch (err) {
      failures++;
      const error = err instanceof CaseFailure ? err.message : `unexpected ${err.code !== undefined ? codeName(err.code) + ': ' : ''}${err.details ?? err.message}`;
      console.log(JSON.stringify({ case: name, ok: false, ms: Date.now() - started, error }));
    }
  }
  return failures ? 1 : 0;
}

main().then((code) => process.exit(code), (err) => { console.error(err); process.exit(3); });
