//! The recursive-descent parser: tokens to [`Module`]s, and the reader that follows
//! `#include`s.

use std::path::{Path, PathBuf};

use super::lexer::{tokenize, Tok, Token};
use super::{
    Const, Enum, EnumMember, Field, Function, IdlError, Interface, Item, Loader, MemberRef, Module,
    Param, Pos, SourceFile, Struct, Type, TypeRef, Value, MAX_FILES, MAX_TYPE_DEPTH,
};

/// Deepest chain of `#include`s followed (bounds the reader's recursion).
const MAX_INCLUDE_DEPTH: usize = 64;

/// Reads files and what they include, each once, detecting cycles.
pub(crate) struct Reader<'l> {
    loader: &'l mut dyn Loader,
    files: Vec<SourceFile>,
    keys: Vec<PathBuf>,
    stack: Vec<(PathBuf, PathBuf)>,
}

impl<'l> Reader<'l> {
    pub(crate) fn new(loader: &'l mut dyn Loader) -> Self {
        Reader {
            loader,
            files: Vec::new(),
            keys: Vec::new(),
            stack: Vec::new(),
        }
    }

    pub(crate) fn into_files(self) -> Vec<SourceFile> {
        self.files
    }

    /// Reads a file the caller named; returns its index.
    pub(crate) fn read_root(&mut self, path: &Path) -> Result<usize, IdlError> {
        self.read(path, None)
    }

    fn read(&mut self, path: &Path, site: Option<(&Path, Pos)>) -> Result<usize, IdlError> {
        let err_at = |msg: String| match site {
            Some((f, p)) => IdlError::new(f, p, msg),
            None => IdlError::new(path, Pos { line: 1, column: 1 }, msg),
        };
        let (key, text) = self
            .loader
            .load(path)
            .map_err(|e| err_at(format!("cannot read `{}`: {e}", path.display())))?;
        if let Some(start) = self.stack.iter().position(|(k, _)| *k == key) {
            let mut chain: Vec<String> = self.stack[start..]
                .iter()
                .map(|(_, shown)| shown.display().to_string())
                .collect();
            chain.push(path.display().to_string());
            return Err(err_at(format!("include cycle: {}", chain.join(" -> "))));
        }
        if let Some(i) = self.keys.iter().position(|k| *k == key) {
            return Ok(i);
        }
        if self.files.len() >= MAX_FILES {
            return Err(err_at(format!("more than {MAX_FILES} files included")));
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(err_at(format!(
                "includes nested deeper than {MAX_INCLUDE_DEPTH}"
            )));
        }
        let toks = tokenize(&text).map_err(|(pos, msg)| IdlError::new(path, pos, msg))?;
        let mut parser = Parser {
            toks,
            i: 0,
            file: path,
        };
        let (incs, modules) = parser.top()?;
        self.stack.push((key.clone(), path.to_path_buf()));
        let mut includes = Vec::new();
        for (name, pos) in incs {
            let target = match path.parent() {
                Some(dir) => dir.join(&name),
                None => PathBuf::from(&name),
            };
            let got = self.read(&target, Some((path, pos)));
            match got {
                Ok(i) => includes.push(i),
                Err(e) => {
                    self.stack.pop();
                    return Err(e);
                }
            }
        }
        self.stack.pop();
        self.files.push(SourceFile {
            path: path.to_path_buf(),
            includes,
            modules,
        });
        self.keys.push(key);
        Ok(self.files.len() - 1)
    }
}

struct Parser<'a> {
    toks: Vec<Token>,
    i: usize,
    file: &'a Path,
}

type PResult<T> = Result<T, IdlError>;

/// A file's `#include` names (with where they are written) and its module blocks.
type TopLevel = (Vec<(String, Pos)>, Vec<Module>);

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // tokenize always ends with Eof and `i` never passes it.
        let last = self.toks.len().saturating_sub(1);
        &self.toks[self.i.min(last)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.i += 1;
        }
        t
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> IdlError {
        IdlError::new(self.file, pos, msg)
    }

    fn expected(&self, what: &str) -> IdlError {
        let t = self.peek();
        self.err(
            t.pos,
            format!("expected {what}, found {}", t.tok.describe()),
        )
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek().tok == Tok::Punct(c)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s == w)
    }

    fn punct(&mut self, c: char, context: &str) -> PResult<Pos> {
        if self.is_punct(c) {
            Ok(self.next().pos)
        } else {
            Err(self.expected(&format!("`{c}` {context}")))
        }
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.is_punct(c) {
            self.next();
            true
        } else {
            false
        }
    }

    fn word(&mut self, w: &str) -> PResult<Pos> {
        if self.is_word(w) {
            Ok(self.next().pos)
        } else {
            Err(self.expected(&format!("`{w}`")))
        }
    }

    /// A name that is not a keyword.
    fn name(&mut self, what: &str) -> PResult<(String, Pos)> {
        match &self.peek().tok {
            Tok::Ident(s) if !is_keyword(s) => {
                let s = s.clone();
                Ok((s, self.next().pos))
            }
            Tok::Ident(s) => {
                let msg = format!("expected {what}, found keyword `{s}`");
                Err(self.err(self.peek().pos, msg))
            }
            _ => Err(self.expected(what)),
        }
    }

    fn top(&mut self) -> PResult<TopLevel> {
        let mut incs = Vec::new();
        let mut modules = Vec::new();
        loop {
            match &self.peek().tok {
                Tok::Eof => return Ok((incs, modules)),
                Tok::Include => {
                    self.next();
                    let t = self.next();
                    match t.tok {
                        Tok::Str(s) => incs.push((s, t.pos)),
                        other => {
                            let m = format!(
                                "expected a file name string after `#include`, found {}",
                                other.describe()
                            );
                            return Err(self.err(t.pos, m));
                        }
                    }
                }
                Tok::Ident(s) if s == "module" => modules.push(self.module()?),
                _ => return Err(self.expected("`module` or `#include`")),
            }
        }
    }

    fn module(&mut self) -> PResult<Module> {
        let pos = self.word("module")?;
        let (name, _) = self.name("a module name")?;
        self.punct('{', "after the module name")?;
        let mut items = Vec::new();
        let mut keys = Vec::new();
        loop {
            if self.eat_punct('}') {
                break;
            }
            let t = self.peek().clone();
            match &t.tok {
                Tok::Ident(s) => match s.as_str() {
                    "struct" => items.push(Item::Struct(self.structure()?)),
                    "enum" => items.push(Item::Enum(self.enumeration()?)),
                    "const" => items.push(Item::Const(self.constant()?)),
                    "interface" => items.push(Item::Interface(self.interface()?)),
                    "key" => keys.push(self.key()?),
                    _ => {
                        return Err(
                            self.expected("`struct`, `enum`, `const`, `interface`, `key` or `}`")
                        )
                    }
                },
                _ => {
                    return Err(
                        self.expected("`struct`, `enum`, `const`, `interface`, `key` or `}`")
                    )
                }
            }
        }
        self.eat_punct(';');
        for (sname, fields, kpos) in keys {
            let target = items.iter_mut().find_map(|i| match i {
                Item::Struct(s) if s.name == sname => Some(s),
                _ => None,
            });
            match target {
                Some(s) if s.key.is_none() => s.key = Some(fields),
                Some(_) => return Err(self.err(kpos, format!("second `key` for struct `{sname}`"))),
                None => {
                    return Err(self.err(
                        kpos,
                        format!(
                            "`key` names `{sname}`, which is not a struct of this module block"
                        ),
                    ))
                }
            }
        }
        Ok(Module { name, items, pos })
    }

    fn key(&mut self) -> PResult<(String, Vec<String>, Pos)> {
        let pos = self.word("key")?;
        self.punct('[', "after `key`")?;
        let (sname, _) = self.name("a struct name")?;
        let mut fields = Vec::new();
        while self.eat_punct(',') {
            fields.push(self.name("a field name")?.0);
        }
        if fields.is_empty() {
            return Err(self.expected("`,` and a field name"));
        }
        self.punct(']', "to close the `key` list")?;
        self.punct(';', "after `key[...]`")?;
        Ok((sname, fields, pos))
    }

    fn structure(&mut self) -> PResult<Struct> {
        let pos = self.word("struct")?;
        let (name, _) = self.name("a struct name")?;
        self.punct('{', "after the struct name")?;
        let mut fields = Vec::new();
        while !self.eat_punct('}') {
            fields.push(self.field()?);
        }
        self.punct(';', "after the struct's `}`")?;
        Ok(Struct {
            name,
            fields,
            key: None,
            pos,
        })
    }

    fn field(&mut self) -> PResult<Field> {
        let t = self.next();
        let pos = t.pos;
        let tag = match t.tok {
            Tok::Int(n) => u8::try_from(n)
                .map_err(|_| self.err(pos, format!("tag {n} is out of range (0..=255)")))?,
            other => {
                let m = format!(
                    "expected a field tag (a number) or `}}`, found {}",
                    other.describe()
                );
                return Err(self.err(pos, m));
            }
        };
        let required = if self.is_word("require") {
            self.next();
            true
        } else if self.is_word("optional") {
            self.next();
            false
        } else {
            return Err(self.expected("`require` or `optional`"));
        };
        let ty = self.ty(0)?;
        let (name, _) = self.name("a field name")?;
        let default = if self.eat_punct('=') {
            Some(self.value()?)
        } else {
            None
        };
        self.punct(';', "after field")?;
        Ok(Field {
            tag,
            required,
            ty,
            name,
            default,
            pos,
        })
    }

    fn enumeration(&mut self) -> PResult<Enum> {
        let pos = self.word("enum")?;
        let (name, _) = self.name("an enum name")?;
        self.punct('{', "after the enum name")?;
        let mut members: Vec<EnumMember> = Vec::new();
        let mut next: i64 = 0;
        while !self.eat_punct('}') {
            let (mname, mpos) = self.name("an enum member name")?;
            let value = if self.eat_punct('=') {
                let vpos = self.peek().pos;
                match self.value()? {
                    Value::Int(v) => v,
                    Value::Member(m) if m.path.len() == 1 => {
                        match members.iter().find(|e| e.name == m.path[0]) {
                            Some(e) => i64::from(e.value),
                            None => {
                                return Err(self.err(
                                    vpos,
                                    format!(
                                        "`{}` is not an earlier member of this enum",
                                        m.path[0]
                                    ),
                                ))
                            }
                        }
                    }
                    _ => return Err(self.err(vpos, "an enum value must be an integer")),
                }
            } else {
                next
            };
            let value = i32::try_from(value).map_err(|_| {
                self.err(mpos, format!("enum value {value} does not fit in an int"))
            })?;
            next = i64::from(value) + 1;
            members.push(EnumMember {
                name: mname,
                value,
                pos: mpos,
            });
            if !self.eat_punct(',') {
                self.punct('}', "or `,` after an enum member")?;
                break;
            }
        }
        self.punct(';', "after the enum's `}`")?;
        if members.is_empty() {
            return Err(self.err(pos, format!("enum `{name}` has no members")));
        }
        Ok(Enum { name, members, pos })
    }

    fn constant(&mut self) -> PResult<Const> {
        let pos = self.word("const")?;
        let ty = self.ty(0)?;
        let (name, _) = self.name("a constant name")?;
        self.punct('=', "after the constant name")?;
        let value = self.value()?;
        self.punct(';', "after the constant")?;
        Ok(Const {
            name,
            ty,
            value,
            pos,
        })
    }

    fn interface(&mut self) -> PResult<Interface> {
        let pos = self.word("interface")?;
        let (name, _) = self.name("an interface name")?;
        self.punct('{', "after the interface name")?;
        let mut functions = Vec::new();
        while !self.eat_punct('}') {
            functions.push(self.function()?);
        }
        self.punct(';', "after the interface's `}`")?;
        Ok(Interface {
            name,
            functions,
            pos,
        })
    }

    fn function(&mut self) -> PResult<Function> {
        let pos = self.peek().pos;
        let ret = if self.is_word("void") {
            self.next();
            None
        } else {
            Some(self.ty(0)?)
        };
        let (name, _) = self.name("a function name")?;
        self.punct('(', "after the function name")?;
        let mut params = Vec::new();
        if !self.eat_punct(')') {
            loop {
                let ppos = self.peek().pos;
                let mut out = false;
                loop {
                    if self.is_word("out") && !out {
                        self.next();
                        out = true;
                    } else if self.is_word("routekey") {
                        // TarsCpp's routing hint; it changes nothing on the wire.
                        self.next();
                    } else {
                        break;
                    }
                }
                let ty = self.ty(0)?;
                let (pname, _) = self.name("a parameter name")?;
                params.push(Param {
                    name: pname,
                    ty,
                    out,
                    pos: ppos,
                });
                if self.eat_punct(')') {
                    break;
                }
                self.punct(',', "or `)` after a parameter")?;
            }
        }
        self.punct(';', "after the function declaration")?;
        Ok(Function {
            name,
            ret,
            params,
            pos,
        })
    }

    fn ty(&mut self, depth: usize) -> PResult<Type> {
        let t = self.peek().clone();
        let Tok::Ident(word) = &t.tok else {
            return Err(self.expected("a type"));
        };
        if depth >= MAX_TYPE_DEPTH {
            return Err(self.err(t.pos, format!("types nested deeper than {MAX_TYPE_DEPTH}")));
        }
        let simple = match word.as_str() {
            "bool" => Some(Type::Bool),
            "byte" => Some(Type::Byte),
            "short" => Some(Type::Short),
            "int" => Some(Type::Int),
            "long" => Some(Type::Long),
            "float" => Some(Type::Float),
            "double" => Some(Type::Double),
            "string" => Some(Type::String),
            _ => None,
        };
        if let Some(s) = simple {
            self.next();
            return Ok(s);
        }
        match word.as_str() {
            "unsigned" => {
                self.next();
                let u = self.peek().clone();
                let ty = match &u.tok {
                    Tok::Ident(w) if w == "byte" => Type::UByte,
                    Tok::Ident(w) if w == "short" => Type::UShort,
                    Tok::Ident(w) if w == "int" => Type::UInt,
                    _ => return Err(self.expected("`byte`, `short` or `int` after `unsigned`")),
                };
                self.next();
                Ok(ty)
            }
            "vector" => {
                self.next();
                self.punct('<', "after `vector`")?;
                let inner = self.ty(depth + 1)?;
                self.punct('>', "to close `vector<`")?;
                Ok(Type::Vector(Box::new(inner)))
            }
            "map" => {
                self.next();
                self.punct('<', "after `map`")?;
                let k = self.ty(depth + 1)?;
                self.punct(',', "between the map's key and value types")?;
                let v = self.ty(depth + 1)?;
                self.punct('>', "to close `map<`")?;
                Ok(Type::Map(Box::new(k), Box::new(v)))
            }
            w if is_keyword(w) => {
                Err(self.err(t.pos, format!("expected a type, found keyword `{w}`")))
            }
            _ => {
                let (first, pos) = self.name("a type")?;
                if self.peek().tok == Tok::Scope {
                    self.next();
                    let (second, _) = self.name("a type name after `::`")?;
                    Ok(Type::Named(TypeRef {
                        module: Some(first),
                        name: second,
                        pos,
                        resolved: None,
                    }))
                } else {
                    Ok(Type::Named(TypeRef {
                        module: None,
                        name: first,
                        pos,
                        resolved: None,
                    }))
                }
            }
        }
    }

    fn value(&mut self) -> PResult<Value> {
        let t = self.next();
        let neg = match t.tok {
            Tok::Punct('-') => Some(true),
            Tok::Punct('+') => Some(false),
            _ => None,
        };
        let t = if neg.is_some() { self.next() } else { t };
        let negative = neg == Some(true);
        match t.tok {
            Tok::Int(n) => {
                let v = if negative {
                    0i64.checked_sub_unsigned(n)
                } else {
                    i64::try_from(n).ok()
                };
                v.map(Value::Int)
                    .ok_or_else(|| self.err(t.pos, format!("number {n} does not fit in a long")))
            }
            Tok::Float(f) => Ok(Value::Float(if negative { -f } else { f })),
            Tok::Str(s) if neg.is_none() => Ok(Value::Str(s)),
            Tok::Ident(w) if neg.is_none() && (w == "true" || w == "false") => {
                Ok(Value::Bool(w == "true"))
            }
            Tok::Ident(w) if neg.is_none() && !is_keyword(&w) => {
                let mut path = vec![w];
                while self.peek().tok == Tok::Scope && path.len() < 3 {
                    self.next();
                    path.push(self.name("a name after `::`")?.0);
                }
                Ok(Value::Member(MemberRef {
                    path,
                    resolved: None,
                }))
            }
            other => Err(self.err(
                t.pos,
                format!(
                    "expected a value (number, string, `true`, `false` or enum member), found {}",
                    other.describe()
                ),
            )),
        }
    }
}

/// Words that cannot name a module, type, field or function.
pub(crate) fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "module"
            | "struct"
            | "enum"
            | "const"
            | "interface"
            | "key"
            | "require"
            | "optional"
            | "out"
            | "void"
            | "vector"
            | "map"
            | "unsigned"
            | "bool"
            | "byte"
            | "short"
            | "int"
            | "long"
            | "float"
            | "double"
            | "string"
            | "true"
            | "false"
            | "routekey"
    )
}
