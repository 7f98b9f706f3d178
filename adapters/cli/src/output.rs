//! How the tool prints what happens: text for people, JSON lines for scripts.
//!
//! Every JSON line carries `"v": FORMAT_VERSION`, `"event"` and `"t_ms"`;
//! every port in it is written [`port`]`(p)`, `node#n@incarnation`, so ports
//! of two incarnations of one node never look alike. The README documents
//! each event. A closed stdout (a reader such as `head -1` gone) ends the
//! output quietly: [`Printer::closed`] then says so and nothing more is written.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use groupmesh_driver::{GroupChange, PortId};
use serde_json::json;

/// The version of the JSON lines' format (`"v"`), raised when a field
/// changes meaning or goes away (new fields and events do not raise it).
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Prints events as text or JSON lines, stamped with the time since start.
pub(crate) struct Printer {
    pub(crate) json: bool,
    start: Instant,
    closed: AtomicBool,
}

/// A port with its node's incarnation, `node#n@incarnation`: what the JSON
/// output and `send --to` use.
pub(crate) fn port(p: &PortId) -> String {
    format!("{}#{}@{}", p.node(), p.number(), p.incarnation())
}

/// Ports in the JSON form.
pub(crate) fn port_list(list: &[PortId]) -> Vec<String> {
    list.iter().map(port).collect()
}

/// A list of ports, shortened past a handful.
pub(crate) fn ports(list: &[PortId]) -> String {
    ports_shown(list, |p| p.to_string())
}

fn ports_shown(list: &[PortId], show: impl Fn(&PortId) -> String) -> String {
    const SHOWN: usize = 6;
    let mut s: Vec<String> = list.iter().take(SHOWN).map(show).collect();
    if list.len() > SHOWN {
        s.push(format!("… {} more", list.len() - SHOWN));
    }
    s.join(", ")
}

/// Whether `change` names ports of two incarnations of one node (a node
/// restarted): then the text shows every port with its incarnation.
fn mixes_incarnations(c: &GroupChange) -> bool {
    let mut seen = std::collections::BTreeMap::new();
    c.members
        .iter()
        .chain(&c.added)
        .chain(&c.removed)
        .any(|p| *seen.entry(p.node()).or_insert(p.incarnation()) != p.incarnation())
}

/// A group change for people: ports as `node#n`, or `node#n@incarnation`
/// in a change that names two incarnations of one node; removals with why
/// when all share one reason, members whose metadata changed after `~`.
fn group_text(group: &str, c: &GroupChange) -> String {
    let show = |list: &[PortId]| {
        if mixes_incarnations(c) {
            ports_shown(list, port)
        } else {
            ports(list)
        }
    };
    let mut text = format!("group {group:?}: {} member(s)", c.members.len());
    if !c.added.is_empty() {
        text += &format!("  + {}", show(&c.added));
    }
    if !c.removed.is_empty() {
        text += &format!("  - {}", show(&c.removed));
        if let Some(why) = c
            .reasons
            .first()
            .filter(|w| c.reasons.iter().all(|r| r == *w))
        {
            text += &format!(" ({why})");
        }
    }
    if !c.updated.is_empty() {
        text += &format!("  ~ {}", show(&c.updated));
    }
    text
}

/// Metadata in the JSON output: the JSON value it holds (as `--meta` gives
/// it), `null` for none, else its bytes as a `"hex:…"` string.
pub(crate) fn meta_json(meta: &[u8]) -> serde_json::Value {
    if meta.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(meta).unwrap_or_else(|_| {
        let hex: String = meta.iter().map(|b| format!("{b:02x}")).collect();
        serde_json::Value::String(format!("hex:{hex}"))
    })
}

/// Ports to their metadata, in the JSON form.
pub(crate) fn meta_map<'a>(
    metas: impl IntoIterator<Item = (&'a PortId, &'a [u8])>,
) -> serde_json::Map<String, serde_json::Value> {
    metas
        .into_iter()
        .map(|(p, m)| (port(p), meta_json(m)))
        .collect()
}

/// Milliseconds with one decimal, for timings.
pub(crate) fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Writes one line to stdout; false if stdout is closed (or failing).
pub(crate) fn write_line(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

/// `value` (an object with an `event`) as one line that starts
/// `{"v":1,"event":...` and goes on with the other fields, sorted.
pub(crate) fn json_line(value: serde_json::Value) -> String {
    let serde_json::Value::Object(mut fields) = value else {
        return value.to_string();
    };
    let event = fields.remove("event").unwrap_or(serde_json::Value::Null);
    let mut line = format!("{{\"v\":{FORMAT_VERSION},\"event\":{event}");
    for (key, v) in fields {
        line += &format!(",{}:{v}", serde_json::Value::String(key));
    }
    line.push('}');
    line
}

impl Printer {
    pub(crate) fn new(json: bool) -> Self {
        Printer {
            json,
            start: Instant::now(),
            closed: AtomicBool::new(false),
        }
    }

    /// Whether stdout was found closed: the reader is gone, stop quietly.
    pub(crate) fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn stamp(&self) -> String {
        format!("{:>9.3}s", self.start.elapsed().as_secs_f64())
    }

    fn elapsed_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// Prints `text`, or `value` as a JSON line (with `v` and `t_ms` added).
    pub(crate) fn line(&self, text: &str, value: serde_json::Value) {
        if self.closed() {
            return;
        }
        let line = if self.json {
            let mut v = value;
            v["t_ms"] = json!((self.elapsed_ms() * 1000.0).round() / 1000.0);
            json_line(v)
        } else {
            format!("{} {text}", self.stamp())
        };
        if !write_line(&line) {
            self.closed.store(true, Ordering::Relaxed);
        }
    }

    /// The node leaves the mesh because of signal `sig`.
    pub(crate) fn stopping(&self, sig: &str) {
        self.line(
            &format!("{sig}: leaving the mesh"),
            json!({"event": "stopping", "signal": sig}),
        );
    }

    pub(crate) fn group(&self, group: &str, c: &GroupChange) {
        let text = group_text(group, c);
        self.line(
            &text,
            json!({
                "event": "group",
                "group": group,
                "members": port_list(&c.members),
                "added": port_list(&c.added),
                "removed": port_list(&c.removed),
                "reasons": c.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "updated": port_list(&c.updated),
                "meta": meta_map(c.meta.iter().map(|(p, m)| (p, &m[..]))),
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupmesh_driver::{Meta, NodeId, Removal};

    fn p(node: &str, inc: u64, n: u64) -> PortId {
        PortId::new(NodeId::new(node).expect("a valid id"), inc, n)
    }

    #[test]
    fn text_shows_incarnations_only_when_a_change_mixes_two_of_a_node() {
        let restart = GroupChange {
            members: vec![p("a", 1, 1), p("x", 9, 1)],
            added: vec![p("x", 9, 1)],
            removed: vec![p("x", 7, 1)],
            reasons: vec![Removal::NodeRestarted],
            updated: vec![],
            meta: vec![(p("x", 9, 1), Meta::from(&b""[..]))],
        };
        assert_eq!(
            group_text("g", &restart),
            "group \"g\": 2 member(s)  + x#1@9  - x#1@7 (node restarted)"
        );
        let join = GroupChange {
            members: vec![p("a", 1, 1), p("x", 9, 1)],
            added: vec![p("x", 9, 1)],
            removed: vec![],
            reasons: vec![],
            updated: vec![p("a", 1, 1)],
            meta: vec![
                (p("a", 1, 1), Meta::from(&br#"{"zone":"b"}"#[..])),
                (p("x", 9, 1), Meta::from(&b""[..])),
            ],
        };
        assert_eq!(
            group_text("g", &join),
            "group \"g\": 2 member(s)  + x#1  ~ a#1"
        );
    }

    #[test]
    fn metadata_is_json_when_it_holds_json_and_hex_otherwise() {
        assert_eq!(meta_json(br#"{"zone":"a"}"#), json!({"zone": "a"}));
        assert_eq!(meta_json(b""), serde_json::Value::Null);
        assert_eq!(meta_json(&[0xff, 0x01]), json!("hex:ff01"));
    }

    #[test]
    fn a_json_line_starts_with_its_version_and_event() {
        let line = json_line(json!({"port": "a#1@5", "event": "registered", "group": "g"}));
        assert_eq!(
            line,
            r#"{"v":1,"event":"registered","group":"g","port":"a#1@5"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(parsed["port"], "a#1@5");
    }
}
