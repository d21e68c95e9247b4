//! The block/key tree of a Tars config file and its line-by-line parser.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{ConfigError, Location};

/// Largest config file accepted (4 MiB); real Tars configs are a few KiB, so anything
/// bigger is the wrong file, and the cap keeps a hostile file from costing memory.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Deepest block nesting accepted; the Tars layout needs four levels.
pub const MAX_DEPTH: usize = 64;

/// One `key=value` (or bare `key`) line of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    key: String,
    value: String,
    bare: bool,
    line: usize,
}

impl Entry {
    /// The key, escapes resolved.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value, escapes resolved; empty for a bare key.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// True when the line had no `=` at all (e.g. `allow`).
    pub fn is_bare(&self) -> bool {
        self.bare
    }

    /// 1-based line number of the (last) line that set this key.
    pub fn line(&self) -> usize {
        self.line
    }
}

/// A `<name>` … `</name>` block: its keys and child blocks, each in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    name: String,
    line: usize,
    close_line: usize,
    entries: Vec<Entry>,
    children: Vec<Block>,
}

impl Block {
    /// The block's name (the root block's name is empty).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// 1-based line of the (first) `<name>` that opened this block; 0 for the root.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based line of the (last) `</name>` that closed this block; 0 for the root.
    pub fn close_line(&self) -> usize {
        self.close_line
    }

    /// The keys of this block in file order (a repeated key sits at its last position).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The child blocks in file order.
    pub fn children(&self) -> &[Block] {
        &self.children
    }

    /// The child block called `name`.
    pub fn child(&self, name: &str) -> Option<&Block> {
        self.children.iter().find(|b| b.name == name)
    }

    /// The block reached by following `path` (child names) from this one.
    pub fn block(&self, path: &[&str]) -> Option<&Block> {
        path.iter().try_fold(self, |block, name| block.child(name))
    }

    /// The entry for `key`, if the block has that key.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The value of `key` (empty for a bare key), if the block has that key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entry(key).map(Entry::value)
    }

    /// True when the block has `key`, bare or with a value.
    pub fn has(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }
}

/// A parsed config file: the root block (holding `<tars>`) and the file's name, which
/// every later error message uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTree {
    file: PathBuf,
    root: Block,
}

impl ConfigTree {
    /// Parses config text; `file` is only used to name the source in errors.
    pub fn parse(text: &str, file: impl Into<PathBuf>) -> Result<ConfigTree, ConfigError> {
        let file = file.into();
        let root = Parser::new(&file).run(text)?;
        Ok(ConfigTree { file, root })
    }

    /// Reads and parses the config file at `path` (at most [`MAX_CONFIG_BYTES`], UTF-8).
    pub fn load(path: impl AsRef<Path>) -> Result<ConfigTree, ConfigError> {
        let path = path.as_ref();
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut bytes = Vec::new();
        // Read one byte past the limit so an oversized file is detected without
        // trusting the size the file system reports.
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                limit: MAX_CONFIG_BYTES,
            });
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                let valid = err.utf8_error().valid_up_to();
                let before = &err.as_bytes()[..valid];
                let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
                let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
                return Err(ConfigError::Syntax {
                    at: Box::new(Location {
                        file: path.to_path_buf(),
                        line: Some(line),
                        column: Some(column),
                    }),
                    message: "this byte is not valid UTF-8; save the file as UTF-8".into(),
                });
            }
        };
        ConfigTree::parse(&text, path)
    }

    /// The file name given to [`ConfigTree::parse`] or [`ConfigTree::load`].
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The unnamed root block; the Tars layout puts `<tars>` under it.
    pub fn root(&self) -> &Block {
        &self.root
    }

    /// The block at `path` from the root, e.g. `&["tars", "application", "server"]`.
    pub fn block(&self, path: &[&str]) -> Option<&Block> {
        self.root.block(path)
    }

    /// The entry `key` of the block at `path`.
    pub fn entry(&self, path: &[&str], key: &str) -> Option<&Entry> {
        self.block(path).and_then(|b| b.entry(key))
    }

    /// The value of `key` in the block at `path` (empty for a bare key).
    pub fn get(&self, path: &[&str], key: &str) -> Option<&str> {
        self.block(path).and_then(|b| b.get(key))
    }

    /// A [`Location`] naming `line` of this tree's file (for error messages).
    pub fn at(&self, line: usize) -> Location {
        Location::line(self.file.clone(), line)
    }
}

/// A block while parsing. Blocks live in an arena so that a block reopened later in
/// the same parent can be found and extended (TC_Config's merge), and keys are indexed
/// so that a file of many distinct keys parses in linear time.
struct Node {
    name: String,
    line: usize,
    close_line: usize,
    /// `None` marks a key overridden by a later line of the same key.
    entries: Vec<Option<Entry>>,
    entry_index: HashMap<String, usize>,
    children: Vec<usize>,
    child_index: HashMap<String, usize>,
}

impl Node {
    fn new(name: String, line: usize) -> Node {
        Node {
            name,
            line,
            close_line: 0,
            entries: Vec::new(),
            entry_index: HashMap::new(),
            children: Vec::new(),
            child_index: HashMap::new(),
        }
    }
}

struct Parser<'f> {
    file: &'f Path,
    nodes: Vec<Node>,
    /// Open blocks: (node index, line of this particular opening).
    stack: Vec<(usize, usize)>,
}

impl<'f> Parser<'f> {
    fn new(file: &'f Path) -> Parser<'f> {
        Parser {
            file,
            nodes: vec![Node::new(String::new(), 0)],
            stack: vec![(0, 0)],
        }
    }

    fn error(&self, line: usize, column: Option<usize>, message: String) -> ConfigError {
        ConfigError::Syntax {
            at: Box::new(Location {
                file: self.file.to_path_buf(),
                line: Some(line),
                column,
            }),
            message,
        }
    }

    fn run(mut self, text: &str) -> Result<Block, ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.split('\n').enumerate() {
            let number = index + 1;
            let line = trim(raw);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Columns are counted in characters from the raw line's start.
            let indent = raw[..raw.len() - trim_start(raw).len()].chars().count();
            if line.starts_with('<') {
                self.tag(line, number, indent)?;
            } else {
                self.key_line(line, number, indent)?;
            }
        }
        if let Some(&(node, opened)) = self.stack.last() {
            if node != 0 {
                let name = &self.nodes[node].name;
                return Err(self.error(
                    opened,
                    None,
                    format!("unclosed block <{name}> opened here; add </{name}>"),
                ));
            }
        }
        Ok(self.build(0))
    }

    fn tag(&mut self, line: &str, number: usize, indent: usize) -> Result<(), ConfigError> {
        let Some(gt) = line.find('>') else {
            return Err(self.error(
                number,
                Some(indent + 1),
                format!("`{line}` has no closing '>'; write <name> or </name> on its own line"),
            ));
        };
        let rest = trim(&line[gt + 1..]);
        if !rest.is_empty() {
            let column = indent + line[..line.len() - rest.len()].chars().count() + 1;
            return Err(self.error(
                number,
                Some(column),
                format!(
                    "unexpected `{rest}` after `{}`; put it on a line of its own",
                    &line[..=gt]
                ),
            ));
        }
        if let Some(name) = line[1..gt].strip_prefix('/') {
            self.close(trim(name), number)
        } else {
            self.open(trim(&line[1..gt]), number, indent)
        }
    }

    fn open(&mut self, name: &str, number: usize, indent: usize) -> Result<(), ConfigError> {
        if name.is_empty() {
            return Err(self.error(
                number,
                Some(indent + 1),
                "empty block name `<>`; write <name>".into(),
            ));
        }
        if self.stack.len() > MAX_DEPTH {
            return Err(self.error(
                number,
                None,
                format!("blocks are nested more than {MAX_DEPTH} deep; close the open blocks"),
            ));
        }
        let parent = self.stack.last().map_or(0, |&(node, _)| node);
        let node = match self.nodes[parent].child_index.get(name) {
            Some(&node) => node,
            None => {
                let node = self.nodes.len();
                self.nodes.push(Node::new(name.to_string(), number));
                let parent = &mut self.nodes[parent];
                parent.children.push(node);
                parent.child_index.insert(name.to_string(), node);
                node
            }
        };
        self.stack.push((node, number));
        Ok(())
    }

    fn close(&mut self, name: &str, number: usize) -> Result<(), ConfigError> {
        let Some(&(node, opened)) = self.stack.last() else {
            return Err(self.error(number, None, "internal: no root block".into()));
        };
        if node == 0 {
            return Err(self.error(
                number,
                None,
                format!("found </{name}> but no block is open; remove it or add <{name}> above"),
            ));
        }
        let open_name = &self.nodes[node].name;
        if open_name != name {
            return Err(self.error(
                number,
                None,
                format!(
                    "expected </{open_name}> but found </{name}>; <{open_name}> was opened on \
                     line {opened} and must be closed first"
                ),
            ));
        }
        self.nodes[node].close_line = number;
        self.stack.pop();
        Ok(())
    }

    fn key_line(&mut self, line: &str, number: usize, indent: usize) -> Result<(), ConfigError> {
        let (key, value, bare) = match find_unescaped_eq(line) {
            Some(eq) => (trim(&line[..eq]), trim(&line[eq + 1..]), false),
            None => (line, "", true),
        };
        if key.is_empty() {
            return Err(self.error(
                number,
                Some(indent + 1),
                format!("`{line}` has no key before '='; write key=value (a literal '=' in a key is written \\=)"),
            ));
        }
        let entry = Entry {
            key: unescape(key),
            value: unescape(value),
            bare,
            line: number,
        };
        let node_index = self.stack.last().map_or(0, |&(node, _)| node);
        let node = &mut self.nodes[node_index];
        // Last one wins and moves to the later position, as TC_Config does.
        if let Some(old) = node.entry_index.remove(&entry.key) {
            if let Some(slot) = node.entries.get_mut(old) {
                *slot = None;
            }
        }
        node.entry_index
            .insert(entry.key.clone(), node.entries.len());
        node.entries.push(Some(entry));
        Ok(())
    }

    /// Turns the arena into the nested, immutable [`Block`] tree. Recursion depth is
    /// bounded by [`MAX_DEPTH`].
    fn build(&mut self, index: usize) -> Block {
        let children = std::mem::take(&mut self.nodes[index].children);
        let children = children.into_iter().map(|c| self.build(c)).collect();
        let node = &mut self.nodes[index];
        Block {
            name: std::mem::take(&mut node.name),
            line: node.line,
            close_line: node.close_line,
            entries: std::mem::take(&mut node.entries)
                .into_iter()
                .flatten()
                .collect(),
            children,
        }
    }
}

/// TC_Config trims exactly these characters from each line, key and value.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn trim(s: &str) -> &str {
    s.trim_matches(is_space)
}

fn trim_start(s: &str) -> &str {
    s.trim_start_matches(is_space)
}

/// Byte offset of the first `=` not preceded by an escaping backslash. Unlike
/// TC_Config (which only looks at the previous byte), `a\\=b` splits after `a\\`.
fn find_unescaped_eq(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Resolves `\=`, `\\`, `\n`, `\r`, `\t`; any other backslash is kept as written.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mapped = match chars.peek() {
            Some('=') => Some('='),
            Some('\\') => Some('\\'),
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            Some('t') => Some('\t'),
            _ => None,
        };
        match mapped {
            Some(m) => {
                out.push(m);
                chars.next();
            }
            None => out.push('\\'),
        }
    }
    out
}
