//! Checks of the command line, all made before a node starts, each naming
//! the flag the user typed (clap prefixes a value parser's message with it).

use std::path::Path;

use groupmesh_driver::{MAX_GROUP_NAME, MAX_NODE_ID};

/// The longest secret file read: the mesh takes a secret of any length, but a
/// file this large is the wrong file.
const MAX_SECRET: usize = 64 * 1024;

/// A node id: 1 to 64 bytes of UTF-8.
pub(crate) fn node_id(s: &str) -> Result<String, String> {
    bounded("a node id", MAX_NODE_ID, s)
}

/// A group name: 1 to 255 bytes of UTF-8.
pub(crate) fn group_name(s: &str) -> Result<String, String> {
    bounded("a group name", MAX_GROUP_NAME, s)
}

/// Metadata given as JSON text, kept as its compact JSON bytes (so any tool
/// reading a member's metadata reads JSON).
#[derive(Debug, Clone)]
pub(crate) struct JsonMeta(pub(crate) Vec<u8>);

/// `--meta`: valid JSON, compacted.
pub(crate) fn json_meta(s: &str) -> Result<JsonMeta, String> {
    let value: serde_json::Value =
        serde_json::from_str(s).map_err(|e| format!("metadata must be JSON: {e}"))?;
    serde_json::to_vec(&value)
        .map(JsonMeta)
        .map_err(|e| format!("metadata must be JSON: {e}"))
}

/// `--meta-file`: the file's JSON, as [`json_meta`] takes it.
pub(crate) fn read_meta_file(path: &Path) -> Result<JsonMeta, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--meta-file {shown}: cannot read it as UTF-8 text: {e}"))?;
    json_meta(&text).map_err(|e| format!("--meta-file {shown}: {e}"))
}

/// `s` if it is 1 to `max` bytes, else the error that says what `what` must be.
fn bounded(what: &str, max: usize, s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > max {
        return Err(format!(
            "{what} is 1 to {max} bytes of UTF-8; this one is {} bytes",
            s.len()
        ));
    }
    Ok(s.to_string())
}

/// The keepalive flags: both above zero, the timeout longer than the ping interval.
pub(crate) fn keepalive(ping_ms: u64, keepalive_ms: u64) -> Result<(), String> {
    if ping_ms == 0 {
        return Err("--ping-ms 0: the ping interval must be above zero".into());
    }
    if keepalive_ms <= ping_ms {
        return Err(format!(
            "--keepalive-ms {keepalive_ms}: the keepalive timeout must be longer than \
             the ping interval (--ping-ms {ping_ms})"
        ));
    }
    Ok(())
}

/// Reads the shared secret (one trailing newline is ignored).
pub(crate) fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let mut secret =
        std::fs::read(path).map_err(|e| format!("--secret-file {shown}: cannot read it: {e}"))?;
    if secret.last() == Some(&b'\n') {
        secret.pop();
    }
    if secret.is_empty() {
        return Err(format!(
            "--secret-file {shown}: the file is empty; put the mesh's shared secret in it \
             (e.g. `head -c 32 /dev/urandom | base64 > {shown}`)"
        ));
    }
    if secret.len() > MAX_SECRET {
        return Err(format!(
            "--secret-file {shown}: the file is {} bytes, more than a secret needs \
             ({MAX_SECRET} at most; 32 random bytes recommended)",
            secret.len()
        ));
    }
    Ok(secret)
}
