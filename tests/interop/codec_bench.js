'use strict';
// The @tars/stream half of benches/tars_codec.rs. Reads {"hex", "iters", "runs"} on
// stdin: `hex` is a map<tars.StatMicMsgHead, tars.StatMicMsgBody> encoded at tag 0.
// Decodes and re-encodes it with @tars/stream (struct classes as tars2node writes
// them, see codec_types.js) and prints {"encode_us", "decode_us", "hex"}: the median
// microseconds per operation over `runs` runs of `iters` operations, and the bytes
// @tars/stream wrote (the Rust side checks they decode to the same map).

const { parseType, encode, decode } = require('./codec_types');

function median(xs) {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median microseconds per call of fn. */
function measure(iters, runs, fn) {
  const samples = [];
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) fn();
    const t1 = process.hrtime.bigint();
    samples.push(Number(t1 - t0) / 1000 / iters);
  }
  return median(samples);
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const t = parseType('map<tars.StatMicMsgHead, tars.StatMicMsgBody>');
  const input = Buffer.from(req.hex, 'hex');
  const value = decode(t, input);
  if (value.size() === 0) throw new Error('decoded an empty map');
  // Warm up the JIT before measuring.
  for (let i = 0; i < 3; i++) encode(t, decode(t, input));
  let sink = 0;
  const decodeUs = measure(req.iters, req.runs, () => { sink += decode(t, input).size(); });
  const encodeUs = measure(req.iters, req.runs, () => { sink += encode(t, value).length; });
  const out = encode(t, value);
  process.stdout.write(JSON.stringify({
    encode_us: encodeUs,
    decode_us: decodeUs,
    entries: value.size(),
    sink,
    hex: out.toString('hex'),
  }));
});
