//! The Rust generator of tars2rs: one `.rs` file per IDL module.
//!
//! # What is generated
//!
//! For module `M` the file is `snake(M).rs` (`TestApp` → `test_app.rs`). Mount each
//! file as a module of that name, side by side with the files of the modules it
//! refers to (a type of another module is written `super::other::Type`), e.g. from
//! `build.rs` output: `pub mod test_app { include!(concat!(env!("OUT_DIR"),
//! "/test_app.rs")); }`. The file has no inner attributes, so `include!` works.
//! Generated code names this crate by absolute paths (`::tarsfork_tars::...`).
//!
//! - **struct** → a `pub struct` with `pub` snake-case fields, `Default` honoring the
//!   IDL defaults, `Clone, Debug, PartialEq`, and `Eq, Hash, PartialOrd, Ord` when no
//!   field holds a float (so it can key a map). A `key[S, f1, f2]` list orders the
//!   struct by those fields first, then by the rest (consistent with `Eq`). Encoding
//!   writes every field in tag order; decoding skips unknown tags, fails on a missing
//!   `require` field and gives a missing `optional` field its IDL default.
//! - **enum** → a newtype `pub struct E(pub i32)` with one associated constant per
//!   member (`E::RED`), `E::name()` and `Default` = the first member. It is a newtype
//!   rather than a Rust `enum` so that a value unknown to this IDL (a newer peer's
//!   member) decodes, round-trips and can be matched on as `E(n)`, never failing.
//! - **const** → `pub const NAME: T = value;` (`&str` for strings).
//! - **interface** `I` → a servant trait `IServant`, a dispatcher `i_dispatch`, a
//!   `Dispatch` wrapper `IServer<S>` and a client `IProxy`; see [`iface`] for their
//!   shape.
//!
//! Types map as the codec documents ([`crate::codec`]): `vector<byte>` is
//! [`crate::codec::Bytes`], maps are `BTreeMap`, `unsigned int` is `u32`, and so on.
//! Field, function and parameter names become snake case (`sServantName` →
//! `s_servant_name`); Rust keywords become raw identifiers (`r#type`).
//!
//! # Use
//!
//! From `build.rs` (with `tarsfork-tars` as a build dependency):
//!
//! ```no_run
//! let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
//! tarsfork_tars::gen::generate_files(&["idl/Hello.tars"], &out)?;
//! println!("cargo:rerun-if-changed=idl/Hello.tars");
//! # Ok::<(), tarsfork_tars::gen::GenError>(())
//! ```
//!
//! or from the shell: `tars2rs idl/Hello.tars -o src/generated`. The checked-in
//! framework interfaces (`crate::framework`) are made with `--runtime-path crate`.

pub mod iface;
mod names;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::idl::{
    self, Const, Enum, Idl, IdlError, Item, NamedKind, Pos, Resolved, Struct, Type, Value,
};

pub use names::{snake, snake_ident};

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The IDL does not parse or resolve, or uses something Rust cannot express
    /// (e.g. a float-holding struct as a map key); `file:line:column: message`.
    #[error(transparent)]
    Idl(#[from] IdlError),
    /// Writing an output file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// One generated Rust file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// The IDL module it holds.
    pub module: String,
    /// The Rust module name and file stem (`snake(module)`).
    pub rust_module: String,
    /// The file name, `rust_module.rs`.
    pub file_name: String,
    /// The Rust source.
    pub code: String,
}

/// Parses `inputs` (with their includes) and writes one `.rs` file per module they
/// declare into `out_dir`; returns the paths written. For `build.rs`.
pub fn generate_files<P: AsRef<Path>>(
    inputs: &[P],
    out_dir: &Path,
) -> Result<Vec<PathBuf>, GenError> {
    generate_files_with(inputs, out_dir, &GenOptions::default())
}

/// [`generate_files`] with explicit options.
pub fn generate_files_with<P: AsRef<Path>>(
    inputs: &[P],
    out_dir: &Path,
    opts: &GenOptions,
) -> Result<Vec<PathBuf>, GenError> {
    let idl = idl::parse_files(inputs)?;
    let files = generate_with(&idl, opts)?;
    std::fs::create_dir_all(out_dir).map_err(|source| GenError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for f in files {
        let path = out_dir.join(&f.file_name);
        // Leave an identical file alone so cargo does not rebuild for nothing.
        if std::fs::read_to_string(&path).ok().as_deref() != Some(f.code.as_str()) {
            std::fs::write(&path, &f.code).map_err(|source| GenError::Io {
                path: path.clone(),
                source,
            })?;
        }
        written.push(path);
    }
    Ok(written)
}

/// Generates the Rust source of every module declared by the IDL's root files
/// (modules split over several files are merged), sorted by module name.
pub fn generate(idl: &Idl) -> Result<Vec<GeneratedFile>, GenError> {
    generate_with(idl, &GenOptions::default())
}

/// Generation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenOptions {
    /// The path generated code uses for this crate: `::tarsfork_tars` (the default,
    /// for any other crate), or `crate` for code compiled inside tarsfork-tars itself.
    pub runtime: String,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            runtime: "::tarsfork_tars".to_owned(),
        }
    }
}

/// [`generate`] with explicit options.
pub fn generate_with(idl: &Idl, opts: &GenOptions) -> Result<Vec<GeneratedFile>, GenError> {
    let mut modules: BTreeMap<&str, Vec<(&Path, &Item)>> = BTreeMap::new();
    let mut sources: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for &r in &idl.roots {
        if !seen.insert(r) {
            continue;
        }
        let Some(file) = idl.files.get(r) else {
            continue;
        };
        let shown = file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for m in &file.modules {
            modules
                .entry(&m.name)
                .or_default()
                .extend(m.items.iter().map(|i| (file.path.as_path(), i)));
            sources.entry(&m.name).or_default().insert(shown.clone());
        }
    }
    let mut rust_names: BTreeMap<String, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for (name, items) in modules {
        let rust_module = snake(name);
        if let Some(other) = rust_names.insert(rust_module.clone(), name) {
            let (file, pos) = items
                .first()
                .map(|(f, i)| (*f, i.pos()))
                .unwrap_or((Path::new(""), Pos::default()));
            return Err(IdlError::new(
                file,
                pos,
                format!("modules `{other}` and `{name}` both become Rust module `{rust_module}`"),
            )
            .into());
        }
        let from: Vec<String> = sources
            .get(name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let code = generate_module(idl, opts, name, &items, &from)?;
        out.push(GeneratedFile {
            module: name.to_string(),
            file_name: format!("{rust_module}.rs"),
            rust_module,
            code,
        });
    }
    Ok(out)
}

/// Generation state for one module.
pub(crate) struct Gen<'a> {
    pub(crate) opts: &'a GenOptions,
    pub(crate) module: &'a str,
    pub(crate) out: String,
    total: BTreeMap<(String, String), bool>,
}

fn generate_module(
    idl: &Idl,
    opts: &GenOptions,
    module: &str,
    items: &[(&Path, &Item)],
    from: &[String],
) -> Result<String, GenError> {
    let mut g = Gen {
        opts,
        module,
        out: String::new(),
        total: struct_totality(idl),
    };
    let _ = writeln!(
        g.out,
        "// Generated by tars2rs from {}: module `{module}`.",
        from.join(", ")
    );
    let _ = writeln!(g.out, "// Do not edit; change the IDL and regenerate.");
    for (file, item) in items {
        g.out.push('\n');
        match item {
            Item::Struct(s) => g.structure(file, s)?,
            Item::Enum(e) => g.enumeration(e),
            Item::Const(c) => g.constant(c),
            Item::Interface(i) => g.interface(file, i)?,
        }
    }
    Ok(g.out)
}

/// A (`file`, `pos`) error.
pub(crate) fn err(file: &Path, pos: Pos, msg: impl Into<String>) -> GenError {
    GenError::Idl(IdlError::new(file, pos, msg))
}

impl Gen<'_> {
    pub(crate) fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// The Rust path of a struct or enum, relative to this module.
    pub(crate) fn named(&self, r: &Resolved) -> String {
        if r.module == self.module {
            r.name.clone()
        } else {
            format!("super::{}::{}", snake_ident(&r.module), r.name)
        }
    }

    /// The Rust type of an IDL type.
    pub(crate) fn rust_type(&self, ty: &Type) -> String {
        let codec = format!("{}::codec", self.opts.runtime);
        match ty {
            Type::Bool => "bool".into(),
            Type::Byte => "i8".into(),
            Type::UByte => "u8".into(),
            Type::Short => "i16".into(),
            Type::UShort => "u16".into(),
            Type::Int => "i32".into(),
            Type::UInt => "u32".into(),
            Type::Long => "i64".into(),
            Type::Float => "f32".into(),
            Type::Double => "f64".into(),
            Type::String => "String".into(),
            Type::Vector(t) if **t == Type::Byte => format!("{codec}::Bytes"),
            Type::Vector(t) => format!("Vec<{}>", self.rust_type(t)),
            Type::Map(k, v) => format!(
                "::std::collections::BTreeMap<{}, {}>",
                self.rust_type(k),
                self.rust_type(v)
            ),
            Type::Named(r) => match &r.resolved {
                Some(res) => self.named(res),
                None => r.name.clone(),
            },
        }
    }

    /// Whether values of `ty` have `Eq`, `Ord` and `Hash` (no float inside).
    pub(crate) fn is_total(&self, ty: &Type) -> bool {
        type_is_total(ty, &self.total)
    }

    /// Checks that every map key type in `ty` can be ordered.
    pub(crate) fn check_keys(&self, file: &Path, pos: Pos, ty: &Type) -> Result<(), GenError> {
        match ty {
            Type::Vector(t) => self.check_keys(file, pos, t),
            Type::Map(k, v) => {
                if !self.is_total(k) {
                    return Err(err(
                        file,
                        pos,
                        format!(
                            "map key type `{k}` holds a float, so it has no total order in Rust"
                        ),
                    ));
                }
                self.check_keys(file, pos, k)?;
                self.check_keys(file, pos, v)
            }
            _ => Ok(()),
        }
    }

    /// A Rust expression for an IDL value of type `ty`.
    pub(crate) fn literal(&self, ty: &Type, v: &Value) -> String {
        match (ty, v) {
            (Type::String, Value::Str(s)) if s.is_empty() => "String::new()".into(),
            (Type::String, Value::Str(s)) => format!("{s:?}.to_owned()"),
            (_, v) => self.const_literal(ty, v),
        }
    }

    /// A Rust constant expression for an IDL value (strings as `&str`).
    pub(crate) fn const_literal(&self, ty: &Type, v: &Value) -> String {
        match v {
            Value::Int(n) => match ty {
                Type::Named(r) => match &r.resolved {
                    Some(res) => format!("{}({n})", self.named(res)),
                    None => n.to_string(),
                },
                _ => n.to_string(),
            },
            Value::Float(f) => float_literal(ty, *f),
            Value::Str(s) => format!("{s:?}"),
            Value::Bool(b) => b.to_string(),
            Value::Member(m) => match &m.resolved {
                Some((res, member, _)) => format!("{}::{}", self.named(res), names::ident(member)),
                None => "Default::default()".into(),
            },
        }
    }

    fn structure(&mut self, file: &Path, s: &Struct) -> Result<(), GenError> {
        let codec = format!("{}::codec", self.opts.runtime);
        let mut rust_names = BTreeMap::new();
        for f in &s.fields {
            let n = snake_ident(&f.name);
            if let Some(prev) = rust_names.insert(n.clone(), f.name.clone()) {
                return Err(err(
                    file,
                    f.pos,
                    format!(
                        "fields `{prev}` and `{}` both become Rust field `{n}`",
                        f.name
                    ),
                ));
            }
            self.check_keys(file, f.pos, &f.ty)?;
        }
        let total = s.fields.iter().all(|f| self.is_total(&f.ty));
        let has_defaults = s.fields.iter().any(|f| f.default.is_some());
        let name = &s.name;
        let mut derives = vec!["Debug", "Clone", "PartialEq"];
        if !has_defaults {
            derives.push("Default");
        }
        if total {
            derives.extend(["Eq", "Hash"]);
            if s.key.is_none() {
                derives.extend(["PartialOrd", "Ord"]);
            }
        }
        self.line(0, &format!("/// struct `{}::{name}`.", self.module));
        self.line(0, &format!("#[derive({})]", derives.join(", ")));
        if !names::is_camel(name) {
            self.line(0, "#[allow(non_camel_case_types)]");
        }
        self.line(0, &format!("pub struct {name} {{"));
        for f in &s.fields {
            let kind = if f.required { "require" } else { "optional" };
            self.line(1, &format!("/// Tag {}, {kind} `{}`.", f.tag, f.name));
            let line = format!("pub {}: {},", snake_ident(&f.name), self.rust_type(&f.ty));
            self.line(1, &line);
        }
        self.line(0, "}");

        if has_defaults {
            self.out.push('\n');
            // An explicit default may equal the type's own (`= false`); the impl stays
            // for uniformity, hence the allow.
            self.line(0, "#[allow(clippy::derivable_impls)]");
            self.line(0, &format!("impl Default for {name} {{"));
            self.line(1, "fn default() -> Self {");
            self.line(2, "Self {");
            for f in &s.fields {
                let value = match &f.default {
                    Some(v) => self.literal(&f.ty, v),
                    None => "Default::default()".into(),
                };
                self.line(3, &format!("{}: {value},", snake_ident(&f.name)));
            }
            self.line(2, "}");
            self.line(1, "}");
            self.line(0, "}");
        }

        if let (true, Some(key)) = (total, &s.key) {
            // Key fields first (most significant), then the others in tag order.
            let mut order: Vec<&str> = key.iter().map(String::as_str).collect();
            for f in &s.fields {
                if !order.contains(&f.name.as_str()) {
                    order.push(&f.name);
                }
            }
            self.out.push('\n');
            self.line(0, &format!("impl PartialOrd for {name} {{"));
            self.line(
                1,
                "fn partial_cmp(&self, other: &Self) -> Option<::std::cmp::Ordering> {",
            );
            self.line(2, "Some(self.cmp(other))");
            self.line(1, "}");
            self.line(0, "}");
            self.out.push('\n');
            self.line(
                0,
                &format!(
                    "/// Ordered by `key[{name}, {}]`, then by the other fields.",
                    key.join(", ")
                ),
            );
            self.line(0, &format!("impl Ord for {name} {{"));
            self.line(1, "fn cmp(&self, other: &Self) -> ::std::cmp::Ordering {");
            let parts: Vec<String> = order
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let n = snake_ident(f);
                    if i == 0 {
                        format!("self.{n}.cmp(&other.{n})")
                    } else {
                        format!(".then_with(|| self.{n}.cmp(&other.{n}))")
                    }
                })
                .collect();
            // rustfmt keeps a chain on one line up to 60 columns, else one call a line.
            if parts.concat().len() <= 60 || parts.len() == 1 {
                self.line(2, &parts.concat());
            } else {
                let first = snake_ident(order[0]);
                self.line(2, &format!("self.{first}"));
                self.line(3, &format!(".cmp(&other.{first})"));
                for p in &parts[1..] {
                    self.line(3, p);
                }
            }
            if order.is_empty() {
                self.line(2, "::std::cmp::Ordering::Equal");
            }
            self.line(1, "}");
            self.line(0, "}");
        }

        self.out.push('\n');
        self.line(0, &format!("impl {codec}::TarsStruct for {name} {{"));
        let w = if s.fields.is_empty() { "_w" } else { "w" };
        self.line(
            1,
            &format!("fn encode_fields(&self, {w}: &mut {codec}::TarsWriter) {{"),
        );
        let mut fields: Vec<_> = s.fields.iter().collect();
        fields.sort_by_key(|f| f.tag);
        for f in &fields {
            self.line(
                2,
                &format!("w.write({}, &self.{});", f.tag, snake_ident(&f.name)),
            );
        }
        self.line(1, "}");
        self.out.push('\n');
        let r = if s.fields.is_empty() { "_r" } else { "r" };
        self.long_line(
            1,
            &format!("fn decode_fields({r}: &mut {codec}::TarsReader<'_>) -> Result<Self, {codec}::DecodeError> {{"),
        );
        // Fields are read in tag order (the reader moves forward only), then assembled.
        for f in &fields {
            let n = format!("f_{}", f.tag);
            let read = if f.required {
                format!("r.read_required({})?", f.tag)
            } else {
                match &f.default {
                    Some(Value::Str(s)) if !s.is_empty() => {
                        format!(
                            "r.read_optional({})?.unwrap_or_else(|| {s:?}.to_owned())",
                            f.tag
                        )
                    }
                    Some(Value::Str(_)) | None => {
                        format!("r.read_optional({})?.unwrap_or_default()", f.tag)
                    }
                    Some(v) => format!(
                        "r.read_optional({})?.unwrap_or({})",
                        f.tag,
                        self.literal(&f.ty, v)
                    ),
                }
            };
            let ty = self.rust_type(&f.ty);
            self.line(2, &format!("let {n}: {ty} = {read};"));
        }
        let inits: Vec<String> = s
            .fields
            .iter()
            .map(|f| format!("{}: f_{}", snake_ident(&f.name), f.tag))
            .collect();
        // rustfmt keeps a struct literal on one line up to 18 columns of fields.
        if inits.is_empty() {
            self.line(2, "Ok(Self {})");
        } else if inits.join(", ").len() <= 18 {
            self.line(2, &format!("Ok(Self {{ {} }})", inits.join(", ")));
        } else {
            self.line(2, "Ok(Self {");
            for i in &inits {
                self.line(3, &format!("{i},"));
            }
            self.line(2, "})");
        }
        self.line(1, "}");
        self.line(0, "}");
        Ok(())
    }

    fn enumeration(&mut self, e: &Enum) {
        let codec = format!("{}::codec", self.opts.runtime);
        let name = &e.name;
        self.line(
            0,
            &format!(
                "/// enum `{}::{name}`: an `i32` with named values; values this IDL",
                self.module
            ),
        );
        self.line(0, "/// does not know are kept as they are.");
        self.line(
            0,
            "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]",
        );
        if !names::is_camel(name) {
            self.line(0, "#[allow(non_camel_case_types)]");
        }
        self.line(0, &format!("pub struct {name}(pub i32);"));
        self.out.push('\n');
        if !e.members.iter().all(|m| names::is_upper(&m.name)) {
            self.line(0, "#[allow(non_upper_case_globals)]");
        }
        self.line(0, &format!("impl {name} {{"));
        for m in &e.members {
            self.line(1, &format!("/// `{}` = {}.", m.name, m.value));
            self.line(
                1,
                &format!(
                    "pub const {}: {name} = {name}({});",
                    names::ident(&m.name),
                    m.value
                ),
            );
        }
        self.out.push('\n');
        self.line(
            1,
            "/// The member's IDL name, or `None` for a value this IDL does not declare.",
        );
        self.line(1, "pub fn name(self) -> Option<&'static str> {");
        self.line(2, "match self.0 {");
        let mut seen = BTreeSet::new();
        for m in &e.members {
            if seen.insert(m.value) {
                self.line(3, &format!("{} => Some({:?}),", m.value, m.name));
            }
        }
        self.line(3, "_ => None,");
        self.line(2, "}");
        self.line(1, "}");
        self.out.push('\n');
        self.line(1, "/// The member named `name` in the IDL.");
        self.line(1, "pub fn from_name(name: &str) -> Option<Self> {");
        self.line(2, "match name {");
        for m in &e.members {
            self.line(
                3,
                &format!("{:?} => Some(Self::{}),", m.name, names::ident(&m.name)),
            );
        }
        self.line(3, "_ => None,");
        self.line(2, "}");
        self.line(1, "}");
        self.line(0, "}");
        self.out.push('\n');
        let first = e.members.first().map(|m| names::ident(&m.name));
        self.line(0, &format!("impl Default for {name} {{"));
        self.line(
            1,
            "/// The first member, as TarsCpp initializes an enum field.",
        );
        self.line(1, "fn default() -> Self {");
        match first {
            Some(f) => self.line(2, &format!("Self::{f}")),
            None => self.line(2, "Self(0)"),
        }
        self.line(1, "}");
        self.line(0, "}");
        self.out.push('\n');
        self.line(0, &format!("impl {codec}::TarsEncode for {name} {{"));
        self.line(
            1,
            &format!("fn encode(&self, w: &mut {codec}::TarsWriter, tag: u8) {{"),
        );
        self.line(2, "w.write_i32(tag, self.0);");
        self.line(1, "}");
        self.line(0, "}");
        self.out.push('\n');
        self.line(0, &format!("impl {codec}::TarsDecode for {name} {{"));
        self.line(1, "fn decode_value(");
        self.line(2, &format!("r: &mut {codec}::TarsReader<'_>,"));
        self.line(2, "tag: u8,");
        self.line(2, &format!("ty: {codec}::TarsType,"));
        self.line(1, &format!(") -> Result<Self, {codec}::DecodeError> {{"));
        self.line(
            2,
            &format!("<i32 as {codec}::TarsDecode>::decode_value(r, tag, ty).map(Self)"),
        );
        self.line(1, "}");
        self.line(0, "}");
    }

    fn constant(&mut self, c: &Const) {
        let ty = match &c.ty {
            Type::String => "&str".to_string(),
            other => self.rust_type(other),
        };
        let value = self.const_literal(&c.ty, &c.value);
        self.line(0, &format!("/// const `{}::{}`.", self.module, c.name));
        let mut allows = Vec::new();
        if !names::is_upper(&c.name) {
            allows.push("non_upper_case_globals");
        }
        if matches!(c.ty, Type::Float | Type::Double) {
            allows.push("clippy::excessive_precision");
        }
        if !allows.is_empty() {
            self.line(0, &format!("#[allow({})]", allows.join(", ")));
        }
        self.line(
            0,
            &format!("pub const {}: {ty} = {value};", names::ident(&c.name)),
        );
    }
}

/// Whether `ty` is free of floats, given what is known of each struct.
fn type_is_total(ty: &Type, structs: &BTreeMap<(String, String), bool>) -> bool {
    match ty {
        Type::Float | Type::Double => false,
        Type::Vector(t) => type_is_total(t, structs),
        Type::Map(k, v) => type_is_total(k, structs) && type_is_total(v, structs),
        Type::Named(r) => match &r.resolved {
            Some(res) if res.kind == NamedKind::Struct => structs
                .get(&(res.module.clone(), res.name.clone()))
                .copied()
                .unwrap_or(true),
            _ => true,
        },
        _ => true,
    }
}

/// Which structs hold no float, directly or through other structs: the structs with
/// a float of their own are marked first, then every struct that refers to a marked
/// one, breadth-first over the reverse references. Linear in the IDL's size, right
/// for mutually recursive structs, and free of recursion over struct chains.
fn struct_totality(idl: &Idl) -> BTreeMap<(String, String), bool> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut fields: Vec<Vec<&Type>> = Vec::new();
    for file in &idl.files {
        for m in &file.modules {
            for item in &m.items {
                if let Item::Struct(s) = item {
                    keys.push((m.name.clone(), s.name.clone()));
                    fields.push(s.fields.iter().map(|f| &f.ty).collect());
                }
            }
        }
    }
    let index: BTreeMap<&(String, String), usize> =
        keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let mut referrers: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
    let mut total = vec![true; keys.len()];
    let mut queue = std::collections::VecDeque::new();
    for (i, tys) in fields.iter().enumerate() {
        let mut named = Vec::new();
        let mut has_float = false;
        for ty in tys {
            walk_type(ty, &mut |t| match t {
                Type::Float | Type::Double => has_float = true,
                Type::Named(r) => {
                    if let Some(res) = r.resolved.as_ref().filter(|r| r.kind == NamedKind::Struct) {
                        named.push((res.module.clone(), res.name.clone()));
                    }
                }
                _ => {}
            });
        }
        for n in &named {
            if let Some(&j) = index.get(n) {
                referrers[j].push(i);
            }
        }
        if has_float {
            total[i] = false;
            queue.push_back(i);
        }
    }
    while let Some(j) = queue.pop_front() {
        for &i in &referrers[j] {
            if total[i] {
                total[i] = false;
                queue.push_back(i);
            }
        }
    }
    keys.into_iter().zip(total).collect()
}

/// Calls `f` on `ty` and every type nested in it (depth is bounded by the parser).
fn walk_type(ty: &Type, f: &mut dyn FnMut(&Type)) {
    f(ty);
    match ty {
        Type::Vector(t) => walk_type(t, f),
        Type::Map(k, v) => {
            walk_type(k, f);
            walk_type(v, f);
        }
        _ => {}
    }
}

/// A float literal Rust accepts for `ty` (`f32` or `f64`), including infinities.
fn float_literal(ty: &Type, f: f64) -> String {
    let t = if *ty == Type::Float { "f32" } else { "f64" };
    let narrowed = if *ty == Type::Float {
        f64::from(f as f32)
    } else {
        f
    };
    if narrowed.is_nan() {
        format!("{t}::NAN")
    } else if narrowed.is_infinite() {
        if narrowed > 0.0 {
            format!("{t}::INFINITY")
        } else {
            format!("{t}::NEG_INFINITY")
        }
    } else {
        let s = format!("{f:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            format!("{s}.0")
        }
    }
}
