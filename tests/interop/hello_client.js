'use strict';
// A Tars.js client (@tars/rpc) of the Hello servant of tars/tests/idl/Hello.tars, for
// tars/tests/hello_interop.rs, which serves the Rust dispatcher generated from the same
// IDL. The proxy methods are hand-written the way tars2node lays them out (no usable
// tars2node is on npm).
//
// Usage: node hello_client.js <port> [<servant name the server does not have>]
// Prints one JSON object with every answer (v1 and v3), then exits. With the second
// argument it also calls testHello on that servant name (`noservant`, expecting -4).

const Tars = require('@tars/rpc');
const TarsStream = require('@tars/stream');

const port = Number(process.argv[2]);
const LuckyList = TarsStream.List(TarsStream.Int32);

function HelloReq() {
  this.name = '';
  this.times = 1;
  this.lucky = new TarsStream.List(TarsStream.Int32);
}
HelloReq._classname = 'TestApp.HelloReq';
HelloReq._write = function (os, tag, value) { os.writeStruct(tag, value); };
HelloReq._read = function (is, tag, def) { return is.readStruct(tag, true, def); };
HelloReq._readFrom = function (is) {
  const r = new HelloReq();
  r.name = is.readString(0, true, '');
  r.times = is.readInt32(1, false, 1);
  r.lucky = is.readList(2, false, LuckyList);
  return r;
};
HelloReq.prototype._writeTo = function (os) {
  os.writeString(0, this.name);
  os.writeInt32(1, this.times);
  os.writeList(2, this.lucky);
};

function HelloProxy() {
  this._name = undefined;
  this._worker = undefined;
}

const isTup = (proxy) => proxy._worker.version === TarsStream.Tup.TUP_SIMPLE;

function fail(data) {
  throw { code: data.error ? data.error.code : undefined, message: data.error ? data.error.message : '' };
}

HelloProxy.prototype.testHello = function (sIn, property) {
  if (isTup(this)) {
    const tup = new TarsStream.UniAttribute();
    tup.writeString('sIn', sIn);
    return this._worker.tup_invoke('testHello', tup, property).then((data) => {
      const t = data.response.tup;
      return { ret: t.readInt32(''), sOut: t.readString('sOut') };
    }, fail);
  }
  const os = new TarsStream.TarsOutputStream();
  os.writeString(1, sIn);
  return this._worker.tars_invoke('testHello', os.getBinBuffer(), property).then((data) => {
    const is = new TarsStream.TarsInputStream(data.response.sBuffer);
    return { ret: is.readInt32(0, true), sOut: is.readString(2, true) };
  }, fail);
};

HelloProxy.prototype.testStruct = function (req, property) {
  const toJs = (greetings, info) => {
    const m = {};
    info.forEach((k, v) => { m[k] = v; });
    return { greetings: greetings.value, info: m };
  };
  if (isTup(this)) {
    const tup = new TarsStream.UniAttribute();
    tup.writeStruct('req', req);
    return this._worker.tup_invoke('testStruct', tup, property).then((data) => {
      const t = data.response.tup;
      const out = toJs(
        t.readList('greetings', TarsStream.List(TarsStream.String)),
        t.readMap('info', TarsStream.Map(TarsStream.String, TarsStream.String)));
      out.ret = t.readInt32('');
      return out;
    }, fail);
  }
  const os = new TarsStream.TarsOutputStream();
  os.writeStruct(1, req);
  return this._worker.tars_invoke('testStruct', os.getBinBuffer(), property).then((data) => {
    const is = new TarsStream.TarsInputStream(data.response.sBuffer);
    const ret = is.readInt32(0, true);
    const out = toJs(
      is.readList(2, true, TarsStream.List(TarsStream.String)),
      is.readMap(3, true, TarsStream.Map(TarsStream.String, TarsStream.String)));
    out.ret = ret;
    return out;
  }, fail);
};

// A function the servant does not have, and arguments it cannot decode.
HelloProxy.prototype.raw = function (func, buffer) {
  return this._worker.tars_invoke(func, buffer, {}).then(() => ({ ok: true }), fail);
};

async function run(version) {
  // One communicator per version: a communicator shares one connection per object name,
  // and a connection's reply decoder is fixed to the version it was opened with.
  const prx = Tars.Communicator.New().stringToProxy(
    HelloProxy, `TestApp.HelloServer.HelloObj@tcp -h 127.0.0.1 -p ${port} -t 5000`);
  prx._worker.version = version;
  const out = {};
  out.hello = await prx.testHello('wörld', { context: { k: `ctx-${version}` } });
  const req = new HelloReq();
  req.name = 'js';
  req.times = 2;
  req.lucky.push(4);
  req.lucky.push(-9);
  out.struct = await prx.testStruct(req, { context: { k: `ctx-${version}` } });
  if (version === 1) {
    const garbage = new TarsStream.TarsOutputStream();
    garbage.writeInt32(1, 42);
    out.nofunc = await prx.raw('noSuchFunction', new TarsStream.TarsOutputStream().getBinBuffer()).catch((e) => e);
    out.garbage = await prx.raw('testHello', garbage.getBinBuffer()).catch((e) => e);
    if (process.argv[3]) {
      const other = Tars.Communicator.New().stringToProxy(
        HelloProxy, `${process.argv[3]}@tcp -h 127.0.0.1 -p ${port} -t 5000`);
      other._worker.version = version;
      out.noservant = await other.testHello('x').catch((e) => e);
    }
  }
  return out;
}

(async () => {
  const result = { v1: await run(1), v3: await run(3) };
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
})().catch((e) => {
  process.stderr.write(`hello_client failed: ${JSON.stringify(e)} ${e && e.stack}\n`);
  process.exit(1);
});
