'use strict';
// The framework interfaces for fake_platform.js, read from the project's own .tars files
// (tars/idl/*.tars) at start instead of being transcribed by hand, so the fake decodes
// exactly what the IDL declares: field tags, require/optional, defaults, parameter order.
//
// The structs become @tars/stream classes laid out the way tars2node generates them
// (_readFrom/_writeTo per field, _equal/_genKey so a struct can key a map), and every
// value is converted to and from plain JSON for the records:
//   struct -> object by IDL field name; vector -> array; map with a struct key ->
//   [{key, value}]; map with a primitive key -> object (keys as strings);
//   long -> number when it is a safe integer, else a decimal string;
//   vector<byte> -> hex string.

const fs = require('fs');
const path = require('path');
const Tars = require('@tars/stream');

const PRIMS = {
  bool: { proto: Tars.Boolean, read: 'readBoolean', write: 'writeBoolean', def: false },
  byte: { proto: Tars.Int8, read: 'readInt8', write: 'writeInt8', def: 0 },
  short: { proto: Tars.Int16, read: 'readInt16', write: 'writeInt16', def: 0 },
  int: { proto: Tars.Int32, read: 'readInt32', write: 'writeInt32', def: 0 },
  // Read as a decimal string when the wire carries a full INT64, so nothing is rounded.
  long: { proto: Tars.Int64, read: 'readInt64', write: 'writeInt64', def: 0, bString: true },
  'unsigned byte': { proto: Tars.UInt8, read: 'readUInt8', write: 'writeUInt8', def: 0 },
  'unsigned short': { proto: Tars.UInt16, read: 'readUInt16', write: 'writeUInt16', def: 0 },
  'unsigned int': { proto: Tars.UInt32, read: 'readUInt32', write: 'writeUInt32', def: 0 },
  float: { proto: Tars.Float, read: 'readFloat', write: 'writeFloat', def: 0 },
  double: { proto: Tars.Double, read: 'readDouble', write: 'writeDouble', def: 0 },
  string: { proto: Tars.String, read: 'readString', write: 'writeString', def: '' },
};

// ---- parsing the .tars text ------------------------------------------------------------

function tokenize(text) {
  const clean = text.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
  const re = /"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_.]*|-?\d+(?:\.\d+)?|[{}<>(),;=[\]]|\S/g;
  return clean.match(re) || [];
}

/** Parses the module/struct/interface subset of the IDL the framework files use. */
function parseIdl(text, file, out) {
  const toks = tokenize(text);
  let i = 0;
  const peek = () => toks[i];
  const next = () => {
    if (i >= toks.length) throw new Error(`${file}: unexpected end`);
    return toks[i++];
  };
  const expect = (t) => {
    const got = next();
    if (got !== t) throw new Error(`${file}: expected '${t}', got '${got}'`);
  };
  function type() {
    const name = next();
    if (name === 'unsigned') return { kind: 'prim', name: `unsigned ${next()}` };
    if (name === 'vector') {
      expect('<');
      const elem = type();
      expect('>');
      if (elem.kind === 'prim' && elem.name === 'byte') return { kind: 'bytes' };
      return { kind: 'list', elem };
    }
    if (name === 'map') {
      expect('<');
      const key = type();
      expect(',');
      const val = type();
      expect('>');
      return { kind: 'map', key, val };
    }
    if (name === 'void') return { kind: 'void' };
    if (PRIMS[name]) return { kind: 'prim', name };
    return { kind: 'struct', name };
  }
  function literal(tok) {
    if (tok === 'true') return true;
    if (tok === 'false') return false;
    if (tok.startsWith('"')) return JSON.parse(tok);
    return Number(tok);
  }
  while (i < toks.length) {
    expect('module');
    const module = next();
    expect('{');
    while (peek() !== '}') {
      const what = next();
      if (what === 'key') {
        while (next() !== ';');
      } else if (what === 'struct') {
        const name = next();
        const fields = [];
        expect('{');
        while (peek() !== '}') {
          const tag = Number(next());
          const require = next() === 'require';
          const t = type();
          const fname = next();
          let def;
          if (peek() === '=') {
            next();
            def = literal(next());
          }
          expect(';');
          fields.push({ tag, require, type: t, name: fname, def });
        }
        expect('}');
        expect(';');
        out.structs[`${module}.${name}`] = { module, name, fields };
      } else if (what === 'interface') {
        const name = next();
        const funcs = {};
        expect('{');
        while (peek() !== '}') {
          const ret = type();
          const fname = next();
          const params = [];
          expect('(');
          while (peek() !== ')') {
            let isOut = false;
            if (peek() === 'out') {
              next();
              isOut = true;
            }
            const t = type();
            params.push({ out: isOut, type: t, name: next(), tag: params.length + 1 });
            if (peek() === ',') next();
          }
          expect(')');
          expect(';');
          funcs[fname] = { name: fname, ret, params };
        }
        expect('}');
        expect(';');
        out.interfaces[name] = { module, name, funcs };
      } else {
        throw new Error(`${file}: '${what}' is not supported by this parser`);
      }
    }
    expect('}');
    if (peek() === ';') next();
  }
}

// ---- @tars/stream classes and JSON conversion -------------------------------------------

class Schema {
  constructor() {
    this.structs = {};
    this.interfaces = {};
    this.classes = {};
  }

  /** Reads every *.tars file of `dir`. */
  static load(dir) {
    const s = new Schema();
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.tars')).sort()) {
      parseIdl(fs.readFileSync(path.join(dir, f), 'utf8'), f, s);
    }
    for (const name of Object.keys(s.structs)) s.classes[name] = s.makeClass(s.structs[name]);
    return s;
  }

  resolve(t, module) {
    if (t.kind !== 'struct') return t;
    if (!t.cls) {
      const full = t.name.includes('.') ? t.name : `${module || 'tars'}.${t.name}`;
      t.cls = this.classes[full];
      t.def = this.structs[full];
      if (!t.cls) throw new Error(`unknown struct ${t.name}`);
    }
    return t;
  }

  proto(t, module) {
    switch (t.kind) {
      case 'prim': return PRIMS[t.name].proto;
      case 'bytes': return Tars.BinBuffer;
      case 'list': return Tars.List(this.proto(t.elem, module), PRIMS[t.elem.name] && PRIMS[t.elem.name].bString);
      case 'map': return Tars.Map(this.proto(t.key, module), this.proto(t.val, module),
        PRIMS[t.key.name] && PRIMS[t.key.name].bString, PRIMS[t.val.name] && PRIMS[t.val.name].bString);
      case 'struct': return this.resolve(t, module).cls;
      default: throw new Error(`no proto for ${t.kind}`);
    }
  }

  /** A fresh default value of type `t` (IDL default `def` for primitives if given). */
  defaultValue(t, def, module) {
    switch (t.kind) {
      case 'prim': return def === undefined ? PRIMS[t.name].def : def;
      case 'bytes': return new Tars.BinBuffer();
      // proto() builds a fresh, empty container on every call.
      case 'list':
      case 'map': return this.proto(t, module);
      case 'struct': return new (this.resolve(t, module).cls)();
      default: return undefined;
    }
  }

  /** Reads a field of type `t` at `tag` from a TarsInputStream. */
  read(is, tag, require, t, def, module) {
    switch (t.kind) {
      case 'prim': {
        const p = PRIMS[t.name];
        const d = def === undefined ? p.def : def;
        return p.bString ? is[p.read](tag, require, d, true) : is[p.read](tag, require, d);
      }
      case 'bytes': return is.readBytes(tag, require, Tars.BinBuffer);
      case 'list': return is.readList(tag, require, this.proto(t, module));
      case 'map': return is.readMap(tag, require, this.proto(t, module));
      case 'struct': return is.readStruct(tag, require, this.resolve(t, module).cls);
      default: throw new Error(`cannot read ${t.kind}`);
    }
  }

  /** Writes `v` (a @tars/stream value) of type `t` at `tag`. */
  write(os, tag, t, v, module) {
    switch (t.kind) {
      case 'prim': {
        const p = PRIMS[t.name];
        return p.bString ? os[p.write](tag, v, true) : os[p.write](tag, v);
      }
      case 'bytes': return os.writeBytes(tag, v);
      case 'list': return os.writeList(tag, v);
      case 'map': return os.writeMap(tag, v);
      case 'struct': this.resolve(t, module); return os.writeStruct(tag, v);
      default: throw new Error(`cannot write ${t.kind}`);
    }
  }

  /** Reads item `name` of type `t` from a decoded UniAttribute (TUP). */
  readTup(tup, name, t, module) {
    switch (t.kind) {
      case 'prim': {
        const p = PRIMS[t.name];
        return p.bString ? tup[p.read](name, undefined, true) : tup[p.read](name);
      }
      case 'bytes': return tup.readBytes(name);
      case 'list': return tup.readList(name, this.proto(t, module));
      case 'map': return tup.readMap(name, this.proto(t, module));
      case 'struct': return tup.readStruct(name, this.resolve(t, module).cls);
      default: throw new Error(`cannot read ${t.kind}`);
    }
  }

  /** Adds item `name` of type `t` to a UniAttribute (TUP). */
  writeTup(tup, name, t, v, module) {
    switch (t.kind) {
      case 'prim': {
        const p = PRIMS[t.name];
        return p.bString ? tup[p.write](name, v, true) : tup[p.write](name, v);
      }
      case 'bytes': return tup.writeBytes(name, v);
      case 'list': return tup.writeList(name, v);
      case 'map': return tup.writeMap(name, v);
      case 'struct': this.resolve(t, module); return tup.writeStruct(name, v);
      default: throw new Error(`cannot write ${t.kind}`);
    }
  }

  /** A @tars/stream value as plain JSON (see the file comment for the conventions). */
  toJson(t, v, module) {
    switch (t.kind) {
      case 'prim':
        if (t.name === 'long' && typeof v === 'string') {
          const n = Number(v);
          return Number.isSafeInteger(n) ? n : v;
        }
        return v;
      case 'bytes': return v.toNodeBuffer().toString('hex');
      case 'list': return v.value.map((e) => this.toJson(t.elem, e, module));
      case 'map': {
        if (t.key.kind === 'struct') {
          const arr = [];
          v.forEach((k, val) => {
            arr.push({ key: this.toJson(t.key, k, module), value: this.toJson(t.val, val, module) });
          });
          return arr;
        }
        const obj = {};
        v.forEach((k, val) => { obj[String(this.toJson(t.key, k, module))] = this.toJson(t.val, val, module); }, true);
        return obj;
      }
      case 'struct': {
        const def = this.resolve(t, module).def;
        const obj = {};
        for (const f of def.fields) obj[f.name] = this.toJson(f.type, v[f.name], def.module);
        return obj;
      }
      default: return null;
    }
  }

  /** Builds a @tars/stream value of type `t` from plain JSON (the inverse of toJson). */
  fromJson(t, j, module) {
    switch (t.kind) {
      case 'prim': return j === undefined ? PRIMS[t.name].def : j;
      case 'bytes': {
        const b = new Tars.BinBuffer();
        b.writeNodeBuffer(Buffer.from(j || '', 'hex'));
        return b;
      }
      case 'list': {
        const l = this.proto(t, module);
        for (const e of j || []) l.push(this.fromJson(t.elem, e, module));
        return l;
      }
      case 'map': {
        const m = this.proto(t, module);
        if (t.key.kind === 'struct') {
          for (const { key, value } of j || []) {
            m.insert(this.fromJson(t.key, key, module), this.fromJson(t.val, value, module));
          }
        } else {
          for (const [k, val] of Object.entries(j || {})) {
            const key = t.key.kind === 'prim' && t.key.name !== 'string' ? Number(k) : k;
            m.insert(key, this.fromJson(t.val, val, module));
          }
        }
        return m;
      }
      case 'struct': {
        const { cls, def } = this.resolve(t, module);
        const s = new cls();
        for (const f of def.fields) {
          if (j && j[f.name] !== undefined) s[f.name] = this.fromJson(f.type, j[f.name], def.module);
        }
        return s;
      }
      default: return undefined;
    }
  }

  makeClass(def) {
    const schema = this;
    const full = `${def.module}.${def.name}`;
    const self = { kind: 'struct', name: full };
    function S() {
      for (const f of def.fields) this[f.name] = schema.defaultValue(f.type, f.def, def.module);
    }
    S._classname = full;
    S._write = (os, tag, value) => os.writeStruct(tag, value);
    S._read = (is, tag, d) => is.readStruct(tag, true, d);
    S.new = () => new S();
    S.create = (is) => S._readFrom(is);
    S._readFrom = function (is) {
      const s = new S();
      for (const f of def.fields) s[f.name] = schema.read(is, f.tag, f.require, f.type, f.def, def.module);
      return s;
    };
    S.prototype._writeTo = function (os) {
      for (const f of def.fields) schema.write(os, f.tag, f.type, this[f.name], def.module);
    };
    // As a map key: equal when every field is (TarsCpp's std::map compares the key[] fields,
    // which for these structs are all or nearly all of them).
    S.prototype._genKey = function () { return JSON.stringify(schema.toJson(self, this)); };
    S.prototype._equal = function (other) { return this._genKey() === other._genKey(); };
    return S;
  }
}

module.exports = { Schema, Tars };
