//! `DefinitionSubstitutions`: `${Name}` placeholders in a definition's text.

use std::collections::BTreeMap;

use crate::error::SubstitutionError;

/// Replaces every `${Name}` in `definition_text` with `substitutions[Name]`, as CloudFormation's
/// `DefinitionSubstitutions` does (the value is inserted as is). A `${Name}` without a value is an
/// error that names it (all of them, in order of first use).
///
/// ```
/// use std::collections::BTreeMap;
/// use statemachines::substitute;
/// let values = BTreeMap::from([("PlanFunctionArn".to_owned(), "arn:aws:lambda:us-east-1:1:function:plan".to_owned())]);
/// let text = substitute(r#"{"Resource": "${PlanFunctionArn}"}"#, &values)?;
/// assert_eq!(text, r#"{"Resource": "arn:aws:lambda:us-east-1:1:function:plan"}"#);
/// let missing = substitute("${Nope}", &values).unwrap_err();
/// assert_eq!(missing.missing, vec!["Nope".to_owned()]);
/// # Ok::<(), statemachines::SubstitutionError>(())
/// ```
pub fn substitute(
    definition_text: &str,
    substitutions: &BTreeMap<String, String>,
) -> Result<String, SubstitutionError> {
    let mut out = String::with_capacity(definition_text.len());
    let mut missing: Vec<String> = Vec::new();
    let mut rest = definition_text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        match substitutions.get(name) {
            Some(value) => out.push_str(value),
            None => {
                if !missing.iter().any(|m| m == name) {
                    missing.push(name.to_owned());
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(SubstitutionError { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_name_is_reported_once() {
        let err = substitute("${A} ${B} ${A}", &BTreeMap::new()).unwrap_err();
        assert_eq!(err.missing, vec!["A".to_owned(), "B".to_owned()]);
        assert_eq!(err.to_string(), "no value for the definition substitutions ${A}, ${B}");
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        assert_eq!(substitute("{\"a\": \"$.b\"}", &BTreeMap::new()).unwrap(), "{\"a\": \"$.b\"}");
        assert_eq!(substitute("${unclosed", &BTreeMap::new()).unwrap(), "${unclosed");
    }
}
