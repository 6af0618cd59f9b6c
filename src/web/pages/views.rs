//! What each observer sees of a target run from vantage points: the instance itself and
//! every vantage point of its check — "up from the centre, down from xa-sin-ho" on the
//! system page, a table with each one's state and figures on the check page.

use super::*;
use crate::report::Ledger;

/// One observer's view of one target: who, its state now (None: it has no data — never
/// heard from, or lost), and since when.
struct Seen {
    name: String,
    state: Option<State>,
    lost: bool,
    since_ms: Option<i64>,
}

/// The instance's own view of `tid`, then each of `check`'s vantage points'.
fn observers(board: &Board, check: &crate::config::Check, tid: &str) -> Vec<Seen> {
    let own = board.targets.get(tid);
    let mut out = vec![Seen {
        name: board.config.instance.name.clone(),
        state: own.map(|v| v.state.state).filter(|s| *s != State::Unknown),
        lost: false,
        since_ms: own.map(|v| v.state.since_ms),
    }];
    for name in &check.vantages {
        let view = board.vantages.get(name);
        let lost = view.is_some_and(|v| v.lost);
        let now = view.and_then(|v| v.states.get(tid)).filter(|_| !lost);
        out.push(Seen { name: name.clone(), state: now.map(|(s, _)| *s), lost, since_ms: now.map(|(_, t)| *t) });
    }
    out
}

/// "Up from centre; down from xa-sin-ho, xa-nam-tam; no data from xa-pa-tan" — empty for a
/// check run from the instance only.
pub(super) fn seen_from_sentence(board: &Board, check: &crate::config::Check, tid: &str, lang: Language) -> String {
    if check.vantages.is_empty() {
        return String::new();
    }
    let vi = lang == Language::Vi;
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for seen in observers(board, check, tid) {
        let word = match seen.state {
            Some(s) => state_word(s, lang).0.to_string(),
            None if vi => "Không có dữ liệu".to_string(),
            None => "No data".to_string(),
        };
        match groups.iter_mut().find(|(w, _)| *w == word) {
            Some((_, names)) => names.push(seen.name),
            None => groups.push((word, vec![seen.name])),
        }
    }
    let from = if vi { "từ" } else { "from" };
    groups.iter().map(|(word, names)| format!("{word} {from} {}", names.join(", "))).collect::<Vec<_>>().join("; ")
}

/// The check page's table for `tid`: each observer's state now, since when, and its uptime
/// and no-data time over [from, to) from the ledger (a vantage's view is `tid@vantage`).
pub(super) fn seen_from_rows(
    board: &Board,
    check: &crate::config::Check,
    tid: &str,
    ledger: &Ledger,
    (from, to): (i64, i64),
    lang: Language,
) -> Vec<Value> {
    if check.vantages.is_empty() {
        return Vec::new();
    }
    let tz = &board.config.instance.timezone;
    let instance = board.config.instance.name.clone();
    let combined = crate::status::combined(&board.config, check, tid, &board.targets, &board.vantages);
    let mut rows: Vec<Value> = observers(board, check, tid)
        .into_iter()
        .map(|seen| {
            let id = if seen.name == instance { tid.to_string() } else { format!("{tid}@{}", seen.name) };
            let acc = ledger.account(&[id], from, to);
            let state = seen.state.unwrap_or(State::Unknown);
            let (word, icon) = state_word(state, lang);
            json!({
                "name": seen.name, "state": state.as_str(), "word": word, "icon": icon, "lost": seen.lost,
                "since": seen.since_ms.map(|ms| local(ms, tz)).unwrap_or_default(),
                "uptime": super::overview::format_uptime(acc.uptime(), lang),
                "no_data": format_duration(Duration::from_millis(acc.no_data_ms.max(0) as u64)),
            })
        })
        .collect();
    if let Some(c) = combined {
        let (word, icon) = state_word(c.state, lang);
        rows.push(json!({ "combined": true, "state": c.state.as_str(), "word": word, "icon": icon,
            "down": c.down.join(", "), "needed": c.needed, "voters": c.observers.len() }));
    }
    rows
}
