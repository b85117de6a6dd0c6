//! The example's templates pass cfn-lint without an error or a warning: the service stack and
//! the stage stacks `dev`, `prod` and `pr-7`, and, from a variant with per-stage logs and a
//! remote stage, the service stack and the stages `dev` and `eu`.

use std::path::{Path, PathBuf};
use std::process::Command;

use functions::domain::manifest::Manifest;
use functions::domain::template::{render, service_template, stage_template};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example_text() -> String {
    let path = workspace().join("examples/shop/aliasflow.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes each template to `dir/<name>.json` and returns the paths.
fn write_templates(dir: &Path, manifest: &Manifest, prefix: &str, stages: &[&str]) -> Vec<PathBuf> {
    let mut templates = vec![(format!("{prefix}service"), service_template(manifest, &Default::default()))];
    templates.extend(stages.iter().map(|stage| (format!("{prefix}stage-{stage}"), stage_template(manifest, stage))));
    templates
        .into_iter()
        .map(|(name, template)| {
            let path = dir.join(format!("{name}.json"));
            std::fs::write(&path, render(&template)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        })
        .collect()
}

#[test]
fn the_example_templates_pass_cfn_lint_without_errors_or_warnings() {
    let cfn_lint = workspace().join(".venv/bin/cfn-lint");
    assert!(cfn_lint.exists(), "{} is missing: run scripts/setup-local-aws.sh to install it", cfn_lint.display());
    let dir = std::env::temp_dir().join(format!("aliasflow-templates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let example = Manifest::parse(&example_text(), "examples/shop/aliasflow.yaml").unwrap();
    let mut files = write_templates(&dir, &example, "", &["dev", "prod", "pr-7"]);

    let variant_text = example_text()
        .replace("logs: service", "logs: stage")
        .replace("  prod:\n", "  eu:\n    region: eu-west-1\n  prod:\n");
    let variant = Manifest::parse(&variant_text, "variant.yaml").unwrap();
    assert!(variant.stage_settings("eu").remote, "the variant has a remote stage");
    files.extend(write_templates(&dir, &variant, "variant-", &["dev", "eu"]));

    let output = Command::new(&cfn_lint)
        .args(["--regions", "us-east-1", "eu-west-1", "--"])
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cfn_lint.display()));
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "cfn-lint found problems ({}):\n{report}", output.status);
    assert!(report.trim().is_empty(), "cfn-lint said:\n{report}");
}
