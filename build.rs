//! Stamps the binary with its version tag, commit and build time for `--version`.
//! Every value has a fallback, so a build from a tarball without git still works.
//! Where git cannot answer (a Docker build context has no `.git`) or would answer for the
//! wrong repository (a vendored copy), `LOGWISP_VERSION_TAG`, `LOGWISP_COMMIT` and
//! `SOURCE_DATE_EPOCH` in the build environment give the values; when set they win.

use std::path::Path;
use std::process::Command;

#[path = "src/timefmt.rs"]
#[allow(dead_code)]
mod timefmt;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// A value given in the build environment: trimmed, non-empty, printable.
fn given(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    let v = std::env::var(name).ok()?.trim().to_string();
    (!v.is_empty() && !v.chars().any(char::is_control)).then_some(v)
}

fn watch_git_state() {
    let Some(git_dir) = git(&["rev-parse", "--git-dir"]) else {
        return;
    };
    let git_dir = Path::new(&git_dir);
    // A path that does not exist would make cargo rebuild every time, so only existing ones.
    for rel in ["HEAD", "refs/tags", "packed-refs"] {
        let p = git_dir.join(rel);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let p = git_dir.join(head_ref);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    watch_git_state();

    let fallback = format!("v{}", env!("CARGO_PKG_VERSION"));
    let tag = given("LOGWISP_VERSION_TAG")
        .or_else(|| git(&["describe", "--tags", "--abbrev=0"]))
        .unwrap_or(fallback);
    let commit = given("LOGWISP_COMMIT")
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let built = timefmt::rfc3339_seconds(epoch);
    println!("cargo:rustc-env=LOGWISP_VERSION_TAG={tag}");
    println!("cargo:rustc-env=LOGWISP_COMMIT={commit}");
    println!(
        "cargo:rustc-env=LOGWISP_BUILD_TIME={}",
        String::from_utf8_lossy(&built)
    );
}
