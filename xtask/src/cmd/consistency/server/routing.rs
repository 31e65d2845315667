//! Which servers may take a case: those whose `/v1/models` lists the case's model under the same
//! string, under a local folder's name (what `cargo xtask serve` calls a folder by default), or
//! under the id `--model-map CASE_MODEL=SERVED_ID` gives it.

use std::path::Path;

use cases::Case;
use serde_json::Value;

/// The servers that may take a case: `(server index, the model id it serves the case's model
/// under)`.
pub(crate) type Routes = Vec<(usize, String)>;

/// A server as the run found it.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub url: String,
    /// Its `/v1/models` entries (empty when it is gone).
    pub models: Vec<Value>,
    /// Why it cannot take cases (not ready, no model list), if so.
    pub down: Option<String>,
}

/// The names a case's model may be served under, in order of preference: the mapped ids, the
/// model as written, a local folder's name.
fn names(case: &Case, map: &[(String, String)]) -> Vec<String> {
    let mut own = vec![case.model.trim_end_matches('/').to_string()];
    if Path::new(&case.model).is_dir()
        && let Some(n) = Path::new(case.model.trim_end_matches('/')).file_name()
    {
        own.push(n.to_string_lossy().into_owned());
    }
    let mut all: Vec<String> = map
        .iter()
        .filter(|(k, _)| own.iter().any(|o| o == k.trim_end_matches('/')))
        .map(|(_, v)| v.clone())
        .collect();
    all.extend(own);
    all
}

/// The servers (index, served model id) that may take `case`: every server whose model list
/// names it (a server that was gone before the run lists nothing). Empty: none serves it.
pub(crate) fn route(case: &Case, servers: &[Server], map: &[(String, String)]) -> Routes {
    let wanted = names(case, map);
    let mut found = Vec::new();
    for (k, s) in servers.iter().enumerate() {
        let hit = wanted.iter().find_map(|name| {
            s.models.iter().find_map(|m| {
                let id = m["id"].as_str()?;
                let root = m["root"].as_str();
                (id == name || root == Some(name.as_str())).then(|| id.to_string())
            })
        });
        if let Some(id) = hit {
            found.push((k, id));
        }
    }
    found
}

/// The `/v1/models` entry of `id` on `server`.
pub(crate) fn card(server: &Server, id: &str) -> Value {
    server
        .models
        .iter()
        .find(|m| m["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Every model the servers list, for the message of a case no server serves.
pub(crate) fn listing(servers: &[Server]) -> String {
    servers
        .iter()
        .map(|s| match &s.down {
            Some(why) => format!("{}: not available ({why})", s.url),
            None => {
                let ids: Vec<&str> = s.models.iter().filter_map(|m| m["id"].as_str()).collect();
                format!("{} serves {}", s.url, ids.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_case_finds_its_model_by_name_folder_name_or_map() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/cases/tiny.toml");
        let case = cases::load(&dir).unwrap().remove(0);
        let servers = vec![
            Server {
                url: "a".into(),
                models: vec![json!({"id": "tiny-qwen-image"})],
                down: None,
            },
            Server {
                url: "b".into(),
                models: vec![json!({"id": "Qwen/Qwen-Image"})],
                down: None,
            },
            Server {
                url: "c".into(),
                models: vec![json!({"id": "tiny"})],
                down: None,
            },
        ];
        assert_eq!(
            route(&case, &servers, &[]),
            vec![(0, "tiny-qwen-image".to_string())]
        );
        let map = [("tiny-qwen-image".to_string(), "tiny".to_string())];
        assert_eq!(
            route(&case, &servers, &map),
            vec![(0, "tiny-qwen-image".to_string()), (2, "tiny".to_string())]
        );
        assert!(listing(&servers).contains("b serves Qwen/Qwen-Image"));
    }
}
