//! [`TarsEncode`] / [`TarsDecode`] for the Rust types that TARS types map to.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

use super::reader::prealloc;
use super::{
    Bytes, DecodeError, DecodeErrorKind, TarsDecode, TarsEncode, TarsReader, TarsStruct, TarsType,
    TarsWriter,
};

/// Integers: written in the smallest form; read from any integer form whose value fits.
macro_rules! int_impl {
    ($ty:ty, $write:ident, $name:literal) => {
        impl TarsEncode for $ty {
            #[inline]
            fn encode(&self, w: &mut TarsWriter, tag: u8) {
                w.$write(tag, *self);
            }
        }

        impl TarsDecode for $ty {
            #[inline]
            fn decode_value(
                r: &mut TarsReader<'_>,
                tag: u8,
                ty: TarsType,
            ) -> Result<Self, DecodeError> {
                let value = r.int_payload(tag, ty, $name)?;
                <$ty>::try_from(value).map_err(|_| {
                    r.error(DecodeErrorKind::OutOfRange {
                        tag,
                        value,
                        target: $name,
                    })
                })
            }
        }
    };
}

int_impl!(i8, write_i8, "byte");
int_impl!(i16, write_i16, "short");
int_impl!(i32, write_i32, "int");
int_impl!(i64, write_i64, "long");
int_impl!(u8, write_u8, "unsigned byte");
int_impl!(u16, write_u16, "unsigned short");
int_impl!(u32, write_u32, "unsigned int");

impl TarsEncode for bool {
    #[inline]
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        w.write_bool(tag, *self);
    }
}

impl TarsDecode for bool {
    /// Any non-zero integer is true, as TarsCpp reads it.
    #[inline]
    fn decode_value(r: &mut TarsReader<'_>, tag: u8, ty: TarsType) -> Result<Self, DecodeError> {
        Ok(r.int_payload(tag, ty, "bool")? != 0)
    }
}

impl TarsEncode for f32 {
    #[inline]
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        w.write_f32(tag, *self);
    }
}

impl TarsDecode for f32 {
    /// Accepts ZERO, FLOAT and DOUBLE (narrowed), as TarsCpp does.
    #[inline]
    fn decode_value(r: &mut TarsReader<'_>, tag: u8, ty: TarsType) -> Result<Self, DecodeError> {
        // A FLOAT widened to f64 and back is exact; a DOUBLE is narrowed on purpose.
        Ok(r.float_payload(tag, ty, "float")? as f32)
    }
}

impl TarsEncode for f64 {
    #[inline]
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        w.write_f64(tag, *self);
    }
}

impl TarsDecode for f64 {
    #[inline]
    fn decode_value(r: &mut TarsReader<'_>, tag: u8, ty: TarsType) -> Result<Self, DecodeError> {
        r.float_payload(tag, ty, "double")
    }
}

impl TarsEncode for str {
    #[inline]
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        w.write_str(tag, self);
    }
}

impl TarsEncode for String {
    #[inline]
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        w.write_str(tag, self);
    }
}

impl TarsDecode for String {
    /// One allocation of exactly the string's length; the bytes must be UTF-8.
    #[inline]
    fn decode_value(r: &mut TarsReader<'_>, tag: u8, ty: TarsType) -> Result<Self, DecodeError> {
        r.str_payload(tag, ty).map(str::to_owned)
    }
}

impl TarsEncode for Bytes {
    #[inline]
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        w.write_bytes(tag, &self.0);
    }
}

impl TarsDecode for Bytes {
    /// SIMPLE_LIST, or (as TarsCpp also accepts) a LIST of `byte` elements.
    fn decode_value(r: &mut TarsReader<'_>, tag: u8, ty: TarsType) -> Result<Self, DecodeError> {
        match ty {
            TarsType::SimpleList => Ok(Bytes(r.simple_list_payload()?.to_vec())),
            TarsType::List => {
                let items: Vec<i8> = Vec::decode_value(r, tag, ty)?;
                Ok(Bytes(items.into_iter().map(|b| b as u8).collect()))
            }
            found => Err(r.error(DecodeErrorKind::TypeMismatch {
                tag,
                expected: "vector<byte>",
                found,
            })),
        }
    }
}

impl<T: TarsEncode> TarsEncode for Vec<T> {
    #[inline]
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        self.as_slice().encode(w, tag);
    }
}

impl<T: TarsEncode> TarsEncode for [T] {
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        w.write_list_begin(tag, self.len());
        for item in self {
            item.encode(w, 0);
        }
    }
}

impl<T: TarsDecode> TarsDecode for Vec<T> {
    fn decode_value(r: &mut TarsReader<'_>, tag: u8, ty: TarsType) -> Result<Self, DecodeError> {
        if ty != TarsType::List {
            return Err(r.error(DecodeErrorKind::TypeMismatch {
                tag,
                expected: "vector",
                found: ty,
            }));
        }
        r.enter()?;
        let count = r.read_len(1)?;
        let mut out = Vec::with_capacity(prealloc::<T>(count));
        for _ in 0..count {
            out.push(r.read_element(0)?);
        }
        r.leave();
        Ok(out)
    }
}

/// Writes a map's entries in the iteration order given.
fn encode_map<'m, K, V, I>(w: &mut TarsWriter, tag: u8, len: usize, entries: I)
where
    K: TarsEncode + 'm,
    V: TarsEncode + 'm,
    I: Iterator<Item = (&'m K, &'m V)>,
{
    w.write_map_begin(tag, len);
    for (k, v) in entries {
        k.encode(w, 0);
        v.encode(w, 1);
    }
}

/// Reads a map's entries after its head, handing each to `insert`.
fn decode_map<K, V>(
    r: &mut TarsReader<'_>,
    tag: u8,
    ty: TarsType,
    mut insert: impl FnMut(usize, K, V),
) -> Result<(), DecodeError>
where
    K: TarsDecode,
    V: TarsDecode,
{
    if ty != TarsType::Map {
        return Err(r.error(DecodeErrorKind::TypeMismatch {
            tag,
            expected: "map",
            found: ty,
        }));
    }
    r.enter()?;
    // Each entry is at least two heads.
    let count = r.read_len(2)?;
    for i in 0..count {
        let key = r.read_element(0)?;
        let value = r.read_element(1)?;
        insert(if i == 0 { count } else { 0 }, key, value);
    }
    r.leave();
    Ok(())
}

impl<K: TarsEncode, V: TarsEncode> TarsEncode for BTreeMap<K, V> {
    /// Entries go in ascending key order, as a C++ `std::map` writes them.
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        encode_map(w, tag, self.len(), self.iter());
    }
}

impl<K: TarsDecode + Ord, V: TarsDecode> TarsDecode for BTreeMap<K, V> {
    /// A repeated key keeps the last value, as TarsCpp and Tars.js do.
    fn decode_value(r: &mut TarsReader<'_>, tag: u8, ty: TarsType) -> Result<Self, DecodeError> {
        let mut out = BTreeMap::new();
        decode_map(r, tag, ty, |_, k, v| {
            out.insert(k, v);
        })?;
        Ok(out)
    }
}

impl<K: TarsEncode, V: TarsEncode, S> TarsEncode for HashMap<K, V, S> {
    /// Entries go in the map's iteration order, so the bytes are not deterministic;
    /// prefer `BTreeMap` where byte-exact output matters.
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        encode_map(w, tag, self.len(), self.iter());
    }
}

impl<K, V, S> TarsDecode for HashMap<K, V, S>
where
    K: TarsDecode + Eq + Hash,
    V: TarsDecode,
    S: BuildHasher + Default,
{
    fn decode_value(r: &mut TarsReader<'_>, tag: u8, ty: TarsType) -> Result<Self, DecodeError> {
        let mut out = HashMap::with_hasher(S::default());
        decode_map(r, tag, ty, |count, k, v| {
            if count > 0 {
                out.reserve(prealloc::<(K, V)>(count));
            }
            out.insert(k, v);
        })?;
        Ok(out)
    }
}

impl<T: TarsStruct> TarsEncode for T {
    #[inline]
    fn encode(&self, w: &mut TarsWriter, tag: u8) {
        w.write_struct_begin(tag);
        self.encode_fields(w);
        w.write_struct_end();
    }
}

impl<T: TarsStruct> TarsDecode for T {
    /// Decodes the fields, then skips any unknown ones up to the STRUCT_END.
    fn decode_value(r: &mut TarsReader<'_>, tag: u8, ty: TarsType) -> Result<Self, DecodeError> {
        if ty != TarsType::StructBegin {
            return Err(r.error(DecodeErrorKind::TypeMismatch {
                tag,
                expected: "struct",
                found: ty,
            }));
        }
        r.enter()?;
        let value = T::decode_fields(r)?;
        r.skip_to_struct_end()?;
        r.leave();
        Ok(value)
    }
}
