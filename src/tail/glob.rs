//! Shell-style name patterns for directory targets: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`,
//! and `\` to escape. Matching works on whole names (never on `/`).

/// Checks a pattern once at config time so matching never meets a malformed one.
pub fn validate(pattern: &str) -> Result<(), String> {
    let p: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 == p.len() => {
                return Err(format!("`{pattern}` ends with a lone `\\`"));
            }
            '\\' => i += 2,
            '[' => match class_end(&p, i) {
                Some(end) => i = end + 1,
                None => return Err(format!("`{pattern}` has an unclosed `[`")),
            },
            _ => i += 1,
        }
    }
    Ok(())
}

/// Index of the `]` closing the class that opens at `open`.
fn class_end(p: &[char], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if i < p.len() && (p[i] == '!' || p[i] == '^') {
        i += 1;
    }
    // A `]` right after the opening is a literal member.
    if i < p.len() && p[i] == ']' {
        i += 1;
    }
    while i < p.len() {
        if p[i] == ']' {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn class_matches(class: &[char], c: char) -> bool {
    let (negated, members) = match class.first() {
        Some('!' | '^') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut hit = false;
    let mut i = 0;
    while i < members.len() {
        if i + 2 < members.len() && members[i + 1] == '-' {
            if members[i] <= c && c <= members[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if members[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    hit != negated
}

/// Whether `name` matches `pattern` (iterative, with one backtrack point per `*`).
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => Some(pi + 1),
                '[' => match class_end(&p, pi) {
                    Some(end) if class_matches(&p[pi + 1..end], n[ni]) => Some(end + 1),
                    Some(_) => None,
                    None => (n[ni] == '[').then_some(pi + 1),
                },
                '\\' if pi + 1 < p.len() => (p[pi + 1] == n[ni]).then_some(pi + 2),
                c => (c == n[ni]).then_some(pi + 1),
            }
        } else {
            None
        };
        match step {
            Some(next) => {
                pi = next;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_a_shell() {
        let yes = [
            ("*", "anything"),
            ("*", ".hidden"),
            ("*.log", "app.log"),
            ("*.log", ".log"),
            ("app-?.log", "app-1.log"),
            ("[ab]*.log", "b.log"),
            ("[a-c]x", "bx"),
            ("[!a]x", "bx"),
            ("a*b*c", "aXXbYYc"),
            ("\\*.log", "*.log"),
            ("[]]", "]"),
        ];
        for (p, n) in yes {
            assert!(matches(p, n), "{p} should match {n}");
        }
        let no = [
            ("*.log", "app.log.1"),
            ("*.log", "app.txt"),
            ("app-?.log", "app-10.log"),
            ("[ab]*.log", "c.log"),
            ("[!a]x", "ax"),
            ("a*b*c", "aXXbYY"),
            ("\\*.log", "a.log"),
        ];
        for (p, n) in no {
            assert!(!matches(p, n), "{p} should not match {n}");
        }
    }

    #[test]
    fn validates_patterns() {
        assert!(validate("*.log").is_ok());
        assert!(validate("[a-z]*").is_ok());
        assert!(validate("[abc").is_err());
        assert!(validate("x\\").is_err());
    }
}
