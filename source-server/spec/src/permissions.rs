//! Zero permissions JSON (the compiled `definePermissions` output).
//!
//! The source server does not evaluate permissions: it publishes them as the single row of
//! `<app>.permissions` for zero-cache, and they count towards the config hash. So only the outer
//! shape is checked here, `{tables: {<table>: {row?, cell?}}}`, to catch a wrong file early.

use serde_json::Value;

use crate::error::{Cx, child};
use crate::schema::object;

pub(crate) fn check(v: &Value, path: &str, cx: &mut Cx<'_>) -> bool {
    let Some(root) = object(v, path, "the permissions", cx) else {
        return false;
    };
    let before = cx.errors.len();
    if let Some(tables) = root.get("tables") {
        let tp = child(path, "tables");
        if let Some(tables) = object(tables, &tp, "\"tables\"", cx) {
            for (name, t) in tables {
                let p = child(&tp, name);
                if let Some(t) = object(t, &p, "a table's permissions", cx) {
                    for k in t.keys() {
                        if k != "row" && k != "cell" {
                            cx.err(child(&p, k), format!("unknown key {k:?} in a table's permissions (expected row, cell)"));
                        }
                    }
                }
            }
        }
    }
    cx.errors.len() == before
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: Value) -> Vec<String> {
        let mut errors = Vec::new();
        check(
            &v,
            "$",
            &mut Cx {
                origin: "p.json",
                errors: &mut errors,
            },
        );
        errors.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn checks_outer_shape() {
        assert!(run(json!({"tables": {"users": {"row": {"select": []}}}})).is_empty());
        assert!(run(json!({})).is_empty());
        assert_eq!(
            run(json!([])),
            vec!["p.json: $: the permissions must be an object, found an array"]
        );
        assert_eq!(
            run(json!({"tables": {"u": {"rows": {}}}})),
            vec![
                "p.json: $.tables.u.rows: unknown key \"rows\" in a table's permissions (expected row, cell)"
            ]
        );
    }
}
