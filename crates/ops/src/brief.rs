//! Texts cut short for what leaves the guest's root: `/status` (no authentication) and the
//! notifications (a public ntfy topic, perhaps). An error's first line is the controller's
//! own words; what follows may be an app's output — a failed start's error carries the
//! container's last log lines — and that stays in the journal and in the state directory
//! (`felhom-controller status --json`, root only).

use serde_json::Value;

/// The longest text `/status` and a notification carry, in characters.
pub(crate) const MAX_CHARS: usize = 200;

/// What stands for the part of a text that was left out.
const ELIDED: &str = " […]";

/// The first line of `text`, at most [`MAX_CHARS`] characters, ending in `[…]` when anything
/// was left out.
pub(crate) fn one_line(text: &str) -> String {
    let text = text.trim();
    let first = text.lines().next().unwrap_or_default().trim_end();
    let cut = first.chars().count() > MAX_CHARS;
    let kept: String = first.chars().take(MAX_CHARS).collect();
    if cut || kept.len() < text.len() {
        format!("{}{ELIDED}", kept.trim_end())
    } else {
        kept
    }
}

/// Every hook run's `output` in `value`, however deep, left out (issue 23): what a hook
/// printed is an app's output, kept in the record (the state directory, root only). A hook
/// run is an object with a `hook` and a `program`, as `felhom_marker::HookRecord` writes it.
pub(crate) fn no_hook_output(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            if fields.contains_key("hook") && fields.contains_key("program") {
                fields.remove("output");
            }
            fields.values_mut().for_each(no_hook_output);
        }
        Value::Array(items) => items.iter_mut().for_each(no_hook_output),
        Value::String(_) | Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Every string in `value`, however deep, made [`one_line`].
pub(crate) fn one_line_strings(value: &mut Value) {
    match value {
        Value::String(s) => *s = one_line(s),
        Value::Array(items) => items.iter_mut().for_each(one_line_strings),
        Value::Object(fields) => fields.values_mut().for_each(one_line_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_line_is_kept_and_a_cut_is_marked() {
        assert_eq!(one_line("all is well"), "all is well");
        assert_eq!(one_line("  padded \n"), "padded");
        assert_eq!(
            one_line("stack \"a\": failed to start; its last log lines:\napp: secret=1\nmore"),
            "stack \"a\": failed to start; its last log lines: […]"
        );
        let long = "x".repeat(MAX_CHARS + 50);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MAX_CHARS + ELIDED.chars().count());
        assert!(cut.ends_with('…') || cut.ends_with(']'), "{cut}");
        // Characters, not bytes: no panic in the middle of one.
        assert_eq!(one_line(&"é".repeat(MAX_CHARS)), "é".repeat(MAX_CHARS));
    }

    #[test]
    fn a_hooks_output_is_left_out_wherever_it_is() {
        let mut doc = serde_json::json!({
            "last": {"stacks": [{"by_service": [{"service": "db", "hooks": [
                {"hook": "pre-snapshot", "program": "dump", "output": "password=hunter2", "exit_code": 0}
            ]}]}]},
            "output": "not a hook's: kept",
        });
        no_hook_output(&mut doc);
        let hook = &doc["last"]["stacks"][0]["by_service"][0]["hooks"][0];
        assert!(hook.get("output").is_none(), "{hook}");
        assert_eq!(hook["exit_code"], 0);
        assert_eq!(doc["output"], "not a hook's: kept");
    }

    #[test]
    fn every_string_of_a_document_is_cut() {
        let mut doc = serde_json::json!({
            "a": "one\ntwo",
            "b": [{"c": "three\nfour"}, 5, null],
            "d": true,
        });
        one_line_strings(&mut doc);
        assert_eq!(
            doc,
            serde_json::json!({"a": "one […]", "b": [{"c": "three […]"}, 5, null], "d": true})
        );
    }
}
