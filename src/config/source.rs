//! Reading configuration files: `${ENV}` substitution (see `env.rs`), decoding with every unknown key
//! collected, and an index from key paths (`systems[0].checks[1].interval`) to the line
//! and column where they were written, so that validation can point at the exact spot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use saphyr_parser::{Event, Parser};
use serde::de::DeserializeOwned;

use super::ConfigError;
use super::env::{self, Lookup};

/// A position in a file, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One configuration file, read and indexed.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as shown in messages (as given, or joined to the root file's folder).
    pub path: PathBuf,
    /// The text after `${ENV}` substitution.
    pub text: String,
    /// The text with markers in place of `${…}` (the author's geometry), indexed on demand.
    marked: String,
    /// Where each key path's value starts (its key, for a block collection or no value),
    /// and where each key itself is written: built the first time an error or a warning
    /// needs a position (a valid 50,000-target file never pays for it).
    index: std::sync::OnceLock<Positions>,
    /// Values that named an unset variable (already reported): no error is added about them.
    unresolved: Vec<Pos>,
    /// The unset variables of this file, each at its place.
    pub substitution_errors: Vec<ConfigError>,
    /// Values that came from `${…}`, by where they start: never quoted in an error.
    from_env: Vec<(Pos, String)>,
}

impl SourceFile {
    /// Reads `path`, substitutes environment variables and indexes positions.
    pub fn read(path: &Path, env: Lookup<'_>) -> Result<SourceFile, Vec<ConfigError>> {
        let original = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                path: String::new(),
                message: format!("cannot read file: {e}"),
            }]
        })?;
        Self::from_text(path, &original, env)
    }

    /// Builds a source file from text already in memory (used for embedded configs).
    /// Positions are those the author wrote, also on lines where a `${…}` was substituted.
    pub fn from_text(path: &Path, original: &str, env: Lookup<'_>) -> Result<SourceFile, Vec<ConfigError>> {
        let substituted = env::substitute(path, original, env)?;
        Ok(SourceFile {
            path: path.to_path_buf(),
            text: substituted.text,
            marked: substituted.marked,
            index: std::sync::OnceLock::new(),
            unresolved: substituted.unresolved.into_iter().map(|(line, col)| Pos { line, col }).collect(),
            substitution_errors: substituted.errors,
            from_env: substituted.from_env.into_iter().map(|((line, col), value)| (Pos { line, col }, value)).collect(),
        })
    }

    /// Where each key path's value starts.
    fn positions(&self) -> &HashMap<String, Pos> {
        &self.index.get_or_init(|| index_positions(&self.marked)).values
    }

    /// Where each key is written.
    fn key_positions(&self) -> &HashMap<String, Pos> {
        &self.index.get_or_init(|| index_positions(&self.marked)).keys
    }

    /// Whether the value at `key_path` named an unset variable (an error said so already).
    pub fn is_unresolved(&self, key_path: &str) -> bool {
        !self.unresolved.is_empty() && self.positions().get(key_path).is_some_and(|pos| self.unresolved.contains(pos))
    }

    /// The position of the value at `key_path`, or of its nearest written ancestor.
    pub fn position(&self, key_path: &str) -> Pos {
        let mut path = key_path;
        loop {
            if let Some(pos) = self.positions().get(path) {
                return *pos;
            }
            match parent_path(path) {
                Some(parent) => path = parent,
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    /// `file:line:col` of the value at `key_path`, as messages name a place.
    pub fn place(&self, key_path: &str) -> String {
        let pos = self.position(key_path);
        format!("{}:{}:{}", self.path.display(), pos.line, pos.col)
    }

    /// An error located at `key_path` in this file. When the value there came from `${…}`,
    /// the message does not quote it.
    pub fn error(&self, key_path: &str, message: impl Into<String>) -> ConfigError {
        let pos = self.position(key_path);
        let mut message: String = message.into();
        if let Some((_, value)) =
            self.positions().get(key_path).and_then(|p| self.from_env.iter().find(|(at, _)| at == p))
            && !value.is_empty()
        {
            message = message.replace(value.as_str(), "(the value from the environment)");
        }
        ConfigError { file: self.path.clone(), line: pos.line, col: pos.col, path: key_path.to_string(), message }
    }

    /// Decodes the file into `T`. Unknown keys become errors (all of them); a malformed
    /// document is a single error at the position the YAML decoder reports.
    pub fn decode<T: DeserializeOwned + Default>(&self) -> (T, Vec<ConfigError>) {
        if is_blank(&self.text) {
            return (T::default(), Vec::new());
        }
        let mut unknown = Vec::new();
        let deserializer = yaml_serde::Deserializer::from_str(&self.text);
        let result: Result<T, _> = serde_ignored::deserialize(deserializer, |p| unknown.push(path_string(&p)));
        match result {
            Ok(value) => {
                let errors = unknown
                    .iter()
                    .map(|p| {
                        let key = p.rsplit(['.', '[']).next().unwrap_or(p);
                        let mut e = self.error(p, format!("unknown key \"{key}\""));
                        if let Some(pos) = self.key_positions().get(p) {
                            (e.line, e.col) = (pos.line, pos.col);
                        }
                        e
                    })
                    .collect();
                (value, errors)
            }
            Err(e) => (T::default(), vec![self.decode_error(&e)]),
        }
    }

    fn decode_error(&self, e: &yaml_serde::Error) -> ConfigError {
        let text = e.to_string();
        // The decoder appends " at line L column C"; the position goes in front instead.
        let message = match text.rfind(" at line ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        let (path, mut message) = match message.split_once(": ") {
            Some((p, m)) if !p.contains(' ') => (p.to_string(), m.to_string()),
            _ => (String::new(), message),
        };
        // The decoder quotes what it could not read: never a value from the environment.
        for (_, value) in self.from_env.iter().filter(|(_, v)| !v.is_empty()) {
            message = message.replace(value.as_str(), "(the value from the environment)");
        }
        let (line, col) = match e.location() {
            Some(loc) => (loc.line(), loc.column()),
            None => {
                let pos = self.position(&path);
                (pos.line, pos.col)
            }
        };
        ConfigError { file: self.path.clone(), line, col, path, message }
    }
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    })
}

fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

fn path_string(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", path_string(parent)),
        P::Map { parent, key } => {
            let parent = path_string(parent);
            if parent.is_empty() { key.clone() } else { format!("{parent}.{key}") }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => path_string(parent),
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

/// Walks the YAML events and records where each key path's value starts (for a block
/// collection, the key's own position is kept), and where each key is written.
fn index_positions(text: &str) -> Positions {
    let mut positions = HashMap::new();
    let mut keys = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(Ok((event, span))) = parser.next_event() {
        let pos = Pos { line: span.start.line(), col: span.start.col() + 1 };
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { path, key: key @ None }) = stack.last_mut() {
                    let key_path = join(path, &value);
                    positions.insert(key_path.clone(), pos);
                    keys.insert(key_path, pos);
                    *key = Some(value.into_owned());
                    continue;
                }
                let value_path = next_value_path(&mut stack);
                positions.insert(value_path, pos);
            }
            Event::Alias(_) => {
                let value_path = next_value_path(&mut stack);
                positions.insert(value_path, pos);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(event, Event::MappingStart(..));
                let value_path = next_value_path(&mut stack);
                // A block collection starts on the line after its key: keep the key's spot.
                positions.entry(value_path.clone()).or_insert(pos);
                stack.push(if is_map {
                    Frame::Map { path: value_path, key: None }
                } else {
                    Frame::Seq { path: value_path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    Positions { values: positions, keys }
}

/// The positions of one file's values and keys, by key path.
#[derive(Debug)]
struct Positions {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

fn next_value_path(stack: &mut [Frame]) -> String {
    match stack.last_mut() {
        None => String::new(),
        Some(Frame::Map { path, key }) => {
            let key = key.take().unwrap_or_default();
            join(path, &key)
        }
        Some(Frame::Seq { path, next }) => {
            let p = format!("{path}[{next}]");
            *next += 1;
            p
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nested_keys() {
        let text = "a: 1\nsystems:\n  - id: x\n    checks:\n      - id: y\n        interval: 5s\n";
        let f = SourceFile::from_text(Path::new("t.yaml"), text, &env::process_env).unwrap();
        assert_eq!(f.position("a"), Pos { line: 1, col: 4 });
        assert_eq!(f.position("systems[0].id"), Pos { line: 3, col: 9 });
        assert_eq!(f.position("systems[0].checks[0].interval"), Pos { line: 6, col: 19 });
        // A path that is not written falls back to its nearest ancestor.
        assert_eq!(f.position("systems[0].checks[0].timeout"), Pos { line: 5, col: 9 });
    }
}
