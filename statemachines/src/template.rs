//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`): fields whose name ends in
//! `.$` take their value from a path, a context path or an intrinsic function.

use std::cell::OnceCell;

use serde_json::{Map, Value};

use crate::error::names;
use crate::intrinsics::Intrinsic;
use crate::path::{Path, PathError};
use crate::values::compact;

/// The data an expression reads: the state's data (`$`) and the context object (`$$`).
///
/// The context object comes in two parts: `fixed` (`Execution`, `StateMachine`: the same for the
/// whole execution, borrowed, never copied) and the per-state part (`State`, `Map`), built only
/// when an expression asks for it.
pub(crate) struct Env<'a> {
    pub(crate) input: &'a Value,
    fixed: &'a Value,
    per_state: OnceCell<Value>,
    whole: OnceCell<Value>,
    build: &'a (dyn Fn() -> Value + 'a),
}

impl<'a> Env<'a> {
    pub(crate) fn new(input: &'a Value, fixed: &'a Value, build: &'a (dyn Fn() -> Value + 'a)) -> Self {
        Self { input, fixed, per_state: OnceCell::new(), whole: OnceCell::new(), build }
    }

    fn per_state(&self) -> &Value {
        self.per_state.get_or_init(|| (self.build)())
    }

    /// The whole context object (for `$$` alone, or paths that do not start with a name).
    fn whole(&self) -> &Value {
        self.whole.get_or_init(|| {
            let mut whole = self.fixed.clone();
            if let (Value::Object(w), Value::Object(p)) = (&mut whole, self.per_state()) {
                for (k, v) in p {
                    w.insert(k.clone(), v.clone());
                }
            }
            whole
        })
    }

    /// The document `path` reads: the context object for `$$...`, else the input.
    pub(crate) fn data_for(&self, path: &Path) -> &Value {
        if !path.is_context() {
            return self.input;
        }
        match path.first_name() {
            Some(name) if self.fixed.get(name).is_some() => self.fixed,
            Some(name) if self.per_state().get(name).is_some() => self.per_state(),
            Some(_) => self.fixed,
            None => self.whole(),
        }
    }

    pub(crate) fn resolve(&self, path: &Path) -> Result<Value, PathError> {
        path.evaluate(self.data_for(path))
    }
}

/// An error raised while evaluating a path, template or intrinsic function: an error name and the
/// detail that follows "An error occurred while executing the state ...".
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EvalError {
    pub(crate) error: &'static str,
    pub(crate) detail: String,
}

impl EvalError {
    pub(crate) fn runtime(detail: impl Into<String>) -> Self {
        Self { error: names::RUNTIME, detail: detail.into() }
    }

    pub(crate) fn intrinsic(detail: impl Into<String>) -> Self {
        Self { error: names::INTRINSIC_FAILURE, detail: detail.into() }
    }

    /// A `.$` path or an intrinsic argument path that found nothing.
    pub(crate) fn path_not_found(path: &Path, field: &str, input: &Value) -> Self {
        Self::runtime(format!(
            "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
            path.text(),
            compact(input)
        ))
    }
}

/// A compiled payload template.
#[derive(Debug, Clone)]
pub(crate) enum Template {
    /// A value with nothing to evaluate inside.
    Literal(Value),
    Object(Vec<(String, Field)>),
    Array(Vec<Template>),
}

#[derive(Debug, Clone)]
pub(crate) enum Field {
    Static(Template),
    /// `"name.$": "$.path"` or `"$$.path"`; `field` is the key as written (with `.$`).
    Path {
        field: String,
        path: Path,
    },
    /// `"name.$": "States.Format(...)"`.
    Intrinsic(Intrinsic),
}

impl Template {
    /// Compiles `value`; the error names the offending field (its JSON pointer below the template)
    /// and what is wrong.
    pub(crate) fn compile(value: &Value) -> Result<Self, (String, String)> {
        if !needs_evaluation(value) {
            return Ok(Self::Literal(value.clone()));
        }
        match value {
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                for (key, v) in map {
                    let pointer = format!("/{}", escape_pointer(key));
                    if let Some(name) = key.strip_suffix(".$") {
                        let Value::String(expr) = v else {
                            return Err((
                                pointer,
                                format!("The value for the field '{key}' must be a STRING that contains a JSONPath but was a {}", crate::values::type_name(v).to_uppercase()),
                            ));
                        };
                        let field = compile_expression(key, expr).map_err(|m| (pointer.clone(), m))?;
                        if map.contains_key(name) {
                            return Err((
                                pointer,
                                format!("The field '{name}' is given twice, as '{name}' and as '{key}'"),
                            ));
                        }
                        fields.push((name.to_owned(), field));
                    } else {
                        let inner = Self::compile(v).map_err(|(p, m)| (format!("{pointer}{p}"), m))?;
                        fields.push((key.clone(), Field::Static(inner)));
                    }
                }
                Ok(Self::Object(fields))
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| Self::compile(v).map_err(|(p, m)| (format!("/{i}{p}"), m)))
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Array),
            other => Ok(Self::Literal(other.clone())),
        }
    }

    /// Evaluates the template against `env`.
    pub(crate) fn evaluate(&self, env: &Env<'_>) -> Result<Value, EvalError> {
        match self {
            Self::Literal(v) => Ok(v.clone()),
            Self::Array(items) => {
                items.iter().map(|t| t.evaluate(env)).collect::<Result<Vec<_>, _>>().map(Value::Array)
            }
            Self::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (name, field) in fields {
                    let value = match field {
                        Field::Static(t) => t.evaluate(env)?,
                        Field::Path { field, path } => {
                            env.resolve(path).map_err(|_| EvalError::path_not_found(path, field, env.input))?
                        }
                        Field::Intrinsic(call) => call.evaluate(env)?,
                    };
                    out.insert(name.clone(), value);
                }
                Ok(Value::Object(out))
            }
        }
    }
}

fn compile_expression(key: &str, expr: &str) -> Result<Field, String> {
    if expr.starts_with('$') {
        let path = Path::parse(expr).map_err(|e| {
            format!("The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call: {e}")
        })?;
        Ok(Field::Path { field: key.to_owned(), path })
    } else if expr.starts_with("States.") {
        let call = Intrinsic::parse(expr).map_err(|e| {
            format!("The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call: {e}")
        })?;
        Ok(Field::Intrinsic(call))
    } else {
        Err(format!("The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call"))
    }
}

fn needs_evaluation(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k.ends_with(".$") || needs_evaluation(v)),
        Value::Array(items) => items.iter().any(needs_evaluation),
        _ => false,
    }
}

/// JSON pointer escaping (`~` and `/`).
pub(crate) fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::needless_pass_by_value)]
    fn run(template: Value, input: Value) -> Result<Value, EvalError> {
        let t = Template::compile(&template).unwrap();
        let fixed = json!({"Execution": {"Input": {"x": 1}}});
        let per_state = || json!({"State": {"Name": "S"}});
        t.evaluate(&Env::new(&input, &fixed, &per_state))
    }

    #[test]
    fn dollar_fields_are_evaluated_and_renamed() {
        let out = run(
            json!({"a": 1, "b.$": "$.v", "c": [{"d.$": "$$.Execution.Input.x"}], "e.$": "States.Array(1, $.v)"}),
            json!({"v": "hi"}),
        )
        .unwrap();
        assert_eq!(out, json!({"a": 1, "b": "hi", "c": [{"d": 1}], "e": [1, "hi"]}));
    }

    #[test]
    fn the_context_object_is_both_parts() {
        let out = run(json!({"all.$": "$$", "name.$": "$$.State.Name"}), json!({})).unwrap();
        assert_eq!(out, json!({"all": {"Execution": {"Input": {"x": 1}}, "State": {"Name": "S"}}, "name": "S"}));
    }

    #[test]
    fn a_missing_path_names_the_field_and_the_input() {
        let err = run(json!({"value.$": "$.no_such_jsonpath"}), json!({"int-literal": 0})).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        assert_eq!(
            err.detail,
            "The JSONPath '$.no_such_jsonpath' specified for the field 'value.$' could not be found in the input '{\"int-literal\":0}'"
        );
    }

    #[test]
    fn invalid_expressions_are_refused_at_compile_time() {
        assert!(Template::compile(&json!({"a.$": "nope"})).is_err());
        assert!(Template::compile(&json!({"a.$": 3})).is_err());
        assert!(Template::compile(&json!({"a.$": "States.Nope()"})).is_err());
        assert!(Template::compile(&json!({"a.$": "$.x", "a": 1})).is_err());
    }
}
