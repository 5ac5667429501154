//! What the client received, judged against the model: missing, duplicate, out-of-order
//! and replayed lines, fragments, and entries naming a source their file never had.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::world::{Cover, World, token};
use crate::util::{TcpCollector, is_rotation};

pub enum Arrival {
    /// A whole written line (index into `World::lines`) and the source it came with.
    Line(usize, String),
    Notice,
    /// The entry as received, and its source.
    Fragment(String, String),
}

/// The client's entries, classified as they are pulled from the collector.
#[derive(Default)]
pub struct Received {
    pulled: usize,
    pub arrivals: Vec<Arrival>,
    /// Times each line arrived, by line index.
    pub count: HashMap<usize, u32>,
    /// Files with at least one line delivered: logwisp has been reading them.
    pub seen_files: Vec<bool>,
}

impl Received {
    /// Classifies the entries that arrived since the last call; returns how many.
    pub fn pump(&mut self, collector: &TcpCollector, w: &World) -> usize {
        let new = collector.since(self.pulled);
        self.pulled += new.len();
        for v in &new {
            let a = classify(v, w);
            if let Arrival::Line(l, _) = a {
                *self.count.entry(l).or_default() += 1;
                let f = w.lines[l].file;
                if self.seen_files.len() <= f {
                    self.seen_files.resize(f + 1, false);
                }
                self.seen_files[f] = true;
            }
            self.arrivals.push(a);
        }
        new.len()
    }

    pub fn got(&self, line: usize) -> bool {
        self.count.contains_key(&line)
    }

    fn seen(&self, file: usize) -> bool {
        self.seen_files.get(file).copied().unwrap_or(false)
    }
}

fn classify(v: &Value, w: &World) -> Arrival {
    let message = v["message"].as_str().unwrap_or_default();
    if is_rotation(v) && v["level"] == "INFO" {
        return Arrival::Notice;
    }
    match w.tokens.get(token(message)) {
        Some(&l) if w.lines[l].text == message => {
            Arrival::Line(l, v["source"].as_str().unwrap_or_default().to_string())
        }
        _ => Arrival::Fragment(
            format!("{v}"),
            v["source"].as_str().unwrap_or_default().to_string(),
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Must,
    May,
    MustNot,
}

/// Whether logwisp owes `line`, from what happened to its file (SPEC §4):
/// - written before start: files present at start are read from their end, so never;
/// - written while the file had a watched name, or through an old descriptor soon after
///   it lost its last one (a rename rotation loses nothing): owed if logwisp can read it,
///   which it can when the file still has a watched name, or when logwisp had it open
///   before it lost that name (present at start, or a line of it already delivered);
///   a file deleted or renamed away before logwisp ever looked may be missed;
/// - anything else (after the deletion, long after the rotation): may arrive, or not.
///
/// Truncation does not appear here: the generator waits until everything owed of a file
/// has arrived before it truncates it, so bytes logwisp had no time to read are never cut.
pub fn verdict(w: &World, rx: &Received, line: usize) -> Verdict {
    let l = &w.lines[line];
    let f = &w.files[l.file];
    match l.cover {
        Cover::PreStart => Verdict::MustNot,
        Cover::Not(_) => Verdict::May,
        _ if f.late_return => Verdict::May,
        _ if f.watched || f.startup || rx.seen(l.file) => Verdict::Must,
        _ => Verdict::May,
    }
}

#[derive(Default)]
pub struct Findings {
    pub missing: Vec<usize>,
    /// Line and how many times it arrived.
    pub duplicate: Vec<(usize, u32)>,
    pub out_of_order: Vec<String>,
    /// The lines that arrived too early (for the summary).
    pub out_of_order_lines: Vec<usize>,
    pub fragments: Vec<String>,
    /// The sources the fragments came with.
    pub fragment_sources: Vec<String>,
    pub replayed: Vec<usize>,
    pub wrong_source: Vec<String>,
}

impl Findings {
    pub fn is_clean(&self) -> bool {
        self.summary().is_empty()
    }

    /// `missing 2, duplicate 37` (empty when clean).
    pub fn summary(&self) -> String {
        [
            ("missing", self.missing.len()),
            ("duplicate", self.duplicate.len()),
            ("out-of-order", self.out_of_order.len()),
            ("fragment", self.fragments.len()),
            ("replayed", self.replayed.len()),
            ("wrong-source", self.wrong_source.len()),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

pub fn check(w: &World, rx: &Received) -> Findings {
    let mut out = Findings::default();
    for (l, line) in w.lines.iter().enumerate() {
        let times = rx.count.get(&l).copied().unwrap_or(0);
        match verdict(w, rx, l) {
            Verdict::Must if times == 0 => out.missing.push(l),
            Verdict::MustNot if times > 0 => out.replayed.push(l),
            _ => {}
        }
        if times > 1 && !w.files[line.file].late_return {
            out.duplicate.push((l, times));
        }
    }
    let mut last: HashMap<usize, usize> = HashMap::new();
    let mut first = vec![false; w.lines.len()];
    for a in &rx.arrivals {
        match a {
            Arrival::Line(l, source) => {
                let line = &w.lines[*l];
                let f = &w.files[line.file];
                if !f.ever.contains(source) {
                    out.wrong_source.push(format!(
                        "{} came as {source:?}; its names: {:?}",
                        line.text, f.ever
                    ));
                }
                if std::mem::replace(&mut first[*l], true) {
                    continue;
                }
                if let Some(&prev) = last.get(&line.file)
                    && w.lines[prev].n > line.n
                {
                    out.out_of_order.push(format!(
                        "{} arrived after {}",
                        token(&line.text),
                        token(&w.lines[prev].text)
                    ));
                    out.out_of_order_lines.push(*l);
                }
                last.insert(line.file, *l);
            }
            Arrival::Notice => {}
            Arrival::Fragment(v, source) => {
                out.fragments.push(v.clone());
                out.fragment_sources.push(source.clone());
            }
        }
    }
    out
}

/// One line for triage over many seeds: each kind of finding with the files it is in, the
/// sources of fragments, and what happened to those files:
/// `missing 3 in f004; fragment 1 from l02.log -- f004: moved back, rotated`.
pub fn summary_line(w: &World, f: &Findings) -> String {
    let files_of = |lines: &mut dyn Iterator<Item = usize>| {
        let mut ids: Vec<usize> = lines.map(|l| w.lines[l].file).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let kinds = [
        ("missing", files_of(&mut f.missing.iter().copied())),
        (
            "duplicate",
            files_of(&mut f.duplicate.iter().map(|&(l, _)| l)),
        ),
        (
            "out-of-order",
            files_of(&mut f.out_of_order_lines.iter().copied()),
        ),
        ("replayed", files_of(&mut f.replayed.iter().copied())),
    ];
    let counts = [
        f.missing.len(),
        f.duplicate.len(),
        f.out_of_order.len(),
        f.replayed.len(),
    ];
    let mut parts = Vec::new();
    let mut all: Vec<usize> = Vec::new();
    for ((what, ids), n) in kinds.iter().zip(counts) {
        if n == 0 {
            continue;
        }
        let names: Vec<String> = ids.iter().map(|&id| World::fname(id)).collect();
        parts.push(format!("{what} {n} in {}", names.join(",")));
        all.extend(ids.iter().copied());
    }
    if !f.fragments.is_empty() {
        let mut sources = f.fragment_sources.clone();
        sources.sort_unstable();
        sources.dedup();
        parts.push(format!(
            "fragment {} from {}",
            f.fragments.len(),
            sources.join(",")
        ));
    }
    if !f.wrong_source.is_empty() {
        parts.push(format!("wrong-source {}", f.wrong_source.len()));
    }
    all.sort_unstable();
    all.dedup();
    let tags: Vec<String> = all
        .iter()
        .map(|&id| {
            let tags: Vec<&str> = w.files[id].tags.iter().copied().collect();
            format!("{}: {}", World::fname(id), tags.join(", "))
        })
        .collect();
    let mut s = parts.join("; ");
    if !tags.is_empty() {
        s.push_str(" -- ");
        s.push_str(&tags.join("; "));
    }
    s
}

/// Up to this many examples per kind of finding in a report.
const EXAMPLES: usize = 12;

/// The findings with enough context to see what happened to each file involved.
pub fn describe(w: &World, f: &Findings) -> String {
    let mut s = String::new();
    let mut files = Vec::new();
    let line_ctx = |l: usize| {
        let line = &w.lines[l];
        let how = match line.cover {
            Cover::PreStart => "before start".to_string(),
            Cover::Watched => "while watched".to_string(),
            Cover::Grace(age) => format!(
                "through an old descriptor {:.2}s after the file left its watched name",
                age.as_secs_f64()
            ),
            Cover::Not(why) => why.to_string(),
        };
        format!(
            "{} (#{} +{}ms, {how})",
            token(&line.text),
            line.action,
            line.at.as_millis()
        )
    };
    if !f.missing.is_empty() {
        let _ = writeln!(s, "  missing {}:", f.missing.len());
        for &l in f.missing.iter().take(EXAMPLES) {
            let _ = writeln!(s, "    {}", line_ctx(l));
            files.push(w.lines[l].file);
        }
    }
    if !f.duplicate.is_empty() {
        let total: u32 = f.duplicate.iter().map(|&(_, n)| n - 1).sum();
        let _ = writeln!(
            s,
            "  duplicate {} lines ({total} extra copies):",
            f.duplicate.len()
        );
        for &(l, n) in f.duplicate.iter().take(EXAMPLES) {
            let _ = writeln!(s, "    {} x{n}", line_ctx(l));
            files.push(w.lines[l].file);
        }
    }
    for (what, list) in [
        ("out-of-order", &f.out_of_order),
        ("fragment", &f.fragments),
        ("wrong source", &f.wrong_source),
    ] {
        if !list.is_empty() {
            let _ = writeln!(s, "  {what} {}:", list.len());
            for x in list.iter().take(EXAMPLES) {
                let _ = writeln!(s, "    {x}");
            }
        }
    }
    if !f.replayed.is_empty() {
        let _ = writeln!(s, "  replayed (written before start) {}:", f.replayed.len());
        for &l in f.replayed.iter().take(EXAMPLES) {
            let _ = writeln!(s, "    {}", line_ctx(l));
        }
    }
    files.sort_unstable();
    files.dedup();
    for id in files {
        let _ = writeln!(s, "  history of {}:", World::fname(id));
        for h in &w.files[id].history {
            let _ = writeln!(s, "    {h}");
        }
    }
    s
}
