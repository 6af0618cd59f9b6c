//! `${NAME}` and `${NAME:-default}` in configuration files, substituted inside the parsed
//! YAML scalars — never pasted into the text. A value from the environment (a secret,
//! typically) can hold anything: a newline, ` #`, a quote or a backslash stay part of the
//! value and can neither cut it short nor add keys to the document.
//!
//! How: each reference is first replaced by a marker of the same length in characters
//! (private-use code points, valid in any YAML scalar, flow collections included), so the
//! document parses with the geometry the author wrote and positions stay exact. Then every
//! scalar holding a marker is re-written as a double-quoted YAML string of its value with
//! the references resolved. Every unset variable is reported, each at its own position.

use std::path::Path;

use saphyr_parser::{Event, Parser};

use super::ConfigError;

/// Where the configuration's `${NAME}` values come from: the process environment, or a map
/// in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Starts a marker; the reference's index follows in [`DIGIT_ZERO`]-based hex digits.
const MARK: char = '\u{E000}';
const DIGIT_ZERO: u32 = 0xE010;

/// One `${…}` written in the file.
struct Reference {
    name: String,
    default: Option<String>,
    line: usize,
    col: usize,
}

/// A file's text with its references marked, and the text to decode.
pub(super) struct Substituted {
    /// The text with markers in place of references: the author's geometry, for positions.
    pub marked: String,
    /// The text with every referenced scalar re-written as a quoted string of its value.
    pub text: String,
    /// Where the values that named an unset variable start (line, 1-based column): they
    /// are decoded as empty, and no further error is reported about them.
    pub unresolved: Vec<(usize, usize)>,
    /// One error for each unset variable, at its place.
    pub errors: Vec<ConfigError>,
    /// The values that came from the environment, with where they start (line, column):
    /// an error about such a value must not quote it (it is usually a secret).
    pub from_env: Vec<((usize, usize), String)>,
}

/// Substitutes the environment into `original`. An invalid variable name is an error that
/// stops the file; unset variables are all reported in [`Substituted::errors`].
pub(super) fn substitute(path: &Path, original: &str, env: Lookup<'_>) -> Result<Substituted, Vec<ConfigError>> {
    let error = |line: usize, col: usize, message: String| ConfigError {
        file: path.to_path_buf(),
        line,
        col,
        path: String::new(),
        message,
    };
    let (marked, references) = mark(original).map_err(|(line, col, m)| vec![error(line, col, m)])?;
    if references.is_empty() {
        return Ok(Substituted {
            text: marked.clone(),
            marked,
            unresolved: Vec::new(),
            errors: Vec::new(),
            from_env: Vec::new(),
        });
    }
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut errors = Vec::new();
    let mut unresolved = Vec::new();
    let mut from_env = Vec::new();
    let offsets: Vec<usize> = marked.char_indices().map(|(i, _)| i).chain([marked.len()]).collect();
    let mut parser = Parser::new_from_str(&marked);
    // A malformed document is left as it is: decoding reports it at its position.
    while let Some(Ok((event, span))) = parser.next_event() {
        let Event::Scalar(value, ..) = event else {
            continue;
        };
        if !value.contains(MARK) {
            continue;
        }
        if span.start.line() != span.end.line() {
            let r = &references[first_index(&value).unwrap_or(0)];
            errors.push(error(r.line, r.col, "${…} cannot stand in a value that spans several lines".into()));
            unresolved.push((span.start.line(), span.start.col() + 1));
            continue;
        }
        let resolved = match resolve(&value, &references, env) {
            Ok(resolved) => resolved,
            Err(unset) => {
                let named = |r: &Reference| format!("environment variable \"{}\" is not set", r.name);
                errors.extend(unset.into_iter().map(|r| error(r.line, r.col, named(r))));
                unresolved.push((span.start.line(), span.start.col() + 1));
                String::new()
            }
        };
        let quoted = serde_json::to_string(&resolved).unwrap_or_default();
        edits.push((offsets[span.start.index()]..offsets[span.end.index()], quoted));
        from_env.push(((span.start.line(), span.start.col() + 1), resolved));
    }
    let mut text = marked.clone();
    for (range, replacement) in edits.into_iter().rev() {
        text.replace_range(range, &replacement);
    }
    Ok(Substituted { marked, text, unresolved, errors, from_env })
}

/// Replaces each reference outside comment lines by a marker of the same length.
fn mark(text: &str) -> Result<(String, Vec<Reference>), (usize, usize, String)> {
    let mut out = String::with_capacity(text.len());
    let mut references = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') || !line.contains("${") {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let (name, default) = match after[..end].split_once(":-") {
                Some((n, d)) => (n, Some(d.to_string())),
                None => (&after[..end], None),
            };
            let col = line[..line.len() - rest.len() + start].chars().count() + 1;
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err((n + 1, col, format!("environment variable \"{name}\" is not a valid variable name")));
            }
            let reference = &rest[start..start + 2 + end + 1];
            out.push_str(&marker(references.len(), reference.chars().count()).ok_or((
                n + 1,
                col,
                "too many ${…} references in one file".to_string(),
            ))?);
            references.push(Reference { name: name.to_string(), default, line: n + 1, col });
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    Ok((out, references))
}

/// `MARK` and the index in hex digits, `len` characters in all; none if it does not fit.
fn marker(index: usize, len: usize) -> Option<String> {
    let digits = len.checked_sub(1)?;
    let hex = format!("{index:0digits$x}");
    if hex.len() > digits {
        return None;
    }
    let digit = |h: char| char::from_u32(DIGIT_ZERO + h.to_digit(16).unwrap_or(0));
    std::iter::once(Some(MARK)).chain(hex.chars().map(digit)).collect()
}

/// The markers in a scalar's value, as (byte range, reference index).
fn markers(value: &str) -> Vec<(std::ops::Range<usize>, usize)> {
    let mut found = Vec::new();
    let mut chars = value.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != MARK {
            continue;
        }
        let (mut index, mut end) = (0usize, start + c.len_utf8());
        while let Some(&(i, d)) = chars.peek() {
            let Some(digit) = (d as u32).checked_sub(DIGIT_ZERO).filter(|v| *v < 16) else {
                break;
            };
            index = index.saturating_mul(16).saturating_add(digit as usize);
            end = i + d.len_utf8();
            chars.next();
        }
        found.push((start..end, index));
    }
    found
}

fn first_index(value: &str) -> Option<usize> {
    markers(value).first().map(|(_, i)| *i)
}

/// The scalar's value with each marker replaced by its variable's value (or default); the
/// references that have neither.
fn resolve<'r>(value: &str, references: &'r [Reference], env: Lookup<'_>) -> Result<String, Vec<&'r Reference>> {
    let mut out = String::with_capacity(value.len());
    let mut unset = Vec::new();
    let mut last = 0;
    for (range, index) in markers(value) {
        out.push_str(&value[last..range.start]);
        last = range.end;
        let Some(r) = references.get(index) else {
            continue;
        };
        match env(&r.name).filter(|v| !v.is_empty()).or_else(|| r.default.clone()) {
            Some(v) => out.push_str(&v),
            None => unset.push(r),
        }
    }
    out.push_str(&value[last..]);
    if unset.is_empty() { Ok(out) } else { Err(unset) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    fn value_of(text: &str, key: &str, env: Lookup<'_>) -> String {
        let s = substitute(Path::new("t.yaml"), text, env).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let doc: yaml_serde::Value = yaml_serde::from_str(&s.text).unwrap_or_else(|e| panic!("{}: {e}", s.text));
        doc[key].as_str().unwrap_or_else(|| panic!("{key} in {}", s.text)).to_string()
    }

    /// Issue #13, item 10: a secret holding ` #`, a backslash, quotes or a newline stays
    /// one value, in every place a reference can stand.
    #[test]
    fn a_hostile_value_stays_one_value() {
        let hostile = "pa ss #not-a-comment \\n \"q\" 'q'\ninjected: yes";
        let env = move |name: &str| (name == "S").then(|| hostile.to_string());
        for text in ["a: ${S}\n", "a: \"${S}\"\n", "a: '${S}'\n", "{ a: ${S} }\n", "a: ${S} # a comment\n"] {
            assert_eq!(value_of(text, "a", &env), hostile, "{text}");
            let s = substitute(Path::new("t.yaml"), text, &env).expect("substitutes");
            let doc: yaml_serde::Value = yaml_serde::from_str(&s.text).expect("parses");
            assert!(doc.get("injected").is_none(), "{text}: a newline added a key: {}", s.text);
        }
        assert_eq!(value_of("a: x-${S}-y\n", "a", &env), format!("x-{hostile}-y"));
        let list = substitute(Path::new("t.yaml"), "a: [${S}, ${S}]\n", &env).expect("flow list");
        let doc: yaml_serde::Value = yaml_serde::from_str(&list.text).expect("parses");
        assert_eq!(doc["a"][1].as_str(), Some(hostile));
    }

    #[test]
    fn defaults_and_empty_values() {
        let env = env_of(&[("EMPTY", "")]);
        assert_eq!(value_of("a: ${UNSET_X:-fallback}\n", "a", &env), "fallback");
        assert_eq!(value_of("a: ${EMPTY:-fallback}\n", "a", &env), "fallback");
        assert_eq!(value_of("a: \"${UNSET_X:-}\"\n", "a", &env), "");
    }

    #[test]
    fn every_unset_variable_is_reported_at_its_place() {
        let env = env_of(&[]);
        let text = "a: 1\nb: x${FIRST}\nc: { d: ${SECOND} }\n# ${IN_A_COMMENT}\ne: 2 # ${TRAILING}\n";
        let errors = substitute(Path::new("t.yaml"), text, &env).expect("read").errors;
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "t.yaml:2:5: environment variable \"FIRST\" is not set",
                "t.yaml:3:9: environment variable \"SECOND\" is not set",
            ]
        );
    }

    #[test]
    fn markers_keep_the_authors_columns() {
        let s = substitute(Path::new("t.yaml"), "a: { b: ${X}, c: 1 }\n", &env_of(&[("X", "long value")])).expect("ok");
        assert_eq!(s.marked.chars().count(), "a: { b: ${X}, c: 1 }\n".chars().count());
        assert_eq!(marker(4095, 4).map(|m| m.chars().count()), Some(4));
        assert_eq!(marker(4096, 4), None);
    }

    #[test]
    fn multi_line_values_and_bad_names_are_refused() {
        let env = env_of(&[("X", "v")]);
        let errors = substitute(Path::new("t.yaml"), "a: |\n  x ${X}\n  y\n", &env).expect("read").errors;
        assert!(errors[0].to_string().contains("several lines"), "{errors:?}");
        let errors = substitute(Path::new("t.yaml"), "a: ${9X}\n", &env).err().expect("refused");
        assert_eq!(errors[0].to_string(), "t.yaml:1:4: environment variable \"9X\" is not a valid variable name");
    }
}
