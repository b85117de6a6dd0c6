//! Intrinsic functions (`States.Format(...)`, `States.Array(...)`, ...): parsing and evaluation.

use base64::Engine as _;
use md5::Digest as _;
use serde_json::{Map, Number, Value};

use crate::path::Path;
use crate::template::{Env, EvalError};
use crate::values::{compact, json_eq};

/// A parsed intrinsic function call.
#[derive(Debug, Clone)]
pub(crate) struct Intrinsic {
    func: Func,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// A string literal: its value, and its text with escapes kept (for `States.Format`).
    Str {
        value: String,
        raw: String,
    },
    Literal(Value),
    Path(Path),
    Call(Box<Intrinsic>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Func {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "Format" => Self::Format,
            "StringToJson" => Self::StringToJson,
            "JsonToString" => Self::JsonToString,
            "Array" => Self::Array,
            "ArrayPartition" => Self::ArrayPartition,
            "ArrayContains" => Self::ArrayContains,
            "ArrayRange" => Self::ArrayRange,
            "ArrayGetItem" => Self::ArrayGetItem,
            "ArrayLength" => Self::ArrayLength,
            "ArrayUnique" => Self::ArrayUnique,
            "Base64Encode" => Self::Base64Encode,
            "Base64Decode" => Self::Base64Decode,
            "Hash" => Self::Hash,
            "JsonMerge" => Self::JsonMerge,
            "MathRandom" => Self::MathRandom,
            "MathAdd" => Self::MathAdd,
            "StringSplit" => Self::StringSplit,
            "UUID" => Self::Uuid,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Format => "States.Format",
            Self::StringToJson => "States.StringToJson",
            Self::JsonToString => "States.JsonToString",
            Self::Array => "States.Array",
            Self::ArrayPartition => "States.ArrayPartition",
            Self::ArrayContains => "States.ArrayContains",
            Self::ArrayRange => "States.ArrayRange",
            Self::ArrayGetItem => "States.ArrayGetItem",
            Self::ArrayLength => "States.ArrayLength",
            Self::ArrayUnique => "States.ArrayUnique",
            Self::Base64Encode => "States.Base64Encode",
            Self::Base64Decode => "States.Base64Decode",
            Self::Hash => "States.Hash",
            Self::JsonMerge => "States.JsonMerge",
            Self::MathRandom => "States.MathRandom",
            Self::MathAdd => "States.MathAdd",
            Self::StringSplit => "States.StringSplit",
            Self::Uuid => "States.UUID",
        }
    }

    /// (minimum, maximum) number of arguments.
    fn arity(self) -> (usize, usize) {
        match self {
            Self::Format => (1, usize::MAX),
            Self::Array => (0, usize::MAX),
            Self::StringToJson
            | Self::JsonToString
            | Self::ArrayLength
            | Self::ArrayUnique
            | Self::Base64Encode
            | Self::Base64Decode => (1, 1),
            Self::ArrayPartition
            | Self::ArrayContains
            | Self::ArrayGetItem
            | Self::Hash
            | Self::MathAdd
            | Self::StringSplit => (2, 2),
            Self::ArrayRange | Self::JsonMerge => (3, 3),
            Self::MathRandom => (2, 3),
            Self::Uuid => (0, 0),
        }
    }
}

const MAX_ENCODING_INPUT: usize = 10_000;
const MAX_ARRAY_RANGE: usize = 1000;

impl Intrinsic {
    /// Parses `States.Name(arg, ...)`; the whole text must be one call.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut parser = Parser { chars: &chars, pos: 0 };
        let call = parser.call()?;
        parser.skip_ws();
        if parser.pos != chars.len() {
            return Err(format!("unexpected text after the call: {text}"));
        }
        Ok(call)
    }

    /// Evaluates the call.
    pub(crate) fn evaluate(&self, env: &Env<'_>) -> Result<Value, EvalError> {
        let name = self.func.name();
        let mut values = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            values.push(match arg {
                Arg::Str { value, .. } => Value::String(value.clone()),
                Arg::Literal(v) => v.clone(),
                Arg::Path(path) => env.resolve(path).map_err(|_| EvalError::path_not_found(path, name, env.input))?,
                Arg::Call(call) => call.evaluate(env)?,
            });
        }
        let fail = |detail: String| EvalError::intrinsic(format!("Invalid arguments in {name}: {detail}"));
        match self.func {
            Func::Format => self.format(&values).map_err(fail),
            Func::StringToJson => string_to_json(&values[0]).map_err(fail),
            Func::JsonToString => Ok(Value::String(compact(&values[0]))),
            Func::Array => Ok(Value::Array(values)),
            Func::ArrayPartition => {
                let items = array(&values[0])?;
                let size = integer(&values[1]).filter(|n| *n > 0).ok_or_else(|| {
                    fail(format!("the chunk size must be a positive integer, but was {}", compact(&values[1])))
                })?;
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                Ok(Value::Array(items.chunks(size).map(|c| Value::Array(c.to_vec())).collect()))
            }
            Func::ArrayContains => {
                let items = array(&values[0])?;
                Ok(Value::Bool(items.iter().any(|i| json_eq(i, &values[1]))))
            }
            Func::ArrayRange => array_range(&values).map_err(fail),
            Func::ArrayGetItem => {
                let items = array(&values[0])?;
                let index = integer(&values[1])
                    .ok_or_else(|| fail(format!("the index must be an integer, but was {}", compact(&values[1]))))?;
                usize::try_from(index).ok().and_then(|i| items.get(i)).cloned().ok_or_else(|| {
                    fail(format!("the index {index} is out of bounds for an array of {} items", items.len()))
                })
            }
            Func::ArrayLength => Ok(Value::from(array(&values[0])?.len())),
            Func::ArrayUnique => {
                let items = array(&values[0])?;
                let mut unique: Vec<Value> = Vec::new();
                for item in items {
                    if !unique.iter().any(|u| json_eq(u, item)) {
                        unique.push(item.clone());
                    }
                }
                Ok(Value::Array(unique))
            }
            Func::Base64Encode => {
                let text = string(&values[0], "the input")?;
                check_length(text).map_err(fail)?;
                Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(text.as_bytes())))
            }
            Func::Base64Decode => {
                let text = string(&values[0], "the input")?;
                check_length(text).map_err(fail)?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.as_bytes())
                    .map_err(|e| fail(format!("the input is not valid base64: {e}")))?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| fail("the decoded bytes are not UTF-8 text".to_owned()))
            }
            Func::Hash => {
                let data = string(&values[0], "the data")?;
                check_length(data).map_err(fail)?;
                let algorithm = string(&values[1], "the algorithm")?;
                hash(data, algorithm).map(Value::String).map_err(fail)
            }
            Func::JsonMerge => {
                let (Value::Object(a), Value::Object(b)) = (&values[0], &values[1]) else {
                    return Err(fail("both values to merge must be JSON objects".to_owned()));
                };
                match &values[2] {
                    Value::Bool(false) => {}
                    Value::Bool(true) => return Err(fail("only the shallow merge (false) is supported".to_owned())),
                    other => return Err(fail(format!("the merge mode must be a boolean, but was {}", compact(other)))),
                }
                let mut merged: Map<String, Value> = a.clone();
                for (k, v) in b {
                    merged.insert(k.clone(), v.clone());
                }
                Ok(Value::Object(merged))
            }
            Func::MathRandom => math_random(&values).map_err(fail),
            Func::MathAdd => {
                let a = rounded(&values[0]).ok_or_else(|| fail(format!("{} is not a number", compact(&values[0]))))?;
                let b = rounded(&values[1]).ok_or_else(|| fail(format!("{} is not a number", compact(&values[1]))))?;
                a.checked_add(b).map(Value::from).ok_or_else(|| fail("the sum is out of range".to_owned()))
            }
            Func::StringSplit => {
                let text = string(&values[0], "the string")?;
                let delimiters = string(&values[1], "the delimiter")?;
                let parts = text
                    .split(|c| delimiters.contains(c))
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_owned()))
                    .collect();
                Ok(Value::Array(parts))
            }
            Func::Uuid => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
        }
        .map_err(|e: EvalError| {
            if e.detail.starts_with("Invalid arguments in") {
                e
            } else {
                EvalError { error: e.error, detail: format!("Invalid arguments in {name}: {}", e.detail) }
            }
        })
    }

    fn format(&self, values: &[Value]) -> Result<Value, String> {
        let template: Vec<Piece> = match (&self.args[0], &values[0]) {
            (Arg::Str { raw, .. }, _) => pieces(raw, true),
            (_, Value::String(s)) => pieces(s, false),
            (_, other) => return Err(format!("the format string must be a string, but was {}", compact(other))),
        };
        let holes = template.iter().filter(|p| matches!(p, Piece::Hole)).count();
        if holes != values.len() - 1 {
            return Err(format!(
                "the format string has {holes} placeholders but {} arguments were given",
                values.len() - 1
            ));
        }
        let mut out = String::new();
        let mut next = values[1..].iter();
        for piece in template {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Hole => {
                    if let Some(v) = next.next() {
                        out.push_str(&java_string(v));
                    }
                }
            }
        }
        Ok(Value::String(out))
    }
}

enum Piece {
    Text(String),
    Hole,
}

/// Splits a format string into text and `{}` holes; with `escapes`, `\{`, `\}`, `\'` and `\\`
/// stand for the character itself.
fn pieces(text: &str, escapes: bool) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if escapes => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push(Piece::Text(std::mem::take(&mut current)));
                out.push(Piece::Hole);
            }
            other => current.push(other),
        }
    }
    out.push(Piece::Text(current));
    out
}

/// How `States.Format` prints a value: strings bare, objects as `{a=1, b=[]}` (Java's
/// `Map.toString`), arrays as `[1, 2]`, other values as JSON.
fn java_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(java_string).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", java_string(v))).collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => compact(other),
    }
}

fn array(value: &Value) -> Result<&Vec<Value>, EvalError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(EvalError::intrinsic(format!("expected an array, but got {}", compact(other)))),
    }
}

fn string<'a>(value: &'a Value, what: &str) -> Result<&'a str, EvalError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(EvalError::intrinsic(format!("{what} must be a string, but was {}", compact(other)))),
    }
}

fn check_length(text: &str) -> Result<(), String> {
    let n = text.chars().count();
    if n > MAX_ENCODING_INPUT {
        Err(format!("the input has {n} characters, more than the maximum of {MAX_ENCODING_INPUT}"))
    } else {
        Ok(())
    }
}

/// An integer value (`3` or `3.0`).
fn integer(value: &Value) -> Option<i64> {
    let Value::Number(n) = value else { return None };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)]
        Some(f as i64)
    } else {
        None
    }
}

/// Rounds as Java's `Math.round` does: half up (`-1.5` to `-1`, `2.5` to `3`).
fn rounded(value: &Value) -> Option<i64> {
    let Value::Number(n) = value else { return None };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    let r = (f + 0.5).floor();
    if r.is_finite() && r.abs() < 9.0e18 {
        #[allow(clippy::cast_possible_truncation)]
        Some(r as i64)
    } else {
        None
    }
}

fn string_to_json(value: &Value) -> Result<Value, String> {
    let Value::String(text) = value else {
        return Err(format!("expected a string, but got {}", compact(value)));
    };
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| format!("the string is not valid JSON: {e}"))
}

fn array_range(values: &[Value]) -> Result<Value, String> {
    let get = |i: usize, what: &str| {
        integer(&values[i]).ok_or_else(|| format!("{what} must be an integer, but was {}", compact(&values[i])))
    };
    let (start, end, step) = (get(0, "the start")?, get(1, "the end")?, get(2, "the step")?);
    if step == 0 {
        return Err("the step must not be 0".to_owned());
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i <= end) || (step < 0 && i >= end) {
        if out.len() == MAX_ARRAY_RANGE {
            return Err(format!("the range has more than {MAX_ARRAY_RANGE} items"));
        }
        out.push(Value::from(i));
        match i.checked_add(step) {
            Some(n) => i = n,
            None => break,
        }
    }
    Ok(Value::Array(out))
}

fn math_random(values: &[Value]) -> Result<Value, String> {
    use rand::{Rng as _, SeedableRng as _};
    let get = |i: usize, what: &str| {
        integer(&values[i]).ok_or_else(|| format!("{what} must be an integer, but was {}", compact(&values[i])))
    };
    let (start, end) = (get(0, "the start")?, get(1, "the end")?);
    if start >= end {
        return Err(format!("the start {start} must be lower than the end {end}"));
    }
    let n = match values.get(2) {
        Some(_) => {
            let seed = get(2, "the seed")?;
            rand::rngs::StdRng::seed_from_u64(seed.unsigned_abs()).random_range(start..end)
        }
        None => rand::rng().random_range(start..end),
    };
    Ok(Value::Number(Number::from(n)))
}

fn hash(data: &str, algorithm: &str) -> Result<String, String> {
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    let bytes = data.as_bytes();
    Ok(match algorithm {
        "MD5" => hex(&md5::Md5::digest(bytes)),
        "SHA-1" => hex(&sha1::Sha1::digest(bytes)),
        "SHA-256" => hex(&sha2::Sha256::digest(bytes)),
        "SHA-384" => hex(&sha2::Sha384::digest(bytes)),
        "SHA-512" => hex(&sha2::Sha512::digest(bytes)),
        other => return Err(format!("the algorithm '{other}' is not one of MD5, SHA-1, SHA-256, SHA-384, SHA-512")),
    })
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn starts_with(&self, word: &str) -> bool {
        let mut i = self.pos;
        word.chars().all(|c| {
            let same = self.chars.get(i) == Some(&c);
            i += 1;
            same
        })
    }

    fn call(&mut self) -> Result<Intrinsic, String> {
        self.skip_ws();
        if !self.starts_with("States.") {
            return Err("an intrinsic function call starts with 'States.'".to_owned());
        }
        self.pos += "States.".len();
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        let func = Func::from_name(&name).ok_or_else(|| format!("'States.{name}' is not an intrinsic function"))?;
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(format!("expected '(' after States.{name}"));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                args.push(self.arg()?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(c) => return Err(format!("unexpected '{c}' in the arguments of States.{name}")),
                    None => return Err(format!("the arguments of States.{name} are not closed")),
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                min.to_string()
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(format!("{} takes {expected} arguments, but {} were given", func.name(), args.len()));
        }
        if func == Func::Format {
            if let Some(Arg::Literal(v)) = args.first() {
                return Err(format!("the first argument of States.Format must be a string, but was {}", compact(v)));
            }
        }
        Ok(Intrinsic { func, args })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.skip_ws();
        match self.peek() {
            Some('\'') => self.string(),
            Some('$') => {
                let start = self.pos;
                let mut depth = 0usize;
                let mut quote: Option<char> = None;
                while let Some(c) = self.peek() {
                    match (quote, c) {
                        (Some(q), c) if c == q => quote = None,
                        (None, '\'' | '"') if depth > 0 => quote = Some(c),
                        (None, '[') => depth += 1,
                        (None, ']') => depth = depth.saturating_sub(1),
                        (None, ',' | ')') if depth == 0 => break,
                        (None, c) if c.is_whitespace() && depth == 0 => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                let path = Path::parse(&text).map_err(|e| format!("invalid path {text}: {e}"))?;
                Ok(Arg::Path(path))
            }
            Some('S') => Ok(Arg::Call(Box::new(self.call()?))),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || "-+.eE".contains(c)) {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                serde_json::from_str::<Number>(&text)
                    .map(|n| Arg::Literal(Value::Number(n)))
                    .map_err(|_| format!("'{text}' is not a number"))
            }
            _ => {
                for (word, value) in [("true", Value::Bool(true)), ("false", Value::Bool(false)), ("null", Value::Null)]
                {
                    if self.starts_with(word) {
                        self.pos += word.len();
                        return Ok(Arg::Literal(value));
                    }
                }
                Err(match self.peek() {
                    Some(c) => format!("unexpected '{c}' where an argument was expected"),
                    None => "an argument is missing".to_owned(),
                })
            }
        }
    }

    fn string(&mut self) -> Result<Arg, String> {
        self.pos += 1;
        let mut value = String::new();
        let mut raw = String::new();
        loop {
            match self.peek() {
                None => return Err("a string literal is not closed".to_owned()),
                Some('\\') => {
                    self.pos += 1;
                    let Some(next) = self.peek() else {
                        return Err("a string literal ends with '\\'".to_owned());
                    };
                    value.push(next);
                    raw.push('\\');
                    raw.push(next);
                    self.pos += 1;
                }
                Some('\'') => {
                    self.pos += 1;
                    return Ok(Arg::Str { value, raw });
                }
                Some(c) => {
                    value.push(c);
                    raw.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::needless_pass_by_value)]
    fn call(text: &str, input: Value) -> Result<Value, EvalError> {
        let ctx = || json!({});
        Intrinsic::parse(text).unwrap().evaluate(&Env::new(&input, &json!({}), &ctx))
    }

    #[test]
    fn format_prints_values_as_step_functions_does() {
        let input = json!({"o": {"Arg1": 1, "Arg2": []}, "n": null, "f": 1.1});
        assert_eq!(
            call("States.Format('{} {} {} \\{\\} it\\'s', $.o, $.n, $.f)", input).unwrap(),
            json!("{Arg1=1, Arg2=[]} null 1.1 {} it's")
        );
    }

    #[test]
    fn math_add_rounds_half_up() {
        for (a, b, sum) in [(1.49, 1.5, 3), (-1.49, -1.5, -2), (-1.5, -1.51, -3), (-0.5, 0.5, 1), (-3.5, 0.0, -3)] {
            assert_eq!(call("States.MathAdd($.a, $.b)", json!({"a": a, "b": b})).unwrap(), json!(sum));
        }
    }

    #[test]
    fn string_split_splits_on_each_delimiter_character() {
        assert_eq!(
            call("States.StringSplit($.s, $.d)", json!({"s": "This.is+a,test=string", "d": ".+,="})).unwrap(),
            json!(["This", "is", "a", "test", "string"])
        );
        assert_eq!(call("States.StringSplit(',,,,', ',')", json!({})).unwrap(), json!([]));
    }

    #[test]
    fn arrays() {
        assert_eq!(
            call("States.ArrayPartition(States.Array(0, 1, 2, 3), 2)", json!({})).unwrap(),
            json!([[0, 1], [2, 3]])
        );
        assert_eq!(call("States.ArrayRange(0, 10, 3)", json!({})).unwrap(), json!([0, 3, 6, 9]));
        assert_eq!(call("States.ArrayGetItem($.a, 1)", json!({"a": [5, 6]})).unwrap(), json!(6));
        assert_eq!(call("States.ArrayUnique($.a)", json!({"a": [1, 1, 2, 1.0]})).unwrap(), json!([1, 2]));
        assert_eq!(call("States.ArrayLength($.a)", json!({"a": [1, 1]})).unwrap(), json!(2));
        assert!(call("States.ArrayGetItem($.a, 5)", json!({"a": [5, 6]})).is_err());
    }

    #[test]
    fn json_encoding_and_hashes() {
        assert_eq!(call("States.StringToJson(' ')", json!({})).unwrap(), Value::Null);
        assert_eq!(call("States.JsonToString($.a)", json!({"a": {"x": [1]}})).unwrap(), json!("{\"x\":[1]}"));
        assert_eq!(call("States.Base64Encode('Data to encode')", json!({})).unwrap(), json!("RGF0YSB0byBlbmNvZGU="));
        assert_eq!(call("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", json!({})).unwrap(), json!("Data to encode"));
        assert_eq!(
            call("States.Hash('input data', 'SHA-1')", json!({})).unwrap(),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            call("States.JsonMerge($.a, $.b, false)", json!({"a": {"x": 1, "y": {"p": 1}}, "b": {"y": {"q": 2}}}))
                .unwrap(),
            json!({"x": 1, "y": {"q": 2}})
        );
    }

    #[test]
    fn random_and_uuid() {
        let n = call("States.MathRandom(1, 10)", json!({})).unwrap();
        assert!((1..10).contains(&n.as_i64().unwrap()));
        let seeded = call("States.MathRandom(1, 1000, 7)", json!({})).unwrap();
        assert_eq!(seeded, call("States.MathRandom(1, 1000, 7)", json!({})).unwrap());
        assert_eq!(call("States.UUID()", json!({})).unwrap().as_str().unwrap().len(), 36);
    }

    #[test]
    fn bad_calls_are_refused() {
        for bad in [
            "States.Nope()",
            "States.MathAdd(1)",
            "States.Format(1)",
            "States.Array(1",
            "States.Array(1) x",
            "States.UUID(1)",
        ] {
            assert!(Intrinsic::parse(bad).is_err(), "{bad}");
        }
    }
}
