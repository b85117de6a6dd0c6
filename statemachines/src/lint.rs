//! Checks for the project's own definitions, beyond what Step Functions validates: every state
//! reachable, every Task resource known, every error name known.

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::{Effects, Kind, Scope, StateMachine};
use crate::error::{names, DefinitionError};

/// One thing [`lint`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The state it is about, if any.
    pub state: Option<String>,
    /// What kind of finding.
    pub kind: FindingKind,
    /// A sentence saying what is wrong.
    pub message: String,
}

/// The kinds of [`Finding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FindingKind {
    /// The definition does not parse or validate (one finding per problem).
    Invalid,
    /// No transition leads to the state.
    Unreachable,
    /// A Task's `Resource` is not among the known resources.
    UnknownResource,
    /// An `ErrorEquals` name is neither a known error nor a predefined `States.*` name.
    UnknownError,
}

/// What [`lint`] accepts: a parsed machine, a JSON value or JSON text.
pub trait Lintable {
    /// The parsed machine, or why it does not parse.
    fn to_machine(&self) -> Result<Cow<'_, StateMachine>, DefinitionError>;
}

impl Lintable for StateMachine {
    fn to_machine(&self) -> Result<Cow<'_, StateMachine>, DefinitionError> {
        Ok(Cow::Borrowed(self))
    }
}

impl Lintable for Value {
    fn to_machine(&self) -> Result<Cow<'_, StateMachine>, DefinitionError> {
        StateMachine::from_value(self).map(Cow::Owned)
    }
}

impl Lintable for str {
    fn to_machine(&self) -> Result<Cow<'_, StateMachine>, DefinitionError> {
        StateMachine::from_json(self).map(Cow::Owned)
    }
}

/// Lints a definition: parse and validation problems, unreachable states, Task resources not in
/// `known_resources`, and `ErrorEquals` names that are neither in `known_errors` nor predefined
/// `States.*` names. Findings name the state.
///
/// ```
/// use std::collections::BTreeSet;
/// use serde_json::json;
/// use statemachines::{lint, FindingKind};
/// let definition = json!({"StartAt": "Plan", "States": {
///     "Plan": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:plan",
///              "Retry": [{"ErrorEquals": ["AwsTransient"]}], "End": true},
///     "Orphan": {"Type": "Succeed"}}});
/// let resources = BTreeSet::from(["arn:aws:lambda:us-east-1:1:function:plan".to_owned()]);
/// let errors = BTreeSet::from(["AwsTransient".to_owned()]);
/// let findings = lint(&definition, &resources, &errors);
/// assert_eq!(findings.len(), 1);
/// assert_eq!(findings[0].kind, FindingKind::Unreachable);
/// assert_eq!(findings[0].state.as_deref(), Some("Orphan"));
/// ```
pub fn lint<D: Lintable + ?Sized>(
    definition: &D,
    known_resources: &BTreeSet<String>,
    known_errors: &BTreeSet<String>,
) -> Vec<Finding> {
    let machine = match definition.to_machine() {
        Ok(m) => m,
        Err(e) => {
            return e
                .problems
                .into_iter()
                .map(|p| Finding { state: p.state.clone(), kind: FindingKind::Invalid, message: p.to_string() })
                .collect()
        }
    };
    let mut findings = Vec::new();
    lint_scope(&machine.root, known_resources, known_errors, &mut findings);
    findings
}

fn lint_scope(
    scope: &Scope,
    known_resources: &BTreeSet<String>,
    known_errors: &BTreeSet<String>,
    findings: &mut Vec<Finding>,
) {
    let mut reached = vec![false; scope.states.len()];
    let mut queue = VecDeque::from([scope.start]);
    while let Some(i) = queue.pop_front() {
        match reached.get_mut(i) {
            Some(seen) if !*seen => *seen = true,
            _ => continue,
        }
        if let Some(state) = scope.states.get(i) {
            queue.extend(state.successors());
        }
    }
    for (state, reached) in scope.states.iter().zip(&reached) {
        if !reached {
            findings.push(Finding {
                state: Some(state.name.clone()),
                kind: FindingKind::Unreachable,
                message: format!(
                    "State '{}' is not reachable from '{}'",
                    state.name,
                    scope.states.get(scope.start).map_or("", |s| s.name.as_str())
                ),
            });
        }
        let effects: Option<&Effects> = match &state.kind {
            Kind::Task(task) => {
                if !known_resources.contains(&task.resource) {
                    findings.push(Finding {
                        state: Some(state.name.clone()),
                        kind: FindingKind::UnknownResource,
                        message: format!(
                            "Task '{}' calls '{}', which is not a known resource",
                            state.name, task.resource
                        ),
                    });
                }
                Some(&task.effects)
            }
            Kind::Parallel(parallel) => {
                for branch in &parallel.branches {
                    lint_scope(branch, known_resources, known_errors, findings);
                }
                Some(&parallel.effects)
            }
            Kind::Map(map) => {
                lint_scope(&map.processor, known_resources, known_errors, findings);
                Some(&map.effects)
            }
            _ => None,
        };
        let Some(effects) = effects else { continue };
        let lists = effects
            .retry
            .iter()
            .map(|r| ("Retry", &r.errors))
            .chain(effects.catch.iter().map(|c| ("Catch", &c.errors)));
        for (field, errors) in lists {
            for error in errors {
                let known = known_errors.contains(error) || names::ALL_NAMES.contains(&error.as_str());
                if !known {
                    findings.push(Finding {
                        state: Some(state.name.clone()),
                        kind: FindingKind::UnknownError,
                        message: format!(
                            "{field} of '{}' matches '{error}', which is neither a known error nor a States.* name",
                            state.name
                        ),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PLAN: &str = "arn:aws:lambda:us-east-1:1:function:plan";

    fn known() -> (BTreeSet<String>, BTreeSet<String>) {
        (BTreeSet::from([PLAN.to_owned()]), BTreeSet::from(["StageLocked".to_owned(), "AwsTransient".to_owned()]))
    }

    #[test]
    fn a_clean_definition_has_no_findings() {
        let (resources, errors) = known();
        let definition = json!({"StartAt": "Plan", "States": {
            "Plan": {"Type": "Task", "Resource": PLAN, "Next": "Done",
                     "Retry": [{"ErrorEquals": ["AwsTransient", "States.Timeout"]}],
                     "Catch": [{"ErrorEquals": ["StageLocked"], "Next": "Refused"}, {"ErrorEquals": ["States.ALL"], "Next": "Done"}]},
            "Refused": {"Type": "Fail", "Error": "StageLocked"},
            "Done": {"Type": "Succeed"}}});
        assert_eq!(lint(&definition, &resources, &errors), vec![]);
        let machine = StateMachine::from_value(&definition).unwrap();
        assert_eq!(lint(&machine, &resources, &errors), vec![]);
        assert_eq!(lint(definition.to_string().as_str(), &resources, &errors), vec![]);
    }

    #[test]
    fn unknown_resources_and_error_names_are_found_in_nested_states() {
        let (resources, errors) = known();
        let definition = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "Catch": [{"ErrorEquals": ["State.ALL"], "Next": "M"}],
            "ItemProcessor": {"StartAt": "Publish", "States": {"Publish": {
                "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:publish", "End": true,
                "Retry": [{"ErrorEquals": ["States.Timout", "AwsTransient"]}]}}}}}});
        let findings = lint(&definition, &resources, &errors);
        let summary: Vec<(Option<&str>, FindingKind)> = findings.iter().map(|f| (f.state.as_deref(), f.kind)).collect();
        assert_eq!(
            summary,
            vec![
                (Some("Publish"), FindingKind::UnknownResource),
                (Some("Publish"), FindingKind::UnknownError),
                (Some("M"), FindingKind::UnknownError),
            ]
        );
        assert!(findings[1].message.contains("States.Timout"));
        assert!(findings[2].message.contains("State.ALL"));
    }

    #[test]
    fn unreachable_states_are_found_in_every_scope() {
        let (resources, errors) = known();
        let definition = json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "A", "States": {
                "A": {"Type": "Succeed"}, "Lost": {"Type": "Pass", "Next": "A"}}}]},
            "Orphan": {"Type": "Succeed"}}});
        let findings = lint(&definition, &resources, &errors);
        let unreachable: Vec<&str> =
            findings.iter().filter(|f| f.kind == FindingKind::Unreachable).filter_map(|f| f.state.as_deref()).collect();
        assert_eq!(unreachable, vec!["Lost", "Orphan"]);
    }

    #[test]
    fn a_definition_that_does_not_load_is_reported_with_its_states() {
        let (resources, errors) = known();
        let definition = json!({"StartAt": "A", "States": {
            "A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "Next": "B"}}});
        let findings = lint(&definition, &resources, &errors);
        assert!(findings.iter().all(|f| f.kind == FindingKind::Invalid));
        assert!(findings.iter().any(|f| f.state.as_deref() == Some("A") && f.message.contains(".waitForTaskToken")));
        assert!(findings.iter().any(|f| f.message.contains("Missing 'Next' target: B")));
        assert_eq!(lint("{not json", &resources, &errors)[0].kind, FindingKind::Invalid);
    }
}
