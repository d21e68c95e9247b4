//! Name resolution and checks: every type name to its struct or enum, defaults to
//! their types, `key[]` fields, duplicate tags and names, and structs that would
//! contain themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::{Idl, IdlError, Item, NamedKind, Pos, Resolved, Type, Value};

struct Decl {
    file: usize,
    pos: Pos,
    kind: Option<NamedKind>,
    members: Vec<(String, i32)>,
}

type Table = BTreeMap<(String, String), Decl>;

pub(crate) fn resolve(idl: &mut Idl) -> Result<(), IdlError> {
    let paths: Vec<PathBuf> = idl.files.iter().map(|f| f.path.clone()).collect();
    let mut table: Table = BTreeMap::new();
    for (fi, file) in idl.files.iter().enumerate() {
        for m in &file.modules {
            for item in &m.items {
                let key = (m.name.clone(), item.name().to_string());
                if let Some(prev) = table.get(&key) {
                    let msg = format!(
                        "`{}` is already declared in module `{}` at {}:{}:{}",
                        key.1,
                        key.0,
                        paths[prev.file].display(),
                        prev.pos.line,
                        prev.pos.column
                    );
                    return Err(IdlError::new(&file.path, item.pos(), msg));
                }
                let (kind, members) = match item {
                    Item::Struct(_) => (Some(NamedKind::Struct), Vec::new()),
                    Item::Enum(e) => (
                        Some(NamedKind::Enum),
                        e.members
                            .iter()
                            .map(|m| (m.name.clone(), m.value))
                            .collect(),
                    ),
                    _ => (None, Vec::new()),
                };
                table.insert(
                    key,
                    Decl {
                        file: fi,
                        pos: item.pos(),
                        kind,
                        members,
                    },
                );
            }
        }
    }

    // Which files each file may refer to: itself and everything it includes, transitively.
    let visible: Vec<BTreeSet<usize>> = (0..idl.files.len())
        .map(|start| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![start];
            while let Some(f) = todo.pop() {
                if seen.insert(f) {
                    if let Some(file) = idl.files.get(f) {
                        todo.extend(file.includes.iter().copied());
                    }
                }
            }
            seen
        })
        .collect();

    for (fi, file) in idl.files.iter_mut().enumerate() {
        let cx = Cx {
            table: &table,
            visible: &visible[fi],
            file: file.path.clone(),
        };
        for m in &mut file.modules {
            for item in &mut m.items {
                cx.item(&m.name, item)?;
            }
        }
    }
    check_containment(idl)
}

struct Cx<'a> {
    table: &'a Table,
    visible: &'a BTreeSet<usize>,
    file: PathBuf,
}

impl Cx<'_> {
    fn err(&self, pos: Pos, msg: impl Into<String>) -> IdlError {
        IdlError::new(&self.file, pos, msg)
    }

    fn item(&self, module: &str, item: &mut Item) -> Result<(), IdlError> {
        match item {
            Item::Struct(s) => {
                let mut tags = BTreeMap::new();
                let mut names = BTreeSet::new();
                for f in &mut s.fields {
                    if let Some(prev) = tags.insert(f.tag, f.name.clone()) {
                        return Err(self.err(
                            f.pos,
                            format!("tag {} is already used by field `{prev}`", f.tag),
                        ));
                    }
                    if !names.insert(f.name.clone()) {
                        return Err(
                            self.err(f.pos, format!("field `{}` is declared twice", f.name))
                        );
                    }
                    self.ty(module, &mut f.ty)?;
                    if let Some(v) = &mut f.default {
                        self.value(&f.ty, v).map_err(|m| {
                            self.err(f.pos, format!("default of `{}`: {m}", f.name))
                        })?;
                    }
                }
                if let Some(key) = &s.key {
                    for k in key {
                        if !names.contains(k) {
                            return Err(self.err(
                                s.pos,
                                format!(
                                    "`key` of `{}` names `{k}`, which is not one of its fields",
                                    s.name
                                ),
                            ));
                        }
                    }
                }
            }
            Item::Enum(e) => {
                let mut names = BTreeSet::new();
                for m in &e.members {
                    if !names.insert(m.name.clone()) {
                        return Err(
                            self.err(m.pos, format!("enum member `{}` is declared twice", m.name))
                        );
                    }
                }
            }
            Item::Const(c) => {
                self.ty(module, &mut c.ty)?;
                match &c.ty {
                    Type::Vector(_) | Type::Map(..) => {
                        return Err(self.err(
                            c.pos,
                            "a constant must have a number, bool, string or enum type",
                        ))
                    }
                    Type::Named(r)
                        if r.resolved
                            .as_ref()
                            .is_some_and(|r| r.kind == NamedKind::Struct) =>
                    {
                        return Err(self.err(
                            c.pos,
                            "a constant must have a number, bool, string or enum type",
                        ))
                    }
                    _ => {}
                }
                self.value(&c.ty, &mut c.value)
                    .map_err(|m| self.err(c.pos, format!("value of `{}`: {m}", c.name)))?;
            }
            Item::Interface(i) => {
                let mut fnames = BTreeSet::new();
                for f in &mut i.functions {
                    if !fnames.insert(f.name.clone()) {
                        return Err(
                            self.err(f.pos, format!("function `{}` is declared twice", f.name))
                        );
                    }
                    if let Some(r) = &mut f.ret {
                        self.ty(module, r)?;
                    }
                    let mut pnames = BTreeSet::new();
                    for p in &mut f.params {
                        if !pnames.insert(p.name.clone()) {
                            return Err(self
                                .err(p.pos, format!("parameter `{}` is declared twice", p.name)));
                        }
                        self.ty(module, &mut p.ty)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn ty(&self, module: &str, ty: &mut Type) -> Result<(), IdlError> {
        match ty {
            Type::Vector(t) => self.ty(module, t),
            Type::Map(k, v) => {
                self.ty(module, k)?;
                self.ty(module, v)
            }
            Type::Named(r) => {
                let m = r.module.clone().unwrap_or_else(|| module.to_string());
                let key = (m.clone(), r.name.clone());
                let found = self
                    .table
                    .get(&key)
                    .filter(|d| self.visible.contains(&d.file));
                match found {
                    Some(Decl {
                        kind: Some(kind), ..
                    }) => {
                        r.resolved = Some(Resolved {
                            module: m,
                            name: r.name.clone(),
                            kind: *kind,
                        });
                        Ok(())
                    }
                    Some(_) => Err(self.err(
                        r.pos,
                        format!("`{m}::{}` is not a struct or an enum", r.name),
                    )),
                    None => Err(self.err(
                        r.pos,
                        format!("unknown type `{m}::{}` (is its file included?)", r.name),
                    )),
                }
            }
            _ => Ok(()),
        }
    }

    /// Checks (and normalizes) a value against the type it initializes.
    fn value(&self, ty: &Type, v: &mut Value) -> Result<(), String> {
        let int_range = |lo: i64, hi: i64, v: &Value| match v {
            Value::Int(n) if (lo..=hi).contains(n) => Ok(()),
            Value::Int(n) => Err(format!("{n} is out of range for `{ty}`")),
            _ => Err(format!("expected an integer for `{ty}`")),
        };
        match ty {
            Type::Bool => match v {
                Value::Bool(_) => Ok(()),
                Value::Int(n @ (0 | 1)) => {
                    *v = Value::Bool(*n == 1);
                    Ok(())
                }
                _ => Err("expected `true` or `false`".to_string()),
            },
            Type::Byte => int_range(i8::MIN.into(), i8::MAX.into(), v),
            Type::UByte => int_range(0, u8::MAX.into(), v),
            Type::Short => int_range(i16::MIN.into(), i16::MAX.into(), v),
            Type::UShort => int_range(0, u16::MAX.into(), v),
            Type::Int => int_range(i32::MIN.into(), i32::MAX.into(), v),
            Type::UInt => int_range(0, u32::MAX.into(), v),
            Type::Long => int_range(i64::MIN, i64::MAX, v),
            Type::Float | Type::Double => match v {
                Value::Float(_) => Ok(()),
                Value::Int(n) => {
                    *v = Value::Float(*n as f64);
                    Ok(())
                }
                _ => Err(format!("expected a number for `{ty}`")),
            },
            Type::String => match v {
                Value::Str(_) => Ok(()),
                _ => Err("expected a string".to_string()),
            },
            Type::Vector(_) | Type::Map(..) => Err(format!("`{ty}` cannot have a default")),
            Type::Named(r) => {
                let Some(res) = &r.resolved else {
                    return Err("unresolved type".to_string());
                };
                if res.kind == NamedKind::Struct {
                    return Err(format!("struct `{}` cannot have a default", res.name));
                }
                let members = self
                    .table
                    .get(&(res.module.clone(), res.name.clone()))
                    .map(|d| d.members.as_slice())
                    .unwrap_or_default();
                match v {
                    Value::Int(n) => match i32::try_from(*n) {
                        Ok(_) => Ok(()),
                        Err(_) => Err(format!("{n} does not fit in an enum")),
                    },
                    Value::Member(m) => {
                        let (prefix, last) = match m.path.split_last() {
                            Some((last, prefix)) => (prefix, last),
                            None => return Err("empty name".to_string()),
                        };
                        let prefix_ok = match prefix {
                            [] => true,
                            [e] => *e == res.name,
                            [md, e] => *md == res.module && *e == res.name,
                            _ => false,
                        };
                        let found = members.iter().find(|(n, _)| n == last);
                        match (prefix_ok, found) {
                            (true, Some((name, value))) => {
                                m.resolved = Some((res.clone(), name.clone(), *value));
                                Ok(())
                            }
                            _ => Err(format!(
                                "`{}` is not a member of enum `{}::{}`",
                                m.path.join("::"),
                                res.module,
                                res.name
                            )),
                        }
                    }
                    _ => Err(format!("expected a member of enum `{}`", res.name)),
                }
            }
        }
    }
}

/// A struct may hold itself only through a vector or map (otherwise it has no
/// finite size, in Rust as in C++).
fn check_containment(idl: &Idl) -> Result<(), IdlError> {
    let mut edges: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    let mut where_: BTreeMap<(String, String), (PathBuf, Pos)> = BTreeMap::new();
    for file in &idl.files {
        for m in &file.modules {
            for item in &m.items {
                if let Item::Struct(s) = item {
                    let key = (m.name.clone(), s.name.clone());
                    let mut out = Vec::new();
                    for f in &s.fields {
                        if let Type::Named(r) = &f.ty {
                            if let Some(res) =
                                r.resolved.as_ref().filter(|r| r.kind == NamedKind::Struct)
                            {
                                out.push((res.module.clone(), res.name.clone()));
                            }
                        }
                    }
                    where_.insert(key.clone(), (file.path.clone(), s.pos));
                    edges.insert(key, out);
                }
            }
        }
    }
    // Iterative three-colour DFS, so a long chain of structs cannot overflow the stack.
    let mut colour: BTreeMap<&(String, String), u8> = BTreeMap::new();
    for start in edges.keys() {
        if colour.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(&(String, String), usize)> = vec![(start, 0)];
        colour.insert(start, 1);
        while let Some((node, idx)) = stack.pop() {
            let next = edges.get(node).and_then(|e| e.get(idx));
            match next {
                Some(child) => {
                    stack.push((node, idx + 1));
                    match colour.get(child).copied().unwrap_or(0) {
                        0 => {
                            if let Some((k, _)) = edges.get_key_value(child) {
                                colour.insert(k, 1);
                                stack.push((k, 0));
                            }
                        }
                        1 => {
                            let (file, pos) = where_.get(child).cloned().unwrap_or_default();
                            return Err(IdlError::new(
                                &file,
                                pos,
                                format!("struct `{}::{}` contains itself (only a vector or map of it is allowed)", child.0, child.1),
                            ));
                        }
                        _ => {}
                    }
                }
                None => {
                    colour.insert(node, 2);
                }
            }
        }
    }
    Ok(())
}
