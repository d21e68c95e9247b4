//! JSON ⇄ Rust values in the conventions of the vector file (and of
//! `tests/interop/stream_peer.js`): `long`/`unsigned int` as a number when safe, else a
//! decimal string; `vector<byte>` as hex; `map<string, V>` as an object; other maps as
//! `[{key, value}]`; float specials as "NaN" / "Infinity" / "-Infinity" / "-0.0".

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use tarsfork_tars::codec::Bytes;

use super::structs::*;

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string; panics (test input) on bad hex.
pub fn from_hex(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len() % 2, 0, "odd hex length: {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex: {hex}"))
        })
        .collect()
}

/// Builds a value from its JSON form (panics on a shape mismatch: test input).
pub trait FromJson: Sized {
    fn from_json(v: &Value) -> Self;
}

/// Produces the JSON form of a value.
pub trait ToJson {
    fn to_json(&self) -> Value;
}

fn int_of(v: &Value) -> i128 {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128))
            .unwrap_or_else(|| panic!("not an integer: {v}")),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not an integer: {v}")),
        Value::Bool(b) => i128::from(*b),
        _ => panic!("not an integer: {v}"),
    }
}

macro_rules! json_int {
    ($($t:ty),*) => {$(
        impl FromJson for $t {
            fn from_json(v: &Value) -> Self {
                <$t>::try_from(int_of(v)).unwrap_or_else(|_| panic!("{v} out of range for {}", stringify!($t)))
            }
        }
        impl ToJson for $t {
            fn to_json(&self) -> Value {
                let wide = i128::from(*self);
                // Beyond 2^53 a JSON number loses precision in JavaScript.
                if wide.abs() <= (1i128 << 53) { json!(wide as i64) } else { json!(wide.to_string()) }
            }
        }
    )*};
}

json_int!(i8, i16, i32, i64, u8, u16, u32);

impl FromJson for bool {
    fn from_json(v: &Value) -> Self {
        match v {
            Value::Bool(b) => *b,
            other => int_of(other) != 0,
        }
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Value {
        json!(*self)
    }
}

fn float_of(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or_else(|| panic!("not a number: {v}")),
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("not a float: {v}")),
        },
        _ => panic!("not a float: {v}"),
    }
}

fn float_json(f: f64) -> Value {
    if f.is_nan() {
        json!("NaN")
    } else if f.is_infinite() {
        json!(if f > 0.0 { "Infinity" } else { "-Infinity" })
    } else if f == 0.0 && f.is_sign_negative() {
        json!("-0.0")
    } else {
        json!(f)
    }
}

impl FromJson for f32 {
    fn from_json(v: &Value) -> Self {
        float_of(v) as f32
    }
}

impl ToJson for f32 {
    fn to_json(&self) -> Value {
        float_json(f64::from(*self))
    }
}

impl FromJson for f64 {
    fn from_json(v: &Value) -> Self {
        float_of(v)
    }
}

impl ToJson for f64 {
    fn to_json(&self) -> Value {
        float_json(*self)
    }
}

impl FromJson for String {
    fn from_json(v: &Value) -> Self {
        match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => panic!("not a string: {v}"),
        }
    }
}

impl ToJson for String {
    fn to_json(&self) -> Value {
        json!(self)
    }
}

impl FromJson for Bytes {
    fn from_json(v: &Value) -> Self {
        Bytes(from_hex(
            v.as_str().unwrap_or_else(|| panic!("not hex: {v}")),
        ))
    }
}

impl ToJson for Bytes {
    fn to_json(&self) -> Value {
        json!(to_hex(self))
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(v: &Value) -> Self {
        v.as_array()
            .unwrap_or_else(|| panic!("not an array: {v}"))
            .iter()
            .map(T::from_json)
            .collect()
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(ToJson::to_json).collect())
    }
}

/// Map keys: strings go in a JSON object, everything else in `[{key, value}]`.
pub trait JsonKey: FromJson + ToJson + Ord {
    const STRING: bool = false;
}

impl JsonKey for String {
    const STRING: bool = true;
}
impl JsonKey for i32 {}
impl JsonKey for i64 {}
impl JsonKey for StatMicMsgHead {}
impl JsonKey for StatPropMsgHead {}

impl<K: JsonKey, V: FromJson> FromJson for BTreeMap<K, V> {
    fn from_json(v: &Value) -> Self {
        match v {
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| (K::from_json(&json!(k)), V::from_json(v)))
                .collect(),
            Value::Array(a) => a
                .iter()
                .map(|e| (K::from_json(&e["key"]), V::from_json(&e["value"])))
                .collect(),
            _ => panic!("not a map: {v}"),
        }
    }
}

impl<K: JsonKey, V: ToJson> ToJson for BTreeMap<K, V> {
    fn to_json(&self) -> Value {
        if K::STRING {
            let mut o = Map::new();
            for (k, v) in self {
                let key = k.to_json();
                o.insert(key.as_str().unwrap_or_default().to_owned(), v.to_json());
            }
            Value::Object(o)
        } else {
            Value::Array(
                self.iter()
                    .map(|(k, v)| json!({"key": k.to_json(), "value": v.to_json()}))
                    .collect(),
            )
        }
    }
}

/// Reads `name` from a JSON object (absent → JSON null, which most types reject).
fn field<T: FromJson>(v: &Value, name: &str) -> T {
    T::from_json(
        v.get(name)
            .unwrap_or_else(|| panic!("field {name} missing in {v}")),
    )
}

/// Declares FromJson/ToJson for a struct as (rust field, JSON name) pairs.
macro_rules! json_struct {
    ($ty:ty { $($field:ident : $name:literal),* $(,)? }) => {
        impl FromJson for $ty {
            fn from_json(v: &Value) -> Self {
                Self { $($field: field(v, $name)),* }
            }
        }
        impl ToJson for $ty {
            fn to_json(&self) -> Value {
                let mut o = Map::new();
                $(o.insert($name.to_owned(), self.$field.to_json());)*
                Value::Object(o)
            }
        }
    };
}

json_struct!(Inner { a: "a", b: "b" });
json_struct!(Outer {
    inner: "inner",
    items: "items",
    by_name: "byName",
    l: "l",
    t14: "t14",
    t15: "t15",
    t200: "t200",
});
json_struct!(AllTypes {
    b: "b",
    i8: "i8",
    i16: "i16",
    i32: "i32",
    i64: "i64",
    f: "f",
    d: "d",
    s: "s",
    li: "li",
    bytes: "bytes",
    m: "m",
    u8: "u8",
    u16: "u16",
    u32: "u32",
});
json_struct!(ServerInfo {
    application: "application",
    server_name: "serverName",
    pid: "pid",
    adapter: "adapter",
});
json_struct!(StatMicMsgHead {
    master_name: "masterName",
    slave_name: "slaveName",
    interface_name: "interfaceName",
    master_ip: "masterIp",
    slave_ip: "slaveIp",
    slave_port: "slavePort",
    return_value: "returnValue",
    slave_set_name: "slaveSetName",
    slave_set_area: "slaveSetArea",
    slave_set_id: "slaveSetID",
    tars_version: "tarsVersion",
});
json_struct!(StatMicMsgBody {
    count: "count",
    timeout_count: "timeoutCount",
    exec_count: "execCount",
    interval_count: "intervalCount",
    total_rsp_time: "totalRspTime",
    max_rsp_time: "maxRspTime",
    min_rsp_time: "minRspTime",
});
json_struct!(StatPropMsgHead {
    module_name: "moduleName",
    ip: "ip",
    property_name: "propertyName",
    set_name: "setName",
    set_area: "setArea",
    set_id: "setID",
    s_container: "sContainer",
    i_property_ver: "iPropertyVer",
});
json_struct!(StatPropInfo {
    policy: "policy",
    value: "value",
});
json_struct!(StatPropMsgBody { v_info: "vInfo" });
