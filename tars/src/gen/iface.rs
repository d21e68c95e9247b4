//! Interfaces: a servant trait, a dispatcher, a `Dispatch` wrapper and a client proxy.
//!
//! For `interface Hello { int testHello(string sIn, out string sOut); };`:
//!
//! - `pub trait HelloServant { fn test_hello(&mut self, current: &Current<'_>, s_in:
//!   &str) -> Result<(i32, String), ServantError>; }` — in-parameters come first
//!   after `current`, numbers, bools and enums by value and the rest by reference
//!   (`&str`, `&[T]`, `&Bytes`, `&BTreeMap`, `&Struct`); the `Ok` value is the return
//!   value followed by the out-parameters in declaration order (a single value is not
//!   wrapped in a tuple; `void` without outs gives `()`). An `Err(ServantError)`
//!   becomes the reply's result code and description.
//! - `pub fn hello_dispatch<S: HelloServant + ?Sized>(servant: &mut S, request:
//!   &RequestPacket) -> Reply` — serves iVersion 1 and 3; -3 for an unknown function,
//!   -1 for arguments that do not decode; no reply for oneway requests.
//! - `pub struct HelloServer<S>(pub S)` implementing
//!   `::tarsfork_tars::proxy::Dispatch`, to hold servants of several interfaces.
//! - `pub struct HelloProxy` wrapping a `::tarsfork_tars::proxy::Proxy`, with
//!   `test_hello(&mut self, s_in: &str) -> Result<(i32, String), CallError>` (a
//!   blocking call with the proxy's timeout, protocol and context) and
//!   `test_hello_oneway(&mut self, s_in: &str) -> Result<(), CallError>`, and
//!   implementing `::tarsfork_tars::proxy::ServantProxy` (built from any `Proxy`, so a
//!   server can hand it out by servant name; `tars_ping`, `with_hash`).

use std::collections::BTreeSet;
use std::path::Path;

use super::names::{ident, is_camel, snake_ident};
use super::{err, Gen, GenError};
use crate::idl::{Function, Interface, NamedKind, Type};

/// Names the generated code itself uses next to the parameters.
const RESERVED: &[&str] = &[
    "current",
    "tars_args",
    "tars_reply",
    "tars_call",
    "servant",
    "request",
];

impl Gen<'_> {
    /// How a parameter of type `ty` is passed in: by value for copyable types.
    fn in_type(&self, ty: &Type) -> String {
        match ty {
            Type::String => "&str".into(),
            Type::Vector(t) if **t != Type::Byte => format!("&[{}]", self.rust_type(t)),
            Type::Vector(_) | Type::Map(..) => format!("&{}", self.rust_type(ty)),
            Type::Named(r)
                if r.resolved
                    .as_ref()
                    .is_some_and(|r| r.kind == NamedKind::Struct) =>
            {
                format!("&{}", self.rust_type(ty))
            }
            _ => self.rust_type(ty),
        }
    }

    fn by_value(ty: &Type) -> bool {
        match ty {
            Type::String | Type::Vector(_) | Type::Map(..) => false,
            Type::Named(r) => !r
                .resolved
                .as_ref()
                .is_some_and(|r| r.kind == NamedKind::Struct),
            _ => true,
        }
    }

    /// The results type: return value then out-parameters.
    fn out_type(&self, f: &Function) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &f.ret {
            parts.push(self.rust_type(r));
        }
        for p in f.params.iter().filter(|p| p.out) {
            parts.push(self.rust_type(&p.ty));
        }
        match parts.len() {
            0 => "()".into(),
            1 => parts.remove(0),
            _ => format!("({})", parts.join(", ")),
        }
    }

    fn signature_doc(&self, f: &Function) -> String {
        let ret = f.ret.as_ref().map_or("void".to_string(), |t| t.to_string());
        let params: Vec<String> = f
            .params
            .iter()
            .map(|p| format!("{}{} {}", if p.out { "out " } else { "" }, p.ty, p.name))
            .collect();
        format!("`{ret} {}({})`", f.name, params.join(", "))
    }

    /// Tag of parameter `i` (1-based, in and out counted together).
    fn tag(file: &Path, f: &Function, i: usize) -> Result<u8, GenError> {
        u8::try_from(i + 1).map_err(|_| {
            err(
                file,
                f.pos,
                format!("function `{}` has more than 255 parameters", f.name),
            )
        })
    }

    pub(crate) fn interface(&mut self, file: &Path, i: &Interface) -> Result<(), GenError> {
        let rt_root = self.opts.runtime.clone();
        let rt = format!("{rt_root}::proxy");
        let packet = format!("{rt_root}::packet");
        let name = &i.name;
        let snake = super::snake(name);
        let mut methods = BTreeSet::new();
        for f in &i.functions {
            let m = snake_ident(&f.name);
            for n in [m.clone(), format!("{m}_oneway")] {
                if !methods.insert(n.clone()) {
                    return Err(err(file, f.pos, format!("function `{}` gives Rust method `{n}`, which another function gives too", f.name)));
                }
            }
            let mut params = BTreeSet::new();
            for p in &f.params {
                let pn = snake_ident(&p.name);
                if RESERVED.contains(&pn.as_str()) || !params.insert(pn.clone()) {
                    return Err(err(
                        file,
                        p.pos,
                        format!(
                            "parameter `{}` (Rust `{pn}`) clashes with another name",
                            p.name
                        ),
                    ));
                }
                self.check_keys(file, p.pos, &p.ty)?;
            }
            if let Some(r) = &f.ret {
                self.check_keys(file, f.pos, r)?;
            }
            Self::tag(file, f, f.params.len().saturating_sub(1))?;
        }
        let camel_allow = if is_camel(name) {
            ""
        } else {
            "#[allow(non_camel_case_types)]"
        };

        // ---- servant trait ----
        self.line(
            0,
            &format!(
                "/// The servant side of interface `{}::{name}`: implement it and serve",
                self.module
            ),
        );
        self.line(
            0,
            &format!("/// requests with [`{snake}_dispatch`] or [`{name}Server`]."),
        );
        if !camel_allow.is_empty() {
            self.line(0, camel_allow);
        }
        // Results are tuples of whatever the IDL says; naming them would not help.
        self.line(0, "#[allow(clippy::type_complexity)]");
        self.line(0, &format!("pub trait {name}Servant {{"));
        for (n, f) in i.functions.iter().enumerate() {
            if n > 0 {
                self.out.push('\n');
            }
            self.line(1, &format!("/// {}.", self.signature_doc(f)));
            let mut args = vec![
                "&mut self".to_string(),
                format!("current: &{rt}::Current<'_>"),
            ];
            for p in f.params.iter().filter(|p| !p.out) {
                args.push(format!("{}: {}", snake_ident(&p.name), self.in_type(&p.ty)));
            }
            let sig = format!(
                "fn {}({}) -> Result<{}, {rt}::ServantError>;",
                snake_ident(&f.name),
                args.join(", "),
                self.out_type(f)
            );
            self.long_line(1, &sig);
        }
        self.line(0, "}");

        // ---- dispatcher ----
        self.out.push('\n');
        self.line(
            0,
            &format!(
                "/// Serves one request for interface `{}::{name}` (iVersion 1 or 3).",
                self.module
            ),
        );
        self.line(
            0,
            &format!("pub fn {snake}_dispatch<S: {name}Servant + ?Sized>("),
        );
        self.line(1, "servant: &mut S,");
        self.line(1, &format!("request: &{packet}::RequestPacket,"));
        self.line(0, &format!(") -> {rt}::Reply {{"));
        self.line(
            1,
            &format!("let tars_call = match {rt}::ServerCall::new(request) {{"),
        );
        self.line(2, "Ok(c) => c,");
        self.line(2, "Err(reply) => return *reply,");
        self.line(1, "};");
        if i.functions.is_empty() {
            self.line(1, "let _ = servant;");
            self.line(1, "tars_call.no_function()");
            self.line(0, "}");
        } else {
            self.line(1, "let outcome = match request.func_name.as_str() {");
            for f in &i.functions {
                self.line(2, &format!("{:?} => tars_call.run(|tars_call| {{", f.name));
                let mut call_args = vec!["&tars_call.current()".to_string()];
                for (n, p) in f.params.iter().enumerate() {
                    if p.out {
                        continue;
                    }
                    let tag = Self::tag(file, f, n)?;
                    if p.ty == Type::String {
                        // Borrowed from the request: no copy of the string.
                        self.let_line(
                            3,
                            &format!("a{tag}: &str"),
                            &format!("tars_call.arg_str({tag}, {:?})?", p.name),
                        );
                        call_args.push(format!("a{tag}"));
                        continue;
                    }
                    let ty = self.rust_type(&p.ty);
                    self.let_line(
                        3,
                        &format!("a{tag}: {ty}"),
                        &format!("tars_call.arg({tag}, {:?})?", p.name),
                    );
                    call_args.push(if Self::by_value(&p.ty) {
                        format!("a{tag}")
                    } else {
                        format!("&a{tag}")
                    });
                }
                let outs: Vec<(u8, &str)> = f
                    .params
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.out)
                    .map(|(n, p)| Self::tag(file, f, n).map(|t| (t, p.name.as_str())))
                    .collect::<Result<_, _>>()?;
                let mut results: Vec<(u8, String, &str)> = Vec::new();
                if f.ret.is_some() {
                    results.push((0, "ret".into(), ""));
                }
                for (t, n) in &outs {
                    results.push((*t, format!("o{t}"), n));
                }
                let pattern = match results.len() {
                    0 => "()".to_string(),
                    1 => results[0].1.clone(),
                    _ => format!(
                        "({})",
                        results
                            .iter()
                            .map(|r| r.1.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let call = format!(
                    "servant.{}({})?",
                    snake_ident(&f.name),
                    call_args.join(", ")
                );
                if results.is_empty() {
                    self.line(3, &format!("{call};"));
                    self.line(3, "Ok(tars_call.results())");
                } else {
                    self.let_line(3, &pattern, &call);
                    self.line(3, "let mut tars_reply = tars_call.results();");
                    for (t, var, n) in &results {
                        self.line(3, &format!("tars_reply.put({t}, {n:?}, &{var});"));
                    }
                    self.line(3, "Ok(tars_reply)");
                }
                self.line(2, "}),");
            }
            self.line(2, "_ => return tars_call.no_function(),");
            self.line(1, "};");
            self.line(1, "tars_call.finish(outcome)");
            self.line(0, "}");
        }

        // ---- Dispatch wrapper ----
        self.out.push('\n');
        self.line(
            0,
            &format!("/// A `{name}Servant` as a [`{rt}::Dispatch`] object."),
        );
        self.line(0, "#[derive(Debug, Clone, Default)]");
        if !camel_allow.is_empty() {
            self.line(0, camel_allow);
        }
        self.line(0, &format!("pub struct {name}Server<S>(pub S);"));
        self.out.push('\n');
        self.line(
            0,
            &format!("impl<S: {name}Servant> {rt}::Dispatch for {name}Server<S> {{"),
        );
        self.long_line(
            1,
            &format!("fn dispatch(&mut self, request: &{packet}::RequestPacket) -> {rt}::Reply {{"),
        );
        self.line(2, &format!("{snake}_dispatch(&mut self.0, request)"));
        self.line(1, "}");
        self.line(0, "}");

        // ---- client proxy ----
        self.out.push('\n');
        self.line(
            0,
            &format!(
                "/// A blocking client of interface `{}::{name}`.",
                self.module
            ),
        );
        self.line(0, "#[derive(Debug)]");
        if !camel_allow.is_empty() {
            self.line(0, camel_allow);
        }
        self.line(0, &format!("pub struct {name}Proxy {{"));
        self.line(1, &format!("proxy: {rt}::Proxy,"));
        self.line(0, "}");
        self.out.push('\n');
        self.line(0, "#[allow(clippy::type_complexity)]");
        self.line(0, &format!("impl {name}Proxy {{"));
        self.line(
            1,
            "/// Calls go through `proxy` (its address, servant name, timeout, protocol, context).",
        );
        self.line(1, &format!("pub fn new(proxy: {rt}::Proxy) -> Self {{"));
        self.line(2, "Self { proxy }");
        self.line(1, "}");
        self.out.push('\n');
        self.line(1, "/// The underlying proxy.");
        self.line(1, &format!("pub fn proxy(&self) -> &{rt}::Proxy {{"));
        self.line(2, "&self.proxy");
        self.line(1, "}");
        self.out.push('\n');
        self.line(
            1,
            "/// The underlying proxy, to change its timeout, protocol or context.",
        );
        self.line(
            1,
            &format!("pub fn proxy_mut(&mut self) -> &mut {rt}::Proxy {{"),
        );
        self.line(2, "&mut self.proxy");
        self.line(1, "}");
        for f in &i.functions {
            let mut params = vec!["&mut self".to_string()];
            let mut puts = Vec::new();
            for (n, p) in f.params.iter().enumerate() {
                if p.out {
                    continue;
                }
                let pn = snake_ident(&p.name);
                params.push(format!("{pn}: {}", self.in_type(&p.ty)));
                let tag = Self::tag(file, f, n)?;
                // Copyable values are taken by value; `put` wants a reference.
                let by = if Self::by_value(&p.ty) {
                    format!("&{pn}")
                } else {
                    pn.clone()
                };
                puts.push(format!("tars_args.put({tag}, {:?}, {by});", p.name));
            }
            let fname = snake_ident(&f.name);
            for oneway in [false, true] {
                self.out.push('\n');
                if oneway {
                    self.line(
                        1,
                        &format!(
                            "/// {} as a oneway call: no reply, no results.",
                            self.signature_doc(f)
                        ),
                    );
                    let m = ident(&format!("{}_oneway", super::snake(&f.name)));
                    self.long_line(
                        1,
                        &format!(
                            "pub fn {m}({}) -> Result<(), {rt}::CallError> {{",
                            params.join(", ")
                        ),
                    );
                } else {
                    self.line(
                        1,
                        &format!("/// {}: a blocking call.", self.signature_doc(f)),
                    );
                    self.long_line(
                        1,
                        &format!(
                            "pub fn {fname}({}) -> Result<{}, {rt}::CallError> {{",
                            params.join(", "),
                            self.out_type(f)
                        ),
                    );
                }
                let mutable = if puts.is_empty() { "" } else { "mut " };
                self.line(2, &format!("let {mutable}tars_args = self.proxy.args();"));
                for p in &puts {
                    self.line(2, p);
                }
                if oneway {
                    self.line(
                        2,
                        &format!("self.proxy.invoke_oneway({:?}, tars_args)", f.name),
                    );
                } else {
                    let mut gets = Vec::new();
                    if f.ret.is_some() {
                        gets.push("tars_reply.get(0, \"\")?".to_string());
                    }
                    for (n, p) in f.params.iter().enumerate() {
                        if p.out {
                            gets.push(format!(
                                "tars_reply.get({}, {:?})?",
                                Self::tag(file, f, n)?,
                                p.name
                            ));
                        }
                    }
                    let binding = if gets.is_empty() {
                        "_tars_reply"
                    } else {
                        "tars_reply"
                    };
                    self.line(
                        2,
                        &format!(
                            "let {binding} = self.proxy.invoke({:?}, tars_args)?;",
                            f.name
                        ),
                    );
                    match gets.len() {
                        0 => self.line(2, "Ok(())"),
                        1 => self.line(2, &gets[0].replace(")?", ")")),
                        // One line when rustfmt would keep it on one (its call width is 60).
                        _ if gets.join(", ").len() + 2 <= 60 => {
                            self.line(2, &format!("Ok(({}))", gets.join(", ")));
                        }
                        _ => {
                            self.line(2, "Ok((");
                            for g in &gets {
                                self.line(3, &format!("{g},"));
                            }
                            self.line(2, "))");
                        }
                    }
                }
                self.line(1, "}");
            }
        }
        self.line(0, "}");

        // ---- the trait that lets a server hand out any proxy by name ----
        self.out.push('\n');
        self.line(0, &format!("impl {rt}::ServantProxy for {name}Proxy {{"));
        self.line(1, &format!("fn from_proxy(proxy: {rt}::Proxy) -> Self {{"));
        self.line(2, "Self { proxy }");
        self.line(1, "}");
        self.out.push('\n');
        self.line(
            1,
            &format!("fn proxy_mut(&mut self) -> &mut {rt}::Proxy {{"),
        );
        self.line(2, "&mut self.proxy");
        self.line(1, "}");
        self.line(0, "}");
        Ok(())
    }

    /// Writes a line, breaking a long `fn` signature's arguments onto their own lines
    /// the way rustfmt would.
    /// Writes `let lhs = rhs;`, breaking after `=` when too long, as rustfmt does.
    fn let_line(&mut self, indent: usize, lhs: &str, rhs: &str) {
        let one = format!("let {lhs} = {rhs};");
        if one.len() + indent * 4 <= 100 {
            self.line(indent, &one);
        } else {
            self.line(indent, &format!("let {lhs} ="));
            self.line(indent + 1, &format!("{rhs};"));
        }
    }

    pub(crate) fn long_line(&mut self, indent: usize, text: &str) {
        if text.len() + indent * 4 <= 100 {
            self.line(indent, text);
            return;
        }
        let Some(open) = text.find('(') else {
            self.line(indent, text);
            return;
        };
        let mut depth = 0i32;
        let mut close = None;
        for (i, c) in text.char_indices().skip_while(|(i, _)| *i < open) {
            match c {
                '(' | '<' | '[' => depth += 1,
                ')' | '>' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            self.line(indent, text);
            return;
        };
        let head = &text[..=open];
        let inner = &text[open + 1..close];
        let tail = &text[close..];
        self.line(indent, head);
        for part in split_top_level(inner) {
            self.line(indent + 1, &format!("{},", part.trim()));
        }
        self.line(indent, tail);
    }
}

/// Splits at commas not nested in `<>`, `()`, `[]`.
fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}
