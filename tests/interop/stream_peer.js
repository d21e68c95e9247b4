'use strict';
// The @tars/stream side of tars/tests/stream_roundtrip.rs. Reads one JSON batch on
// stdin: {"items": [{"type": ".tars type", "value": <JSON>, "hex": "<Rust encoding>"}]}
// and writes {"results": [{"js": hex, "re": hex, "json": <JSON>} | {"error": text}]}:
//   js   = @tars/stream's encoding of `value` (JS -> Rust direction),
//   json = what @tars/stream decodes from Rust's `hex` (Rust -> JS direction),
//   re   = @tars/stream re-encoding what it decoded (Rust -> JS -> Rust).
// Everything is at tag 0. One process per batch keeps the test fast.

const { parseType, fromJson, toJson, encode, decode, restoreFlags } = require('./codec_types');

function handle(item) {
  const t = parseType(item.type);
  const js = encode(t, fromJson(t, item.value)).toString('hex');
  const decoded = decode(t, Buffer.from(item.hex, 'hex'));
  restoreFlags(t, decoded);
  const re = encode(t, decoded).toString('hex');
  return { js, re, json: toJson(t, decoded) };
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const batch = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const results = batch.items.map((item) => {
    try {
      return handle(item);
    } catch (e) {
      return { error: `${item.type}: ${e && e.stack ? e.stack : e}` };
    }
  });
  process.stdout.write(JSON.stringify({ results }));
});
