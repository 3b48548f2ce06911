//! Puts the two transcripts side by side, line by line, and says where they part.

use crate::driver::{Obs, Outcome};
use crate::script::{flags_str, Expect, Line, Num, Script, Step};

/// The result of one scenario.
pub struct Verdict {
    /// Lines where Linux did not do what the script says: the script (or the bed) is wrong.
    pub linux_misses: Vec<String>,
    /// Lines where the stack answered differently from Linux, not marked as a deviation.
    pub differences: Vec<String>,
    /// Deviations declared by the script, with what the stack did there.
    pub deviations: Vec<String>,
}

fn show(o: &Outcome) -> String {
    match o {
        Outcome::Done => String::new(),
        Outcome::Seg(Some(s), _) => s.to_string(),
        Outcome::Seg(None, _) => "nothing".into(),
        Outcome::None(v) if v.is_empty() => "nothing".into(),
        Outcome::None(v) => v.iter().map(Obs::to_string).collect::<Vec<_>>().join(" | "),
        Outcome::Drain(v) => match v.last() {
            Some(last) => format!("{} segment(s), the last {last}", v.len()),
            None => "nothing".into(),
        },
        Outcome::App(Ok(s)) => s.clone(),
        Outcome::App(Err(e)) => format!("error: {e}"),
    }
}

/// Field-by-field differences between two observed segments under expectation `e`.
fn seg_diff(e: &Expect, l: &Obs, s: &Obs, l_miss: &[String], s_miss: &[String]) -> Vec<String> {
    let mut v = Vec::new();
    if l.flags != s.flags {
        v.push(format!("flags {} vs {}", flags_str(l.flags), flags_str(s.flags)));
    }
    let miss_on = |m: &[String], what: &str| m.iter().any(|x| x.starts_with(what));
    match e.seq {
        Num::Rel(_) if l.seq != s.seq => v.push(format!("seq {} vs {}", l.seq, s.seq)),
        Num::Next | Num::Acked if miss_on(l_miss, "seq") != miss_on(s_miss, "seq") => v.push("seq (SND.NXT)".into()),
        _ => {}
    }
    if l.flags.ack() && s.flags.ack() {
        match e.ack {
            Num::Rel(_) if l.ack != s.ack => v.push(format!("ack {} vs {}", l.ack, s.ack)),
            Num::Next | Num::Acked if miss_on(l_miss, "ack") != miss_on(s_miss, "ack") => {
                v.push("ack (own state)".into())
            }
            _ => {}
        }
    }
    // A RST's window means nothing (RFC 9293 §3.10.7.1 gives none).
    if !l.flags.rst() && l.win_class() != s.win_class() {
        v.push(format!("window {} vs {}", l.win, s.win));
    }
    if l.opts != s.opts {
        v.push(format!("options {} vs {}", l.opts, s.opts));
    }
    // SACK blocks, edge by edge and in order (RFC 2018 §4: the most recent first).
    if l.sack != s.sack {
        v.push(format!("sack blocks {:?} vs {:?}", l.sack, s.sack));
    }
    if l.len != s.len {
        v.push(format!("len {} vs {}", l.len, s.len));
    }
    v
}

/// What an app outcome means, without the detail in parentheses, and for reads only whether
/// any data came (buffer sizes are each side's own business).
fn app_class(r: &Result<String, String>) -> String {
    match r {
        Ok(s) => {
            let s = s.split(" (").next().unwrap_or("");
            match s.strip_prefix("read ") {
                Some(rest) => {
                    let (n, tail) = rest.split_once(',').unwrap_or((rest, ""));
                    format!("read {}{tail}", if n == "0" { "nothing" } else { "data" })
                }
                None => s.to_string(),
            }
        }
        Err(_) => "error".into(),
    }
}

pub fn compare(sc: &Script, linux: &[Outcome], stack: &[Outcome]) -> Verdict {
    let mut verdict = Verdict { linux_misses: Vec::new(), differences: Vec::new(), deviations: Vec::new() };
    println!("\n=== {}: {}", sc.name, sc.title);
    for ((line, l), s) in sc.lines.iter().zip(linux).zip(stack) {
        let Line { no, text, step, deviation } = line;
        let mut lmiss: Vec<String> = Vec::new();
        let mut diff: Vec<String> = Vec::new();
        match (step, l, s) {
            (Step::Expect(e), Outcome::Seg(lo, lm), Outcome::Seg(so, sm)) => {
                lmiss.extend(lm.iter().cloned());
                match (lo, so) {
                    (Some(lo), Some(so)) => diff = seg_diff(e, lo, so, lm, sm),
                    (None, None) => {}
                    (Some(_), None) => diff.push("the stack sent nothing".into()),
                    (None, Some(_)) => diff.push("Linux sent nothing".into()),
                }
            }
            (Step::ExpectNone(_), Outcome::None(lv), Outcome::None(sv)) => {
                if !lv.is_empty() {
                    lmiss.push("sent something".into());
                }
                if lv.len() != sv.len() || lv.iter().zip(sv).any(|(a, b)| a.flags != b.flags || a.seq != b.seq) {
                    diff.push("different segments".into());
                }
            }
            (Step::Drain(_), Outcome::Drain(lv), Outcome::Drain(sv)) => match (lv.last(), sv.last()) {
                (Some(a), Some(b)) if a.flags != b.flags || a.win_class() != b.win_class() => {
                    diff.push(format!("last segment {a} vs {b}"))
                }
                (Some(_), None) | (None, Some(_)) => diff.push("one side sent nothing".into()),
                _ => {}
            },
            (Step::App(_), Outcome::App(lr), Outcome::App(sr)) => {
                if lr.is_err() {
                    lmiss.push(show(l));
                }
                if app_class(lr) != app_class(sr) {
                    diff.push("different outcome".into());
                }
            }
            _ => {}
        }
        let (ls, ss) = (show(l), show(s));
        let mark = if !lmiss.is_empty() {
            "LINUX?"
        } else if !diff.is_empty() && deviation.is_some() {
            "dev"
        } else if !diff.is_empty() {
            "DIFF"
        } else {
            "ok"
        };
        if ls.is_empty() && ss.is_empty() {
            println!("  {no:>3} {text}");
        } else if ls == ss {
            println!("  {no:>3} {text:<44} {mark:<6} both: {ls}");
        } else {
            println!("  {no:>3} {text:<44} {mark:<6} linux: {ls}\n  {:>3} {:<44} {:<6} stack: {ss}", "", "", "");
        }
        if !lmiss.is_empty() {
            verdict.linux_misses.push(format!("{}:{no} `{text}`: Linux {ls} ({})", sc.name, lmiss.join("; ")));
        }
        if !diff.is_empty() {
            let msg = format!("{}:{no} `{text}`: Linux {ls}; stack {ss} ({})", sc.name, diff.join("; "));
            match deviation {
                Some(why) => {
                    println!("        deviation: {why}");
                    verdict.deviations.push(format!("{msg} [deviation: {why}]"));
                }
                None => verdict.differences.push(msg),
            }
        }
    }
    println!(
        "=== {}: {} lines, Linux {}, stack {}, {} declared deviation(s)",
        sc.name,
        sc.lines.len(),
        if verdict.linux_misses.is_empty() { "as scripted" } else { "OFF SCRIPT" },
        if verdict.differences.is_empty() { "same as Linux" } else { "DIFFERS" },
        verdict.deviations.len()
    );
    verdict
}
