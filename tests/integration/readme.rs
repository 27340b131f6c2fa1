//! The README's five-minute walkthrough, run as a newcomer pastes it. Only the server's
//! address (the harness's ephemeral port, not 8443) and where the binary is differ.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{BIN, Ca};

/// The `sh` blocks of a README section, in order.
fn sh_blocks<'a>(readme: &'a str, heading: &str) -> Vec<&'a str> {
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading:?} in README.md"));
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or(block))
        .collect()
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let readme = include_str!("../../README.md");
    let blocks = sh_blocks(readme, "## Five-minute walkthrough");
    assert_eq!(
        blocks.len(),
        2,
        "one block starts the CA, one walks through"
    );
    // The first block starts the CA; the harness has done that (on a free port).
    assert_eq!(blocks[0].trim(), "cargo run --release -- serve");
    let ca = Ca::start();

    let path_line = r#"export PATH="$PWD/target/release:$PATH""#;
    assert!(blocks[1].contains(path_line), "{}", blocks[1]);
    let script = blocks[1]
        .replace(path_line, "")
        .replace("https://127.0.0.1:8443", &ca.url);
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", &script])
        .current_dir(ca.dir.path())
        .env("PATH", path)
        // The walkthrough's commands rely on the defaults: the home is ./certs, and the
        // server is the one the README names (here: the harness's).
        .env("LATCHKEY_SERVER", &ca.url)
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") && k != "LATCHKEY_SERVER" {
            cmd.env_remove(k);
        }
    }
    // The walkthrough runs in the repository root: whatever it writes (private keys
    // among them) must be ignored by the repository's .gitignore files. The scratch
    // directory becomes a git repository with those files, and everything untracked after
    // the walkthrough must have been there before it.
    let dir = ca.dir.path();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(repo.join(".gitignore"), dir.join(".gitignore")).unwrap();
    std::fs::copy(repo.join("certs/.gitignore"), dir.join("certs/.gitignore")).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git is installed");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["init", "-q"]);
    let untracked = || -> std::collections::BTreeSet<String> {
        git(&["status", "--porcelain", "--untracked-files=all"])
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let before = untracked();
    let out = cmd.output().expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walkthrough failed:\n{stdout}\n{stderr}"
    );
    // What a newcomer should see along the way.
    assert!(stdout.contains("alice/cert.pem: OK"), "{stdout}");
    assert!(
        stdout.contains("\"certificate\""),
        "curl's answer: {stdout}"
    );
    assert!(
        stdout.contains("Serial Number"),
        "the CRL lists the key: {stdout}"
    );
    assert!(stdout.contains("key.revoke"), "the audit log: {stdout}");
    let left: Vec<String> = untracked().difference(&before).cloned().collect();
    assert!(
        left.is_empty(),
        "the walkthrough leaves files a `git add .` would commit: {left:?}"
    );
    for file in [
        "alice/key.pem",
        "alice/cert.pem",
        "alice/chain.pem",
        "bot/key.pem",
    ] {
        assert!(ca.path(file).exists(), "{file}");
    }
}
