//! Claim paths: `realm_access.roles` (dotted) or `/realm_access/roles` (RFC 6901 JSON
//! Pointer, for member names that contain dots).

use serde_json::Value;

/// Looks `path` up in `root`. An empty path is the root itself; a missing member, an index
/// past an array's end or a step into a scalar is `None`.
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(root);
    }
    if path.starts_with('/') {
        return root.pointer(path);
    }
    path.split('.').try_fold(root, |v, step| match v {
        Value::Object(m) => m.get(step),
        Value::Array(a) => step.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_and_pointer_paths() {
        let v =
            json!({"realm_access": {"roles": ["a", "b"]}, "https://x.io/tenant": "t1", "a~b": 1});
        assert_eq!(lookup(&v, "realm_access.roles.1"), Some(&json!("b")));
        assert_eq!(lookup(&v, "/realm_access/roles/0"), Some(&json!("a")));
        assert_eq!(lookup(&v, "/https:~1~1x.io~1tenant"), Some(&json!("t1")));
        assert_eq!(lookup(&v, "/a~0b"), Some(&json!(1)));
        assert_eq!(lookup(&v, "realm_access.missing"), None);
        assert_eq!(lookup(&v, "realm_access.roles.9"), None);
        assert_eq!(lookup(&v, ""), Some(&v));
    }
}
