//! Datums of several inputs, as Pachyderm makes them: `cross` (every combination), `union`
//! (each match alone), `join` (matches whose capture-group keys agree) and `group` (all matches
//! sharing a key). Pure: the planning below takes matches and returns combinations, so it is
//! tested without files or processes.

use std::collections::BTreeMap;

use regex::Regex;

use crate::datum::WHOLE_INPUT;
use crate::key::InputId;
use crate::spec::{How, Named};

/// One input's match, as a member of a datum.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Member {
    /// The input's name (its folder in `DVX_INPUT_DIR`).
    pub name: String,
    /// The match's path below the input folder ([`WHOLE_INPUT`] for the folder itself).
    pub id: String,
    /// Project-relative path of the match.
    pub path: String,
    pub input: Option<InputId>,
    pub size: u64,
    /// The `join_on`/`group_by` key its glob's capture groups give.
    #[serde(skip)]
    pub key: Option<String>,
}

impl Member {
    /// Its path in `DVX_INPUT_DIR`: `name/sub` (`name` for a whole input).
    pub fn place(&self) -> String {
        if self.id == WHOLE_INPUT {
            self.name.clone()
        } else {
            format!("{}/{}", self.name, self.id)
        }
    }
}

/// How many capture groups a glob has: its `(` outside `[...]`.
pub fn capture_groups(glob: &str) -> usize {
    let mut in_class = false;
    let mut n = 0;
    for c in glob.chars() {
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            '(' if !in_class => n += 1,
            _ => {}
        }
    }
    n
}

/// The group numbers a key template names (`$1-$2` gives 1 and 2).
pub fn group_refs(key: &str) -> Vec<usize> {
    let b = key.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let digits: String = key[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                out.push(n);
            }
            i += 1 + digits.len();
        } else {
            i += 1;
        }
    }
    out
}

/// A glob (without its leading `/`) as an anchored regex whose `( )` are capture groups:
/// `*` and `?` do not cross `/`, `**` does, `[...]` and `{a,b}` are kept.
pub fn glob_regex(glob: &str) -> Result<Regex, String> {
    let pat = glob.trim_start_matches('/');
    let mut re = String::from("^");
    let chars: Vec<char> = pat.chars().collect();
    let mut i = 0;
    let mut braces = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    re.push_str("(?:.*/)?");
                    i += 1;
                } else {
                    re.push_str(".*");
                }
                i += 1;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|&x| x == ']')
                    .ok_or_else(|| format!("unclosed `[` in {glob:?}"))?;
                re.push('[');
                for (k, &x) in chars[i + 1..i + end].iter().enumerate() {
                    if k == 0 && x == '!' {
                        re.push('^');
                    } else if x == '\\' || x == '[' {
                        re.push('\\');
                        re.push(x);
                    } else {
                        re.push(x);
                    }
                }
                re.push(']');
                i += end;
            }
            '(' | ')' => re.push(c),
            '{' => {
                braces += 1;
                re.push_str("(?:");
            }
            '}' if braces > 0 => {
                braces -= 1;
                re.push(')');
            }
            ',' if braces > 0 => re.push('|'),
            _ => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("glob {glob:?} is not valid: {e}"))
}

/// The key a match gives: the template with `$N` replaced by capture group N.
pub fn key_of(template: &str, caps: &regex::Captures) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits: String = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(caps.get(n).map_or("", |m| m.as_str())),
            Err(_) => out.push('$'),
        }
        rest = &rest[at + 1 + digits.len()..];
    }
    out.push_str(rest);
    out
}

/// The datums several inputs make: each a list of members, in a stable order (inputs in the
/// order written, matches by path, keys sorted). `matches[i]` are input `i`'s matches.
pub fn combinations(how: How, inputs: &[Named], matches: Vec<Vec<Member>>) -> Vec<Vec<Member>> {
    match how {
        How::Union => matches.into_iter().flatten().map(|m| vec![m]).collect(),
        How::Cross => product(&matches.iter().map(Vec::as_slice).collect::<Vec<_>>()),
        How::Join => {
            let by_key: Vec<BTreeMap<String, Vec<Member>>> =
                matches.into_iter().map(by_key).collect();
            let mut keys: Vec<&String> = by_key.iter().flat_map(|m| m.keys()).collect();
            keys.sort();
            keys.dedup();
            let mut out = Vec::new();
            for k in keys {
                let present: Vec<usize> = (0..inputs.len())
                    .filter(|&i| by_key[i].contains_key(k))
                    .collect();
                let complete = present.len() == inputs.len();
                // Outer join: an input marked `outer_join` keeps its matches without partners.
                if complete || present.iter().any(|&i| inputs[i].outer) {
                    let lists: Vec<&[Member]> =
                        present.iter().map(|&i| by_key[i][k].as_slice()).collect();
                    out.extend(product(&lists));
                }
            }
            out
        }
        How::Group => {
            let mut groups: BTreeMap<String, Vec<Member>> = BTreeMap::new();
            for m in matches.into_iter().flatten() {
                groups
                    .entry(m.key.clone().unwrap_or_default())
                    .or_default()
                    .push(m);
            }
            groups.into_values().collect()
        }
    }
}

fn by_key(ms: Vec<Member>) -> BTreeMap<String, Vec<Member>> {
    let mut out: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for m in ms {
        out.entry(m.key.clone().unwrap_or_default())
            .or_default()
            .push(m);
    }
    out
}

/// Every combination of one member from each list (none when a list is empty).
fn product(lists: &[&[Member]]) -> Vec<Vec<Member>> {
    let mut out: Vec<Vec<Member>> = vec![Vec::new()];
    for list in lists {
        let mut next = Vec::with_capacity(out.len() * list.len());
        for prefix in &out {
            for m in *list {
                let mut c = prefix.clone();
                c.push(m.clone());
                next.push(c);
            }
        }
        out = next;
    }
    if lists.is_empty() {
        Vec::new()
    } else {
        out
    }
}

/// A combination's datum id: the members' places joined with `+` (a group: its key).
pub fn datum_id(how: How, members: &[Member]) -> String {
    match (how, members.first()) {
        (How::Group, Some(m)) => m.key.clone().unwrap_or_default(),
        _ => members
            .iter()
            .map(Member::place)
            .collect::<Vec<_>>()
            .join("+"),
    }
}

/// One id for a combination's inputs, for its key: the members' names, places and ids.
pub fn combined_id(members: &[Member]) -> Option<InputId> {
    let mut h = blake3::Hasher::new();
    h.update(b"dvx-combination-1\0");
    for m in members {
        h.update(m.name.as_bytes());
        h.update(b"\0");
        h.update(m.id.as_bytes());
        h.update(b"\0");
        match &m.input {
            Some(i) => {
                h.update(i.kind.as_bytes());
                h.update(i.id.as_bytes());
            }
            None => {
                h.update(b"-");
            }
        }
        h.update(b"\0");
    }
    Some(InputId {
        kind: "combination",
        id: dvx_store::Id::from_hash(h.finalize()),
    })
}

#[cfg(test)]
mod tests;
