'use strict';
// Type descriptors over @tars/stream for the codec tests and bench: parse a .tars type
// spelling ("map<string, vector<int>>", "Vec.Inner", ...) into the @tars/stream proto,
// build values from the JSON conventions of tars/tests/fixtures/tars-stream-vectors.json and
// turn decoded values back into them. The struct classes are written the way tars2node
// generates them (readX/writeX per field), for the structs the Rust tests use.

const Tars = require('@tars/stream');

// ---- type descriptors -----------------------------------------------------------

const PRIMS = {
  bool: { proto: Tars.Boolean, read: 'readBoolean', write: 'writeBoolean', def: false },
  byte: { proto: Tars.Int8, read: 'readInt8', write: 'writeInt8', def: 0 },
  short: { proto: Tars.Int16, read: 'readInt16', write: 'writeInt16', def: 0 },
  int: { proto: Tars.Int32, read: 'readInt32', write: 'writeInt32', def: 0 },
  // long travels as a decimal string beyond 2^53 (bString = true), as tars2node does for
  // fields it is told to keep exact.
  long: { proto: Tars.Int64, read: 'readInt64', write: 'writeInt64', def: 0, bString: true },
  'unsigned byte': { proto: Tars.UInt8, read: 'readUInt8', write: 'writeUInt8', def: 0 },
  'unsigned short': { proto: Tars.UInt16, read: 'readUInt16', write: 'writeUInt16', def: 0 },
  'unsigned int': { proto: Tars.UInt32, read: 'readUInt32', write: 'writeUInt32', def: 0 },
  float: { proto: Tars.Float, read: 'readFloat', write: 'writeFloat', def: 0, float: true },
  double: { proto: Tars.Double, read: 'readDouble', write: 'writeDouble', def: 0, float: true },
  string: { proto: Tars.String, read: 'readString', write: 'writeString', def: '' },
};

const STRUCTS = {};

/** Parses a .tars type spelling into a descriptor {kind, proto, ...}. */
function parseType(text) {
  let pos = 0;
  const src = text.replace(/\s+/g, ' ').trim();
  function skipWs() { while (src[pos] === ' ') pos++; }
  function ident() {
    skipWs();
    const m = /^[A-Za-z_][A-Za-z0-9_.]*( (byte|short|int))?/.exec(src.slice(pos));
    if (!m) throw new Error(`bad type at ${pos} in ${text}`);
    pos += m[0].length;
    return m[0];
  }
  function expect(ch) {
    skipWs();
    if (src[pos] !== ch) throw new Error(`expected '${ch}' at ${pos} in ${text}`);
    pos++;
  }
  function type() {
    const name = ident();
    if (name === 'vector') {
      expect('<');
      const elem = type();
      expect('>');
      if (elem.kind === 'prim' && elem.name === 'byte') return { kind: 'bytes', proto: Tars.BinBuffer };
      return { kind: 'list', elem, proto: Tars.List(elem.proto, elem.bString) };
    }
    if (name === 'map') {
      expect('<');
      const key = type();
      expect(',');
      const val = type();
      expect('>');
      return { kind: 'map', key, val, proto: Tars.Map(key.proto, val.proto, key.bString, val.bString) };
    }
    if (PRIMS[name]) return Object.assign({ kind: 'prim', name }, PRIMS[name]);
    const cls = STRUCTS[name];
    if (!cls) throw new Error(`unknown type ${name}`);
    return { kind: 'struct', cls, proto: cls };
  }
  const t = type();
  skipWs();
  if (pos !== src.length) throw new Error(`trailing text in type ${text}`);
  return t;
}

// ---- JSON <-> @tars/stream values ------------------------------------------------

function floatFromJson(j) {
  return typeof j === 'string' ? Number(j) : j; // "NaN", "Infinity", "-Infinity", "-0.0"
}

function floatToJson(v) {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  if (Object.is(v, -0)) return '-0.0';
  // As text: JavaScript prints the shortest string that reads back exactly, and the
  // reader can then parse it with correct rounding (a JSON number may not be).
  return String(v);
}

function fromJson(t, j) {
  switch (t.kind) {
    case 'prim':
      if (t.float) return floatFromJson(j);
      if (t.name === 'bool') return !!j;
      if (t.name === 'string') return j;
      if (t.name === 'long') return j; // number or decimal string; writeInt64 takes both
      return Number(j);
    case 'bytes':
      return new Tars.BinBuffer(Buffer.from(j, 'hex'));
    case 'list': {
      const l = Tars.List(t.elem.proto, t.elem.bString);
      for (const x of j) l.push(fromJson(t.elem, x));
      return l;
    }
    case 'map': {
      const m = Tars.Map(t.key.proto, t.val.proto, t.key.bString, t.val.bString);
      if (Array.isArray(j)) {
        for (const e of j) m.insert(fromJson(t.key, e.key), fromJson(t.val, e.value));
      } else {
        for (const k of Object.keys(j)) m.insert(fromJson(t.key, k), fromJson(t.val, j[k]));
      }
      return m;
    }
    case 'struct':
      return t.cls.fromJson(j);
    default:
      throw new Error(`fromJson: ${t.kind}`);
  }
}

function toJson(t, v) {
  switch (t.kind) {
    case 'prim':
      if (t.float) return floatToJson(v);
      if (t.name === 'bool') return !!v;
      return v;
    case 'bytes':
      return v.toNodeBuffer().toString('hex');
    case 'list':
      return v.value.map((x) => toJson(t.elem, x));
    case 'map': {
      if (t.key.kind === 'prim' && t.key.name === 'string') {
        const o = {};
        v.forEach((k, x) => { o[k] = toJson(t.val, x); });
        return o;
      }
      const a = [];
      v.forEach((k, x) => { a.push({ key: toJson(t.key, k), value: toJson(t.val, x) }); });
      return a;
    }
    case 'struct':
      return v.toJson();
    default:
      throw new Error(`toJson: ${t.kind}`);
  }
}

// @tars/stream's readList builds its result with `new Tars.List(proto)`, dropping the
// list's bString flag, so re-encoding a decoded vector<long> would squeeze values
// beyond 2^53 through a double. This puts the flag back before re-encoding (the bytes
// read were right; only that library's in-memory value loses the flag).
function restoreFlags(t, v) {
  if (t.kind === 'list') {
    v._bValue = t.elem.bString;
    for (const x of v.value) restoreFlags(t.elem, x);
  } else if (t.kind === 'map') {
    v.forEach((k, x) => { restoreFlags(t.key, k); restoreFlags(t.val, x); });
  } else if (t.kind === 'struct') {
    v.restoreFlags();
  }
}

// ---- struct classes (tars2node shape) --------------------------------------------

/**
 * Defines a struct class. fields: [tag, name, type, require, default]. The class has
 * the members @tars/stream calls (_write, _read, _readFrom, _writeTo, _equal, _genKey)
 * plus fromJson/toJson for the tests.
 */
function defineStruct(fullName, fields) {
  function S() {
    for (const f of fields) this[f.name] = f.def;
    this._classname = fullName;
  }
  STRUCTS[fullName] = S;
  S._classname = fullName;
  S._write = (os, tag, value) => os.writeStruct(tag, value);
  S._read = (is, tag, def) => is.readStruct(tag, true, def);
  S.new = () => new S();
  S.create = (is) => S._readFrom(is);
  // Types are resolved lazily: a struct may name one defined after it.
  let resolved = null;
  function spec() {
    if (!resolved) {
      resolved = fields.map(([tag, name, type, require, def]) => {
        const t = parseType(type);
        return { tag, name, t, require, def: def === undefined ? t.def : def };
      });
    }
    return resolved;
  }
  S._readFrom = function (is) {
    const tmp = new S();
    for (const f of spec()) {
      const t = f.t;
      switch (t.kind) {
        case 'prim': tmp[f.name] = is[t.read](f.tag, f.require, f.def, t.bString); break;
        case 'bytes': tmp[f.name] = is.readBytes(f.tag, f.require, Tars.BinBuffer); break;
        case 'list': tmp[f.name] = is.readList(f.tag, f.require, t.proto); break;
        case 'map': tmp[f.name] = is.readMap(f.tag, f.require, t.proto); break;
        case 'struct': tmp[f.name] = is.readStruct(f.tag, f.require, t.cls); break;
        default: throw new Error(t.kind);
      }
    }
    return tmp;
  };
  S.prototype._writeTo = function (os) {
    for (const f of spec()) {
      const t = f.t;
      const v = this[f.name];
      switch (t.kind) {
        case 'prim': os[t.write](f.tag, v, t.bString); break;
        case 'bytes': os.writeBytes(f.tag, v); break;
        case 'list': os.writeList(f.tag, v); break;
        case 'map': os.writeMap(f.tag, v); break;
        case 'struct': os.writeStruct(f.tag, v); break;
        default: throw new Error(t.kind);
      }
    }
  };
  S.prototype._equal = function (other) {
    return spec().every((f) => f.t.kind !== 'prim' || this[f.name] === other[f.name]);
  };
  S.prototype._genKey = function () {
    if (!this._proto_struct_name_) this._proto_struct_name_ = 'STRUCT' + Math.random();
    return this._proto_struct_name_;
  };
  S.prototype.restoreFlags = function () {
    for (const f of spec()) restoreFlags(f.t, this[f.name]);
  };
  S.fromJson = function (j) {
    const s = new S();
    for (const f of spec()) s[f.name] = fromJson(f.t, j[f.name]);
    return s;
  };
  S.prototype.toJson = function () {
    const o = {};
    for (const f of spec()) o[f.name] = toJson(f.t, this[f.name]);
    return o;
  };
  for (const f of fields) {
    f.name = f[1];
    f.def = f[4] === undefined ? (PRIMS[f[2]] ? PRIMS[f[2]].def : undefined) : f[4];
  }
  return S;
}

defineStruct('Vec.Inner', [
  [0, 'a', 'int', true],
  [1, 'b', 'string', false],
]);
defineStruct('Vec.Outer', [
  [0, 'inner', 'Vec.Inner', true],
  [1, 'items', 'vector<Vec.Inner>', false],
  [2, 'byName', 'map<string, Vec.Inner>', false],
  [3, 'l', 'long', false],
  [14, 't14', 'bool', false],
  [15, 't15', 'byte', false],
  [200, 't200', 'string', false],
]);
defineStruct('Vec.AllTypes', [
  [0, 'b', 'bool', true],
  [1, 'i8', 'byte', true],
  [2, 'i16', 'short', true],
  [3, 'i32', 'int', true],
  [4, 'i64', 'long', true],
  [5, 'f', 'float', true],
  [6, 'd', 'double', true],
  [7, 's', 'string', true],
  [8, 'li', 'vector<int>', true],
  [9, 'bytes', 'vector<byte>', true],
  [10, 'm', 'map<string, string>', true],
  [11, 'u8', 'unsigned byte', true],
  [12, 'u16', 'unsigned short', true],
  [13, 'u32', 'unsigned int', true],
]);
defineStruct('tars.StatMicMsgHead', [
  [0, 'masterName', 'string', true],
  [1, 'slaveName', 'string', true],
  [2, 'interfaceName', 'string', true],
  [3, 'masterIp', 'string', true],
  [4, 'slaveIp', 'string', true],
  [5, 'slavePort', 'int', true],
  [6, 'returnValue', 'int', true],
  [7, 'slaveSetName', 'string', false],
  [8, 'slaveSetArea', 'string', false],
  [9, 'slaveSetID', 'string', false],
  [10, 'tarsVersion', 'string', false],
]);
defineStruct('tars.StatMicMsgBody', [
  [0, 'count', 'int', true],
  [1, 'timeoutCount', 'int', true],
  [2, 'execCount', 'int', true],
  [3, 'intervalCount', 'map<int, int>', true],
  [4, 'totalRspTime', 'long', true],
  [5, 'maxRspTime', 'int', true],
  [6, 'minRspTime', 'int', true],
]);

/** Encodes `value` (a @tars/stream value of type t) alone at tag 0. */
function encode(t, value) {
  const os = new Tars.TarsOutputStream();
  t.proto._write(os, 0, value, t.bString);
  return os.getBinBuffer().toNodeBuffer();
}

/** Decodes the field at tag 0 of `buf` as type t. */
function decode(t, buf) {
  const is = new Tars.TarsInputStream(new Tars.BinBuffer(buf));
  return t.proto._read(is, 0, t.proto, t.bString);
}

module.exports = { Tars, parseType, fromJson, toJson, encode, decode, restoreFlags, STRUCTS };
