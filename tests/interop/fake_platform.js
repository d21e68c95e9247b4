'use strict';
// A fake Tars platform on @tars/rpc + @tars/stream, for the interop tests of a server that
// is hosted on Tars: it serves, each on its own loopback port,
//   node      tars.tarsnode.ServerObj         ServerF   (keepAlive, reportVersion, ...)
//   stat      tars.tarsstat.StatObj           StatF     (reportMicMsg, reportSampleMsg)
//   property  tars.tarsproperty.PropertyObj   PropertyF (reportPropMsg)
//   registry  tars.tarsregistry.QueryObj      QueryF    (the locator: findObjectById, ...)
//   config    tars.tarsconfig.ConfigObj       ConfigF   (loadConfig, ListConfig, ...)
//   log       tars.tarslog.LogObj             LogF      (logger, loggerbyInfo)
// and appends every call it decodes, as one JSON line, to the records file:
//   {"t": ms, "servant": "tars.tarsstat.StatObj", "func": "reportMicMsg", "version": 1|3,
//    "oneway": bool, "requestId": n, "context": {...}, "peer": "127.0.0.1:port",
//    "args": {<IDL name>: value, ...}}
// (a call whose arguments do not decode gets "error" instead of "args" and is answered -1).
// Interfaces and structs come from the IDL files (tars/idl, see platform_idl.js), so field
// names, tags and parameter order are the IDL's.
//
// Usage: node fake_platform.js --records <file> [options]
//   --port <name>=<n>          fixed port for a servant (default: any free port)
//   --delay-ms <n>             answer every call n ms late (tests timeouts)
//   --delay-ms <name>=<n>      the same for one servant
//   --down <name>              do not listen for that servant (its port refuses connections)
//   --config-file <file>=<content>   what loadConfig answers for <file> (repeatable)
//   --config-json <path>       a JSON object {file: content} with more of them
//   --resolve <id>=<host>:<port>     an extra (or overriding) locator entry
//   --idle-ms <n>              idle timeout of the fake's connections (default 600000)
//   --idl-dir <dir>            where the .tars files are (default ../../tars/idl)
// <name> is node|stat|property|registry|config|log or the full object name.
//
// Prints one JSON line once every servant listens:
//   {"node":P,"stat":P,"property":P,"registry":P,"config":P,"log":P,"pid":N}
// Then reads commands from stdin, one per line, each acknowledged with {"ok":"<command>"}
// (or {"error":"..."}) on stdout:  down <name> | up <name> | delay <name>|all <ms>
// Exits when stdin closes (so it dies with its parent) and on SIGTERM/SIGINT.

const fs = require('fs');
const net = require('net');
const path = require('path');
const readline = require('readline');
const Rpc = require('@tars/rpc');
const { Schema, Tars } = require('./platform_idl');

const SERVANTS = {
  node: { obj: 'tars.tarsnode.ServerObj', iface: 'ServerF' },
  stat: { obj: 'tars.tarsstat.StatObj', iface: 'StatF' },
  property: { obj: 'tars.tarsproperty.PropertyObj', iface: 'PropertyF' },
  registry: { obj: 'tars.tarsregistry.QueryObj', iface: 'QueryF' },
  config: { obj: 'tars.tarsconfig.ConfigObj', iface: 'ConfigF' },
  log: { obj: 'tars.tarslog.LogObj', iface: 'LogF' },
};
const HOST = '127.0.0.1';

function fail(msg) {
  process.stderr.write(`fake_platform: ${msg}\n`);
  process.exit(2);
}

function servantKey(name) {
  if (SERVANTS[name]) return name;
  const k = Object.keys(SERVANTS).find((s) => SERVANTS[s].obj === name);
  if (!k) throw new Error(`unknown servant '${name}'`);
  return k;
}

function splitEq(v, opt) {
  const at = v.indexOf('=');
  if (at < 0) fail(`${opt} wants <name>=<value>, got '${v}'`);
  return [v.slice(0, at), v.slice(at + 1)];
}

// ---- options -------------------------------------------------------------------------

const opts = {
  records: null,
  ports: {},
  delayAll: 0,
  delay: {},
  down: new Set(),
  configs: new Map(),
  resolve: new Map(),
  idleMs: 600000,
  idlDir: path.join(__dirname, '..', '..', 'tars', 'idl'),
};
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const opt = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) fail(`${opt} wants a value`);
      return argv[++i];
    };
    try {
      switch (opt) {
        case '--records': opts.records = val(); break;
        case '--port': { const [k, v] = splitEq(val(), opt); opts.ports[servantKey(k)] = Number(v); break; }
        case '--delay-ms': {
          const v = val();
          if (v.includes('=')) {
            const [k, ms] = splitEq(v, opt);
            opts.delay[servantKey(k)] = Number(ms);
          } else {
            opts.delayAll = Number(v);
          }
          break;
        }
        case '--down': opts.down.add(servantKey(val())); break;
        case '--config-file': { const [k, v] = splitEq(val(), opt); opts.configs.set(k, v); break; }
        case '--config-json': {
          const o = JSON.parse(fs.readFileSync(val(), 'utf8'));
          for (const [k, v] of Object.entries(o)) opts.configs.set(k, String(v));
          break;
        }
        case '--resolve': {
          const [id, hp] = splitEq(val(), opt);
          const at = hp.lastIndexOf(':');
          opts.resolve.set(id, { host: hp.slice(0, at), port: Number(hp.slice(at + 1)) });
          break;
        }
        case '--idle-ms': opts.idleMs = Number(val()); break;
        case '--idl-dir': opts.idlDir = val(); break;
        default: fail(`unknown option ${opt}`);
      }
    } catch (e) {
      fail(`${opt}: ${e.message}`);
    }
  }
}

const schema = Schema.load(opts.idlDir);
for (const k of Object.keys(SERVANTS)) {
  if (!schema.interfaces[SERVANTS[k].iface]) fail(`interface ${SERVANTS[k].iface} not in ${opts.idlDir}`);
}

// ---- records -------------------------------------------------------------------------

const recordsFd = opts.records ? fs.openSync(opts.records, 'a') : null;
function record(line) {
  // One synchronous write per line: a reader never waits on a buffer, and a line is never
  // split between two writes.
  if (recordsFd !== null) fs.writeSync(recordsFd, `${JSON.stringify(line)}\n`);
}

// The caller's address: which connection (and so which process) a call came on.
function peerOf(current) {
  const ep = current.getEndpoint();
  return ep ? `${ep.sHost}:${ep.iPort}` : '';
}

function contextJson(current) {
  const out = {};
  const ctx = current.getContext();
  if (ctx && ctx.forEach) ctx.forEach((k, v) => { out[k] = v; });
  return out;
}

// ---- what each servant answers ---------------------------------------------------------

const ports = {};
let lastKeepAliveMs = 0;

function endpointsFor(id) {
  const extra = opts.resolve.get(id);
  if (extra) return [extra];
  const k = Object.keys(SERVANTS).find((s) => SERVANTS[s].obj === id);
  return k ? [{ host: HOST, port: ports[k] }] : [];
}

function endpointJson({ host, port }) {
  // What a registry answers for a plain TCP servant: no grid, no set, no weights.
  return { host, port, timeout: 60000, istcp: 1, grid: 0 };
}

function configResult(filename, outName) {
  if (opts.configs.has(filename)) return { ret: 0, outs: { [outName]: opts.configs.get(filename) } };
  return { ret: -1, outs: { [outName]: '' } };
}

// Each returns {ret, outs: {name: JSON value}}; out parameters not given are defaults.
const IMPLS = {
  ServerF: {
    keepAlive: () => { lastKeepAliveMs = Date.now(); return { ret: 0 }; },
    keepActiving: () => { lastKeepAliveMs = Date.now(); return { ret: 0 }; },
    reportVersion: () => ({ ret: 0 }),
    getLatestKeepAliveTime: () => ({ ret: Math.floor(lastKeepAliveMs / 1000) }),
  },
  StatF: {
    reportMicMsg: () => ({ ret: 0 }),
    reportSampleMsg: () => ({ ret: 0 }),
  },
  PropertyF: {
    reportPropMsg: () => ({ ret: 0 }),
  },
  QueryF: {
    findObjectById: (a) => ({ ret: endpointsFor(a.id).map(endpointJson) }),
    findObjectById4Any: (a) => ({ ret: 0, outs: { activeEp: endpointsFor(a.id).map(endpointJson) } }),
    findObjectById4All: (a) => ({ ret: 0, outs: { activeEp: endpointsFor(a.id).map(endpointJson) } }),
    findObjectByIdInSameGroup: (a) => ({ ret: 0, outs: { activeEp: endpointsFor(a.id).map(endpointJson) } }),
    findObjectByIdInSameStation: (a) => ({ ret: 0, outs: { activeEp: endpointsFor(a.id).map(endpointJson) } }),
    findObjectByIdInSameSet: (a) => ({ ret: 0, outs: { activeEp: endpointsFor(a.id).map(endpointJson) } }),
  },
  ConfigF: {
    ListConfig: () => ({ ret: 0, outs: { vf: [...opts.configs.keys()].sort() } }),
    loadConfig: (a) => configResult(a.filename, 'config'),
    loadConfigByHost: (a) => configResult(a.filename, 'config'),
    checkConfig: (a) => ({ ret: opts.configs.has(a.filename) ? 0 : -1 }),
    ListConfigByInfo: () => ({ ret: 0, outs: { vf: [...opts.configs.keys()].sort() } }),
    loadConfigByInfo: (a) => configResult(a.configInfo.filename, 'config'),
    checkConfigByInfo: (a) => ({ ret: opts.configs.has(a.configInfo.filename) ? 0 : -1 }),
  },
  LogF: {
    logger: () => ({}),
    loggerbyInfo: () => ({}),
  },
};

function delayFor(key) {
  return opts.delay[key] !== undefined ? opts.delay[key] : opts.delayAll;
}

function isTup(version) {
  return version === Tars.UniAttribute.TUP_SIMPLE || version === Tars.UniAttribute.TUP_COMPLEX;
}

function decodeArgs(func, version, buffer, module) {
  const args = {};
  const ins = func.params.filter((p) => !p.out);
  if (isTup(version)) {
    const tup = new Tars.UniAttribute();
    tup.tupVersion = version;
    tup.decode(buffer);
    for (const p of ins) args[p.name] = schema.readTup(tup, p.name, p.type, module);
  } else {
    const is = new Tars.TarsInputStream(buffer);
    for (const p of ins) args[p.name] = schema.read(is, p.tag, true, p.type, undefined, module);
  }
  return args;
}

function encodeResult(func, version, result, module) {
  const outs = result.outs || {};
  const items = [];
  if (func.ret.kind !== 'void') items.push({ tag: 0, name: '', type: func.ret, value: result.ret });
  for (const p of func.params.filter((q) => q.out)) {
    items.push({ tag: p.tag, name: p.name, type: p.type, value: outs[p.name] });
  }
  if (isTup(version)) {
    const tup = new Tars.UniAttribute();
    tup.tupVersion = version;
    for (const it of items) schema.writeTup(tup, it.name, it.type, schema.fromJson(it.type, it.value, module), module);
    return tup.encode();
  }
  const os = new Tars.TarsOutputStream();
  for (const it of items) schema.write(os, it.tag, it.type, schema.fromJson(it.type, it.value, module), module);
  return os.getBinBuffer();
}

function makeHandler(key) {
  const { obj, iface } = SERVANTS[key];
  const itf = schema.interfaces[iface];
  function Handler() {}
  Handler.prototype.initialize = function () {};
  Handler.prototype.onDispatch = function (current, funcName, buffer) {
    const version = current.getRequestVersion();
    const req = current.getRequest();
    const base = {
      t: Date.now(),
      servant: obj,
      func: funcName,
      version,
      oneway: req.cPacketType === 1,
      requestId: req.iRequestId,
      context: contextJson(current),
      peer: peerOf(current),
    };
    const func = itf.funcs[funcName];
    if (!func) {
      record(Object.assign(base, { error: 'no such function' }));
      return Rpc.error.SERVER.FUNC_NOT_FOUND;
    }
    let args;
    try {
      args = decodeArgs(func, version, buffer, itf.module);
    } catch (e) {
      record(Object.assign(base, { error: `decode: ${e.message}` }));
      current.sendErrorResponse(Rpc.error.SERVER.DECODE_ERROR, `fake_platform: ${e.message}`);
      return Rpc.error.SUCCESS;
    }
    const json = {};
    for (const p of func.params.filter((q) => !q.out)) json[p.name] = schema.toJson(p.type, args[p.name], itf.module);
    record(Object.assign(base, { args: json }));
    const answer = () => {
      try {
        const result = IMPLS[iface][funcName](json);
        current.doResponse(encodeResult(func, version, result, itf.module));
      } catch (e) {
        process.stderr.write(`fake_platform: ${obj}.${funcName}: ${e.stack}\n`);
        current.sendErrorResponse(Rpc.error.SERVER.ENCODE_ERROR, `fake_platform: ${e.message}`);
      }
    };
    const ms = delayFor(key);
    if (ms > 0) setTimeout(answer, ms); else answer();
    return Rpc.error.SUCCESS;
  };
  return Handler;
}

// ---- listening -----------------------------------------------------------------------

const servers = {};

function listen(key, port) {
  return new Promise((resolve, reject) => {
    const server = Rpc.server.createServer(makeHandler(key));
    server.start({
      endpoint: `tcp -h ${HOST} -p ${port} -t ${opts.idleMs}`,
      servant: SERVANTS[key].obj,
      protocol: 'tars',
    });
    // SimpleServer does not expose its listener; reach it to learn the port 0 became.
    const listener = server._server._adapters[0]._netthread._listener;
    const done = () => {
      servers[key] = server;
      resolve(listener.address().port);
    };
    if (listener.listening) done(); else listener.once('listening', done);
    listener.once('error', (e) => reject(new Error(`${key}: listen on ${port}: ${e.message}`)));
  });
}

// A port for a servant that starts down: taken from the kernel and given back, so nothing
// listens there (a connect is refused) until `up` binds it.
function reservePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function down(key) {
  const server = servers[key];
  if (!server) return;
  delete servers[key];
  // Closes the listener and every accepted connection, like a node that died.
  server.stop();
}

async function up(key) {
  if (servers[key]) return;
  // A just-closed listener may linger for a moment; retry briefly.
  for (let i = 0; ; i++) {
    try {
      await listen(key, ports[key]);
      return;
    } catch (e) {
      if (i >= 50) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function stop() {
  for (const key of Object.keys(servers)) down(key);
  if (recordsFd !== null) fs.closeSync(recordsFd);
  process.exit(0);
}

async function handleCommand(line) {
  const words = line.trim().split(/\s+/);
  if (words.length === 1 && words[0] === '') return;
  try {
    switch (words[0]) {
      case 'down': down(servantKey(words[1])); break;
      case 'up': await up(servantKey(words[1])); break;
      case 'delay':
        if (words[1] === 'all') opts.delayAll = Number(words[2]);
        else opts.delay[servantKey(words[1])] = Number(words[2]);
        break;
      default: throw new Error(`unknown command '${words[0]}'`);
    }
    process.stdout.write(`${JSON.stringify({ ok: line.trim() })}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ error: `${line.trim()}: ${e.message}` })}\n`);
  }
}

async function main() {
  for (const key of Object.keys(SERVANTS)) {
    if (opts.down.has(key)) ports[key] = opts.ports[key] || await reservePort();
    else ports[key] = await listen(key, opts.ports[key] || 0);
  }
  process.stdout.write(`${JSON.stringify(Object.assign({}, ports, { pid: process.pid }))}\n`);
  // Commands run one after another, so their acknowledgements come in order.
  let chain = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => { chain = chain.then(() => handleCommand(line)); });
  rl.on('close', () => { chain.then(stop); });
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
main().catch((e) => fail(e.stack || String(e)));
