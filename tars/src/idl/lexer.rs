//! The tokenizer of the .tars IDL: identifiers, numbers, strings, punctuation and
//! `#include`, each with the line and column where it starts.

use super::Pos;

/// One token of the IDL.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name or a keyword (keywords are recognised by the parser, so a keyword can
    /// still be reported by its spelling).
    Ident(String),
    /// An integer literal (decimal, hex `0x` or octal `0`), without sign.
    Int(u64),
    /// A floating-point literal, without sign.
    Float(f64),
    /// A string literal with its escapes resolved.
    Str(String),
    /// `#include`.
    Include,
    /// `::`.
    Scope,
    /// Any other single punctuation character: `{ } ; < > , ( ) [ ] = -`.
    Punct(char),
    /// The end of the input.
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(n) => format!("number `{n}`"),
            Tok::Float(f) => format!("number `{f}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Include => "`#include`".to_string(),
            Tok::Scope => "`::`".to_string(),
            Tok::Punct(c) => format!("`{c}`"),
            Tok::Eof => "end of file".to_string(),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Its first character.
    pub pos: Pos,
}

/// Splits `src` into tokens; the last one is always [`Tok::Eof`].
/// On error returns the position and the message.
pub fn tokenize(src: &str) -> Result<Vec<Token>, (Pos, String)> {
    let mut lx = Lexer {
        chars: src.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_space_and_comments()?;
        let pos = lx.pos();
        let Some(c) = lx.peek(0) else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(out);
        };
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            let mut s = String::new();
            while let Some(c) = lx
                .peek(0)
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                s.push(c);
                lx.bump();
            }
            Tok::Ident(s)
        } else if c.is_ascii_digit() || (c == '.' && lx.peek(1).is_some_and(|d| d.is_ascii_digit()))
        {
            lx.number(pos)?
        } else if c == '"' {
            lx.bump();
            lx.string(pos)?
        } else if c == '#' {
            lx.bump();
            let mut s = String::new();
            while let Some(c) = lx.peek(0).filter(|c| c.is_ascii_alphabetic()) {
                s.push(c);
                lx.bump();
            }
            if s != "include" {
                return Err((
                    pos,
                    format!("unknown directive `#{s}` (only `#include` is known)"),
                ));
            }
            Tok::Include
        } else if c == ':' {
            lx.bump();
            if lx.peek(0) != Some(':') {
                return Err((pos, "expected `::`".to_string()));
            }
            lx.bump();
            Tok::Scope
        } else if "{};<>,()[]=-+".contains(c) {
            lx.bump();
            Tok::Punct(c)
        } else {
            return Err((pos, format!("unexpected character {c:?}")));
        };
        out.push(Token { tok, pos });
    }
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
}

impl Lexer {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.col,
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i.saturating_add(ahead)).copied()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek(0) {
            self.i += 1;
            if c == '\n' {
                self.line = self.line.saturating_add(1);
                self.col = 1;
            } else {
                self.col = self.col.saturating_add(1);
            }
        }
    }

    fn skip_space_and_comments(&mut self) -> Result<(), (Pos, String)> {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(c), _) if c.is_whitespace() => self.bump(),
                (Some('/'), Some('/')) => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match (self.peek(0), self.peek(1)) {
                            (Some('*'), Some('/')) => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            (Some(_), _) => self.bump(),
                            (None, _) => {
                                return Err((start, "unterminated `/*` comment".to_string()))
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn number(&mut self, pos: Pos) -> Result<Tok, (Pos, String)> {
        let mut s = String::new();
        while let Some(c) = self
            .peek(0)
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
        {
            s.push(c);
            self.bump();
            // An exponent sign belongs to the number: `1e-3`.
            if (c == 'e' || c == 'E') && !s.starts_with("0x") && !s.starts_with("0X") {
                if let Some(sign) = self.peek(0).filter(|c| *c == '+' || *c == '-') {
                    s.push(sign);
                    self.bump();
                }
            }
        }
        let bad = || (pos, format!("malformed number `{s}`"));
        if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            return u64::from_str_radix(hex, 16)
                .map(Tok::Int)
                .map_err(|_| bad());
        }
        if s.contains(['.', 'e', 'E']) {
            let t = s.trim_end_matches(['f', 'F']);
            return t.parse::<f64>().map(Tok::Float).map_err(|_| bad());
        }
        if s.len() > 1 && s.starts_with('0') {
            return u64::from_str_radix(&s[1..], 8)
                .map(Tok::Int)
                .map_err(|_| bad());
        }
        s.parse::<u64>().map(Tok::Int).map_err(|_| bad())
    }

    fn string(&mut self, pos: Pos) -> Result<Tok, (Pos, String)> {
        let mut s = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err((pos, "unterminated string".to_string()));
            };
            self.bump();
            match c {
                '"' => return Ok(Tok::Str(s)),
                '\n' => return Err((pos, "unterminated string".to_string())),
                '\\' => {
                    let esc = self
                        .peek(0)
                        .ok_or((pos, "unterminated string".to_string()))?;
                    let here = self.pos();
                    self.bump();
                    s.push(match esc {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        '\\' => '\\',
                        '"' => '"',
                        '\'' => '\'',
                        other => return Err((here, format!("unknown escape `\\{other}`"))),
                    });
                }
                c => s.push(c),
            }
        }
    }
}
