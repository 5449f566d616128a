//! Project automation. `cargo xtask ci` runs exactly what CI runs.

mod bench;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("tidy") => tidy(&workspace_root()),
        Some("bench") => bench::bench(&workspace_root(), &args[1..]),
        Some("python") => python_tests(
            &workspace_root(),
            &std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()),
            &BTreeMap::new(),
        ),
        _ => {
            eprintln!("usage: cargo xtask <ci|tidy|python|bench>");
            eprintln!(
                "  ci    set up test servers, then fmt, clippy, tests, docs and tidy, as CI does"
            );
            eprintln!("  tidy  check that crate dependencies point the way ARCHITECTURE.md says");
            eprintln!(
                "  python  build the gateway and run tests/python with $MIRROR_TEST_PYTHON (the ci step)"
            );
            eprintln!(
                "  bench [--quick] [--duration SECS] [--peer NAME=URL]  release benchmarks; writes docs/benchmarks.md"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn ci() -> Result<(), String> {
    let root = workspace_root();
    let mut envs = BTreeMap::new();
    let setup = root.join(".ci/setup.sh");
    if setup.exists() {
        // The setup script installs and starts test servers and prints `KEY=VALUE` lines for the
        // tests to find them.
        let output = Command::new("bash")
            .arg(&setup)
            .current_dir(&root)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|err| format!("cannot run {}: {err}", setup.display()))?;
        if !output.status.success() {
            return Err(format!("{} failed ({})", setup.display(), output.status));
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let line = line.strip_prefix("export ").unwrap_or(line);
            if let Some((key, value)) = line.split_once('=') {
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                {
                    println!("xtask: {key}={value}");
                    envs.insert(key.to_owned(), value.to_owned());
                }
            }
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let steps: &[(&str, &[&str])] = &[
        ("format", &["fmt", "--all", "--check"]),
        (
            "lint",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("test", &["test", "--workspace"]),
        ("docs", &["doc", "--workspace", "--no-deps"]),
    ];
    for (name, args) in steps {
        println!("xtask: == {name}: cargo {}", args.join(" "));
        let status = Command::new(&cargo)
            .args(*args)
            .current_dir(&root)
            .envs(&envs)
            .env("RUSTDOCFLAGS", "-D warnings")
            .status()
            .map_err(|err| format!("cannot run cargo: {err}"))?;
        if !status.success() {
            return Err(format!("step `{name}` failed ({status})"));
        }
        if *name == "test" {
            python_tests(&root, &cargo, &envs)?;
        }
    }
    println!("xtask: == tidy");
    tidy(&root)
}

/// The end-to-end tests in `tests/python`: the official `openai` SDK against a real `mirror serve`.
/// `.ci/setup.sh` makes the venv and prints `MIRROR_TEST_PYTHON`; `MIRROR_SKIP_PYTHON_TESTS=1` skips.
fn python_tests(root: &Path, cargo: &str, envs: &BTreeMap<String, String>) -> Result<(), String> {
    let from_env = |key: &str| {
        envs.get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok())
            .filter(|value| !value.is_empty())
    };
    if from_env("MIRROR_SKIP_PYTHON_TESTS").as_deref() == Some("1") {
        println!("xtask: == python: skipped (MIRROR_SKIP_PYTHON_TESTS=1)");
        return Ok(());
    }
    let python = from_env("MIRROR_TEST_PYTHON").ok_or_else(|| {
        "step `python` cannot run: MIRROR_TEST_PYTHON is not set. `.ci/setup.sh` creates `.venv` and \
         prints it; or point it at a Python with `pip install -r tests/python/requirements.txt` done; \
         or set MIRROR_SKIP_PYTHON_TESTS=1 to skip these tests"
            .to_owned()
    })?;
    println!("xtask: == python: cargo build -p mirror-cli --bin mirror");
    let status = Command::new(cargo)
        .args(["build", "-p", "mirror-cli", "--bin", "mirror"])
        .current_dir(root)
        .envs(envs)
        .status()
        .map_err(|err| format!("cannot run cargo: {err}"))?;
    if !status.success() {
        return Err(format!(
            "step `python` failed to build the gateway ({status})"
        ));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    let binary = target
        .join("debug")
        .join(format!("mirror{}", std::env::consts::EXE_SUFFIX));
    println!(
        "xtask: == python: {python} -m pytest tests/python -q (MIRROR_BIN={})",
        binary.display()
    );
    let status = Command::new(&python)
        .args(["-m", "pytest", "tests/python", "-q"])
        .current_dir(root)
        .envs(envs)
        .env("MIRROR_BIN", &binary)
        .status()
        .map_err(|err| format!("cannot run {python}: {err}"))?;
    match status.code() {
        Some(0) => Ok(()),
        // pytest's "no tests were collected" is a failure here: the tests must run.
        Some(5) => {
            Err("step `python` failed: pytest collected no tests in tests/python".to_owned())
        }
        _ => Err(format!("step `python` failed ({status})")),
    }
}

/// The `mirror-*` crates each crate may depend on (see ARCHITECTURE.md).
const ALLOWED: &[(&str, &[&str])] = &[
    ("mirror-core", &[]),
    ("mirror-providers", &["mirror-core"]),
    ("mirror-logging", &["mirror-core"]),
    ("mirror-router", &["mirror-core", "mirror-providers"]),
    ("mirror-report", &["mirror-core", "mirror-logging"]),
    ("mirror-test-support", &["mirror-core"]),
    (
        "mirror",
        &[
            "mirror-core",
            "mirror-providers",
            "mirror-router",
            "mirror-logging",
        ],
    ),
    (
        "mirror-cli",
        &[
            "mirror-core",
            "mirror-providers",
            "mirror-router",
            "mirror-logging",
            "mirror-report",
            "mirror",
        ],
    ),
];

fn tidy(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    for (krate, allowed) in ALLOWED {
        let manifest = root.join("crates").join(krate).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|err| format!("cannot read {}: {err}", manifest.display()))?;
        for dependency in normal_dependencies(&text) {
            if dependency.starts_with("mirror") && !allowed.contains(&dependency.as_str()) {
                problems.push(format!(
                    "{krate} depends on {dependency}; allowed: [{}]. Dependencies point inward (ARCHITECTURE.md).",
                    allowed.join(", ")
                ));
            }
        }
    }
    if problems.is_empty() {
        println!("xtask: tidy: dependency directions are as ARCHITECTURE.md says");
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Names under `[dependencies]` (not dev- or build-dependencies).
fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_section = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[dependencies]";
            continue;
        }
        if in_section {
            if let Some((name, _)) = line.split_once('=') {
                let name = name.trim();
                if !name.is_empty() && !name.starts_with('#') {
                    names.push(name.to_owned());
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_normal_dependencies() {
        let manifest = "[package]\nname = \"x\"\n[dependencies]\nmirror-core = { workspace = true }\nserde = \"1\"\n[dev-dependencies]\nmirror-router = \"1\"\n";
        assert_eq!(normal_dependencies(manifest), vec!["mirror-core", "serde"]);
    }

    #[test]
    fn the_workspace_is_tidy() {
        tidy(&workspace_root()).unwrap();
    }
}
