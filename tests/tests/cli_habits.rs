//! The command line as store IT uses it: `-c`/`--config` with a default and an environment
//! variable, sysexits codes (64 a wrong command line, 78 a bad config, which the unit keeps
//! systemd from restarting), `check-config` naming every problem with its key, `--json` for
//! `doctor` and `ports`, completions and a man page from the CLI definition.

use loyalty_e2e::{agent_binary, Store};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn agent(args: &[&str]) -> Command {
    let mut cmd = Command::new(agent_binary());
    cmd.args(args).env_remove("LOYALTY_AGENT_CONFIG");
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out: Output = cmd.output().expect("running loyalty-agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.toml")
}

#[test]
fn usage_errors_exit_64_and_bad_configs_78() {
    let (code, _, err) = run(&mut agent(&["run", "--no-such-flag"]));
    assert_eq!(code, 64, "{err}");
    let (code, _, _) = run(&mut agent(&["no-such-command"]));
    assert_eq!(code, 64);
    let (code, out, _) = run(&mut agent(&["--help"]));
    assert_eq!(code, 0);
    assert!(out.contains("check-config"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("agent.toml");
    std::fs::write(
        &bad,
        "[store]\nid = \"s\"\ndata_dir = \"d\"\n[points]\nper_euro = 1.5\n",
    )
    .unwrap();
    for command in ["check-config", "run"] {
        let (code, _, err) = run(agent(&[command, "-c"]).arg(&bad));
        assert_eq!(code, 78, "{command}: {err}");
        assert!(
            err.contains("points.per_euro: expected a whole number, found 1.5"),
            "{command}: {err}"
        );
    }
    // A config file that is not there is a config problem too.
    let (code, _, err) = run(agent(&["run", "-c"]).arg(dir.path().join("missing.toml")));
    assert_eq!(code, 78, "{err}");
}

#[test]
fn config_comes_from_c_then_the_environment_then_the_default() {
    let store = Store::new("");
    let (code, out, err) = run(agent(&["check-config", "-c"]).arg(&store.config));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&store.config.display().to_string()), "{out}");
    let (code, out, err) = run(agent(&["check-config"]).env("LOYALTY_AGENT_CONFIG", &store.config));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&store.config.display().to_string()), "{out}");
    // No flag, no variable: the package's path, named in the help and in the refusal.
    let (_, help, _) = run(&mut agent(&["check-config", "--help"]));
    assert!(help.contains("-c, --config <FILE>"), "{help}");
    assert!(help.contains("LOYALTY_AGENT_CONFIG"), "{help}");
    assert!(help.contains("/etc/loyalty-agent/agent.toml"), "{help}");
    if !Path::new("/etc/loyalty-agent/agent.toml").exists() {
        let (code, _, err) = run(&mut agent(&["check-config"]));
        assert_eq!(code, 78);
        assert!(err.contains("/etc/loyalty-agent/agent.toml"), "{err}");
    }
}

#[test]
fn check_config_names_every_problem_with_its_key_and_the_key_meant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "[store]\nid = \"s\"\ndata_dir = \"d\"\n\n[api]\nlisten = \"nowhere\"\n\n[checkout]\n\
         session_timeout_secs = \"ten\"\n\n[points]\nper_euro = 1.5\n\n[[lanes]]\nid = 1\n[lanes.scaner]\nport = \"/dev/ttyACM0\"\n",
    )
    .unwrap();
    let (code, _, err) = run(agent(&["check-config", "-c"]).arg(&path));
    assert_eq!(code, 78);
    let lines: Vec<&str> = err.lines().collect();
    let shown = path.display().to_string();
    let expected = [
        format!("{shown}:6:10: `nowhere` is not an address like \"127.0.0.1:7400\""),
        format!(
            "{shown}:9:24: checkout.session_timeout_secs: expected a whole number, found \"ten\""
        ),
        format!("{shown}:12:12: points.per_euro: expected a whole number, found 1.5"),
        format!("{shown}:15:6: lanes.0.id: expected text in quotes, found 1"),
        format!("{shown}:16:8: unknown key `lanes.0.scaner`; did you mean `lanes.0.scanner`?"),
    ];
    assert_eq!(lines, expected, "{err}");
}

#[test]
fn the_examples_placeholders_warn_and_fail_only_with_strict() {
    let (code, _, err) = run(agent(&["check-config", "-c"]).arg(example()));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: hq.token `change-me-store-042-token` is a placeholder"),
        "{err}"
    );
    assert!(
        err.contains("warning: hq.url `https://hq.example.com`"),
        "{err}"
    );
    let (code, _, _) = run(agent(&["check-config", "--strict", "-c"]).arg(example()));
    assert_eq!(code, 78);
    let store = Store::new("");
    let (code, _, err) = run(agent(&["check-config", "--strict", "-c"]).arg(&store.config));
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn doctor_and_ports_speak_json() {
    let store = Store::new(
        "[[lanes]]\nid = \"1\"\n[lanes.scanner]\nport = \"/dev/loyalty/scanner-NOT-THERE\"\n",
    );
    let (code, out, err) = run(agent(&["doctor", "--json", "-c"]).arg(&store.config));
    assert_eq!(code, 1, "{err}");
    let doctor: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doctor["ok"], false);
    let failed: Vec<&str> = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["scanner lane 1"], "{doctor}");

    let (code, out, err) = run(agent(&["ports", "--json", "-c"]).arg(&store.config));
    // A machine without /sys/class/tty cannot list ports at all.
    if Path::new("/sys/class/tty").is_dir() {
        assert_eq!(code, 0, "{err}");
        let ports: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert!(ports["ports"].is_array(), "{ports}");
        assert_eq!(ports["missing"][0]["serves"], "lane 1", "{ports}");
        assert_eq!(
            ports["missing"][0]["port"], "/dev/loyalty/scanner-NOT-THERE",
            "{ports}"
        );
    }
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let (code, bash, _) = run(&mut agent(&["completions", "bash"]));
    assert_eq!(code, 0);
    for word in ["check-config", "doctor", "ports", "--json", "--config"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    // bash itself reads it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loyalty-agent.bash");
    std::fs::write(&file, &bash).unwrap();
    let status = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(status.success());

    let (code, man, _) = run(&mut agent(&["man"]));
    assert_eq!(code, 0);
    assert!(
        man.contains(".TH loyalty-agent 1"),
        "{}",
        &man[..man.len().min(400)]
    );
    for word in ["check\\-config", "doctor", "LOYALTY_AGENT_CONFIG"] {
        assert!(man.contains(word), "the man page lacks {word}");
    }
}
