//! JSONPath as Step Functions evaluates it (Jayway JsonPath semantics): parsing, selection,
//! and the `ResultPath` update.
//!
//! A *definite* path (only single names and single indexes) selects one value and fails when it
//! is missing; any other path (wildcards, slices, filters, unions, deep scan) is *indefinite* and
//! selects the JSON array of every match, possibly empty, without ever failing.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::values::{compare_numbers, json_eq};

/// A parsed JSONPath: `$...` over the state's data, or `$$...` over the context object.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    text: String,
    context: bool,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
enum Segment {
    Child(Selector),
    Descendant(Selector),
}

#[derive(Debug, Clone)]
enum Selector {
    Name(String),
    Names(Vec<String>),
    Index(i64),
    Indexes(Vec<i64>),
    Wildcard,
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Filter(Box<Filter>),
}

#[derive(Debug, Clone)]
enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Exists(Operand),
    Compare(Operand, CmpOp, Operand),
}

#[derive(Debug, Clone)]
enum Operand {
    Current(Vec<Segment>),
    Root(Vec<Segment>),
    Literal(Value),
    Regex(regex::Regex),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
    In,
    Nin,
}

/// Why a definite path selected nothing, worded as Jayway words it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathError {
    /// `No results for path: $['a']['b']`
    NoResults(String),
    /// `Missing property in path $['a']`
    MissingProperty(String),
    /// A property asked of something that is not an object.
    NotAnObject { property: String, at: String, found: &'static str },
    /// An index asked of something that is not an array.
    NotAnArray { index: String, found: String },
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoResults(p) => write!(f, "No results for path: {p}"),
            Self::MissingProperty(p) => write!(f, "Missing property in path {p}"),
            Self::NotAnObject { property, at, found } => write!(
                f,
                "Expected to find an object with property {property} in path {at} but found '{found}'. \
                 This is not a json object according to the JsonProvider: \
                 'com.jayway.jsonpath.spi.json.JacksonJsonProvider'."
            ),
            Self::NotAnArray { index, found } => {
                write!(f, "Filter: {index} can only be applied to arrays. Current context is: {found}")
            }
        }
    }
}

/// What a path selected: one value (definite path) or all matches (indefinite path).
#[derive(Debug)]
pub(crate) enum Selected<'a> {
    One(&'a Value),
    Many(Vec<&'a Value>),
}

impl Selected<'_> {
    pub(crate) fn into_value(self) -> Value {
        match self {
            Selected::One(v) => v.clone(),
            Selected::Many(vs) => Value::Array(vs.into_iter().cloned().collect()),
        }
    }
}

impl Path {
    /// Parses `text`; the error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (context, rest) = if let Some(rest) = text.strip_prefix("$$") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix('$') {
            (false, rest)
        } else {
            return Err(format!("a path must start with '$': {text}"));
        };
        let chars: Vec<char> = rest.chars().collect();
        let mut parser = Parser { chars: &chars, pos: 0, in_filter: false };
        let segments = parser.segments()?;
        if parser.pos != chars.len() {
            return Err(format!(
                "unexpected '{}' at position {} of {text}",
                chars[parser.pos],
                parser.pos + text.len() - rest.len()
            ));
        }
        Ok(Self { text: text.to_owned(), context, segments })
    }

    /// `$`: the whole input.
    pub(crate) fn root() -> Self {
        Self { text: "$".to_owned(), context: false, segments: Vec::new() }
    }

    /// The path as written.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Whether the path reads the context object (`$$...`).
    pub(crate) fn is_context(&self) -> bool {
        self.context
    }

    /// `$` (or `$$`) alone.
    pub(crate) fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The name of the first step (`Execution` in `$$.Execution.Input`), if it is a name.
    pub(crate) fn first_name(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Child(Selector::Name(n))) => Some(n),
            _ => None,
        }
    }

    /// Only single names and single indexes: selects at most one node.
    pub(crate) fn is_definite(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Child(Selector::Name(_)) | Segment::Child(Selector::Index(_))))
    }

    /// A reference path (`ResultPath`, `ItemsPath`, Choice `Variable`): definite.
    pub(crate) fn is_reference(&self) -> bool {
        self.is_definite()
    }

    /// Selects from `data` (the state's data or the context object, as the caller chooses).
    pub(crate) fn select<'a>(&self, data: &'a Value) -> Result<Selected<'a>, PathError> {
        if self.is_definite() {
            select_definite(&self.segments, data).map(Selected::One)
        } else {
            let mut out = Vec::new();
            select_all(&self.segments, data, data, &mut out);
            Ok(Selected::Many(out))
        }
    }

    /// Selects and clones.
    pub(crate) fn evaluate(&self, data: &Value) -> Result<Value, PathError> {
        self.select(data).map(Selected::into_value)
    }

    /// Writes `value` at this (reference) path inside `target`, creating missing objects on the
    /// way. `None` when the path cannot be applied (a non-object on the way, an index out of
    /// range, an indefinite path).
    pub(crate) fn set(&self, mut target: Value, value: Value) -> Option<Value> {
        put(&mut target, &self.segments, value)?;
        Some(target)
    }
}

fn canonical(out: &mut String, selector: &Selector) {
    match selector {
        Selector::Name(n) => {
            let _ = write!(out, "['{n}']");
        }
        Selector::Names(ns) => {
            let parts: Vec<String> = ns.iter().map(|n| format!("'{n}'")).collect();
            let _ = write!(out, "[{}]", parts.join(","));
        }
        Selector::Index(i) => {
            let _ = write!(out, "[{i}]");
        }
        Selector::Indexes(is) => {
            let parts: Vec<String> = is.iter().map(ToString::to_string).collect();
            let _ = write!(out, "[{}]", parts.join(","));
        }
        Selector::Wildcard => out.push_str("[*]"),
        Selector::Slice(a, b, _) => {
            let a = a.map(|v| v.to_string()).unwrap_or_default();
            let b = b.map(|v| v.to_string()).unwrap_or_default();
            let _ = write!(out, "[{a}:{b}]");
        }
        Selector::Filter(_) => out.push_str("[?]"),
    }
}

fn java_class(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "java.lang.Boolean",
        Value::Number(n) if n.is_f64() => "java.lang.Double",
        Value::Number(_) => "java.lang.Integer",
        Value::String(_) => "java.lang.String",
        Value::Array(_) => "java.util.ArrayList",
        Value::Object(_) => "java.util.LinkedHashMap",
    }
}

fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let effective = if index < 0 { len + index } else { index };
    if (0..len).contains(&effective) {
        usize::try_from(effective).ok()
    } else {
        None
    }
}

fn select_definite<'a>(segments: &[Segment], data: &'a Value) -> Result<&'a Value, PathError> {
    let mut current = data;
    let mut at = String::from("$");
    let mut full = String::from("$");
    for s in segments {
        if let Segment::Child(sel) = s {
            canonical(&mut full, sel);
        }
    }
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Child(Selector::Name(name)) => {
                let Value::Object(map) = current else {
                    let mut property = String::new();
                    canonical(&mut property, &Selector::Name(name.clone()));
                    return Err(PathError::NotAnObject { property, at, found: java_class(current) });
                };
                canonical(&mut at, &Selector::Name(name.clone()));
                match map.get(name) {
                    Some(v) => current = v,
                    None if i == last => return Err(PathError::NoResults(full)),
                    None => return Err(PathError::MissingProperty(at)),
                }
            }
            Segment::Child(Selector::Index(index)) => {
                let Value::Array(items) = current else {
                    let mut index_text = String::new();
                    canonical(&mut index_text, &Selector::Index(*index));
                    return Err(PathError::NotAnArray { index: index_text, found: crate::values::compact(current) });
                };
                canonical(&mut at, &Selector::Index(*index));
                match resolve_index(*index, items.len()).and_then(|i| items.get(i)) {
                    Some(v) => current = v,
                    None => return Err(PathError::NoResults(full)),
                }
            }
            _ => return Err(PathError::NoResults(full)),
        }
    }
    Ok(current)
}

fn select_all<'a>(segments: &[Segment], node: &'a Value, root: &'a Value, out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = segments.split_first() else {
        out.push(node);
        return;
    };
    match first {
        Segment::Child(selector) => {
            let mut hits = Vec::new();
            apply(selector, node, root, &mut hits);
            for hit in hits {
                select_all(rest, hit, root, out);
            }
        }
        Segment::Descendant(selector) => {
            let mut hits = Vec::new();
            scan(selector, node, root, &mut hits);
            for hit in hits {
                select_all(rest, hit, root, out);
            }
        }
    }
}

fn scan<'a>(selector: &Selector, node: &'a Value, root: &'a Value, out: &mut Vec<&'a Value>) {
    apply(selector, node, root, out);
    match node {
        Value::Object(map) => {
            for v in map.values() {
                scan(selector, v, root, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                scan(selector, v, root, out);
            }
        }
        _ => {}
    }
}

fn apply<'a>(selector: &Selector, node: &'a Value, root: &'a Value, out: &mut Vec<&'a Value>) {
    match (selector, node) {
        (Selector::Name(n), Value::Object(map)) => out.extend(map.get(n)),
        (Selector::Names(ns), Value::Object(map)) => {
            out.extend(ns.iter().filter_map(|n| map.get(n)));
        }
        (Selector::Index(i), Value::Array(items)) => {
            out.extend(resolve_index(*i, items.len()).and_then(|i| items.get(i)));
        }
        (Selector::Indexes(is), Value::Array(items)) => {
            out.extend(is.iter().filter_map(|i| resolve_index(*i, items.len()).and_then(|i| items.get(i))));
        }
        (Selector::Wildcard, Value::Array(items)) => out.extend(items.iter()),
        (Selector::Wildcard, Value::Object(map)) => out.extend(map.values()),
        (Selector::Slice(from, to, step), Value::Array(items)) => {
            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
            let clamp = |v: i64| if v < 0 { (len + v).max(0) } else { v.min(len) };
            let start = from.map_or(0, clamp);
            let end = to.map_or(len, clamp);
            let step = step.unwrap_or(1).max(1);
            let mut i = start;
            while i < end {
                if let Some(v) = usize::try_from(i).ok().and_then(|i| items.get(i)) {
                    out.push(v);
                }
                i += step;
            }
        }
        (Selector::Filter(filter), Value::Array(items)) => {
            out.extend(items.iter().filter(|item| test(filter, item, root)));
        }
        (Selector::Filter(filter), Value::Object(_)) if test(filter, node, root) => {
            out.push(node);
        }
        _ => {}
    }
}

fn operand_value<'a>(operand: &'a Operand, current: &'a Value, root: &'a Value) -> Option<Cow<'a, Value>> {
    let eval = |segments: &'a [Segment], data: &'a Value| -> Option<Cow<'a, Value>> {
        let definite = segments
            .iter()
            .all(|s| matches!(s, Segment::Child(Selector::Name(_)) | Segment::Child(Selector::Index(_))));
        if definite {
            select_definite(segments, data).ok().map(Cow::Borrowed)
        } else {
            let mut out = Vec::new();
            select_all(segments, data, root, &mut out);
            Some(Cow::Owned(Value::Array(out.into_iter().cloned().collect())))
        }
    };
    match operand {
        Operand::Current(segments) => eval(segments, current),
        Operand::Root(segments) => eval(segments, root),
        Operand::Literal(v) => Some(Cow::Borrowed(v)),
        Operand::Regex(_) => None,
    }
}

fn test(filter: &Filter, current: &Value, root: &Value) -> bool {
    match filter {
        Filter::Or(a, b) => test(a, current, root) || test(b, current, root),
        Filter::And(a, b) => test(a, current, root) && test(b, current, root),
        Filter::Not(a) => !test(a, current, root),
        Filter::Exists(operand) => match operand {
            Operand::Literal(Value::Bool(b)) => *b,
            other => operand_value(other, current, root).is_some(),
        },
        Filter::Compare(left, op, right) => {
            let l = operand_value(left, current, root);
            if let (CmpOp::Matches, Operand::Regex(re)) = (op, right) {
                return matches!(l.as_deref(), Some(Value::String(s)) if re.is_match(s));
            }
            let r = operand_value(right, current, root);
            compare(l.as_deref(), *op, r.as_deref())
        }
    }
}

fn compare(left: Option<&Value>, op: CmpOp, right: Option<&Value>) -> bool {
    use std::cmp::Ordering;
    let equal = |l: Option<&Value>, r: Option<&Value>| match (l, r) {
        (Some(a), Some(b)) => json_eq(a, b),
        _ => false,
    };
    let order = || -> Option<Ordering> {
        match (left?, right?) {
            (Value::Number(a), Value::Number(b)) => compare_numbers(a, b),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            _ => None,
        }
    };
    match op {
        CmpOp::Eq => equal(left, right),
        CmpOp::Ne => !equal(left, right),
        CmpOp::Lt => order() == Some(Ordering::Less),
        CmpOp::Le => matches!(order(), Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => order() == Some(Ordering::Greater),
        CmpOp::Ge => matches!(order(), Some(Ordering::Greater | Ordering::Equal)),
        CmpOp::Matches => false,
        CmpOp::In => match right {
            Some(Value::Array(items)) => left.is_some_and(|l| items.iter().any(|i| json_eq(l, i))),
            _ => false,
        },
        CmpOp::Nin => match right {
            Some(Value::Array(items)) => !left.is_some_and(|l| items.iter().any(|i| json_eq(l, i))),
            _ => false,
        },
    }
}

fn put(node: &mut Value, segments: &[Segment], value: Value) -> Option<()> {
    let Some((first, rest)) = segments.split_first() else {
        *node = value;
        return Some(());
    };
    match (first, node) {
        (Segment::Child(Selector::Name(name)), Value::Object(map)) => {
            if rest.is_empty() {
                map.insert(name.clone(), value);
                return Some(());
            }
            let child = map.entry(name.clone()).or_insert_with(|| Value::Object(Map::new()));
            put(child, rest, value)
        }
        (Segment::Child(Selector::Index(index)), Value::Array(items)) => {
            let i = resolve_index(*index, items.len())?;
            put(items.get_mut(i)?, rest, value)
        }
        _ => None,
    }
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
    in_filter: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(other) => format!("expected '{c}' but found '{other}'"),
                None => format!("expected '{c}' but the path ended"),
            })
        }
    }

    fn segments(&mut self) -> Result<Vec<Segment>, String> {
        let mut segments = Vec::new();
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    if self.eat('.') {
                        let selector = match self.peek() {
                            Some('[') => {
                                self.pos += 1;
                                self.bracket()?
                            }
                            Some('*') => {
                                self.pos += 1;
                                Selector::Wildcard
                            }
                            _ => Selector::Name(self.dot_name()?),
                        };
                        segments.push(Segment::Descendant(selector));
                    } else if self.eat('*') {
                        segments.push(Segment::Child(Selector::Wildcard));
                    } else if self.peek() == Some('[') {
                        // `$.abc.['def ghi']`: the AWS docs write bracket notation after a dot.
                        self.pos += 1;
                        segments.push(Segment::Child(self.bracket()?));
                    } else {
                        segments.push(Segment::Child(Selector::Name(self.dot_name()?)));
                    }
                }
                Some('[') => {
                    self.pos += 1;
                    segments.push(Segment::Child(self.bracket()?));
                }
                _ => return Ok(segments),
            }
        }
    }

    fn dot_name(&mut self) -> Result<String, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let stop =
                c == '.' || c == '[' || c == '(' || (self.in_filter && (c.is_whitespace() || "=!<>&|)],".contains(c)));
            if stop {
                break;
            }
            self.pos += 1;
        }
        if self.peek() == Some('(') {
            return Err("functions such as length() are not supported in paths".to_owned());
        }
        if self.pos == start {
            return Err("a property name is missing after '.'".to_owned());
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn quoted(&mut self) -> Result<String, String> {
        let Some(quote) = self.peek() else {
            return Err("expected a quoted name".to_owned());
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err("an unterminated quoted name".to_owned()),
                Some('\\') => {
                    self.pos += 1;
                    if let Some(c) = self.peek() {
                        out.push(c);
                        self.pos += 1;
                    }
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn integer(&mut self) -> Result<i64, String> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        text.parse::<i64>().map_err(|_| format!("'{text}' is not an array index"))
    }

    fn bracket(&mut self) -> Result<Selector, String> {
        self.skip_ws();
        let selector = match self.peek() {
            Some('\'' | '"') => {
                let mut names = vec![self.quoted()?];
                self.skip_ws();
                while self.eat(',') {
                    self.skip_ws();
                    names.push(self.quoted()?);
                    self.skip_ws();
                }
                if names.len() == 1 {
                    Selector::Name(names.remove(0))
                } else {
                    Selector::Names(names)
                }
            }
            Some('*') => {
                self.pos += 1;
                Selector::Wildcard
            }
            Some('?') => {
                self.pos += 1;
                self.skip_ws();
                self.expect('(')?;
                let was = self.in_filter;
                self.in_filter = true;
                let filter = self.or_expr()?;
                self.in_filter = was;
                self.skip_ws();
                self.expect(')')?;
                Selector::Filter(Box::new(filter))
            }
            Some('(') => return Err("script expressions are not supported in paths".to_owned()),
            Some(c) if c == '-' || c == ':' || c.is_ascii_digit() => self.index_or_slice()?,
            Some(c) => return Err(format!("unexpected '{c}' after '['")),
            None => return Err("an unterminated '['".to_owned()),
        };
        self.skip_ws();
        self.expect(']')?;
        Ok(selector)
    }

    fn index_or_slice(&mut self) -> Result<Selector, String> {
        let mut bounds: Vec<Option<i64>> = Vec::new();
        let mut current = None;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(c) if c == '-' || c.is_ascii_digit() => current = Some(self.integer()?),
                Some(':') => {
                    self.pos += 1;
                    bounds.push(current.take());
                }
                Some(',') if bounds.is_empty() => {
                    let first = current.take().ok_or("an empty array index")?;
                    let mut indexes = vec![first];
                    while self.eat(',') {
                        self.skip_ws();
                        indexes.push(self.integer()?);
                        self.skip_ws();
                    }
                    return Ok(Selector::Indexes(indexes));
                }
                _ => break,
            }
        }
        if bounds.is_empty() {
            return current.map(Selector::Index).ok_or_else(|| "an empty array index".to_owned());
        }
        bounds.push(current);
        if bounds.len() > 3 {
            return Err("a slice has at most three parts".to_owned());
        }
        let get = |i: usize| bounds.get(i).copied().flatten();
        if get(2).is_some_and(|s| s <= 0) {
            return Err("a slice step must be positive".to_owned());
        }
        Ok(Selector::Slice(get(0), get(1), get(2)))
    }

    fn or_expr(&mut self) -> Result<Filter, String> {
        let mut left = self.and_expr()?;
        loop {
            self.skip_ws();
            if self.peek() == Some('|') && self.peek_at(1) == Some('|') {
                self.pos += 2;
                let right = self.and_expr()?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn and_expr(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        loop {
            self.skip_ws();
            if self.peek() == Some('&') && self.peek_at(1) == Some('&') {
                self.pos += 2;
                let right = self.unary()?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn unary(&mut self) -> Result<Filter, String> {
        self.skip_ws();
        if self.peek() == Some('!') && self.peek_at(1) != Some('=') {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.eat('(') {
            let inner = self.or_expr()?;
            self.skip_ws();
            self.expect(')')?;
            return Ok(inner);
        }
        let left = self.operand()?;
        self.skip_ws();
        let Some(op) = self.comparison_op() else {
            return Ok(Filter::Exists(left));
        };
        self.skip_ws();
        let right = self.operand()?;
        if op == CmpOp::Matches && !matches!(right, Operand::Regex(_)) {
            return Err("'=~' needs a /regular expression/".to_owned());
        }
        Ok(Filter::Compare(left, op, right))
    }

    fn comparison_op(&mut self) -> Option<CmpOp> {
        let two: String = self.chars[self.pos..].iter().take(3).collect();
        let (op, len) = if two.starts_with("==") {
            (CmpOp::Eq, 2)
        } else if two.starts_with("!=") {
            (CmpOp::Ne, 2)
        } else if two.starts_with("<=") {
            (CmpOp::Le, 2)
        } else if two.starts_with(">=") {
            (CmpOp::Ge, 2)
        } else if two.starts_with("=~") {
            (CmpOp::Matches, 2)
        } else if two.starts_with('<') {
            (CmpOp::Lt, 1)
        } else if two.starts_with('>') {
            (CmpOp::Gt, 1)
        } else if two.starts_with("nin") {
            (CmpOp::Nin, 3)
        } else if two.starts_with("in") {
            (CmpOp::In, 2)
        } else {
            return None;
        };
        self.pos += len;
        Some(op)
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some('@') => {
                self.pos += 1;
                Ok(Operand::Current(self.segments()?))
            }
            Some('$') => {
                self.pos += 1;
                Ok(Operand::Root(self.segments()?))
            }
            Some('/') => {
                self.pos += 1;
                let mut pattern = String::new();
                loop {
                    match self.peek() {
                        None => return Err("an unterminated regular expression".to_owned()),
                        Some('\\') if self.peek_at(1) == Some('/') => {
                            pattern.push('/');
                            self.pos += 2;
                        }
                        Some('/') => {
                            self.pos += 1;
                            break;
                        }
                        Some(c) => {
                            pattern.push(c);
                            self.pos += 1;
                        }
                    }
                }
                let mut flags = String::new();
                while let Some(c) = self.peek().filter(char::is_ascii_alphabetic) {
                    flags.push(c);
                    self.pos += 1;
                }
                let prefix = if flags.contains('i') { "(?i)" } else { "" };
                regex::Regex::new(&format!("{prefix}^(?:{pattern})$"))
                    .map(Operand::Regex)
                    .map_err(|e| format!("an invalid regular expression: {e}"))
            }
            _ => self.literal().map(Operand::Literal),
        }
    }

    fn literal(&mut self) -> Result<Value, String> {
        self.skip_ws();
        match self.peek() {
            Some('\'' | '"') => self.quoted().map(Value::String),
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.eat(']') {
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.literal()?);
                    self.skip_ws();
                    if self.eat(']') {
                        return Ok(Value::Array(items));
                    }
                    self.expect(',')?;
                }
            }
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || "-+.eE".contains(c)) {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                serde_json::from_str::<serde_json::Number>(&text)
                    .map(Value::Number)
                    .map_err(|_| format!("'{text}' is not a number"))
            }
            _ => {
                for (word, value) in [("true", Value::Bool(true)), ("false", Value::Bool(false)), ("null", Value::Null)]
                {
                    let len = word.len();
                    let text: String = self.chars[self.pos..].iter().take(len).collect();
                    if text == word {
                        self.pos += len;
                        return Ok(value);
                    }
                }
                Err(match self.peek() {
                    Some(c) => format!("unexpected '{c}' in a filter"),
                    None => "a filter ended early".to_owned(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(path: &str, data: &Value) -> Result<Value, PathError> {
        Path::parse(path).unwrap().evaluate(data)
    }

    #[test]
    fn definite_paths_select_one_value() {
        let data = json!({"a": {"b-c": [1, 2, {"d": true}]}, "x y": 5});
        assert_eq!(eval("$", &data).unwrap(), data);
        assert_eq!(eval("$.a.b-c[2].d", &data).unwrap(), json!(true));
        assert_eq!(eval("$.a['b-c'][-1]", &data).unwrap(), json!({"d": true}));
        assert_eq!(eval("$['x y']", &data).unwrap(), json!(5));
    }

    #[test]
    fn missing_values_are_reported_as_jayway_does() {
        let data = json!({"a": {"b": 1}});
        assert_eq!(
            eval("$.NoSuchInputPath", &data).unwrap_err().to_string(),
            "No results for path: $['NoSuchInputPath']"
        );
        assert_eq!(eval("$.no.such.result.path", &data).unwrap_err().to_string(), "Missing property in path $['no']");
        assert_eq!(eval("$.a.c", &data).unwrap_err().to_string(), "No results for path: $['a']['c']");
    }

    #[test]
    fn indefinite_paths_select_every_match() {
        let data = json!({"items": [{"v": 1}, {"v": 2}, {"v": 3}]});
        assert_eq!(eval("$.items[*].v", &data).unwrap(), json!([1, 2, 3]));
        assert_eq!(eval("$.items[1:].v", &data).unwrap(), json!([2, 3]));
        assert_eq!(eval("$.items[:1]", &data).unwrap(), json!([{"v": 1}]));
        assert_eq!(eval("$..v", &data).unwrap(), json!([1, 2, 3]));
        assert_eq!(eval("$.missing[*]", &data).unwrap(), json!([]));
        assert_eq!(eval("$.items[0,2].v", &data).unwrap(), json!([1, 3]));
    }

    #[test]
    fn filters_select_matching_items() {
        let data = json!({"users": [
            {"year": 1997, "status": 0, "name": "ann"},
            {"year": 1998, "status": 1, "name": "bob"}
        ]});
        assert_eq!(
            eval("$.users[?(@.status == 0)]", &data).unwrap(),
            json!([{"year": 1997, "status": 0, "name": "ann"}])
        );
        assert_eq!(eval("$.users[?(@.year > 1997 && @.name =~ /b.*/)].name", &data).unwrap(), json!(["bob"]));
        assert_eq!(eval("$.users[?(@.name in ['ann'])].year", &data).unwrap(), json!([1997]));
        assert_eq!(eval("$.users[?(@.nope)]", &data).unwrap(), json!([]));
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in ["", "a", "$.", "$.a.length()", "$[", "$a", "$.a[?(@.b ==)]"] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_creates_nested_objects() {
        let p = Path::parse("$.a.b").unwrap();
        assert_eq!(p.set(json!({"x": 1}), json!(2)), Some(json!({"x": 1, "a": {"b": 2}})));
        assert_eq!(p.set(json!("text"), json!(2)), None);
        assert_eq!(p.set(json!({"a": 3}), json!(2)), None);
    }
}
