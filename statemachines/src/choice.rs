//! Choice rules: parsing (with validation) and evaluation.

use std::cmp::Ordering;

use serde_json::Value;

use crate::definition::Checker;
use crate::path::Path;
use crate::template::{Env, EvalError};
use crate::values::{compare_numbers, parse_timestamp};

/// A boolean expression of a Choice state.
#[derive(Debug, Clone)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Compare { variable: Path, kind: Kind, cmp: Cmp, operand: Operand },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
    Matches,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Literal(Value),
    Path(Path),
    Pattern(Vec<Glob>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Glob {
    Char(char),
    Any,
}

const OPERATORS: &[(&str, Kind, Cmp)] = &[
    ("StringEquals", Kind::String, Cmp::Eq),
    ("StringLessThan", Kind::String, Cmp::Lt),
    ("StringGreaterThan", Kind::String, Cmp::Gt),
    ("StringLessThanEquals", Kind::String, Cmp::Le),
    ("StringGreaterThanEquals", Kind::String, Cmp::Ge),
    ("StringMatches", Kind::Matches, Cmp::Eq),
    ("NumericEquals", Kind::Numeric, Cmp::Eq),
    ("NumericLessThan", Kind::Numeric, Cmp::Lt),
    ("NumericGreaterThan", Kind::Numeric, Cmp::Gt),
    ("NumericLessThanEquals", Kind::Numeric, Cmp::Le),
    ("NumericGreaterThanEquals", Kind::Numeric, Cmp::Ge),
    ("BooleanEquals", Kind::Boolean, Cmp::Eq),
    ("TimestampEquals", Kind::Timestamp, Cmp::Eq),
    ("TimestampLessThan", Kind::Timestamp, Cmp::Lt),
    ("TimestampGreaterThan", Kind::Timestamp, Cmp::Gt),
    ("TimestampLessThanEquals", Kind::Timestamp, Cmp::Le),
    ("TimestampGreaterThanEquals", Kind::Timestamp, Cmp::Ge),
    ("IsNull", Kind::IsNull, Cmp::Eq),
    ("IsPresent", Kind::IsPresent, Cmp::Eq),
    ("IsNumeric", Kind::IsNumeric, Cmp::Eq),
    ("IsString", Kind::IsString, Cmp::Eq),
    ("IsBoolean", Kind::IsBoolean, Cmp::Eq),
    ("IsTimestamp", Kind::IsTimestamp, Cmp::Eq),
];

fn operator(key: &str) -> Option<(Kind, Cmp, bool)> {
    if let Some(base) = key.strip_suffix("Path") {
        let (_, kind, cmp) = OPERATORS.iter().find(|(name, ..)| *name == base)?;
        let has_path_form = matches!(kind, Kind::String | Kind::Numeric | Kind::Boolean | Kind::Timestamp);
        return has_path_form.then_some((*kind, *cmp, true));
    }
    let (_, kind, cmp) = OPERATORS.iter().find(|(name, ..)| *name == key)?;
    Some((*kind, *cmp, false))
}

/// Parses one rule at `pointer`. Top-level rules carry `Next` (returned); nested rules must not.
pub(crate) fn parse_rule(
    value: &Value,
    pointer: &str,
    top_level: bool,
    checker: &mut Checker,
) -> Option<(Rule, Option<String>)> {
    let Value::Object(map) = value else {
        checker.schema(pointer, None, "A choice rule must be an object");
        return None;
    };
    let mut next = None;
    if let Some(n) = map.get("Next") {
        if !top_level {
            checker.schema(
                &format!("{pointer}/Next"),
                Some("Next"),
                "Field 'Next' is only allowed in a top-level choice rule",
            );
        } else if let Value::String(s) = n {
            next = Some(s.clone());
        } else {
            checker.schema(&format!("{pointer}/Next"), Some("Next"), "Next must be a string");
        }
    } else if top_level {
        checker.schema(pointer, Some("Next"), "A top-level choice rule needs a 'Next' field");
    }
    let logical: Vec<&str> = ["And", "Or", "Not"].into_iter().filter(|k| map.contains_key(*k)).collect();
    let comparisons: Vec<(&String, Kind, Cmp, bool)> =
        map.keys().filter_map(|k| operator(k).map(|(kind, cmp, path)| (k, kind, cmp, path))).collect();
    for key in map.keys() {
        let known =
            matches!(key.as_str(), "Next" | "Comment" | "Variable" | "And" | "Or" | "Not") || operator(key).is_some();
        if !known {
            let message = if key == "Condition" || key == "Assign" {
                format!("Field '{key}' is JSONata, which this interpreter does not run")
            } else {
                format!("Field '{key}' is not supported in a choice rule")
            };
            checker.schema(&format!("{pointer}/{key}"), Some(key), &message);
        }
    }
    if logical.len() + comparisons.len() != 1 {
        checker.schema(pointer, None, "A choice rule needs exactly one of And, Or, Not or a comparison operator");
        return None;
    }
    if let Some(op) = logical.first() {
        if map.contains_key("Variable") {
            checker.schema(
                &format!("{pointer}/Variable"),
                Some("Variable"),
                "Field 'Variable' is not allowed with And, Or or Not",
            );
        }
        let inner_pointer = format!("{pointer}/{op}");
        let rule = match (*op, map.get(*op)) {
            ("Not", Some(inner)) => {
                let (rule, _) = parse_rule(inner, &inner_pointer, false, checker)?;
                Rule::Not(Box::new(rule))
            }
            (_, Some(Value::Array(items))) if !items.is_empty() => {
                let mut rules = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some((rule, _)) = parse_rule(item, &format!("{inner_pointer}/{i}"), false, checker) {
                        rules.push(rule);
                    }
                }
                if rules.len() != items.len() {
                    return None;
                }
                if *op == "And" {
                    Rule::And(rules)
                } else {
                    Rule::Or(rules)
                }
            }
            _ => {
                checker.schema(&inner_pointer, Some(op), &format!("{op} must be a non-empty array of choice rules"));
                return None;
            }
        };
        return Some((rule, next));
    }
    let (key, kind, cmp, is_path) = comparisons.first().copied()?;
    let variable = match map.get("Variable") {
        Some(Value::String(text)) => match Path::parse(text) {
            Ok(p) => p,
            Err(e) => {
                checker.schema(
                    &format!("{pointer}/Variable"),
                    Some("Variable"),
                    &format!("Variable is not a valid JSONPath: {e}"),
                );
                return None;
            }
        },
        _ => {
            checker.schema(pointer, Some("Variable"), "A comparison needs a 'Variable' path");
            return None;
        }
    };
    let raw = map.get(key).unwrap_or(&Value::Null);
    let field_pointer = format!("{pointer}/{key}");
    let operand = if is_path {
        match raw.as_str().map(Path::parse) {
            Some(Ok(p)) => Operand::Path(p),
            _ => {
                checker.schema(&field_pointer, Some(key), &format!("{key} must be a valid JSONPath"));
                return None;
            }
        }
    } else {
        let ok = match kind {
            Kind::String | Kind::Matches => raw.is_string(),
            Kind::Numeric => raw.is_number(),
            Kind::Boolean
            | Kind::IsNull
            | Kind::IsPresent
            | Kind::IsNumeric
            | Kind::IsString
            | Kind::IsBoolean
            | Kind::IsTimestamp => raw.is_boolean(),
            Kind::Timestamp => raw.as_str().and_then(parse_timestamp).is_some(),
        };
        if !ok {
            let expected = match kind {
                Kind::String | Kind::Matches => "a string",
                Kind::Numeric => "a number",
                Kind::Timestamp => "an RFC3339 timestamp string",
                _ => "a boolean",
            };
            checker.schema(&field_pointer, Some(key), &format!("{key} must be {expected}"));
            return None;
        }
        if kind == Kind::Matches {
            Operand::Pattern(glob(raw.as_str().unwrap_or_default()))
        } else {
            Operand::Literal(raw.clone())
        }
    };
    Some((Rule::Compare { variable, kind, cmp, operand }, next))
}

fn glob(pattern: &str) -> Vec<Glob> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(Glob::Char(next));
                }
            }
            '*' => out.push(Glob::Any),
            other => out.push(Glob::Char(other)),
        }
    }
    out
}

fn glob_match(pattern: &[Glob], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Glob::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(Glob::Any) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|g| *g == Glob::Any)
}

impl Rule {
    /// Evaluates the rule; a missing `Variable` (except for `IsPresent`) is a `States.Runtime`.
    pub(crate) fn evaluate(&self, env: &Env<'_>) -> Result<bool, EvalError> {
        match self {
            Self::And(rules) => {
                for r in rules {
                    if !r.evaluate(env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Self::Or(rules) => {
                for r in rules {
                    if r.evaluate(env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Self::Not(rule) => Ok(!rule.evaluate(env)?),
            Self::Compare { variable, kind, cmp, operand } => {
                let found = variable.select(env.data_for(variable));
                if *kind == Kind::IsPresent {
                    let expected = matches!(operand, Operand::Literal(Value::Bool(true)));
                    return Ok(found.is_ok() == expected);
                }
                let value = found
                    .map_err(|e| EvalError::runtime(format!("Invalid path '{}' : {e}", variable.text())))?
                    .into_value();
                let operand_value = match operand {
                    Operand::Literal(v) => std::borrow::Cow::Borrowed(v),
                    Operand::Path(p) => std::borrow::Cow::Owned(
                        env.resolve(p).map_err(|e| EvalError::runtime(format!("Invalid path '{}' : {e}", p.text())))?,
                    ),
                    Operand::Pattern(pattern) => {
                        return Ok(matches!(&value, Value::String(s) if glob_match(pattern, s)));
                    }
                };
                Ok(compare(&value, *kind, *cmp, &operand_value))
            }
        }
    }
}

fn holds(ordering: Option<Ordering>, cmp: Cmp) -> bool {
    let Some(o) = ordering else { return false };
    match cmp {
        Cmp::Eq => o == Ordering::Equal,
        Cmp::Lt => o == Ordering::Less,
        Cmp::Gt => o == Ordering::Greater,
        Cmp::Le => o != Ordering::Greater,
        Cmp::Ge => o != Ordering::Less,
    }
}

fn compare(value: &Value, kind: Kind, cmp: Cmp, operand: &Value) -> bool {
    let expect = |b: bool| Some(b) == operand.as_bool();
    match kind {
        Kind::String => match (value, operand) {
            (Value::String(a), Value::String(b)) => holds(Some(a.cmp(b)), cmp),
            _ => false,
        },
        Kind::Numeric => match (value, operand) {
            (Value::Number(a), Value::Number(b)) => holds(compare_numbers(a, b), cmp),
            _ => false,
        },
        Kind::Boolean => match (value, operand) {
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        },
        Kind::Timestamp => {
            let parse = |v: &Value| v.as_str().and_then(parse_timestamp);
            match (parse(value), parse(operand)) {
                (Some(a), Some(b)) => holds(Some(a.cmp(&b)), cmp),
                _ => false,
            }
        }
        Kind::Matches | Kind::IsPresent => false,
        Kind::IsNull => expect(value.is_null()),
        Kind::IsNumeric => expect(value.is_number()),
        Kind::IsString => expect(value.is_string()),
        Kind::IsBoolean => expect(value.is_boolean()),
        Kind::IsTimestamp => expect(value.as_str().and_then(parse_timestamp).is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::needless_pass_by_value)]
    fn check(rule: Value, input: Value) -> Result<bool, EvalError> {
        let mut checker = Checker::default();
        let (rule, _) = parse_rule(&rule, "/r", false, &mut checker).unwrap();
        assert!(checker.problems.is_empty(), "{:?}", checker.problems);
        let ctx = || json!({});
        rule.evaluate(&Env::new(&input, &json!({}), &ctx))
    }

    #[test]
    fn comparisons_of_the_wrong_type_are_false() {
        assert!(!check(json!({"Variable": "$.v", "NumericEquals": 0}), json!({"v": "0"})).unwrap());
        assert!(!check(json!({"Variable": "$.v", "StringEquals": "1"}), json!({"v": 1})).unwrap());
        assert!(!check(json!({"Variable": "$.v", "BooleanEquals": true}), json!({"v": 1})).unwrap());
        assert!(check(json!({"Variable": "$.v", "NumericEquals": 1.0}), json!({"v": 1})).unwrap());
    }

    #[test]
    fn type_tests_with_false_are_true_for_other_types() {
        assert!(check(json!({"Variable": "$.v", "IsNull": false}), json!({"v": 0})).unwrap());
        assert!(!check(json!({"Variable": "$.v", "IsNull": false}), json!({"v": null})).unwrap());
        assert!(check(json!({"Variable": "$.v", "IsPresent": false}), json!({})).unwrap());
        assert!(check(json!({"Variable": "$.v", "IsTimestamp": true}), json!({"v": "2016-03-14T01:59:00Z"})).unwrap());
    }

    #[test]
    fn a_missing_variable_is_a_runtime_error() {
        let err = check(json!({"Variable": "$.v", "IsNull": true}), json!({})).unwrap_err();
        assert_eq!(err.detail, "Invalid path '$.v' : No results for path: $['v']");
    }

    #[test]
    fn string_matches_uses_star_wildcards() {
        let m = |p: &str, s: &str| check(json!({"Variable": "$.v", "StringMatches": p}), json!({"v": s})).unwrap();
        assert!(m("log-*.txt", "log-2024.txt"));
        assert!(!m("log-*.txt", "log-2024.csv"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*", ""));
        assert!(m("*a*b*", "xxaxxbxx"));
    }

    #[test]
    fn timestamps_compare_as_instants() {
        assert!(check(
            json!({"Variable": "$.v", "TimestampEquals": "2012-10-09T19:00:55Z"}),
            json!({"v": "2012-10-09T20:00:55+01:00"})
        )
        .unwrap());
    }

    #[test]
    fn logical_operators_combine() {
        let rule = json!({"And": [{"Variable": "$.v", "NumericGreaterThanEquals": 20}, {"Not": {"Variable": "$.v", "NumericLessThan": 25}}]});
        assert!(check(rule.clone(), json!({"v": 26})).unwrap());
        assert!(!check(rule, json!({"v": 22})).unwrap());
    }
}
