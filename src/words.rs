//! Words for counts in the texts people read: "1 connection", "3 connections", never
//! "connection(s)". Every layer writes such texts (topology's guesses, flows' unseen parts,
//! the checks' reasons, fairness notes), so this sits beside them all, below each.

/// "1 check", "3 checks".
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    match n.into() {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// The noun alone for a count: "server" for 1, "servers" otherwise.
pub fn noun<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(plural(1u64, "packet", "packets"), "1 packet");
        assert_eq!(plural(0u64, "packet", "packets"), "0 packets");
        assert_eq!(plural(2u32, "host", "hosts"), "2 hosts");
        assert_eq!(noun(1, "server", "servers"), "server");
        assert_eq!(noun(3, "server", "servers"), "servers");
    }
}
