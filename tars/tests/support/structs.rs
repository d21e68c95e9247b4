//! Hand-written Rust for the structs the test vectors use: `Vec.*` from the vector
//! file's IDL and the framework structs of `shared/tars/framework.tars`. Written the way
//! the codec's module docs tell `tars2rs` to generate them, so the tests also check
//! that recipe. (Also included by `benches/tars_codec.rs`.)

#![allow(dead_code)]

use std::collections::BTreeMap;

use tarsfork_tars::codec::{Bytes, DecodeError, TarsReader, TarsStruct, TarsWriter};

/// `Vec.Inner`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Inner {
    pub a: i32,
    pub b: String,
}

impl TarsStruct for Inner {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.a);
        w.write(1, &self.b);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            a: r.read_required(0)?,
            b: r.read_optional(1)?.unwrap_or_default(),
        })
    }
}

/// `Vec.Outer`: nested struct, list and map of struct, tags 14, 15 and 200.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outer {
    pub inner: Inner,
    pub items: Vec<Inner>,
    pub by_name: BTreeMap<String, Inner>,
    pub l: i64,
    pub t14: bool,
    pub t15: i8,
    pub t200: String,
}

impl TarsStruct for Outer {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.inner);
        w.write(1, &self.items);
        w.write(2, &self.by_name);
        w.write(3, &self.l);
        w.write(14, &self.t14);
        w.write(15, &self.t15);
        w.write(200, &self.t200);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            inner: r.read_required(0)?,
            items: r.read_optional(1)?.unwrap_or_default(),
            by_name: r.read_optional(2)?.unwrap_or_default(),
            l: r.read_optional(3)?.unwrap_or_default(),
            t14: r.read_optional(14)?.unwrap_or_default(),
            t15: r.read_optional(15)?.unwrap_or_default(),
            t200: r.read_optional(200)?.unwrap_or_default(),
        })
    }
}

/// `Vec.AllTypes`: one field of every scalar type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllTypes {
    pub b: bool,
    pub i8: i8,
    pub i16: i16,
    pub i32: i32,
    pub i64: i64,
    pub f: f32,
    pub d: f64,
    pub s: String,
    pub li: Vec<i32>,
    pub bytes: Bytes,
    pub m: BTreeMap<String, String>,
    pub u8: u8,
    pub u16: u16,
    pub u32: u32,
}

impl TarsStruct for AllTypes {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.b);
        w.write(1, &self.i8);
        w.write(2, &self.i16);
        w.write(3, &self.i32);
        w.write(4, &self.i64);
        w.write(5, &self.f);
        w.write(6, &self.d);
        w.write(7, &self.s);
        w.write(8, &self.li);
        w.write(9, &self.bytes);
        w.write(10, &self.m);
        w.write(11, &self.u8);
        w.write(12, &self.u16);
        w.write(13, &self.u32);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            b: r.read_required(0)?,
            i8: r.read_required(1)?,
            i16: r.read_required(2)?,
            i32: r.read_required(3)?,
            i64: r.read_required(4)?,
            f: r.read_required(5)?,
            d: r.read_required(6)?,
            s: r.read_required(7)?,
            li: r.read_required(8)?,
            bytes: r.read_required(9)?,
            m: r.read_required(10)?,
            u8: r.read_required(11)?,
            u16: r.read_required(12)?,
            u32: r.read_required(13)?,
        })
    }
}

/// `tars.ServerInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    pub application: String,
    pub server_name: String,
    pub pid: i32,
    pub adapter: String,
}

impl TarsStruct for ServerInfo {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.application);
        w.write(1, &self.server_name);
        w.write(2, &self.pid);
        w.write(3, &self.adapter);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            application: r.read_required(0)?,
            server_name: r.read_required(1)?,
            pid: r.read_required(2)?,
            adapter: r.read_optional(3)?.unwrap_or_default(),
        })
    }
}

/// `tars.StatMicMsgHead`: a map key, so it is `Ord` (field order = its `key[]` order).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatMicMsgHead {
    pub master_name: String,
    pub slave_name: String,
    pub interface_name: String,
    pub master_ip: String,
    pub slave_ip: String,
    pub slave_port: i32,
    pub return_value: i32,
    pub slave_set_name: String,
    pub slave_set_area: String,
    pub slave_set_id: String,
    pub tars_version: String,
}

impl TarsStruct for StatMicMsgHead {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.master_name);
        w.write(1, &self.slave_name);
        w.write(2, &self.interface_name);
        w.write(3, &self.master_ip);
        w.write(4, &self.slave_ip);
        w.write(5, &self.slave_port);
        w.write(6, &self.return_value);
        w.write(7, &self.slave_set_name);
        w.write(8, &self.slave_set_area);
        w.write(9, &self.slave_set_id);
        w.write(10, &self.tars_version);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            master_name: r.read_required(0)?,
            slave_name: r.read_required(1)?,
            interface_name: r.read_required(2)?,
            master_ip: r.read_required(3)?,
            slave_ip: r.read_required(4)?,
            slave_port: r.read_required(5)?,
            return_value: r.read_required(6)?,
            slave_set_name: r.read_optional(7)?.unwrap_or_default(),
            slave_set_area: r.read_optional(8)?.unwrap_or_default(),
            slave_set_id: r.read_optional(9)?.unwrap_or_default(),
            tars_version: r.read_optional(10)?.unwrap_or_default(),
        })
    }
}

/// `tars.StatMicMsgBody`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatMicMsgBody {
    pub count: i32,
    pub timeout_count: i32,
    pub exec_count: i32,
    pub interval_count: BTreeMap<i32, i32>,
    pub total_rsp_time: i64,
    pub max_rsp_time: i32,
    pub min_rsp_time: i32,
}

impl TarsStruct for StatMicMsgBody {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.count);
        w.write(1, &self.timeout_count);
        w.write(2, &self.exec_count);
        w.write(3, &self.interval_count);
        w.write(4, &self.total_rsp_time);
        w.write(5, &self.max_rsp_time);
        w.write(6, &self.min_rsp_time);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            count: r.read_required(0)?,
            timeout_count: r.read_required(1)?,
            exec_count: r.read_required(2)?,
            interval_count: r.read_required(3)?,
            total_rsp_time: r.read_required(4)?,
            max_rsp_time: r.read_required(5)?,
            min_rsp_time: r.read_required(6)?,
        })
    }
}

/// `tars.StatPropMsgHead` (`iPropertyVer` defaults to 1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatPropMsgHead {
    pub module_name: String,
    pub ip: String,
    pub property_name: String,
    pub set_name: String,
    pub set_area: String,
    pub set_id: String,
    pub s_container: String,
    pub i_property_ver: i32,
}

impl Default for StatPropMsgHead {
    fn default() -> Self {
        Self {
            module_name: String::new(),
            ip: String::new(),
            property_name: String::new(),
            set_name: String::new(),
            set_area: String::new(),
            set_id: String::new(),
            s_container: String::new(),
            i_property_ver: 1,
        }
    }
}

impl TarsStruct for StatPropMsgHead {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.module_name);
        w.write(1, &self.ip);
        w.write(2, &self.property_name);
        w.write(3, &self.set_name);
        w.write(4, &self.set_area);
        w.write(5, &self.set_id);
        w.write(6, &self.s_container);
        w.write(7, &self.i_property_ver);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            module_name: r.read_required(0)?,
            ip: r.read_required(1)?,
            property_name: r.read_required(2)?,
            set_name: r.read_optional(3)?.unwrap_or_default(),
            set_area: r.read_optional(4)?.unwrap_or_default(),
            set_id: r.read_optional(5)?.unwrap_or_default(),
            s_container: r.read_optional(6)?.unwrap_or_default(),
            i_property_ver: r.read_optional(7)?.unwrap_or(1),
        })
    }
}

/// `tars.StatPropInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatPropInfo {
    pub policy: String,
    pub value: String,
}

impl TarsStruct for StatPropInfo {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.policy);
        w.write(1, &self.value);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            policy: r.read_required(0)?,
            value: r.read_required(1)?,
        })
    }
}

/// `tars.StatPropMsgBody`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatPropMsgBody {
    pub v_info: Vec<StatPropInfo>,
}

impl TarsStruct for StatPropMsgBody {
    fn encode_fields(&self, w: &mut TarsWriter) {
        w.write(0, &self.v_info);
    }
    fn decode_fields(r: &mut TarsReader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            v_info: r.read_required(0)?,
        })
    }
}
