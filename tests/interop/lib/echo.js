'use strict';
// Loads the test-only mftest.v1.Echo service with @grpc/proto-loader, the way a grpc-js user would.
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'protos');

// Message sizes the interop cases need (16 MiB payload plus framing); grpc-js defaults to 4 MiB receive.
const MAX_MESSAGE = 64 * 1024 * 1024;

function loadEcho() {
  const definition = protoLoader.loadSync('mftest/v1/echo.proto', {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition);
  return { definition, Echo: pkg.mftest.v1.Echo };
}

// How an echoed metadata value is written into EchoReply.metadata (a string map): binary (-bin)
// values as standard base64, the way they travel on the wire, text values as they are.
function metadataValueToString(key, value) {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  return String(value);
}

module.exports = { grpc, loadEcho, MAX_MESSAGE, metadataValueToString };
