//! The served OpenAPI document is the contract, checked by someone else's reading of it:
//! schemathesis generates valid and invalid requests from `/openapi.json` and runs every
//! check it has (status codes, content types, headers, response schemas, that what the
//! schema forbids is refused and what it allows is accepted, ...) against a real gateway
//! with a real broker. Any failure fails the test.
//!
//! schemathesis comes from PyPI, pinned, into `.local/venv` (`scripts/test.sh` installs it
//! and sets `SCHEMATHESIS_BIN`). Without it the test fails and says how to install it: a
//! contract check that silently does not run proves nothing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use integration_tests::harness::gateway::InProcessGateway;
use integration_tests::test_env;
use tokio::process::Command;

/// Test cases per operation and phase: enough to reach the edges of every field, few enough
/// that the run takes about a minute and publishes a bounded number of records.
const MAX_EXAMPLES: &str = "200";
/// Upper bound on the whole schemathesis run.
const RUN_LIMIT: Duration = Duration::from_secs(240);

const HOW_TO_INSTALL: &str = "schemathesis is not installed. Install the pinned version with\n\n    \
    python3 -m venv .local/venv && .local/venv/bin/pip install -r scripts/schemathesis-requirements.txt\n\n\
    (scripts/test.sh does this), or set SCHEMATHESIS_BIN to an `st` executable.";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_owned()
}

/// `SCHEMATHESIS_BIN`, else the project's virtualenv.
fn schemathesis() -> PathBuf {
    let bin = std::env::var_os("SCHEMATHESIS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".local/venv/bin/st"));
    assert!(bin.is_file(), "{} not found. {HOW_TO_INSTALL}", bin.display());
    bin
}

#[tokio::test]
async fn the_gateway_honours_its_openapi_document_under_schemathesis() {
    let st = schemathesis();
    let env = test_env().await;
    let gateway = InProcessGateway::start(env, |_| {}).await;
    // Hypothesis keeps its example database and schemathesis its reports in the working
    // directory: a scratch one, not the source tree.
    let scratch = workspace_root().join("target/schemathesis");
    std::fs::create_dir_all(&scratch).expect("create target/schemathesis");

    let run = Command::new(&st)
        .args([
            "run",
            &gateway.url("/openapi.json"),
            "--checks",
            "all",
            // `DELETE /registrations/{id}` withdraws the sign-up, not its status: `GET` on the
            // same URL must go on answering (`withdrawn`), which this check counts as a failure.
            "--exclude-checks",
            "use_after_free",
            "--max-examples",
            MAX_EXAMPLES,
            // One worker: with two, hypothesis 6.170's lambda descriptions call `ast.parse` from
            // both threads at once, which CPython 3.11 answers with "AST constructor recursion
            // depth mismatch" (a runtime error of the tool, seen in 3 of 3 runs here).
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .current_dir(&scratch)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {RUN_LIMIT:?}"))
        .unwrap_or_else(|error| panic!("cannot run {}: {error}. {HOW_TO_INSTALL}", st.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown with --nocapture: what was tested, not only whether it failed.
    println!("{stdout}");
    assert!(output.status.success(), "schemathesis found contract violations ({}):\n{stdout}\n{stderr}", output.status);
    // A run that tested nothing also exits 0: make sure every operation was exercised.
    assert!(!stdout.contains("No operations"), "schemathesis tested nothing:\n{stdout}");
    assert!(gateway.records_on_topic(env) > 0, "no registration was accepted:\n{stdout}");
    gateway.stop(Duration::from_secs(30)).await;
}
