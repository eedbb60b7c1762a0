//! Stamps the binary with the release version (`VERSION` at the workspace root) and the git
//! revision it was built from, for `disinto --version`. A build without git (inside a
//! Docker build context) passes the revision in `DISINTO_REVISION`.

use std::process::Command;

fn main() {
    // Read at run time, not baked in with env!(): checkouts that share a target directory share
    // this compiled script (cargo hashes a path package by its place in the workspace), and a
    // baked-in path would read another checkout's VERSION, or none once it is gone.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = std::path::Path::new(&manifest).join("..");
    // A release names its version (and revision) outright: cargo decides whether to run this
    // script again by the VERSION file's mtime, which another checkout sharing the target
    // directory can make look older than the last run.
    let version = std::env::var("DISINTO_RELEASE_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.trim_start_matches('v').to_string())
        .unwrap_or_else(|| {
            std::fs::read_to_string(root.join("VERSION"))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|_| {
                    println!("cargo:warning=no VERSION file beside the workspace: --version says the crate's version");
                    env!("CARGO_PKG_VERSION").to_string()
                })
        });
    let revision = std::env::var("DISINTO_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(&root)
                .output()
                .ok()?;
            let sha = String::from_utf8(out.stdout).ok()?;
            out.status.success().then(|| sha.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    // The public half of the key that signs this release (PEM), built in so a binary trusts
    // its own releases. Named by the release as it builds; empty in a contributor's build.
    let key = std::env::var("DISINTO_RELEASE_PUBLIC_KEY").unwrap_or_default();
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(
        std::path::Path::new(&out).join("release_public_key.pem"),
        key,
    )
    .expect("cannot write the release key into OUT_DIR");
    println!("cargo:rerun-if-env-changed=DISINTO_RELEASE_PUBLIC_KEY");
    println!("cargo:rustc-env=DISINTO_VERSION=v{version}");
    println!("cargo:rustc-env=DISINTO_GIT_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=DISINTO_REVISION");
    println!("cargo:rerun-if-env-changed=DISINTO_RELEASE_VERSION");
    println!("cargo:rerun-if-changed=../VERSION");
    // HEAD moves on commit and checkout; the ref it points at moves on commit. Asked of git,
    // because in a worktree `.git` is a file and these live elsewhere.
    for name in ["HEAD", "refs/heads", "packed-refs"] {
        let path = Command::new("git")
            .args(["rev-parse", "--path-format=absolute", "--git-path", name])
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok());
        if let Some(path) = path.map(|p| p.trim().to_string()) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
