// A stock grpc-js scheduler for migrationfabric.v1.Fabric: loads protos/migrationfabric/v1/fabric.proto with
// @grpc/proto-loader and drives a migration through the public API (create a VM, start a migration, watch it
// to completion), then checks the error statuses a scheduler relies on.
// Usage: node fabric-client.js --target 127.0.0.1:PORT --source HOST --destination HOST [--strategy STRATEGY_PRE_COPY]
// Prints one JSON line per case ({"case","ok","ms",...,"error"}); exit code 1 if any case failed.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const target = arg('target');
const source = arg('source', 'host-a');
const destination = arg('destination', 'host-b');
const strategy = arg('strategy', 'STRATEGY_PRE_COPY');
if (!target) {
  console.error('usage: node fabric-client.js --target 127.0.0.1:PORT [--source HOST] [--destination HOST] [--strategy STRATEGY_X]');
  process.exit(2);
}

const protoRoot = path.resolve(__dirname, '..', '..', 'protos');
const definition = protoLoader.loadSync(path.join(protoRoot, 'migrationfabric/v1/fabric.proto'), {
  includeDirs: [protoRoot], keepCase: false, longs: String, enums: String, defaults: true, oneofs: true,
});
const Fabric = grpc.loadPackageDefinition(definition).migrationfabric.v1.Fabric;
const client = new Fabric(target, grpc.credentials.createInsecure());

const deadline = () => new Date(Date.now() + 60_000);
const unary = (method, request) => new Promise((resolve, reject) =>
  client[method](request, { deadline: deadline() }, (err, res) => (err ? reject(err) : resolve(res))));
const fails = async (method, request, code) => {
  try {
    await unary(method, request);
  } catch (err) {
    if (err.code !== code) throw new Error(`${method}: expected status ${code}, got ${err.code} (${err.details})`);
    if (!err.details) throw new Error(`${method}: status ${code} came without a message`);
    return err.details;
  }
  throw new Error(`${method}: expected status ${code}, but it succeeded`);
};
const check = (cond, what) => { if (!cond) throw new Error(what); };

const vm = `js-${process.pid}`;
const cases = {
  async list_hosts() {
    const res = await unary('listHosts', {});
    const names = res.hosts.map((h) => h.name);
    check(names.includes(source) && names.includes(destination), `hosts ${names} lack ${source} or ${destination}`);
    check(res.hosts.every((h) => h.status === 'HOST_STATUS_ACTIVE' && Number(h.memoryBudgetBytes) > 0), 'a host is not active or has no budget');
    return { hosts: names };
  },
  async create_vm() {
    const res = await unary('createVm', {
      name: vm, host: source, memoryBytes: String(32 * 1024 * 1024),
      workload: { kind: 'WORKLOAD_KIND_KEY_VALUE', setPercent: 20 },
    });
    check(res.host === source && res.state === 'VM_STATE_RUNNING', `created ${JSON.stringify(res)}`);
    return { vm: res.name };
  },
  async migrate_and_watch() {
    const started = await unary('startMigration', {
      vm, destination, strategy, limits: { downtimeTarget: { seconds: 0, nanos: 300_000_000 } },
    });
    check(started.id && started.source === source, `started ${JSON.stringify(started)}`);
    const events = await new Promise((resolve, reject) => {
      const seen = [];
      const call = client.watchMigration({ migrationId: started.id, intervalMs: 50 }, { deadline: deadline() });
      call.on('data', (e) => seen.push(e));
      call.on('error', reject);
      call.on('end', () => resolve(seen));
    });
    const last = events[events.length - 1];
    check(last && last.final, 'the watch ended without a final event');
    const final = last.final;
    check(final.phase === 'MIGRATION_PHASE_COMPLETED', `ended ${final.phase}: ${final.error}`);
    const integrity = final.report.integrity;
    check(Number(integrity.pagesChecked) === 32 * 1024 * 1024 / 4096, `pages checked ${integrity.pagesChecked}`);
    check(Number(integrity.mismatchedPages) === 0, `mismatched ${integrity.mismatchedPages}`);
    const after = await unary('describeVm', { name: vm });
    check(after.host === destination && after.state === 'VM_STATE_RUNNING', `after: ${JSON.stringify(after)}`);
    const downtimeMs = Number(final.report.downtime.seconds) * 1000 + final.report.downtime.nanos / 1e6;
    return { id: started.id, events: events.length, phases: [...new Set(events.map((e) => e.phase))], downtime_ms: downtimeMs, bytes: final.report.bytesSent };
  },
  async error_statuses() {
    const notFound = await fails('describeVm', { name: 'no-such-vm' }, grpc.status.NOT_FOUND);
    await fails('startMigration', { vm, destination: 'host-z', strategy }, grpc.status.NOT_FOUND);
    await fails('startMigration', { vm, destination: source }, grpc.status.INVALID_ARGUMENT);
    const unimplemented = await fails('startMigration', { vm, destination: source, strategy: 'STRATEGY_AGILE' }, grpc.status.UNIMPLEMENTED);
    // Split without sub_hosts: a repeated string field left empty by a stock client is refused by name.
    const noSubHosts = await fails('startMigration', { vm, destination, strategy: 'STRATEGY_SPLIT' }, grpc.status.INVALID_ARGUMENT);
    return { not_found: notFound, unimplemented, no_sub_hosts: noSubHosts };
  },
  async delete_vm() {
    const res = await unary('deleteVm', { name: vm });
    check(Number(res.freedBytes) === 32 * 1024 * 1024, `freed ${res.freedBytes}`);
    return {};
  },
};

(async () => {
  let failed = 0;
  for (const [name, run] of Object.entries(cases)) {
    const start = Date.now();
    try {
      const extra = await run();
      console.log(JSON.stringify({ case: name, ok: true, ms: Date.now() - start, ...extra }));
    } catch (err) {
      failed++;
      console.log(JSON.stringify({ case: name, ok: false, ms: Date.now() - start, error: String(err && (err.details || err.message) || err) }));
    }
  }
  client.close();
  process.exit(failed ? 1 : 0);
})();
