//! agent.toml: `config::Config::parse` (the parse and validation `check-config` and `run` use,
//! from a string) on any text.
//!
//! Invariants: a refused file names at least one problem, each at a line and column inside the
//! text; an accepted one has a store id and unique lane ids.
//!
//! The file's directory does not exist, so a relative `hq.token_file` is never read. Inputs that
//! could name a device or a pseudo-file as an absolute `token_file` (`/dev/zero` never ends) are
//! skipped: a `/` with `token`, or any `\` (an escape could spell either): reading the file is the
//! operator's choice, not the parser's.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use loyalty_agent::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if token_file_elsewhere(text) {
        return;
    }
    let path = Path::new("/nonexistent-loyalty-fuzz/agent.toml");
    match Config::parse(text, path) {
        Ok(config) => {
            assert!(!config.store_id.is_empty());
            let mut lanes = HashSet::new();
            for lane in &config.lanes {
                assert!(lanes.insert(&lane.id), "lane {} twice", lane.id);
            }
        }
        Err(ConfigError::Invalid { problems }) => {
            assert!(!problems.is_empty(), "refused without a problem");
            let lines = text.lines().count().max(1) + 1;
            for p in &problems {
                assert_eq!(p.path, path);
                assert!(p.line >= 1 && p.line <= lines, "{p} of {lines} lines");
                assert!(p.column >= 1, "{p}");
                assert!(!p.message.is_empty(), "{p}");
            }
        }
        Err(e) => panic!("parse from a string failed to read: {e}"),
    }
});

/// Whether `hq.token_file` is a path with a directory in it (read through the same TOML crate).
fn token_file_elsewhere(text: &str) -> bool {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return false;
    };
    match table.get("hq").and_then(|hq| hq.get("token_file")) {
        Some(toml::Value::String(file)) => file.contains('/'),
        _ => false,
    }
}
