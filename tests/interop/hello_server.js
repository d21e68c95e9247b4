'use strict';
// A Tars.js server hosting the Hello servant of tars/tests/idl/Hello.tars
// (TestApp.HelloServer.HelloObj) on @tars/rpc, for tars/tests/hello_interop.rs.
//
// No tars2node generator is usable from npm, so the servant's dispatch is written by
// hand the way tars2node lays it out: onDispatch(current, funcName, buffer) decodes
// the arguments (v1: tags 1..N; v3: a UniAttribute by name), calls the method, and
// current.doResponse() sends the return value (tag 0 / "") and the out parameters.
//
// Usage: node hello_server.js [port]   (default 0: any free port)
// Prints "PORT <n>" once listening; exits when stdin closes or on SIGTERM.

const Tars = require('@tars/rpc');
const TarsStream = require('@tars/stream');
const TarsError = Tars.error;

const SERVANT = 'TestApp.HelloServer.HelloObj';
const isTup = (current) => current.getRequestVersion() === TarsStream.Tup.TUP_SIMPLE
  || current.getRequestVersion() === TarsStream.Tup.TUP_COMPLEX;

// ---- struct HelloReq { 0 require string name; 1 optional int times = 1; 2 optional vector<int> lucky; }
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

// ---- the servant ---------------------------------------------------------------------

function HelloImp() {}

HelloImp.prototype.initialize = function () {};

// int testHello(string sIn, out string sOut): sOut = "hello " + sIn, returns sIn's length.
HelloImp.prototype.testHello = function (current, sIn) {
  current.sendResponse(sIn.length, 'hello ' + sIn);
};

// int testStruct(HelloReq req, out vector<string> greetings, out map<string, string> info):
// one greeting per `times`, info echoes the request (and the caller's context key "k"),
// returns the sum of `lucky`.
HelloImp.prototype.testStruct = function (current, req) {
  const greetings = new TarsStream.List(TarsStream.String);
  for (let i = 0; i < req.times; i++) greetings.push(`hi ${req.name} #${i}`);
  const lucky = req.lucky.value;
  const info = new TarsStream.Map(TarsStream.String, TarsStream.String);
  info.insert('name', req.name);
  info.insert('times', String(req.times));
  info.insert('lucky', lucky.join(','));
  const ctx = current.getContext();
  info.insert('ctx', (ctx && ctx.get('k')) || '');
  info.insert('version', String(current.getRequestVersion()));
  current.sendResponse(lucky.reduce((a, b) => a + b, 0), greetings, info);
};

HelloImp.prototype.onDispatch = function (current, funcName, buffer) {
  switch (funcName) {
    case 'testHello': {
      let sIn;
      if (isTup(current)) {
        const tup = new TarsStream.UniAttribute();
        tup.tupVersion = current.getRequestVersion();
        tup.decode(buffer);
        sIn = tup.readString('sIn');
      } else {
        sIn = new TarsStream.TarsInputStream(buffer).readString(1, true);
      }
      current.sendResponse = function (ret, sOut) {
        if (isTup(current)) {
          const tup = new TarsStream.UniAttribute();
          tup.tupVersion = current.getRequestVersion();
          tup.writeInt32('', ret);
          tup.writeString('sOut', sOut);
          current.doResponse(tup.encode());
        } else {
          const os = new TarsStream.TarsOutputStream();
          os.writeInt32(0, ret);
          os.writeString(2, sOut);
          current.doResponse(os.getBinBuffer());
        }
      };
      this.testHello(current, sIn);
      return TarsError.SUCCESS;
    }
    case 'testStruct': {
      let req;
      if (isTup(current)) {
        const tup = new TarsStream.UniAttribute();
        tup.tupVersion = current.getRequestVersion();
        tup.decode(buffer);
        req = tup.readStruct('req', HelloReq);
      } else {
        req = new TarsStream.TarsInputStream(buffer).readStruct(1, true, HelloReq);
      }
      current.sendResponse = function (ret, greetings, info) {
        if (isTup(current)) {
          const tup = new TarsStream.UniAttribute();
          tup.tupVersion = current.getRequestVersion();
          tup.writeInt32('', ret);
          tup.writeList('greetings', greetings);
          tup.writeMap('info', info);
          current.doResponse(tup.encode());
        } else {
          const os = new TarsStream.TarsOutputStream();
          os.writeInt32(0, ret);
          os.writeList(2, greetings);
          os.writeMap(3, info);
          current.doResponse(os.getBinBuffer());
        }
      };
      this.testStruct(current, req);
      return TarsError.SUCCESS;
    }
    default:
      return TarsError.SERVER.FUNC_NOT_FOUND;
  }
};

// ---- start ---------------------------------------------------------------------------

const port = Number(process.argv[2] || 0);
const server = Tars.server.createServer(HelloImp);
server.start({
  endpoint: `tcp -h 127.0.0.1 -p ${port} -t 60000`,
  servant: SERVANT,
  protocol: 'tars',
});

// SimpleServer does not expose its listener; reach it to learn the port port 0 got.
const listener = server._server._adapters[0]._netthread._listener;
function announce() { process.stdout.write(`PORT ${listener.address().port}\n`); }
if (listener.listening) announce(); else listener.once('listening', announce);
listener.once('error', (e) => { process.stderr.write(`listen failed: ${e.message}\n`); process.exit(1); });

function stop() { server.stop(); process.exit(0); }
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
