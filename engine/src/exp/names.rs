//! Experiment names: two words from the experiment's content and time, easy to type and say
//! (`brisk-otter`), unique among the experiments of the project.

const FIRST: &[&str] = &[
    "amber", "bold", "brisk", "calm", "clever", "crisp", "dapper", "eager", "fair", "fleet",
    "gentle", "glad", "grand", "happy", "hardy", "jolly", "keen", "lively", "lucid", "merry",
    "nimble", "noble", "plucky", "proud", "quick", "quiet", "rapid", "sharp", "sleek", "sunny",
    "swift", "witty",
];

const SECOND: &[&str] = &[
    "badger", "bison", "crane", "dingo", "eagle", "falcon", "ferret", "finch", "gecko", "heron",
    "ibis", "jackal", "koala", "lark", "lemur", "lynx", "marten", "moose", "newt", "ocelot",
    "otter", "panda", "puffin", "quail", "raven", "robin", "seal", "stoat", "tapir", "viper",
    "walrus", "wren",
];

/// A name for an experiment from `seed`, not one of `taken`.
pub fn pick(seed: &[u8], taken: &dyn Fn(&str) -> bool) -> String {
    let h = blake3::hash(seed);
    let b = h.as_bytes();
    let base = format!(
        "{}-{}",
        FIRST[b[0] as usize % FIRST.len()],
        SECOND[b[1] as usize % SECOND.len()]
    );
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_stable_and_unique() {
        let a = super::pick(b"x", &|_| false);
        assert_eq!(a, super::pick(b"x", &|_| false));
        let b = super::pick(b"x", &|n| n == a);
        assert_eq!(b, format!("{a}-2"));
    }
}
