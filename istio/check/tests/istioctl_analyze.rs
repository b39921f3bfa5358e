#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Istio's own analyzers over every manifest: `istioctl analyze
//! --use-kube=false` (Istio 1.30's istioctl, built by `make istioctl` from the
//! pins in `istio/oracle/go.mod`) on each set of files a cluster would hold at
//! once, and every finding must be fixed or explained.
//!
//! The sets: `workloads/` and `app/` (the default app); that with each plugin
//! of `plugins/`; that with each scenario of `scenarios/`, alone and with all
//! the plugins; and that with any other manifest under `istio/` (outside
//! `check/`), such as test fixtures. Files are given in that order, so a
//! scenario's VirtualService replaces the app's of the same name, as
//! `kubectl apply` does (istioctl's file source keeps the last one:
//! pilot/pkg/config/file/store.go, `ApplyContent`).
//!
//! An explained finding carries a comment in the file the finding points at:
//!
//! ```yaml
//! # istioctl analyze: IST0101 VirtualService airport/name: why it is expected
//! ```
//!
//! (code, then the finding's origin as istioctl prints it, then the reason). A
//! finding without one fails, and so does an explanation that no longer
//! matches any finding. A file istioctl cannot parse fails too (istioctl itself
//! only warns and skips it).
//!
//! What offline analysis cannot see: istioctl leaves Services, Namespaces,
//! Pods, Nodes and Secrets out of file input (they come from a cluster:
//! pkg/config/analysis/legacy/util/kuberesource/resources.go,
//! `DefaultExcludedSchemas`), and skips every analyzer that needs one of
//! them (`istioctl analyze -v` lists them): among them
//! `virtualservice.DestinationHostAnalyzer` (hosts that are no Service),
//! `destinationrule.SubsetSelectPodAnalyzer` (subsets no pod matches),
//! `gateway.IngressGatewayPortAnalyzer`, `gateway.ConflictingGatewayAnalyzer`
//! and `service.PortNameAnalyzer`. What runs: the schema validation of every
//! Istio kind (istiod's webhook rules), `virtualservice.GatewayAnalyzer`
//! (gateways that exist, hosts they serve), `virtualservice.DestinationRuleAnalyzer`
//! (host + subset defined by a DestinationRule),
//! `virtualservice.ConflictingMeshGatewayHostsAnalyzer`,
//! `deprecation.DeprecationAnalyzer`, `destinationrule.CaCertificateAnalyzer`,
//! `gateway.CertificateAnalyzer`, `serviceentry.Analyzer` and the telemetry
//! ones.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use istio_manifests::manifests_dir;
use serde_json::Value;

/// One message of `istioctl analyze -o json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    code: String,
    level: String,
    /// `Kind namespace/name`, e.g. `VirtualService airport/airport`.
    origin: String,
    /// The file the finding points at, when istioctl gives one.
    file: Option<PathBuf>,
    message: String,
}

/// One `# istioctl analyze: CODE Kind namespace/name: reason` comment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Explanation {
    file: PathBuf,
    code: String,
    origin: String,
}

const EXPLANATION_PREFIX: &str = "# istioctl analyze:";

fn istioctl() -> PathBuf {
    if let Some(path) = std::env::var_os("ISTIOCTL") {
        return PathBuf::from(path);
    }
    let repo = manifests_dir()
        .parent()
        .expect("istio/ has a parent")
        .to_path_buf();
    let path = repo.join(".tools/bin/istioctl");
    assert!(
        path.is_file(),
        "{} is missing: istioctl is not built; run `make istioctl`",
        path.display()
    );
    path
}

/// Runs istioctl over `files` (in order) and returns its findings, or why
/// the run is not an analysis (a file it could not parse, a crash).
fn analyze(files: &[PathBuf]) -> Result<Vec<Finding>, String> {
    let output = Command::new(istioctl())
        .args([
            "analyze",
            "--use-kube=false",
            "--all-namespaces",
            "--output=json",
            "--output-threshold=Info",
            "--color=false",
        ])
        .args(files)
        .output()
        .map_err(|error| format!("cannot run istioctl: {error}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A clean run says "No validation issues found" on stderr; anything about
    // errors or warnings there is a file istioctl skipped.
    if !output.status.success()
        || ["error", "Error", "warn", "could not be parsed"]
            .iter()
            .any(|word| stderr.contains(word))
    {
        return Err(format!(
            "istioctl analyze {files:?} did not analyze cleanly ({}): {stderr}",
            output.status
        ));
    }
    let messages: Vec<Value> = serde_json::from_slice(&output.stdout)
        .map_err(|error| format!("istioctl's JSON output does not parse: {error}"))?;
    let text = |message: &Value, key: &str| {
        message
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(messages
        .iter()
        .map(|message| {
            let reference = text(message, "reference");
            // `path:line`; the path is as given on the command line.
            let file = reference
                .rsplit_once(':')
                .map_or(reference.as_str(), |(path, _line)| path);
            Finding {
                code: text(message, "code"),
                level: text(message, "level"),
                origin: text(message, "origin"),
                file: (!file.is_empty()).then(|| PathBuf::from(file)),
                message: text(message, "message"),
            }
        })
        .collect())
}

/// The explanations written in `files`; a malformed one fails the test.
fn explanations(files: &[PathBuf]) -> Vec<Explanation> {
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        for (number, line) in text.lines().enumerate() {
            let Some(rest) = line.trim_start().strip_prefix(EXPLANATION_PREFIX) else {
                continue;
            };
            // CODE Kind namespace/name: reason
            let parsed = rest.trim().split_once(' ').and_then(|(code, rest)| {
                let (origin, reason) = rest.split_once(": ")?;
                (code.starts_with("IST") && origin.contains(' ') && !reason.trim().is_empty())
                    .then(|| (code.to_owned(), origin.trim().to_owned()))
            });
            let Some((code, origin)) = parsed else {
                panic!(
                    "{}:{}: an explanation is `{EXPLANATION_PREFIX} ISTnnnn Kind namespace/name: reason`, got {line:?}",
                    file.display(),
                    number + 1
                );
            };
            found.push(Explanation {
                file: file.clone(),
                code,
                origin,
            });
        }
    }
    found
}

/// The findings no explanation covers, and the explanations that cover none.
fn unexplained(
    findings: &[Finding],
    explanations: &[Explanation],
) -> (Vec<Finding>, Vec<Explanation>) {
    let covers = |explanation: &Explanation, finding: &Finding| {
        explanation.code == finding.code
            && explanation.origin == finding.origin
            && finding
                .file
                .as_ref()
                .is_none_or(|file| *file == explanation.file)
    };
    let open = findings
        .iter()
        .filter(|finding| !explanations.iter().any(|e| covers(e, finding)))
        .cloned()
        .collect();
    let stale = explanations
        .iter()
        .filter(|explanation| !findings.iter().any(|f| covers(explanation, f)))
        .cloned()
        .collect();
    (open, stale)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if matches!(
                path.extension().and_then(|extension| extension.to_str()),
                Some("yaml" | "yml")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The sets of files to analyze together (see the crate doc above), each
/// with a name for messages.
fn analysis_sets() -> Vec<(String, Vec<PathBuf>)> {
    let root = manifests_dir();
    let folder = |name: &str| yaml_files(&root.join(name));
    let base: Vec<PathBuf> = [folder("workloads"), folder("app")].concat();
    let plugins = folder("plugins");
    let scenarios = folder("scenarios");
    let with = |extra: &[PathBuf]| [base.as_slice(), extra].concat();
    let name = |path: &Path| path.strip_prefix(&root).unwrap().display().to_string();

    let mut sets = vec![("workloads + app".to_owned(), base.clone())];
    for plugin in &plugins {
        sets.push((
            format!("+ {}", name(plugin)),
            with(std::slice::from_ref(plugin)),
        ));
    }
    for scenario in &scenarios {
        sets.push((
            format!("+ {}", name(scenario)),
            with(std::slice::from_ref(scenario)),
        ));
        let all = [plugins.as_slice(), std::slice::from_ref(scenario)].concat();
        sets.push((format!("+ plugins/ + {}", name(scenario)), with(&all)));
    }
    let placed: BTreeSet<&PathBuf> = base.iter().chain(&plugins).chain(&scenarios).collect();
    for other in yaml_files(&root) {
        if !other.starts_with(root.join("check")) && !placed.contains(&other) {
            sets.push((
                format!("+ {}", name(&other)),
                with(std::slice::from_ref(&other)),
            ));
        }
    }
    sets
}

#[test]
fn every_manifest_passes_istioctl_analyze_or_is_explained() {
    let sets = analysis_sets();
    let mut analyzed = BTreeSet::new();
    let mut all_explanations = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut failures = Vec::new();
    for (name, files) in &sets {
        let findings = analyze(files).unwrap_or_else(|error| panic!("{name}: {error}"));
        let explanations = explanations(files);
        let (open, _) = unexplained(&findings, &explanations);
        for finding in open {
            failures.push(format!(
                "{name}: {} [{}] {} ({}): {}; fix it, or explain it with `{EXPLANATION_PREFIX} {} {}: <why>` in that file",
                finding.level,
                finding.code,
                finding.origin,
                finding
                    .file
                    .as_ref()
                    .map_or_else(|| "no file".to_owned(), |file| file.display().to_string()),
                finding.message,
                finding.code,
                finding.origin
            ));
        }
        used.extend(
            explanations
                .iter()
                .filter(|explanation| {
                    unexplained(&findings, std::slice::from_ref(explanation))
                        .1
                        .is_empty()
                })
                .cloned(),
        );
        all_explanations.extend(explanations);
        analyzed.extend(files.iter().cloned());
    }
    for stale in all_explanations.difference(&used) {
        failures.push(format!(
            "{}: the explanation of {} {} matches no finding any more; remove it",
            stale.file.display(),
            stale.code,
            stale.origin
        ));
    }
    assert!(
        failures.is_empty(),
        "istioctl analyze:\n{}",
        failures.join("\n")
    );

    // The walk must have reached the manifests, not an empty or wrong folder.
    let root = manifests_dir();
    for sample in [
        "workloads/cpanel.yaml",
        "app/virtual-services.yaml",
        "scenarios/fault-injection-500.yaml",
        "plugins/canary-router.yaml",
    ] {
        assert!(
            analyzed.contains(&root.join(sample)),
            "{sample} was not analyzed"
        );
    }
}

// The checks above, proven able to fail: a manifest with a real finding (a
// VirtualService bound to a Gateway that does not exist, IST0101) through the
// same istioctl.

const DANGLING_GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: dangling
  namespace: airport
spec:
  hosts:
  - \"*\"
  gateways:
  - no-such-gateway
  http:
  - route:
    - destination:
        host: cpanel
        subset: v1
";

fn scratch_file(test: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("istioctl-analyze-{test}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("manifest.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn app_and(file: PathBuf) -> Vec<PathBuf> {
    let root = manifests_dir();
    [yaml_files(&root.join("app")), vec![file]].concat()
}

#[test]
fn an_unexplained_finding_is_reported() {
    let file = scratch_file("unexplained", DANGLING_GATEWAY);
    let files = app_and(file.clone());
    let findings = analyze(&files).unwrap();
    let (open, stale) = unexplained(&findings, &explanations(&files));
    assert!(stale.is_empty(), "{stale:?}");
    assert!(
        open.iter().any(|finding| finding.code == "IST0101"
            && finding.origin == "VirtualService airport/dangling"
            && finding.file.as_ref() == Some(&file)
            && finding.message.contains("no-such-gateway")),
        "{open:#?}"
    );
}

#[test]
fn an_explained_finding_passes_and_a_stale_explanation_is_reported() {
    let explained = format!(
        "# istioctl analyze: IST0101 VirtualService airport/dangling: the test's own dangling gateway
# istioctl analyze: IST0132 VirtualService airport/dangling: the host is not on that missing gateway either
# istioctl analyze: IST0101 VirtualService airport/elsewhere: nothing of that name exists
{DANGLING_GATEWAY}"
    );
    let file = scratch_file("explained", &explained);
    let files = app_and(file.clone());
    let findings = analyze(&files).unwrap();
    let (open, stale) = unexplained(&findings, &explanations(&files));
    assert!(open.is_empty(), "{open:#?}");
    assert_eq!(
        stale,
        vec![Explanation {
            file,
            code: "IST0101".to_owned(),
            origin: "VirtualService airport/elsewhere".to_owned(),
        }]
    );
}

#[test]
fn a_file_istioctl_cannot_parse_fails() {
    let file = scratch_file(
        "unparsable",
        "apiVersion: networking.istio.io/v1\nkind: [\n",
    );
    let error = analyze(&app_and(file)).unwrap_err();
    assert!(error.contains("could not be parsed"), "{error}");
}
