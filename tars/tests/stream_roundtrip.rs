//! Property test against the real @tars/stream 2.0.3 (node, `tests/interop/stream_peer.js`):
//! random values of every TARS type, from a fixed seed, go
//!
//! * Rust → @tars/stream: Rust encodes, @tars/stream decodes, the JSON it reports
//!   equals the value;
//! * Rust → @tars/stream → Rust: @tars/stream re-encodes what it decoded, Rust decodes
//!   the value back;
//! * @tars/stream → Rust: @tars/stream encodes the value, Rust decodes it;
//!
//! and the two encoders produce identical bytes, except where the wire legitimately
//! differs: `-0.0` (Tars.js writes every zero as ZERO, losing the sign; we keep it in
//! full width) and `map<int, int>` / struct-keyed maps (Tars.js orders entries by
//! JavaScript object-key order, not ascending; those cases are compared by value).
//!
//! One node process per batch of cases, not per case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use serde_json::{json, Value};
use support::json::{from_hex, to_hex, FromJson, ToJson};
use support::node::run_node;
use support::structs::*;
use tarsfork_tars::codec::{to_bytes, Bytes, TarsDecode, TarsEncode, TarsReader};

const SEED: u64 = 0x7a75_2024_c0de_0004;
const CASES: usize = 1200;
const BATCH: usize = 400;

/// splitmix64: small, fixed, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    /// An integer biased to boundaries: edges of every width, or random bits of a
    /// random width, sign-extended.
    fn int(&mut self) -> i64 {
        const EDGES: [i64; 16] = [
            0,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            32767,
            32768,
            -32768,
            -32769,
            i32::MAX as i64,
            i32::MIN as i64,
            1 << 31,
            i64::MAX,
            i64::MIN,
        ];
        if self.chance(4) {
            return EDGES[self.below(16) as usize];
        }
        let bits = 1 + self.below(64);
        let v = self.next() >> (64 - bits);
        let v = v as i64;
        // Sign-extend from `bits`.
        (v << (64 - bits)) >> (64 - bits)
    }
    fn len(&mut self, max: u64) -> usize {
        // Mostly short, sometimes up to `max`.
        if self.chance(8) {
            self.below(max + 1) as usize
        } else {
            self.below(6) as usize
        }
    }
    fn string(&mut self) -> String {
        const POOL: [char; 12] = [
            'a', 'Z', '0', ' ', '-', '"', '\\', 'é', '中', '文', '😀', '\u{7f}',
        ];
        // Up to 300 characters so STRING4 (over 255 bytes) comes up.
        let n = if self.chance(10) {
            200 + self.below(101) as usize
        } else {
            self.len(20)
        };
        (0..n)
            .map(|_| POOL[self.below(POOL.len() as u64) as usize])
            .collect()
    }
    /// A map key that JavaScript keeps in insertion order (not an array index), so
    /// @tars/stream writes entries in the same ascending order as a BTreeMap.
    fn key(&mut self) -> String {
        format!("k{}", self.string())
    }
    fn f64(&mut self) -> f64 {
        match self.below(10) {
            0 => 0.0,
            1 => -0.0,
            2 => [
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::MIN_POSITIVE,
                f64::MAX,
            ][self.below(5) as usize],
            _ => {
                let v = f64::from_bits(self.next());
                if v.is_nan() {
                    1.5
                } else {
                    v
                }
            }
        }
    }
    fn f32(&mut self) -> f32 {
        match self.below(10) {
            0 => 0.0,
            1 => -0.0,
            2 => [
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::MIN_POSITIVE,
                f32::MAX,
            ][self.below(5) as usize],
            _ => {
                let v = f32::from_bits(self.next() as u32);
                if v.is_nan() {
                    -2.25
                } else {
                    v
                }
            }
        }
    }
}

/// Random generation for each Rust type the TARS types map to.
trait Gen: Sized {
    fn gen(r: &mut Rng) -> Self;
}

macro_rules! gen_int {
    ($($t:ty),*) => {$(
        impl Gen for $t {
            fn gen(r: &mut Rng) -> Self {
                // Truncation keeps the boundary bias of `int` for every width.
                r.int() as $t
            }
        }
    )*};
}
gen_int!(i8, i16, i32, i64, u8, u16, u32);

impl Gen for bool {
    fn gen(r: &mut Rng) -> Self {
        r.chance(2)
    }
}
impl Gen for f32 {
    fn gen(r: &mut Rng) -> Self {
        r.f32()
    }
}
impl Gen for f64 {
    fn gen(r: &mut Rng) -> Self {
        r.f64()
    }
}
impl Gen for String {
    fn gen(r: &mut Rng) -> Self {
        r.string()
    }
}
impl Gen for Bytes {
    fn gen(r: &mut Rng) -> Self {
        let n = if r.chance(10) {
            r.below(600) as usize
        } else {
            r.len(16)
        };
        Bytes((0..n).map(|_| r.next() as u8).collect())
    }
}
impl<T: Gen> Gen for Vec<T> {
    fn gen(r: &mut Rng) -> Self {
        let n = r.len(40);
        (0..n).map(|_| T::gen(r)).collect()
    }
}
/// `map<string, V>` with insertion-ordered keys (see [`Rng::key`]).
fn gen_string_map<V: Gen>(r: &mut Rng) -> BTreeMap<String, V> {
    let n = r.len(12);
    (0..n).map(|_| (r.key(), V::gen(r))).collect()
}
impl Gen for Inner {
    fn gen(r: &mut Rng) -> Self {
        Inner {
            a: Gen::gen(r),
            b: Gen::gen(r),
        }
    }
}
impl Gen for Outer {
    fn gen(r: &mut Rng) -> Self {
        Outer {
            inner: Gen::gen(r),
            items: Gen::gen(r),
            by_name: gen_string_map(r),
            l: Gen::gen(r),
            t14: Gen::gen(r),
            t15: Gen::gen(r),
            t200: Gen::gen(r),
        }
    }
}
impl Gen for AllTypes {
    fn gen(r: &mut Rng) -> Self {
        AllTypes {
            b: Gen::gen(r),
            i8: Gen::gen(r),
            i16: Gen::gen(r),
            i32: Gen::gen(r),
            i64: Gen::gen(r),
            f: Gen::gen(r),
            d: Gen::gen(r),
            s: Gen::gen(r),
            li: Gen::gen(r),
            bytes: Gen::gen(r),
            m: gen_string_map(r),
            u8: Gen::gen(r),
            u16: Gen::gen(r),
            u32: Gen::gen(r),
        }
    }
}
impl Gen for StatMicMsgHead {
    fn gen(r: &mut Rng) -> Self {
        StatMicMsgHead {
            master_name: Gen::gen(r),
            slave_name: Gen::gen(r),
            interface_name: Gen::gen(r),
            master_ip: Gen::gen(r),
            slave_ip: Gen::gen(r),
            slave_port: Gen::gen(r),
            return_value: Gen::gen(r),
            slave_set_name: Gen::gen(r),
            slave_set_area: Gen::gen(r),
            slave_set_id: Gen::gen(r),
            tars_version: Gen::gen(r),
        }
    }
}
impl Gen for StatMicMsgBody {
    fn gen(r: &mut Rng) -> Self {
        let n = r.len(8);
        StatMicMsgBody {
            count: Gen::gen(r),
            timeout_count: Gen::gen(r),
            exec_count: Gen::gen(r),
            interval_count: (0..n).map(|_| (Gen::gen(r), Gen::gen(r))).collect(),
            total_rsp_time: Gen::gen(r),
            max_rsp_time: Gen::gen(r),
            min_rsp_time: Gen::gen(r),
        }
    }
}

/// Value equality where NaN equals NaN and, with `loose_zero`, -0.0 equals +0.0
/// (Tars.js cannot carry the sign of zero).
trait Same {
    fn same(&self, other: &Self, loose_zero: bool) -> bool;
}

macro_rules! same_eq {
    ($($t:ty),*) => {$(
        impl Same for $t {
            fn same(&self, other: &Self, _: bool) -> bool { self == other }
        }
    )*};
}
same_eq!(
    bool,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    String,
    Bytes,
    Inner,
    Outer,
    StatMicMsgHead,
    StatMicMsgBody
);

impl Same for f64 {
    fn same(&self, other: &Self, loose_zero: bool) -> bool {
        (self.is_nan() && other.is_nan())
            || self.to_bits() == other.to_bits()
            || (loose_zero && *self == 0.0 && *other == 0.0)
    }
}
impl Same for f32 {
    fn same(&self, other: &Self, loose_zero: bool) -> bool {
        f64::from(*self).same(&f64::from(*other), loose_zero)
    }
}
impl<T: Same> Same for Vec<T> {
    fn same(&self, other: &Self, loose_zero: bool) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a.same(b, loose_zero))
    }
}
impl<K: Ord, V: Same> Same for BTreeMap<K, V> {
    fn same(&self, other: &Self, loose_zero: bool) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other)
                .all(|((ka, va), (kb, vb))| ka == kb && va.same(vb, loose_zero))
    }
}
impl Same for AllTypes {
    fn same(&self, o: &Self, lz: bool) -> bool {
        let Self {
            b,
            i8,
            i16,
            i32,
            i64,
            f,
            d,
            s,
            li,
            bytes,
            m,
            u8,
            u16,
            u32,
        } = self;
        (b, i8, i16, i32, i64, s, li, bytes, m, u8, u16, u32)
            == (
                &o.b, &o.i8, &o.i16, &o.i32, &o.i64, &o.s, &o.li, &o.bytes, &o.m, &o.u8, &o.u16,
                &o.u32,
            )
            && f.same(&o.f, lz)
            && d.same(&o.d, lz)
    }
}

/// A check of something @tars/stream produced against the case's value.
type Check<T> = Box<dyn Fn(&T) -> Result<(), String>>;

/// One generated case: its type, JSON form, Rust encoding, and how to check what
/// @tars/stream made of it.
struct Case {
    ty: &'static str,
    json: Value,
    hex: String,
    /// Whether both encoders must agree byte for byte.
    exact: bool,
    /// Decodes bytes in Rust and compares with the value (loose zero).
    check_bytes: Check<[u8]>,
    /// Compares @tars/stream's JSON with the value (loose zero).
    check_json: Check<Value>,
}

fn case<T>(ty: &'static str, value: T, ordered: bool) -> Case
where
    T: TarsEncode + TarsDecode + ToJson + FromJson + Same + Debug + Clone + 'static,
{
    let json = value.to_json();
    let bytes = to_bytes(0, &value);
    // Rust's own round trip must hold before comparing with anyone else.
    let back: T = TarsReader::new(&bytes).read_required(0).unwrap();
    assert!(
        back.same(&value, false),
        "Rust round trip of {ty}: {value:?} became {back:?}"
    );
    let negative_zero = json.to_string().contains("\"-0.0\"");
    let v1 = value.clone();
    let v2 = value;
    Case {
        ty,
        json,
        hex: to_hex(&bytes),
        exact: ordered && !negative_zero,
        check_bytes: Box::new(move |b| {
            let mut r = TarsReader::new(b);
            let got: T = r.read_required(0).map_err(|e| e.to_string())?;
            r.finish().map_err(|e| e.to_string())?;
            if got.same(&v1, true) {
                Ok(())
            } else {
                Err(format!("decoded {got:?}, want {v1:?}"))
            }
        }),
        check_json: Box::new(move |j| {
            let got = T::from_json(j);
            if got.same(&v2, true) {
                Ok(())
            } else {
                Err(format!("@tars/stream read {got:?}, want {v2:?}"))
            }
        }),
    }
}

/// The case for the `i`th draw: cycles through every type.
fn gen_case(r: &mut Rng, i: usize) -> Case {
    match i % 26 {
        0 => case("bool", bool::gen(r), true),
        1 => case("byte", i8::gen(r), true),
        2 => case("short", i16::gen(r), true),
        3 => case("int", i32::gen(r), true),
        4 => case("long", i64::gen(r), true),
        5 => case("unsigned byte", u8::gen(r), true),
        6 => case("unsigned short", u16::gen(r), true),
        7 => case("unsigned int", u32::gen(r), true),
        8 => case("float", f32::gen(r), true),
        9 => case("double", f64::gen(r), true),
        10 => case("string", String::gen(r), true),
        11 => case("vector<byte>", Bytes::gen(r), true),
        12 => case("vector<int>", Vec::<i32>::gen(r), true),
        13 => case("vector<long>", Vec::<i64>::gen(r), true),
        14 => case("vector<string>", Vec::<String>::gen(r), true),
        15 => case("vector<double>", Vec::<f64>::gen(r), true),
        16 => case("vector<vector<short>>", Vec::<Vec<i16>>::gen(r), true),
        17 => case("map<string, string>", gen_string_map::<String>(r), true),
        18 => case(
            "map<string, vector<int>>",
            gen_string_map::<Vec<i32>>(r),
            true,
        ),
        19 => {
            // Non-negative keys: JavaScript iterates array-index keys in ascending order.
            let n = r.len(10);
            let m: BTreeMap<i32, String> = (0..n)
                .map(|_| ((r.int() as i32) & i32::MAX, r.string()))
                .collect();
            case("map<int, string>", m, true)
        }
        20 => {
            let n = r.len(10);
            let m: BTreeMap<i32, i32> = (0..n).map(|_| (i32::gen(r), i32::gen(r))).collect();
            case("map<int, int>", m, false)
        }
        21 => case("Vec.Inner", Inner::gen(r), true),
        22 => case("vector<Vec.Inner>", Vec::<Inner>::gen(r), true),
        23 => case("Vec.Outer", Outer::gen(r), true),
        24 => case("Vec.AllTypes", AllTypes::gen(r), true),
        _ => {
            let n = r.len(6);
            let m: BTreeMap<StatMicMsgHead, StatMicMsgBody> = (0..n)
                .map(|_| (StatMicMsgHead::gen(r), StatMicMsgBody::gen(r)))
                .collect();
            case("map<tars.StatMicMsgHead, tars.StatMicMsgBody>", m, false)
        }
    }
}

#[test]
fn random_values_round_trip_between_rust_and_tars_stream() {
    let mut rng = Rng(SEED);
    let cases: Vec<Case> = (0..CASES).map(|i| gen_case(&mut rng, i)).collect();
    let mut failures = Vec::new();
    let mut exact_checked = 0;
    for (b, batch) in cases.chunks(BATCH).enumerate() {
        let items: Vec<Value> = batch
            .iter()
            .map(|c| json!({"type": c.ty, "value": c.json, "hex": c.hex}))
            .collect();
        let input = serde_json::to_vec(&json!({ "items": items })).unwrap();
        let out = run_node("stream_peer.js", &[], &input, Duration::from_secs(120));
        let out: Value = serde_json::from_slice(&out).unwrap();
        let results = out["results"].as_array().unwrap();
        assert_eq!(results.len(), batch.len(), "batch {b}: one result per case");
        for (i, (c, res)) in batch.iter().zip(results).enumerate() {
            let n = b * BATCH + i;
            let mut fail = |what: &str, msg: String| {
                failures.push(format!(
                    "case {n} ({}): {what}: {msg}\n  value {}",
                    c.ty, c.json
                ));
            };
            if let Some(e) = res.get("error") {
                fail("@tars/stream", e.to_string());
                continue;
            }
            let js = from_hex(res["js"].as_str().unwrap());
            let re = from_hex(res["re"].as_str().unwrap());
            if let Err(e) = (c.check_json)(&res["json"]) {
                fail("Rust -> @tars/stream", e);
            }
            if let Err(e) = (c.check_bytes)(&re) {
                fail("Rust -> @tars/stream -> Rust", e);
            }
            if let Err(e) = (c.check_bytes)(&js) {
                fail("@tars/stream -> Rust", e);
            }
            if c.exact {
                exact_checked += 1;
                if to_hex(&js) != c.hex {
                    fail(
                        "bytes",
                        format!("@tars/stream wrote {}, Rust wrote {}", to_hex(&js), c.hex),
                    );
                }
                if re != js {
                    fail(
                        "bytes",
                        "@tars/stream's re-encoding differs from its encoding".into(),
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {CASES} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The byte-exact comparison must not have been vacuous.
    assert!(
        exact_checked > CASES * 3 / 4,
        "only {exact_checked} byte-exact comparisons"
    );
}
