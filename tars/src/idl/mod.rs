//! The .tars IDL: its syntax tree, the parser and the name resolver.
//!
//! [`parse_files`] reads one or more `.tars` files with everything they `#include`
//! (relative to the including file; cycles are an error, a file included twice is
//! read once), resolves every type name to the struct or enum it means, checks
//! tags, defaults and `key[]` lists, and returns an [`Idl`]. Every error carries the
//! file, line and column: `file:line:column: message`.
//!
//! The accepted language: `module`, `struct` (fields `TAG require|optional TYPE NAME
//! [= DEFAULT];`), `enum` (explicit values and implicit increments), `const`,
//! `interface` (functions with `out` parameters and `void` returns),
//! `key[Struct, field, ...];`, `#include "file.tars"`, the types `bool byte short int
//! long float double string`, `unsigned byte|short|int`, `vector<T>`, `map<K, V>`,
//! struct and enum names (qualified `Module::Name` or not), and `//` and `/* */`
//! comments.

mod lexer;
mod parser;
mod resolve;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use lexer::{tokenize, Tok, Token};

/// Deepest nesting of `vector<`/`map<` the parser accepts (keeps recursion bounded).
pub const MAX_TYPE_DEPTH: usize = 32;
/// Most files one parse may read through `#include`.
pub const MAX_FILES: usize = 1024;

/// A position in a source file (both 1-based; columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line number, from 1.
    pub line: u32,
    /// Column number, from 1.
    pub column: u32,
}

/// An IDL error with where it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{}:{}: {message}", file.display(), pos.line, pos.column)]
pub struct IdlError {
    /// The file, as it was named (by the caller or by the `#include`).
    pub file: PathBuf,
    /// Where in the file.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

impl IdlError {
    pub(crate) fn new(file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        IdlError {
            file: file.to_path_buf(),
            pos,
            message: message.into(),
        }
    }
}

/// A type as written in the IDL.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// `bool`.
    Bool,
    /// `byte` (signed 8 bits).
    Byte,
    /// `unsigned byte` (carried on the wire as a short, as TarsCpp does).
    UByte,
    /// `short`.
    Short,
    /// `unsigned short` (carried as an int).
    UShort,
    /// `int`.
    Int,
    /// `unsigned int` (carried as a long).
    UInt,
    /// `long`.
    Long,
    /// `float`.
    Float,
    /// `double`.
    Double,
    /// `string`.
    String,
    /// `vector<T>` (`vector<byte>` is the wire's SIMPLE_LIST).
    Vector(Box<Type>),
    /// `map<K, V>`.
    Map(Box<Type>, Box<Type>),
    /// A struct or enum name.
    Named(TypeRef),
}

/// A reference to a struct or enum by name.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeRef {
    /// The module as written (`M::T`), if any.
    pub module: Option<String>,
    /// The type's name.
    pub name: String,
    /// Where the name is written.
    pub pos: Pos,
    /// What the name means; filled by resolution (always `Some` in an [`Idl`]).
    pub resolved: Option<Resolved>,
}

/// The struct or enum a [`TypeRef`] names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resolved {
    /// The module that declares it.
    pub module: String,
    /// Its name.
    pub name: String,
    /// Struct or enum.
    pub kind: NamedKind,
}

/// What kind of declaration a type name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamedKind {
    /// A struct.
    Struct,
    /// An enum.
    Enum,
}

/// A default or constant value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer (a leading `-` folded in).
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// An enum member, `MEMBER`, `Enum::MEMBER` or `Module::Enum::MEMBER`.
    Member(MemberRef),
}

/// An enum member used as a value.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRef {
    /// The path as written, e.g. `["Color", "RED"]`.
    pub path: Vec<String>,
    /// The enum and member it means, with the member's value; filled by resolution.
    pub resolved: Option<(Resolved, String, i32)>,
}

/// A struct field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The wire tag, 0..=255.
    pub tag: u8,
    /// `require` (true) or `optional`.
    pub required: bool,
    /// The field's type.
    pub ty: Type,
    /// The field's name.
    pub name: String,
    /// The default after `=`, if any.
    pub default: Option<Value>,
    /// Where the field starts.
    pub pos: Pos,
}

/// A struct declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    /// Its name.
    pub name: String,
    /// Its fields, in declaration order.
    pub fields: Vec<Field>,
    /// The `key[Struct, ...]` field list, if one was given: the fields that order
    /// it as a map key, most significant first.
    pub key: Option<Vec<String>>,
    /// Where it is declared.
    pub pos: Pos,
}

/// One enum member.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumMember {
    /// Its name.
    pub name: String,
    /// Its value (explicit, or the previous one plus one, from 0).
    pub value: i32,
    /// Where it is declared.
    pub pos: Pos,
}

/// An enum declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Enum {
    /// Its name.
    pub name: String,
    /// Its members, in declaration order.
    pub members: Vec<EnumMember>,
    /// Where it is declared.
    pub pos: Pos,
}

/// A `const` declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Const {
    /// Its name.
    pub name: String,
    /// Its (primitive) type.
    pub ty: Type,
    /// Its value.
    pub value: Value,
    /// Where it is declared.
    pub pos: Pos,
}

/// A function parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Its name (the TUP key in version 3).
    pub name: String,
    /// Its type.
    pub ty: Type,
    /// `out` parameters are filled by the servant and travel back in the response.
    pub out: bool,
    /// Where it is declared.
    pub pos: Pos,
}

/// An interface function.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Its name (the wire's `sFuncName`).
    pub name: String,
    /// Its return type; `None` for `void`.
    pub ret: Option<Type>,
    /// Its parameters; on the wire at tags 1..N in this order (in and out together).
    pub params: Vec<Param>,
    /// Where it is declared.
    pub pos: Pos,
}

/// An interface declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its functions, in declaration order.
    pub functions: Vec<Function>,
    /// Where it is declared.
    pub pos: Pos,
}

/// A declaration inside a module.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A struct.
    Struct(Struct),
    /// An enum.
    Enum(Enum),
    /// A constant.
    Const(Const),
    /// An interface.
    Interface(Interface),
}

impl Item {
    /// The declared name.
    pub fn name(&self) -> &str {
        match self {
            Item::Struct(s) => &s.name,
            Item::Enum(e) => &e.name,
            Item::Const(c) => &c.name,
            Item::Interface(i) => &i.name,
        }
    }

    /// Where it is declared.
    pub fn pos(&self) -> Pos {
        match self {
            Item::Struct(s) => s.pos,
            Item::Enum(e) => e.pos,
            Item::Const(c) => c.pos,
            Item::Interface(i) => i.pos,
        }
    }
}

/// One `module NAME { ... };` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// The module's name.
    pub name: String,
    /// Its declarations, in order.
    pub items: Vec<Item>,
    /// Where the block starts.
    pub pos: Pos,
}

/// One parsed source file.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    /// The path as named (by the caller, or joined from the `#include`).
    pub path: PathBuf,
    /// Indices into [`Idl::files`] of the files it includes, in order.
    pub includes: Vec<usize>,
    /// Its module blocks, in order.
    pub modules: Vec<Module>,
}

/// A resolved set of IDL files.
#[derive(Debug, Clone, PartialEq)]
pub struct Idl {
    /// Every file read: the ones asked for and everything they include.
    pub files: Vec<SourceFile>,
    /// Indices into `files` of the files the caller asked for.
    pub roots: Vec<usize>,
}

impl Idl {
    /// The modules declared by the caller's files (not by files they only include),
    /// merged by name, with their items in declaration order. Sorted by module name.
    pub fn root_modules(&self) -> BTreeMap<String, Vec<&Item>> {
        let mut out: BTreeMap<String, Vec<&Item>> = BTreeMap::new();
        let mut seen = Vec::new();
        for &r in &self.roots {
            if seen.contains(&r) {
                continue;
            }
            seen.push(r);
            if let Some(file) = self.files.get(r) {
                for m in &file.modules {
                    out.entry(m.name.clone())
                        .or_default()
                        .extend(m.items.iter());
                }
            }
        }
        out
    }

    /// Every module of every file read, merged by name.
    pub fn all_modules(&self) -> BTreeMap<String, Vec<&Item>> {
        let mut out: BTreeMap<String, Vec<&Item>> = BTreeMap::new();
        for file in &self.files {
            for m in &file.modules {
                out.entry(m.name.clone())
                    .or_default()
                    .extend(m.items.iter());
            }
        }
        out
    }

    /// The struct `module::name`, wherever it is declared.
    pub fn find_struct(&self, module: &str, name: &str) -> Option<&Struct> {
        self.find_item(module, name).and_then(|i| match i {
            Item::Struct(s) => Some(s),
            _ => None,
        })
    }

    /// The enum `module::name`, wherever it is declared.
    pub fn find_enum(&self, module: &str, name: &str) -> Option<&Enum> {
        self.find_item(module, name).and_then(|i| match i {
            Item::Enum(e) => Some(e),
            _ => None,
        })
    }

    fn find_item(&self, module: &str, name: &str) -> Option<&Item> {
        self.files
            .iter()
            .flat_map(|f| f.modules.iter())
            .filter(|m| m.name == module)
            .flat_map(|m| m.items.iter())
            .find(|i| i.name() == name)
    }
}

/// Where the parser gets the text of a file: the file system, or memory (tests, fuzzing).
pub trait Loader {
    /// Reads `path`; returns a key that is the same for every path naming the same
    /// file (so cycles and repeated includes are detected), and the text.
    fn load(&mut self, path: &Path) -> io::Result<(PathBuf, String)>;
}

/// Reads files from disk; the identity key is the canonical path.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsLoader;

impl Loader for FsLoader {
    fn load(&mut self, path: &Path) -> io::Result<(PathBuf, String)> {
        let key = std::fs::canonicalize(path)?;
        let text = std::fs::read_to_string(path)?;
        Ok((key, text))
    }
}

/// Serves files from a map of path to text; the identity key is the path itself.
#[derive(Debug, Default, Clone)]
pub struct MemLoader {
    /// The files, by the path they are included as (after joining with the includer's
    /// directory).
    pub files: BTreeMap<PathBuf, String>,
}

impl Loader for MemLoader {
    fn load(&mut self, path: &Path) -> io::Result<(PathBuf, String)> {
        let key = normalize(path);
        match self.files.get(&key) {
            Some(text) => Ok((key, text.clone())),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        }
    }
}

/// Removes `.` and folds `dir/..` lexically (for [`MemLoader`] keys).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Parses and resolves the given files (and what they include) from disk.
pub fn parse_files<P: AsRef<Path>>(paths: &[P]) -> Result<Idl, IdlError> {
    parse_with(paths, &mut FsLoader)
}

/// Parses and resolves one file (and what it includes) from disk.
pub fn parse_file(path: impl AsRef<Path>) -> Result<Idl, IdlError> {
    parse_files(&[path])
}

/// Parses and resolves source text given in memory as file `name`; its `#include`s
/// are looked up in `others` (path → text, paths joined with `name`'s directory).
pub fn parse_str(name: &str, src: &str, others: &[(&str, &str)]) -> Result<Idl, IdlError> {
    let mut loader = MemLoader::default();
    loader
        .files
        .insert(normalize(Path::new(name)), src.to_string());
    for (p, t) in others {
        loader
            .files
            .insert(normalize(Path::new(p)), (*t).to_string());
    }
    parse_with(&[name], &mut loader)
}

/// Parses and resolves the given files through any [`Loader`].
pub fn parse_with<P: AsRef<Path>>(paths: &[P], loader: &mut dyn Loader) -> Result<Idl, IdlError> {
    let mut reader = parser::Reader::new(loader);
    let mut roots = Vec::new();
    for p in paths {
        let p = p.as_ref();
        roots.push(reader.read_root(p)?);
    }
    let mut idl = Idl {
        files: reader.into_files(),
        roots,
    };
    resolve::resolve(&mut idl)?;
    Ok(idl)
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Byte => f.write_str("byte"),
            Type::UByte => f.write_str("unsigned byte"),
            Type::Short => f.write_str("short"),
            Type::UShort => f.write_str("unsigned short"),
            Type::Int => f.write_str("int"),
            Type::UInt => f.write_str("unsigned int"),
            Type::Long => f.write_str("long"),
            Type::Float => f.write_str("float"),
            Type::Double => f.write_str("double"),
            Type::String => f.write_str("string"),
            Type::Vector(t) => write!(f, "vector<{t}>"),
            Type::Map(k, v) => write!(f, "map<{k}, {v}>"),
            Type::Named(r) => match &r.module {
                Some(m) => write!(f, "{m}::{}", r.name),
                None => f.write_str(&r.name),
            },
        }
    }
}
