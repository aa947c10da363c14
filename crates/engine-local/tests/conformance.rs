//! The engine conformance suite against the local engine: native processes
//! from a checkout in a temporary directory, a fresh engine on its own run
//! directory per test (as in `local.rs`), a fast crash back-off.

use std::sync::Arc;
use std::time::Duration;

use drycc_engine::{Artifact, Command, Engine, ProcessTemplate};
use drycc_engine_conformance::{plain_template, Harness, FAST_BACKOFF};
use drycc_engine_local::{LocalConfig, LocalEngine};
use tempfile::TempDir;

struct Local {
    // Dropped first: an engine dropped by a failed test kills what it runs
    // before its directory goes.
    engine: Arc<LocalEngine>,
    dir: TempDir,
}

fn local() -> Local {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let unique = dir
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::create_dir_all(dir.path().join("www")).expect("the web root");
    let config = LocalConfig {
        run_dir: dir.path().join("run"),
        crash_backoff: FAST_BACKOFF,
        readiness_poll: Duration::from_millis(50),
        cgroup_parent: format!("drycc-conformance-{unique}"),
        ..LocalConfig::default()
    };
    let engine = LocalEngine::new(config).expect("a local engine");
    Local { engine, dir }
}

impl Harness for Local {
    fn engine(&self) -> Arc<dyn Engine> {
        self.engine.clone()
    }

    fn template(&self, app: &str, ptype: &str, release: u32, script: &str) -> ProcessTemplate {
        plain_template(
            app,
            ptype,
            release,
            Artifact::Checkout {
                path: self.dir.path().to_path_buf(),
            },
            Command::Line(script.to_string()),
        )
    }

    fn web_script(&self) -> String {
        format!(
            "exec busybox httpd -f -p 127.0.0.1:$PORT -h {}",
            self.dir.path().join("www").display()
        )
    }
}

drycc_engine_conformance::conformance_tests!(|| Some(local()));
