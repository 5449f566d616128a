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
            eprintln!(
                "  tidy  check that every crate in crates/ points the way ARCHITECTURE.md says and its modules open with //!"
            );
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

/// The `mirror-*` crates each crate under `crates/` may name under `[dependencies]` (see
/// ARCHITECTURE.md). Dependencies point inward; a crate missing here fails the check.
const ALLOWED: &[(&str, &[&str])] = &[
    ("mirror-core", &[]),
    ("mirror-providers", &["mirror-core"]),
    ("mirror-logging", &["mirror-core"]),
    ("mirror-router", &["mirror-core", "mirror-providers"]),
    ("mirror-report", &["mirror-core", "mirror-logging"]),
    (
        "mirror",
        &[
            "mirror-core",
            "mirror-providers",
            "mirror-router",
            "mirror-logging",
            // Optional: only with the `ui` feature (the live page).
            "mirror-report",
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
    ("mirror-test-support", &["mirror-core"]),
];

/// The binary crate: no crate under `crates/` depends on it, not even for tests.
const CLI: &str = "mirror-cli";
/// The test-support crate: only ever a dev-dependency.
const TEST_SUPPORT: &str = "mirror-test-support";

fn tidy(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    let crates_dir = root.join("crates");
    let entries = std::fs::read_dir(&crates_dir)
        .map_err(|err| format!("cannot list {}: {err}", crates_dir.display()))?;
    let mut crate_dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    crate_dirs.sort();
    for dir in &crate_dirs {
        let manifest = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|err| format!("cannot read {}: {err}", manifest.display()))?;
        let krate = package_name(&text).unwrap_or_else(|| dir_name(dir));
        match ALLOWED.iter().find(|(name, _)| *name == krate) {
            None => problems.push(format!(
                "{krate} ({}) is not in xtask's ALLOWED list: add the crates it may depend on there \
                 and to ARCHITECTURE.md.",
                manifest.display()
            )),
            Some((_, allowed)) => {
                for (section, dependency) in dependencies(&text) {
                    if !dependency.starts_with("mirror") || dependency == krate {
                        continue;
                    }
                    if dependency == CLI {
                        problems.push(format!(
                            "{krate} names {CLI} under [{section}]; nothing depends on the binary crate."
                        ));
                    } else if section == "dependencies" && !allowed.contains(&dependency.as_str()) {
                        problems.push(format!(
                            "{krate} depends on {dependency}; allowed: [{}]. Dependencies point inward (ARCHITECTURE.md).",
                            allowed.join(", ")
                        ));
                    }
                }
            }
        }
        problems.extend(module_docs(dir, &krate)?);
    }
    // Test support is for tests only, wherever a manifest is.
    for manifest in crate_dirs
        .iter()
        .map(|dir| dir.join("Cargo.toml"))
        .chain([root.join("tests/Cargo.toml"), root.join("xtask/Cargo.toml")])
    {
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        for (section, dependency) in dependencies(&text) {
            if dependency == TEST_SUPPORT && section != "dev-dependencies" {
                problems.push(format!(
                    "{} names {TEST_SUPPORT} under [{section}]; it may only be a dev-dependency.",
                    manifest.display()
                ));
            }
        }
    }
    if problems.is_empty() {
        println!(
            "xtask: tidy: {} crates: dependency directions are as ARCHITECTURE.md says; every module opens with `//!`",
            crate_dirs.len()
        );
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `name` under `[package]`.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if in_package {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "name" {
                    return Some(value.trim().trim_matches('"').to_owned());
                }
            }
        }
    }
    None
}

/// Every dependency with its section: `dependencies`, `dev-dependencies` or `build-dependencies`
/// (target-specific tables count as their section).
fn dependencies(manifest: &str) -> Vec<(&'static str, String)> {
    let mut section: Option<&'static str> = None;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']');
            // `[dependencies]`, `[target.'cfg(unix)'.dev-dependencies]`, `[dependencies.name]`.
            let (table, name) = match header.rsplit_once("dependencies") {
                Some((before, after)) => (
                    format!("{before}dependencies"),
                    after.strip_prefix('.').map(str::to_owned),
                ),
                None => (header.to_owned(), None),
            };
            section = if table.ends_with("build-dependencies") {
                Some("build-dependencies")
            } else if table.ends_with("dev-dependencies") {
                Some("dev-dependencies")
            } else if table == "dependencies" || table.ends_with(".dependencies") {
                Some("dependencies")
            } else {
                None
            };
            if let (Some(found), Some(name)) = (section, name) {
                names.push((found, name));
                // The table's own keys are the dependency's fields, not dependencies.
                section = None;
            }
            continue;
        }
        if let Some(section) = section {
            if let Some((name, _)) = line.split_once('=') {
                let name = name.trim();
                if !name.is_empty() && !name.starts_with('#') {
                    names.push((section, name.to_owned()));
                }
            }
        }
    }
    names
}

/// Every `.rs` file under `crates/<crate>/src` must open with a `//!` line saying what it is.
fn module_docs(dir: &Path, krate: &str) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    let mut pending = vec![dir.join("src")];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
                if !text.starts_with("//!") {
                    problems.push(format!(
                        "{krate}: {} does not open with a `//!` line saying what the module is.",
                        path.display()
                    ));
                }
            }
        }
    }
    problems.sort();
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dependencies_by_section() {
        let manifest = "[package]\nname = \"x\"\n[dependencies]\nmirror-core = { workspace = true }\nserde = \"1\"\n[dev-dependencies]\nmirror-router = \"1\"\n[target.'cfg(unix)'.build-dependencies]\ncc = \"1\"\n[dependencies.mirror-logging]\nversion = \"1\"\n[lints]\nworkspace = true\n";
        assert_eq!(package_name(manifest).as_deref(), Some("x"));
        assert_eq!(
            dependencies(manifest),
            vec![
                ("dependencies", "mirror-core".to_owned()),
                ("dependencies", "serde".to_owned()),
                ("dev-dependencies", "mirror-router".to_owned()),
                ("build-dependencies", "cc".to_owned()),
                ("dependencies", "mirror-logging".to_owned()),
            ]
        );
    }

    #[test]
    fn a_crate_outside_the_list_or_pointing_outward_is_refused() {
        let root = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "crates/mirror-core/Cargo.toml",
            "[package]\nname = \"mirror-core\"\n[dependencies]\nmirror-router = \"1\"\n[dev-dependencies]\nmirror-cli = \"1\"\n",
        );
        write("crates/mirror-core/src/lib.rs", "//! Core.\n");
        write("crates/mirror-core/src/chat.rs", "use x;\n");
        write(
            "crates/mirror-new/Cargo.toml",
            "[package]\nname = \"mirror-new\"\n[dependencies]\nmirror-test-support = \"1\"\n",
        );
        let err = tidy(&root).unwrap_err();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(
            err.contains("mirror-core depends on mirror-router"),
            "{err}"
        );
        assert!(err.contains("mirror-core names mirror-cli"), "{err}");
        assert!(
            err.contains("chat.rs does not open with a `//!` line"),
            "{err}"
        );
        assert!(err.contains("mirror-new"), "{err}");
        assert!(err.contains("may only be a dev-dependency"), "{err}");
        assert_eq!(err.lines().count(), 5, "{err}");
    }

    #[test]
    fn the_workspace_is_tidy() {
        tidy(&workspace_root()).unwrap();
    }
}
