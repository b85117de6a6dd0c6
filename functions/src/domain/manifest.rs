//! The manifest, `aliasflow.yaml`: the user-facing contract of a service. It is read from YAML
//! nodes by hand, not through serde, so that every problem is reported at once with its field
//! path and line. The parsed [`Manifest`] also travels as JSON in state machine inputs (its serde
//! form), which round-trips.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, Tag, YamlDataOwned};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::domain::naming;

/// The runtime of every function that does not say otherwise.
pub const DEFAULT_RUNTIME: &str = "provided.al2023";
/// The handler of every function that does not say otherwise.
pub const DEFAULT_HANDLER: &str = "bootstrap";
/// Deployments kept per stage for rollback, unless `retain` says otherwise.
pub const DEFAULT_RETAIN: u32 = 10;
/// Memory in MB, unless a function says otherwise.
pub const DEFAULT_MEMORY: u32 = 128;
/// Timeout in seconds, unless a function says otherwise.
pub const DEFAULT_TIMEOUT: u32 = 3;

/// The Lambda runtime ids a function may use: those Lambda supports and has not deprecated.
/// Deprecated ones are refused with their successor named (cfn-lint warns on them too).
pub const RUNTIMES: &[&str] = &[
    "dotnet10",
    "java11",
    "java17",
    "java21",
    "java25",
    "java8.al2",
    "nodejs22.x",
    "nodejs24.x",
    "provided.al2023",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "ruby3.3",
    "ruby3.4",
    "ruby4.0",
];

/// Runtimes Lambda has deprecated, with the successor to name in the message.
const DEPRECATED_RUNTIMES: &[(&str, &str)] = &[
    ("dotnet6", "dotnet10"),
    ("dotnet8", "dotnet10"),
    ("dotnetcore3.1", "dotnet10"),
    ("go1.x", "provided.al2023"),
    ("java8", "java25"),
    ("nodejs16.x", "nodejs24.x"),
    ("nodejs18.x", "nodejs24.x"),
    ("nodejs20.x", "nodejs24.x"),
    ("provided", "provided.al2023"),
    ("provided.al2", "provided.al2023"),
    ("python3.8", "python3.14"),
    ("python3.9", "python3.14"),
    ("python3.10", "python3.14"),
    ("ruby2.7", "ruby4.0"),
    ("ruby3.2", "ruby4.0"),
];

/// Environment variables Lambda sets itself and refuses to take.
const RESERVED_ENVIRONMENT: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_REGION",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
];

/// CloudFormation's pseudo parameters, which a `Ref` may always name.
const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// HTTP methods a route may name.
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];

/// Keys accepted at each level; [`schema`] lists exactly these (a test checks it).
const MANIFEST_KEYS: &[&str] = &[
    "service",
    "region",
    "runtime",
    "architecture",
    "logs",
    "retain",
    "role",
    "functions",
    "resources",
    "outputs",
    "stage_resources",
    "stage_outputs",
    "api",
    "stages",
];
const FUNCTION_KEYS: &[&str] = &[
    "code",
    "handler",
    "runtime",
    "architecture",
    "memory",
    "timeout",
    "description",
    "environment",
    "instance_per_stage",
];
const API_KEYS: &[&str] = &["routes"];
const STAGE_KEYS: &[&str] = &["region", "ttl", "independent"];
// No `Condition`: the manifest has no `Conditions` section for it to name.
const RESOURCE_KEYS: &[&str] = &[
    "Type",
    "Properties",
    "DependsOn",
    "Metadata",
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "CreationPolicy",
    "UpdatePolicy",
];
const OUTPUT_KEYS: &[&str] = &["Value", "Description", "Export"];
const DELETION_POLICIES: &[&str] = &["Delete", "Retain", "RetainExceptOnCreate", "Snapshot"];

/// CloudFormation short-form tags, turned into their long form (`!Sub x` -> `{"Fn::Sub": x}`).
const SHORT_FORMS: &[&str] = &[
    "Ref",
    "Condition",
    "GetAtt",
    "Sub",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "Base64",
    "Cidr",
    "ImportValue",
    "GetAZs",
    "Length",
    "ToJsonString",
];

/// Lambda's limit on the environment of one function, keys and values together.
const MAX_ENVIRONMENT_BYTES: usize = 4096;

/// A parsed, valid `aliasflow.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Manifest {
    /// The service name, `[a-z][a-z0-9-]*`; stack and function names derive from it.
    pub service: String,
    /// The home region: service stack, history, and stages without a region of their own.
    pub region: String,
    /// The default runtime of every function.
    #[serde(default = "default_runtime")]
    pub runtime: String,
    /// The default architecture of every function.
    #[serde(default)]
    pub architecture: Architecture,
    /// One log group per function, or one per function and stage.
    #[serde(default)]
    pub logs: LogsMode,
    /// Deployments kept per stage for rollback.
    #[serde(default = "default_retain")]
    pub retain: u32,
    /// An existing execution role for every function; `None`: the service stack creates one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The functions, by manifest key.
    pub functions: BTreeMap<String, FunctionSpec>,
    /// CloudFormation resources of the service stack, by logical id.
    #[serde(default)]
    pub resources: BTreeMap<String, Value>,
    /// CloudFormation outputs of the service stack; each also reaches every stage stack as a
    /// parameter of the same name.
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    /// CloudFormation resources of every stage stack.
    #[serde(default)]
    pub stage_resources: BTreeMap<String, Value>,
    /// CloudFormation outputs of every stage stack, what `${stage_output:Name}` resolves against.
    #[serde(default)]
    pub stage_outputs: BTreeMap<String, Value>,
    /// The REST API, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiSpec>,
    /// Per-stage settings, by stage name or glob (`pr-*`).
    #[serde(default)]
    pub stages: BTreeMap<String, StageSettings>,
}

/// A Lambda instruction set architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Architecture {
    /// Graviton, the default.
    #[default]
    #[serde(rename = "arm64")]
    Arm64,
    /// Intel and AMD.
    #[serde(rename = "x86_64")]
    X86_64,
}

impl Architecture {
    /// The name Lambda and CloudFormation use.
    ///
    /// ```
    /// use functions::domain::manifest::Architecture;
    /// assert_eq!(Architecture::X86_64.as_str(), "x86_64");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Arm64 => "arm64",
            Self::X86_64 => "x86_64",
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where functions log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogsMode {
    /// One log group per function and stage, in the stage stack; binds versions to the stage.
    Stage,
    /// One log group per function, in the service stack.
    #[default]
    Service,
}

/// One function of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct FunctionSpec {
    /// A `.zip` file or a directory, as written: relative to the manifest's folder.
    pub code: String,
    /// The handler.
    #[serde(default = "default_handler")]
    pub handler: String,
    /// Overrides the service's runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Overrides the service's architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    /// Memory in MB, 128 to 10240.
    #[serde(default = "default_memory")]
    pub memory: u32,
    /// Timeout in seconds, 1 to 900.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
    /// At most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Environment variables; values may hold `${stage}`, `${stage_output:Name}` and
    /// `${service_output:Name}`.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// A separate physical function per stage, `<service>-<stage>-<fn>`, in the stage stack.
    #[serde(default)]
    pub instance_per_stage: bool,
}

/// The optional REST API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSpec {
    /// `"GET /orders/{id}"` -> function key.
    pub routes: BTreeMap<String, String>,
}

/// Settings of the stages a `stages` key names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StageSettings {
    /// The stage's region; `None`: the home region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Cleanup removes the stage this long after its last deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Ttl>,
    /// The stage is its own home: own service stack and history in its region.
    #[serde(default)]
    pub independent: bool,
}

/// A time to live, written `7d`, `12h` or `30m`, in YAML and in its serde form alike (so the
/// serde form of a manifest is a manifest the parser accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Ttl {
    /// Seconds.
    pub seconds: u64,
}

impl Ttl {
    /// Reads `<n>d`, `<n>h` or `<n>m`, with n at least 1.
    ///
    /// ```
    /// use functions::domain::manifest::Ttl;
    /// assert_eq!(Ttl::parse("7d").map(|t| t.seconds), Some(604_800));
    /// assert_eq!(Ttl::parse("30m").map(|t| t.seconds), Some(1_800));
    /// assert_eq!(Ttl::parse("0h"), None);
    /// assert_eq!(Ttl::parse("7 days"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Ttl> {
        let unit = match text.chars().last()? {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            _ => return None,
        };
        let digits = &text[..text.len() - 1];
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let count: u64 = digits.parse().ok()?;
        let seconds = count.checked_mul(unit)?;
        (seconds > 0).then_some(Ttl { seconds })
    }
}

impl From<Ttl> for String {
    fn from(ttl: Ttl) -> Self {
        ttl.to_string()
    }
}

impl TryFrom<String> for Ttl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Ttl::parse(&text).ok_or_else(|| format!("{text} is not a duration like 7d, 12h or 30m"))
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seconds {
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

/// A stage's settings after defaults and glob matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedStage {
    /// The region of its stage stack (the home region unless set).
    pub region: String,
    /// When cleanup removes it, if ever.
    pub ttl: Option<Ttl>,
    /// Its own home: own service stack and history.
    pub independent: bool,
    /// A service stage in another region: only its stage stack is there, and every function
    /// in it is an instance per stage.
    pub remote: bool,
}

/// Every problem of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestErrors {
    /// The file, as given (for messages only).
    pub file: String,
    /// The problems, by line.
    pub errors: Vec<ManifestError>,
}

/// One problem of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestError {
    /// The field path, e.g. `functions.api.memory`; empty for the file as a whole.
    pub path: String,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong, and what is allowed.
    pub message: String,
}

impl fmt::Display for ManifestErrors {
    /// One line per problem: `file:line: path: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match error.line {
                Some(line) => write!(f, "{}:{line}: ", self.file)?,
                None => write!(f, "{}: ", self.file)?,
            }
            if !error.path.is_empty() {
                write!(f, "{}: ", error.path)?;
            }
            f.write_str(&error.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

impl Manifest {
    /// Parses and validates a manifest; `file` names it in messages only.
    ///
    /// ```
    /// use functions::domain::manifest::Manifest;
    /// let text = "service: shop\nregion: us-east-1\nfunctions:\n  api: { code: a.zip, memory: 100000 }\n";
    /// let err = Manifest::parse(text, "aliasflow.yaml").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "aliasflow.yaml:4: functions.api.memory: 100000 is above Lambda's 10240 MB"
    /// );
    /// ```
    pub fn parse(text: &str, file: &str) -> Result<Manifest, ManifestErrors> {
        let fail = |errors| ManifestErrors { file: file.to_owned(), errors };
        let documents = MarkedYamlOwned::load_from_str(text).map_err(|e| {
            let line = Some(e.marker().line()).filter(|l| *l > 0);
            fail(vec![ManifestError { path: String::new(), line, message: format!("not valid YAML: {}", e.info()) }])
        })?;
        let root = match documents.as_slice() {
            [root] => root,
            [] => {
                return Err(fail(vec![ManifestError {
                    path: String::new(),
                    line: None,
                    message: "the file is empty; a manifest needs at least service, region and functions".into(),
                }]))
            }
            [_, second, ..] => {
                return Err(fail(vec![ManifestError {
                    path: String::new(),
                    line: line(second),
                    message: format!("holds {} YAML documents; a manifest is exactly one", documents.len()),
                }]))
            }
        };
        let mut reader = Reader { source: text, errors: Vec::new() };
        let manifest = reader.manifest(root);
        let mut errors = reader.errors;
        match manifest {
            Some(manifest) if errors.is_empty() => {
                // Names that collide in a stage the manifest names literally show here already;
                // any other stage is checked when it is deployed (`Plan`).
                let collisions: Vec<ManifestError> = manifest
                    .stages
                    .keys()
                    .filter(|stage| !stage.contains('*'))
                    .filter_map(|stage| manifest.check_stage(stage).err())
                    .flat_map(|e| e.errors)
                    .collect();
                if collisions.is_empty() {
                    Ok(manifest)
                } else {
                    Err(fail(collisions))
                }
            }
            _ => {
                // Stable: problems on one line keep the order they were found in.
                errors.sort_by_key(|e| e.line.unwrap_or(0));
                Err(fail(errors))
            }
        }
    }

    /// Reads and parses the manifest at `path`. A file that cannot be read is one error naming it.
    pub fn load(path: &Path) -> Result<Manifest, ManifestErrors> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Manifest::parse(&text, &file),
            Err(e) => Err(ManifestErrors {
                errors: vec![ManifestError {
                    path: String::new(),
                    line: None,
                    message: format!("cannot read the manifest: {e}; name another with -f/--file"),
                }],
                file,
            }),
        }
    }

    /// The settings of `stage`: its own key first, else the first glob that matches it (in key
    /// order), else the defaults.
    ///
    /// ```
    /// use functions::domain::manifest::Manifest;
    /// let m = Manifest::parse(r#"
    /// service: shop
    /// region: us-east-1
    /// functions: { api: { code: api.zip } }
    /// stages:
    ///   eu: { region: eu-west-1 }
    ///   "pr-*": { ttl: 7d }
    /// "#, "aliasflow.yaml")?;
    /// assert!(m.stage_settings("eu").remote);
    /// assert_eq!(m.stage_settings("pr-7").ttl.map(|t| t.seconds), Some(7 * 86_400));
    /// assert_eq!(m.stage_settings("dev").region, "us-east-1");
    /// # Ok::<(), functions::domain::manifest::ManifestErrors>(())
    /// ```
    pub fn stage_settings(&self, stage: &str) -> ResolvedStage {
        let settings = self.stages.get(stage).or_else(|| {
            self.stages
                .iter()
                .find(|(key, _)| key.contains('*') && glob_matches(key, stage))
                .map(|(_, settings)| settings)
        });
        let region = settings.and_then(|s| s.region.clone()).unwrap_or_else(|| self.region.clone());
        let independent = settings.is_some_and(|s| s.independent);
        ResolvedStage {
            remote: region != self.region && !independent,
            ttl: settings.and_then(|s| s.ttl),
            independent,
            region,
        }
    }

    /// Checks that `stage` is a valid stage name and that every name derived for it (stage stack,
    /// instance-per-stage functions) is within AWS's limits and distinct from the shared
    /// functions' names.
    pub fn check_stage(&self, stage: &str) -> Result<(), ManifestErrors> {
        let mut errors = Vec::new();
        let mut error = |path: &str, message: String| {
            errors.push(ManifestError { path: path.to_owned(), line: None, message });
        };
        if let Err(e) = naming::check_stage_name(stage) {
            error("stage", e.to_string());
        } else {
            if let Err(e) = naming::stage_stack_name(&self.service, stage) {
                error("stage", e.to_string());
            }
            let shared: BTreeMap<String, &String> = self
                .functions
                .keys()
                .filter(|f| !self.is_instance_per_stage(f, stage))
                .map(|f| (naming::function_name_unchecked(&self.service, None, f), f))
                .collect();
            for function in self.functions.keys().filter(|f| self.is_instance_per_stage(f, stage)) {
                let path = format!("functions.{function}");
                match naming::function_name(&self.service, Some(stage), function) {
                    Err(e) => error(&path, format!("in stage {stage}: {e}")),
                    Ok(name) => {
                        if let Some(other) = shared.get(&name) {
                            error(
                                &path,
                                format!(
                                    "in stage {stage} its instance is named {name}, which is \
                                    also the name of function {other}; rename one"
                                ),
                            );
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ManifestErrors { file: "aliasflow.yaml".to_owned(), errors })
        }
    }

    /// The runtime of `function`: its own, else the service's.
    pub fn function_runtime(&self, function: &str) -> &str {
        self.functions.get(function).and_then(|f| f.runtime.as_deref()).unwrap_or(&self.runtime)
    }

    /// The architecture of `function`: its own, else the service's.
    pub fn function_architecture(&self, function: &str) -> Architecture {
        self.functions.get(function).and_then(|f| f.architecture).unwrap_or(self.architecture)
    }

    /// Whether `function` is a separate physical function in `stage`: it says so, or the stage
    /// is remote (Lambda functions are regional).
    pub fn is_instance_per_stage(&self, function: &str, stage: &str) -> bool {
        self.functions.get(function).is_some_and(|f| f.instance_per_stage || self.stage_settings(stage).remote)
    }

    /// Whether `function`'s configuration binds to a stage, so its versions are not shared:
    /// `logs: stage`, or an environment value with `${stage}` or `${stage_output:..}`.
    pub fn stage_bound(&self, function: &str) -> bool {
        self.functions.get(function).is_some_and(|f| {
            self.logs == LogsMode::Stage
                || f.environment.values().any(|v| v.contains("${stage}") || v.contains("${stage_output:"))
        })
    }
}

/// Splits a (valid) route key into its method and path segments: `"GET /orders/{id}"` ->
/// `("GET", ["orders", "{id}"])`; the root path has no segments.
pub fn split_route(route: &str) -> (&str, Vec<&str>) {
    let (method, path) = route.split_once(' ').unwrap_or((route, ""));
    (method, path.split('/').filter(|s| !s.is_empty()).collect())
}

/// Whether `stage` matches `glob`, where `*` stands for any run of characters.
///
/// ```
/// use functions::domain::manifest::glob_matches;
/// assert!(glob_matches("pr-*", "pr-7"));
/// assert!(glob_matches("*-tmp", "x-tmp"));
/// assert!(!glob_matches("pr-*", "prod"));
/// ```
pub fn glob_matches(glob: &str, stage: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return glob == stage;
    };
    let Some(mut rest) = stage.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn default_runtime() -> String {
    DEFAULT_RUNTIME.to_owned()
}
fn default_handler() -> String {
    DEFAULT_HANDLER.to_owned()
}
fn default_retain() -> u32 {
    DEFAULT_RETAIN
}
fn default_memory() -> u32 {
    DEFAULT_MEMORY
}
fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT
}

type Node = MarkedYamlOwned;

fn line(node: &Node) -> Option<usize> {
    Some(node.span.start.line()).filter(|l| *l > 0)
}

/// What a node is, for messages.
fn describe(node: &Node) -> &'static str {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Null) => "empty",
        YamlDataOwned::Value(ScalarOwned::Boolean(_)) => "true/false",
        YamlDataOwned::Value(ScalarOwned::Integer(_) | ScalarOwned::FloatingPoint(_)) => "a number",
        YamlDataOwned::Value(ScalarOwned::String(_)) | YamlDataOwned::Representation(..) => "a string",
        YamlDataOwned::Sequence(_) => "a list",
        YamlDataOwned::Mapping(_) => "a mapping",
        YamlDataOwned::Tagged(..) => "a tagged value",
        YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => "an invalid value",
    }
}

/// `parent.key`, with keys that are not plain words quoted.
fn join(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*'));
    let key = if plain { key.to_owned() } else { format!("{key:?}") };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// One `key: value` of a mapping.
struct Entry<'n> {
    key: String,
    line: Option<usize>,
    value: &'n Node,
}

/// The known keys of a mapping (unknown ones were reported).
struct Fields<'n> {
    entries: Vec<Entry<'n>>,
    /// The line of the mapping's own key, for "is missing" messages.
    line: Option<usize>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&Entry<'n>> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// The names a `Ref`, `Fn::GetAtt` or `Fn::Sub` may use in one section.
struct Scope<'a> {
    /// Resources of the same stack.
    resources: &'a BTreeSet<String>,
    /// Parameters of the same stack.
    parameters: &'a BTreeSet<String>,
    /// What may be named, for messages.
    allowed: &'static str,
}

impl Scope<'_> {
    fn allows_ref(&self, name: &str) -> bool {
        self.resources.contains(name) || self.parameters.contains(name) || PSEUDO_PARAMETERS.contains(&name)
    }
}

/// Reads nodes into the typed manifest, collecting every problem.
struct Reader<'s> {
    source: &'s str,
    errors: Vec<ManifestError>,
}

impl Reader<'_> {
    fn report(&mut self, path: &str, line: Option<usize>, message: impl Into<String>) {
        self.errors.push(ManifestError { path: path.to_owned(), line, message: message.into() });
    }

    fn at(&mut self, path: &str, node: &Node, message: impl Into<String>) {
        self.report(path, line(node), message);
    }

    /// The text of a scalar as written, so `1.10` stays `1.10` and not `1.1`.
    fn written(&self, node: &Node) -> String {
        let (start, end) = (node.span.start.index(), node.span.end.index());
        let text: String = self.source.chars().skip(start).take(end.saturating_sub(start)).collect();
        text.trim().to_owned()
    }

    /// A mapping's entries; an empty value is an empty mapping.
    fn entries<'n>(&mut self, node: &'n Node, path: &str) -> Vec<Entry<'n>> {
        match &node.data {
            YamlDataOwned::Mapping(map) => {
                let mut entries = Vec::with_capacity(map.len());
                for (key, value) in map {
                    let text = match &key.data {
                        YamlDataOwned::Value(ScalarOwned::String(s)) => s.clone(),
                        YamlDataOwned::Value(
                            ScalarOwned::Integer(_) | ScalarOwned::Boolean(_) | ScalarOwned::FloatingPoint(_),
                        ) => self.written(key),
                        _ => {
                            self.at(path, key, format!("keys must be plain words, not {}", describe(key)));
                            continue;
                        }
                    };
                    entries.push(Entry { key: text, line: line(key), value });
                }
                entries
            }
            YamlDataOwned::Value(ScalarOwned::Null) => Vec::new(),
            _ => {
                self.at(path, node, format!("must be a mapping (key: value), not {}", describe(node)));
                Vec::new()
            }
        }
    }

    /// A mapping whose keys must be among `allowed`; the others are reported.
    fn fields<'n>(&mut self, node: &'n Node, path: &str, line: Option<usize>, allowed: &[&str]) -> Fields<'n> {
        let mut entries = self.entries(node, path);
        entries.retain(|entry| {
            if allowed.contains(&entry.key.as_str()) {
                return true;
            }
            let hint = allowed
                .iter()
                .find(|a| edit_distance(a, &entry.key) <= 2)
                .map(|a| format!("did you mean `{a}`? "))
                .unwrap_or_default();
            self.errors.push(ManifestError {
                path: join(path, &entry.key),
                line: entry.line,
                message: format!("unknown key; {hint}allowed here: {}", allowed.join(", ")),
            });
            false
        });
        Fields { entries, line }
    }

    fn required<'f, 'n>(&mut self, fields: &'f Fields<'n>, path: &str, key: &str, what: &str) -> Option<&'f Entry<'n>> {
        let entry = fields.get(key);
        if entry.is_none() {
            self.report(&join(path, key), fields.line, format!("is missing: {what}"));
        }
        entry
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.data {
            YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
            YamlDataOwned::Tagged(tag, _) => {
                self.at(
                    path,
                    node,
                    format!("must be a plain string; tags like !{} belong in CloudFormation sections", tag.suffix),
                );
                None
            }
            _ => {
                self.at(path, node, format!("must be a string, not {}", describe(node)));
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.data {
            YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(*b),
            _ => {
                self.at(path, node, format!("must be true or false, not {}", describe(node)));
                None
            }
        }
    }

    fn integer(&mut self, node: &Node, path: &str) -> Option<i64> {
        match &node.data {
            YamlDataOwned::Value(ScalarOwned::Integer(n)) => Some(*n),
            _ => {
                self.at(path, node, format!("must be a whole number, not {}", describe(node)));
                None
            }
        }
    }

    /// A whole number within `min..=max` of what `owner` allows, e.g. "Lambda's" and " MB".
    fn bounded(&mut self, node: &Node, path: &str, (min, max): (u32, u32), owner: &str, unit: &str) -> Option<u32> {
        let n = self.integer(node, path)?;
        if n < i64::from(min) {
            self.at(path, node, format!("{n} is below {owner} minimum of {min}{unit}"));
            None
        } else if n > i64::from(max) {
            self.at(path, node, format!("{n} is above {owner} {max}{unit}"));
            None
        } else {
            u32::try_from(n).ok()
        }
    }

    /// A string that must be one of `choices`.
    fn choice(&mut self, node: &Node, path: &str, choices: &[&str]) -> Option<String> {
        let value = self.string(node, path)?;
        if choices.contains(&value.as_str()) {
            Some(value)
        } else {
            self.at(path, node, format!("`{value}` is not one of: {}", choices.join(", ")));
            None
        }
    }

    fn region(&mut self, node: &Node, path: &str) -> Option<String> {
        let region = self.string(node, path)?;
        if is_region(&region) {
            Some(region)
        } else {
            self.at(path, node, format!("`{region}` is not a region name like us-east-1 or eu-west-1"));
            None
        }
    }

    fn runtime(&mut self, node: &Node, path: &str) -> Option<String> {
        let runtime = self.string(node, path)?;
        if RUNTIMES.contains(&runtime.as_str()) {
            return Some(runtime);
        }
        let message = match DEPRECATED_RUNTIMES.iter().find(|(old, _)| *old == runtime) {
            Some((_, successor)) => format!("Lambda has deprecated `{runtime}`; use {successor}"),
            None => format!("`{runtime}` is not a Lambda runtime; use one of: {}", RUNTIMES.join(", ")),
        };
        self.at(path, node, message);
        None
    }

    fn architecture(&mut self, node: &Node, path: &str) -> Option<Architecture> {
        match self.choice(node, path, &["arm64", "x86_64"])?.as_str() {
            "x86_64" => Some(Architecture::X86_64),
            _ => Some(Architecture::Arm64),
        }
    }

    fn manifest(&mut self, root: &Node) -> Option<Manifest> {
        if !matches!(root.data, YamlDataOwned::Mapping(_)) {
            self.at("", root, "a manifest is a mapping with at least service, region and functions");
            return None;
        }
        let f = self.fields(root, "", None, MANIFEST_KEYS);

        let service = self.required(&f, "", "service", "the service name, e.g. `service: shop`");
        let service = service.and_then(|e| {
            let service = self.string(e.value, "service")?;
            if !naming::is_lower_name(&service) {
                let rule = "use lowercase letters, digits and '-', starting with a letter, so the \
                    names derived from it work";
                self.at("service", e.value, format!("`{service}` is not valid: {rule}"));
                return None;
            }
            if let Err(err) = naming::service_stack_name(&service) {
                self.at("service", e.value, err.to_string());
                return None;
            }
            Some(service)
        });
        let region = self
            .required(&f, "", "region", "the home region, e.g. `region: us-east-1`")
            .and_then(|e| self.region(e.value, "region"));
        let runtime = match f.get("runtime") {
            Some(e) => self.runtime(e.value, "runtime"),
            None => Some(DEFAULT_RUNTIME.to_owned()),
        };
        let architecture = match f.get("architecture") {
            Some(e) => self.architecture(e.value, "architecture"),
            None => Some(Architecture::default()),
        };
        let logs = match f.get("logs") {
            Some(e) => self.choice(e.value, "logs", &["stage", "service"]).map(|l| match l.as_str() {
                "stage" => LogsMode::Stage,
                _ => LogsMode::Service,
            }),
            None => Some(LogsMode::default()),
        };
        let retain = match f.get("retain") {
            Some(e) => self.integer(e.value, "retain").and_then(|n| match u32::try_from(n) {
                Ok(n @ 1..=100) => Some(n),
                _ => {
                    self.at("retain", e.value, format!("{n} is out of range: keep 1 to 100 deployments per stage"));
                    None
                }
            }),
            None => Some(DEFAULT_RETAIN),
        };
        let role = match f.get("role") {
            Some(e) => self.string(e.value, "role").and_then(|role| {
                if is_role_arn(&role) {
                    Some(Some(role))
                } else {
                    self.at(
                        "role",
                        e.value,
                        format!(
                            "`{role}` is not an IAM role ARN like \
                        arn:aws:iam::123456789012:role/name"
                        ),
                    );
                    None
                }
            }),
            None => Some(None),
        };

        // Names first: sections refer to each other in any order.
        let section_keys = |key: &str| f.get(key).map(|e| mapping_keys(e.value)).unwrap_or_default();
        let output_names = section_keys("outputs");
        let stage_output_names = section_keys("stage_outputs");

        let functions = self
            .required(
                &f,
                "",
                "functions",
                "at least one function, e.g. `functions: { api: { \
                code: build/api.zip } }`",
            )
            .map(|e| {
                let entries = self.entries(e.value, "functions");
                if entries.is_empty()
                    && matches!(e.value.data, YamlDataOwned::Mapping(_) | YamlDataOwned::Value(ScalarOwned::Null))
                {
                    self.report("functions", e.line, "needs at least one function");
                }
                let mut functions = BTreeMap::new();
                for entry in entries {
                    let path = join("functions", &entry.key);
                    if !naming::is_lower_name(&entry.key) {
                        self.report(
                            &path,
                            entry.line,
                            "function keys use lowercase letters, \
                            digits and '-', starting with a letter",
                        );
                    }
                    if let Some(spec) = self.function(&entry, &path, &output_names, &stage_output_names) {
                        functions.insert(entry.key, spec);
                    }
                }
                functions
            })
            .unwrap_or_default();

        let role_generated = matches!(role, Some(None));
        let mut service_resources = section_keys("resources");
        service_resources.extend(generated_service_resources(
            &functions,
            logs == Some(LogsMode::Service),
            role_generated,
            f.get("api").is_some(),
        ));
        let no_parameters = BTreeSet::new();
        let service_scope = Scope {
            resources: &service_resources,
            parameters: &no_parameters,
            allowed: "a resource of the service stack or a pseudo parameter (AWS::Region, ...)",
        };
        let stage_resource_names = section_keys("stage_resources");
        let mut stage_parameters = output_names.clone();
        stage_parameters.insert("Stage".to_owned());
        let stage_scope = Scope {
            resources: &stage_resource_names,
            parameters: &stage_parameters,
            allowed: "a stage resource, a service output (it arrives as a parameter), `Stage` or \
                a pseudo parameter (AWS::Region, ...)",
        };
        let resources =
            f.get("resources").map(|e| self.resources(e.value, "resources", &service_scope)).unwrap_or_default();
        let outputs = f.get("outputs").map(|e| self.outputs(e.value, "outputs", &service_scope)).unwrap_or_default();
        let stage_resources = f
            .get("stage_resources")
            .map(|e| self.resources(e.value, "stage_resources", &stage_scope))
            .unwrap_or_default();
        let stage_outputs =
            f.get("stage_outputs").map(|e| self.outputs(e.value, "stage_outputs", &stage_scope)).unwrap_or_default();

        let api = match f.get("api") {
            Some(e) => self.api(e, &functions).map(Some),
            None => Some(None),
        };
        let stages = f.get("stages").map(|e| self.stages(e.value)).unwrap_or_default();

        self.check_generated_names(&f, &functions);

        Some(Manifest {
            service: service?,
            region: region?,
            runtime: runtime?,
            architecture: architecture?,
            logs: logs?,
            retain: retain?,
            role: role?,
            functions,
            resources,
            outputs,
            stage_resources,
            stage_outputs,
            api: api?,
            stages,
        })
    }

    fn function(
        &mut self,
        entry: &Entry<'_>,
        path: &str,
        outputs: &BTreeSet<String>,
        stage_outputs: &BTreeSet<String>,
    ) -> Option<FunctionSpec> {
        let f = self.fields(entry.value, path, entry.line, FUNCTION_KEYS);
        let field = |key: &str| join(path, key);
        let code = self
            .required(&f, path, "code", "a .zip file or a directory, relative to the manifest's folder")
            .and_then(|e| {
                let code = self.string(e.value, &field("code"))?;
                if code.trim().is_empty() {
                    self.at(&field("code"), e.value, "is empty: name a .zip file or a directory");
                    return None;
                }
                Some(code)
            });
        let handler = match f.get("handler") {
            Some(e) => self.string(e.value, &field("handler")).and_then(|h| {
                if h.is_empty() || h.len() > 128 || h.chars().any(char::is_whitespace) {
                    self.at(&field("handler"), e.value, "Lambda wants 1 to 128 characters without spaces");
                    None
                } else {
                    Some(h)
                }
            }),
            None => Some(DEFAULT_HANDLER.to_owned()),
        };
        let runtime = match f.get("runtime") {
            Some(e) => self.runtime(e.value, &field("runtime")).map(Some),
            None => Some(None),
        };
        let architecture = match f.get("architecture") {
            Some(e) => self.architecture(e.value, &field("architecture")).map(Some),
            None => Some(None),
        };
        let memory = match f.get("memory") {
            Some(e) => self.bounded(e.value, &field("memory"), (128, 10_240), "Lambda's", " MB"),
            None => Some(DEFAULT_MEMORY),
        };
        let timeout = match f.get("timeout") {
            Some(e) => self.bounded(e.value, &field("timeout"), (1, 900), "Lambda's", " seconds"),
            None => Some(DEFAULT_TIMEOUT),
        };
        let description = match f.get("description") {
            Some(e) => self.string(e.value, &field("description")).and_then(|d| {
                let len = d.chars().count();
                if len > 256 {
                    self.at(
                        &field("description"),
                        e.value,
                        format!("is {len} characters long; Lambda allows at most 256"),
                    );
                    None
                } else {
                    Some(Some(d))
                }
            }),
            None => Some(None),
        };
        let environment = match f.get("environment") {
            Some(e) => self.environment(e, &field("environment"), outputs, stage_outputs),
            None => Some(BTreeMap::new()),
        };
        let instance_per_stage = match f.get("instance_per_stage") {
            Some(e) => self.boolean(e.value, &field("instance_per_stage")),
            None => Some(false),
        };
        Some(FunctionSpec {
            code: code?,
            handler: handler?,
            runtime: runtime?,
            architecture: architecture?,
            memory: memory?,
            timeout: timeout?,
            description: description?,
            environment: environment?,
            instance_per_stage: instance_per_stage?,
        })
    }

    fn environment(
        &mut self,
        entry: &Entry<'_>,
        path: &str,
        outputs: &BTreeSet<String>,
        stage_outputs: &BTreeSet<String>,
    ) -> Option<BTreeMap<String, String>> {
        let before = self.errors.len();
        let mut environment = BTreeMap::new();
        for e in self.entries(entry.value, path) {
            let var = join(path, &e.key);
            if !is_environment_key(&e.key) {
                self.report(
                    &var,
                    e.line,
                    "variable names are a letter, then letters, digits or \
                    '_' ([a-zA-Z][a-zA-Z0-9_]+)",
                );
            } else if RESERVED_ENVIRONMENT.contains(&e.key.as_str()) {
                self.report(&var, e.line, "Lambda reserves this variable and sets it itself");
            }
            let value = match &e.value.data {
                YamlDataOwned::Value(ScalarOwned::String(s)) => s.clone(),
                YamlDataOwned::Value(
                    ScalarOwned::Integer(_) | ScalarOwned::FloatingPoint(_) | ScalarOwned::Boolean(_),
                ) => self.written(e.value),
                _ => {
                    self.at(
                        &var,
                        e.value,
                        format!(
                            "must be a string, number or true/false, not \
                        {} (write '' for an empty value)",
                            describe(e.value)
                        ),
                    );
                    continue;
                }
            };
            for reference in references(&value) {
                let problem = match reference.split_once(':') {
                    None if reference == "stage" => None,
                    Some(("stage_output", name)) if stage_outputs.contains(name) => None,
                    Some(("service_output", name)) if outputs.contains(name) => None,
                    Some(("stage_output", name)) => Some(format!(
                        "${{{reference}}}: stage_outputs \
                        has no `{name}`"
                    )),
                    Some(("service_output", name)) => Some(format!(
                        "${{{reference}}}: outputs has \
                        no `{name}`"
                    )),
                    _ => Some(format!(
                        "unknown reference ${{{reference}}}; use ${{stage}}, \
                            ${{stage_output:Name}} or ${{service_output:Name}}"
                    )),
                };
                if let Some(problem) = problem {
                    self.at(&var, e.value, problem);
                }
            }
            environment.insert(e.key, value);
        }
        let size: usize = environment.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_ENVIRONMENT_BYTES {
            self.report(
                path,
                entry.line,
                format!(
                    "takes {size} bytes; Lambda allows at most \
                {MAX_ENVIRONMENT_BYTES} for all variables together"
                ),
            );
        }
        (self.errors.len() == before).then_some(environment)
    }

    fn resources(&mut self, node: &Node, section: &str, scope: &Scope<'_>) -> BTreeMap<String, Value> {
        let mut resources = BTreeMap::new();
        for entry in self.entries(node, section) {
            let path = join(section, &entry.key);
            self.logical_id(&entry, &path);
            let f = self.fields(entry.value, &path, entry.line, RESOURCE_KEYS);
            let mut resource = Map::new();
            if let Some(e) =
                self.required(&f, &path, "Type", "the CloudFormation resource type, e.g. `Type: AWS::S3::Bucket`")
            {
                self.resource_type(e.value, &join(&path, "Type"));
            }
            for e in &f.entries {
                let field = join(&path, &e.key);
                match e.key.as_str() {
                    "Properties" if !matches!(e.value.data, YamlDataOwned::Mapping(_)) => {
                        self.at(&field, e.value, format!("must be a mapping, not {}", describe(e.value)));
                    }
                    "DeletionPolicy" | "UpdateReplacePolicy" => {
                        self.choice(e.value, &field, DELETION_POLICIES);
                    }
                    "DependsOn" => self.depends_on(e.value, &field, scope),
                    _ => {}
                }
                resource.insert(e.key.clone(), self.cfn(e.value, &field, scope));
            }
            resources.insert(entry.key, Value::Object(resource));
        }
        resources
    }

    fn resource_type(&mut self, node: &Node, path: &str) {
        let Some(kind) = self.string(node, path) else {
            return;
        };
        let parts: Vec<&str> = kind.split("::").collect();
        if parts.len() < 2 || parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric())) {
            self.at(path, node, format!("`{kind}` is not a resource type like AWS::S3::Bucket"));
        } else if kind.starts_with("AWS::Serverless::") {
            let message = format!(
                "`{kind}` needs the SAM transform, which aliasflow does not use; declare functions \
                 under `functions:` and other resources with their CloudFormation types"
            );
            self.at(path, node, message);
        }
    }

    fn depends_on(&mut self, node: &Node, path: &str, scope: &Scope<'_>) {
        let names: Vec<&Node> = match &node.data {
            YamlDataOwned::Sequence(items) => items.iter().collect(),
            _ => vec![node],
        };
        for name in names {
            if let Some(target) = self.string(name, path) {
                if !scope.resources.contains(&target) {
                    self.at(path, name, format!("`{target}` is not a resource of this stack"));
                }
            }
        }
    }

    fn outputs(&mut self, node: &Node, section: &str, scope: &Scope<'_>) -> BTreeMap<String, Value> {
        let mut outputs = BTreeMap::new();
        for entry in self.entries(node, section) {
            let path = join(section, &entry.key);
            self.logical_id(&entry, &path);
            let f = self.fields(entry.value, &path, entry.line, OUTPUT_KEYS);
            self.required(&f, &path, "Value", "what the output holds, e.g. `Value: !Ref Bucket`");
            let mut output = Map::new();
            for e in &f.entries {
                let field = join(&path, &e.key);
                if e.key == "Description" {
                    self.string(e.value, &field);
                }
                output.insert(e.key.clone(), self.cfn(e.value, &field, scope));
            }
            outputs.insert(entry.key, Value::Object(output));
        }
        outputs
    }

    fn logical_id(&mut self, entry: &Entry<'_>, path: &str) {
        if entry.key.is_empty() || entry.key.len() > 255 || !entry.key.chars().all(|c| c.is_ascii_alphanumeric()) {
            self.report(path, entry.line, "CloudFormation logical ids are 1 to 255 letters and digits");
        }
    }

    /// A CloudFormation value as JSON, short-form tags expanded and references checked.
    fn cfn(&mut self, node: &Node, path: &str, scope: &Scope<'_>) -> Value {
        match &node.data {
            YamlDataOwned::Value(scalar) => match scalar {
                ScalarOwned::Null => Value::Null,
                ScalarOwned::Boolean(b) => Value::Bool(*b),
                ScalarOwned::Integer(n) => Value::from(*n),
                ScalarOwned::FloatingPoint(x) => match serde_json::Number::from_f64(x.0) {
                    Some(n) => Value::Number(n),
                    None => {
                        self.at(path, node, "infinity and NaN have no JSON form; quote the value");
                        Value::Null
                    }
                },
                ScalarOwned::String(s) => Value::String(s.clone()),
            },
            YamlDataOwned::Representation(text, ..) => Value::String(text.clone()),
            YamlDataOwned::Sequence(items) => Value::Array(
                items.iter().enumerate().map(|(i, item)| self.cfn(item, &format!("{path}[{i}]"), scope)).collect(),
            ),
            YamlDataOwned::Mapping(_) => {
                let mut object = Map::new();
                for e in self.entries(node, path) {
                    let value = self.cfn(e.value, &join(path, &e.key), scope);
                    object.insert(e.key, value);
                }
                self.check_intrinsic(&object, path, node, scope);
                Value::Object(object)
            }
            YamlDataOwned::Tagged(tag, inner) => self.short_form(tag, inner, node, path, scope),
            YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => {
                self.at(path, node, "is not a valid YAML value");
                Value::Null
            }
        }
    }

    /// `tagged` is the whole node: the loader gives the value inside a tagged scalar no position.
    fn short_form(&mut self, tag: &Tag, inner: &Node, tagged: &Node, path: &str, scope: &Scope<'_>) -> Value {
        let name = tag.suffix.as_str();
        if tag.handle != "!" || !SHORT_FORMS.contains(&name) {
            self.at(
                path,
                tagged,
                format!("unknown tag {tag}; CloudFormation's short forms are !{}", SHORT_FORMS.join(", !")),
            );
            return Value::Null;
        }
        let argument = match (name, &inner.data) {
            ("GetAtt", YamlDataOwned::Value(ScalarOwned::String(s))) => match s.split_once('.') {
                Some((resource, attribute)) => json!([resource, attribute]),
                None => {
                    self.at(path, tagged, format!("!GetAtt {s}: write Resource.Attribute"));
                    return Value::Null;
                }
            },
            _ => self.cfn(inner, path, scope),
        };
        let key = match name {
            "Ref" | "Condition" => name.to_owned(),
            _ => format!("Fn::{name}"),
        };
        let mut object = Map::new();
        object.insert(key, argument);
        self.check_intrinsic(&object, path, tagged, scope);
        Value::Object(object)
    }

    /// Checks that `Ref`, `Fn::GetAtt` and `Fn::Sub` name what this stack has.
    fn check_intrinsic(&mut self, object: &Map<String, Value>, path: &str, node: &Node, scope: &Scope<'_>) {
        let Some((key, argument)) = object.iter().next().filter(|_| object.len() == 1) else {
            return;
        };
        match (key.as_str(), argument) {
            ("Ref", Value::String(name)) if !scope.allows_ref(name) => {
                self.at(path, node, format!("Ref to `{name}`: not {}", scope.allowed));
            }
            ("Fn::GetAtt", Value::Array(parts)) => {
                if let Some(Value::String(resource)) = parts.first() {
                    if !scope.resources.contains(resource) {
                        self.at(path, node, format!("Fn::GetAtt of `{resource}`: not a resource of this stack"));
                    }
                }
            }
            ("Fn::Sub", Value::String(text)) => {
                self.check_sub(text, &BTreeSet::new(), path, node, scope);
            }
            ("Fn::Sub", Value::Array(parts)) => {
                if let [Value::String(text), Value::Object(variables)] = parts.as_slice() {
                    let local = variables.keys().cloned().collect();
                    self.check_sub(text, &local, path, node, scope);
                }
            }
            _ => {}
        }
    }

    fn check_sub(&mut self, text: &str, local: &BTreeSet<String>, path: &str, node: &Node, scope: &Scope<'_>) {
        for variable in sub_variables(text) {
            if local.contains(variable) || scope.allows_ref(variable) {
                continue;
            }
            match variable.split_once('.') {
                Some((resource, _)) if scope.resources.contains(resource) => {}
                _ => self.at(path, node, format!("Fn::Sub names ${{{variable}}}: not {}", scope.allowed)),
            }
        }
    }

    fn api(&mut self, entry: &Entry<'_>, functions: &BTreeMap<String, FunctionSpec>) -> Option<ApiSpec> {
        let before = self.errors.len();
        let f = self.fields(entry.value, "api", entry.line, API_KEYS);
        let mut routes = BTreeMap::new();
        // Path variables per parent path: API Gateway takes one variable name per level.
        let mut variables: BTreeMap<String, (String, String)> = BTreeMap::new();
        if let Some(e) =
            self.required(&f, "api", "routes", "routes to functions, e.g. `routes: { \"GET /orders\": api }`")
        {
            let routes_entries = self.entries(e.value, "api.routes");
            if routes_entries.is_empty() {
                self.report("api.routes", e.line, "needs at least one route");
            }
            for route in routes_entries {
                let path = join("api.routes", &route.key);
                if let Some(function) = self.string(route.value, &path) {
                    if !functions.contains_key(&function) {
                        self.at(&path, route.value, format!("`{function}` is not a function of this manifest"));
                    }
                    routes.insert(route.key.clone(), function);
                }
                if let Err(message) = check_route(&route.key) {
                    self.report(&path, route.line, message);
                    continue;
                }
                let (_, segments) = split_route(&route.key);
                for (depth, segment) in segments.iter().enumerate() {
                    if !segment.starts_with('{') {
                        continue;
                    }
                    let parent = segments[..depth].join("/");
                    match variables.get(&parent) {
                        Some((other, other_route)) if other != segment => {
                            let message = format!(
                                "path variable {segment} conflicts with {other} \
                                of route `{other_route}`: API Gateway takes one variable per level"
                            );
                            self.report(&path, route.line, message);
                        }
                        Some(_) => {}
                        None => {
                            variables.insert(parent, ((*segment).to_owned(), route.key.clone()));
                        }
                    }
                }
            }
        }
        (self.errors.len() == before).then_some(ApiSpec { routes })
    }

    fn stages(&mut self, node: &Node) -> BTreeMap<String, StageSettings> {
        let mut stages = BTreeMap::new();
        for entry in self.entries(node, "stages") {
            let path = join("stages", &entry.key);
            if !naming::is_lower_name(&entry.key) && !is_stage_glob(&entry.key) {
                self.report(&path, entry.line, "a stage name ([a-z][a-z0-9-]*) or a glob with '*' like \"pr-*\"");
            } else if !entry.key.contains('*') {
                if let Err(e) = naming::check_stage_name(&entry.key) {
                    self.report(&path, entry.line, e.to_string());
                }
            }
            let f = self.fields(entry.value, &path, entry.line, STAGE_KEYS);
            let mut settings = StageSettings::default();
            if let Some(e) = f.get("region") {
                settings.region = self.region(e.value, &join(&path, "region"));
            }
            if let Some(e) = f.get("ttl") {
                let field = join(&path, "ttl");
                let text = match &e.value.data {
                    YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
                    _ => None,
                };
                settings.ttl = text.as_deref().and_then(Ttl::parse);
                if settings.ttl.is_none() {
                    self.at(&field, e.value, "write a duration like 7d, 12h or 30m");
                }
            }
            if let Some(e) = f.get("independent") {
                settings.independent = self.boolean(e.value, &join(&path, "independent")).unwrap_or_default();
            }
            stages.insert(entry.key, settings);
        }
        stages
    }

    /// Refuses user names that the templates generate, and functions whose logical ids collide.
    fn check_generated_names(&mut self, f: &Fields<'_>, functions: &BTreeMap<String, FunctionSpec>) {
        let mut ids: BTreeMap<String, &String> = BTreeMap::new();
        for function in functions.keys() {
            let id = naming::logical_id(function);
            if let Some(other) = ids.get(&id) {
                let line = f.get("functions").and_then(|e| e.line);
                self.report(
                    &join("functions", function),
                    line,
                    format!("its CloudFormation id {id} is also that of function {other}; rename one"),
                );
            } else {
                ids.insert(id, function);
            }
        }
        let per_function = |suffixes: &[&str]| -> BTreeSet<String> {
            ids.keys().flat_map(|id| suffixes.iter().map(move |s| format!("{id}{s}"))).collect()
        };
        let function_ids = per_function(&["Function", "LogGroup"]);
        let output_names = f.get("outputs").map(|e| mapping_keys(e.value)).unwrap_or_default();

        let service_reserved = |name: &str| {
            matches!(name, "ArtifactBucket" | "PlaceholderKey" | "FunctionRole" | "RestApi")
                || name.starts_with("Api")
                || function_ids.contains(name)
        };
        let service_outputs_reserved = |name: &str| {
            matches!(
                name,
                "FunctionRoleArn"
                    | "RestApiId"
                    | "RestApiRootResourceId"
                    | "Stage"
                    | "ArtifactBucket"
                    | "PlaceholderKey"
            )
        };
        let stage_reserved = |name: &str| {
            matches!(
                name,
                "Stage"
                    | "ArtifactBucket"
                    | "PlaceholderKey"
                    | "FunctionRoleArn"
                    | "RestApiId"
                    | "RestApiRootResourceId"
            ) || name.starts_with("Api")
                || function_ids.contains(name)
        };
        let stage_outputs_reserved = |name: &str| name == "ApiUrl" || per_function(&["LogGroupName"]).contains(name);

        let checks: [Reserved<'_>; 4] = [
            ("resources", &service_reserved, "aliasflow generates this name in the service stack"),
            ("outputs", &service_outputs_reserved, "aliasflow generates this output or stage parameter"),
            ("stage_resources", &stage_reserved, "aliasflow generates this name in every stage stack"),
            ("stage_outputs", &stage_outputs_reserved, "aliasflow generates this output in every stage stack"),
        ];
        for (section, reserved, why) in checks {
            let Some(section_entry) = f.get(section) else {
                continue;
            };
            let YamlDataOwned::Mapping(map) = &section_entry.value.data else {
                continue;
            };
            for key in map.keys() {
                let YamlDataOwned::Value(ScalarOwned::String(name)) = &key.data else {
                    continue;
                };
                if reserved(name) {
                    self.at(&join(section, name), key, format!("{why}; choose another"));
                } else if section == "stage_resources" && output_names.contains(name) {
                    self.at(
                        &join(section, name),
                        key,
                        "is also a service output, which arrives \
                        in every stage stack as a parameter of that name; rename one",
                    );
                }
            }
        }
    }
}

/// A user section, whether a name in it is one the templates generate, and why.
type Reserved<'a> = (&'static str, &'a dyn Fn(&str) -> bool, &'static str);

/// Resource ids the service template generates that user resources may refer to.
fn generated_service_resources(
    functions: &BTreeMap<String, FunctionSpec>,
    service_logs: bool,
    role: bool,
    api: bool,
) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    if role {
        ids.insert("FunctionRole".to_owned());
    }
    if api {
        ids.insert("RestApi".to_owned());
    }
    for name in functions.iter().filter(|(_, spec)| !spec.instance_per_stage).map(|(name, _)| name) {
        let id = naming::logical_id(name);
        if service_logs {
            ids.insert(format!("{id}LogGroup"));
        }
        ids.insert(format!("{id}Function"));
    }
    ids
}

/// The string keys of a mapping node, without reporting anything.
fn mapping_keys(node: &Node) -> BTreeSet<String> {
    match &node.data {
        YamlDataOwned::Mapping(map) => map
            .keys()
            .filter_map(|k| match &k.data {
                YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// The `${...}` references of an environment value (an unclosed `${` is plain text).
fn references(value: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        found.push(&after[..end]);
        rest = &after[end + 1..];
    }
    found
}

/// The variables of an `Fn::Sub` string; `${!Literal}` is not one.
pub fn sub_variables(text: &str) -> Vec<&str> {
    references(text).into_iter().filter(|v| !v.starts_with('!')).map(str::trim).collect()
}

fn check_route(route: &str) -> Result<(), String> {
    let Some((method, path)) = route.split_once(' ') else {
        return Err("write a route as `METHOD /path`, e.g. `GET /orders/{id}`".to_owned());
    };
    if !METHODS.contains(&method) {
        return Err(format!("`{method}` is not one of: {}", METHODS.join(", ")));
    }
    if !path.starts_with('/') {
        return Err(format!("the path `{path}` must start with '/'"));
    }
    if path == "/" {
        return Ok(());
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let variable = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        let valid = match variable {
            Some(name) => {
                let (name, greedy) = name.strip_suffix('+').map_or((name, false), |n| (n, true));
                if greedy && i + 1 != segments.len() {
                    return Err(format!("the greedy variable {segment} must be the last part of the path"));
                }
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            None => {
                !segment.is_empty()
                    && segment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            }
        };
        if !valid {
            return Err(format!(
                "`{segment}` is not a path part: use letters, digits, '-', '_', '.' or a variable \
                    like {{id}} (no empty parts or trailing '/')"
            ));
        }
    }
    Ok(())
}

fn is_stage_glob(key: &str) -> bool {
    key.contains('*')
        && key.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '*')
        && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*')
}

fn is_environment_key(key: &str) -> bool {
    key.len() >= 2
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `eusc-de-east-1`: letters, words, a number.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return false;
    };
    (2..=4).contains(&first.len())
        && first.chars().all(|c| c.is_ascii_lowercase())
        && !middle.is_empty()
        && middle.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && !last.is_empty()
        && last.chars().all(|c| c.is_ascii_digit())
}

/// `arn:<partition>:iam::<12 digits>:role/<path/>name`.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_word, partition, iam, region, account, resource] = parts.as_slice() else {
        return false;
    };
    let Some(name) = resource.strip_prefix("role/") else {
        return false;
    };
    *arn_word == "arn"
        && partition.starts_with("aws")
        && *iam == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && !name.is_empty()
        && arn.len() <= 2048
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
}

/// Levenshtein distance, for "did you mean" hints on unknown keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// The JSON Schema (draft 2020-12) of `aliasflow.yaml`, for editors. It lists exactly the keys
/// the parser accepts; checks that need the whole manifest (references, reserved names, name
/// lengths) are the parser's alone.
pub fn schema() -> Value {
    let lower_name = "^[a-z][a-z0-9-]*$";
    let logical_id = json!({ "pattern": "^[A-Za-z0-9]{1,255}$" });
    let runtime = json!({ "type": "string", "enum": RUNTIMES });
    let architecture = json!({ "type": "string", "enum": ["arm64", "x86_64"] });
    let region = json!({ "type": "string", "pattern": "^[a-z]{2,4}(-[a-z]+)+-[0-9]+$" });
    let section = |description: &str, definition: &str| {
        json!({
            "description": description,
            "type": "object",
            "propertyNames": logical_id,
            "additionalProperties": { "$ref": format!("#/$defs/{definition}") }
        })
    };
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "aliasflow manifest (aliasflow.yaml)",
        "description": "A service for aliasflow: one service stack, one stack per stage, \
                        every stage a Lambda alias.",
        "type": "object",
        "additionalProperties": false,
        "required": ["service", "region", "functions"],
        "properties": {
            "service": {
                "description": "The service name; stack and function names derive from it.",
                "type": "string",
                "pattern": lower_name
            },
            "region": {
                "description": "The home region: service stack and history.",
                "allOf": [region]
            },
            "runtime": {
                "description": "Default Lambda runtime of every function.",
                "default": DEFAULT_RUNTIME,
                "allOf": [runtime]
            },
            "architecture": {
                "description": "Default architecture of every function.",
                "default": "arm64",
                "allOf": [architecture]
            },
            "logs": {
                "description": "`service`: one log group per function; \
                                `stage`: one per function and stage.",
                "type": "string",
                "enum": ["stage", "service"],
                "default": "service"
            },
            "retain": {
                "description": "Deployments kept per stage for rollback.",
                "type": "integer",
                "minimum": 1,
                "maximum": 100,
                "default": DEFAULT_RETAIN
            },
            "role": {
                "description": "An existing execution role for every function; \
                                default: one in the service stack.",
                "type": "string",
                "pattern": "^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$"
            },
            "functions": {
                "description": "The functions, by key ([a-z][a-z0-9-]*).",
                "type": "object",
                "minProperties": 1,
                "propertyNames": { "pattern": lower_name },
                "additionalProperties": { "$ref": "#/$defs/function" }
            },
            "resources": section("CloudFormation resources of the service stack.", "resource"),
            "outputs": section(
                "CloudFormation outputs of the service stack; each reaches every stage stack \
                 as a parameter.",
                "output"
            ),
            "stage_resources": section(
                "CloudFormation resources of every stage stack.",
                "resource"
            ),
            "stage_outputs": section(
                "CloudFormation outputs of every stage stack, for ${stage_output:Name}.",
                "output"
            ),
            "api": { "$ref": "#/$defs/api" },
            "stages": {
                "description": "Per-stage settings, by stage name or glob (\"pr-*\").",
                "type": "object",
                "propertyNames": { "pattern": "^[a-z*][a-z0-9*-]*$" },
                "additionalProperties": { "$ref": "#/$defs/stage" }
            }
        },
        "$defs": {
            "function": {
                "type": "object",
                "additionalProperties": false,
                "required": ["code"],
                "properties": {
                    "code": {
                        "description": "A .zip file or a directory, relative to the \
                                        manifest's folder.",
                        "type": "string",
                        "minLength": 1
                    },
                    "handler": {
                        "type": "string",
                        "default": DEFAULT_HANDLER,
                        "pattern": "^\\S{1,128}$"
                    },
                    "runtime": runtime,
                    "architecture": architecture,
                    "memory": {
                        "description": "MB.",
                        "type": "integer",
                        "minimum": 128,
                        "maximum": 10240,
                        "default": DEFAULT_MEMORY
                    },
                    "timeout": {
                        "description": "Seconds.",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 900,
                        "default": DEFAULT_TIMEOUT
                    },
                    "description": { "type": "string", "maxLength": 256 },
                    "environment": {
                        "description": "Values may use ${stage}, ${stage_output:Name} and \
                                        ${service_output:Name}.",
                        "type": "object",
                        "propertyNames": { "pattern": "^[a-zA-Z][a-zA-Z0-9_]+$" },
                        "additionalProperties": { "type": ["string", "number", "boolean"] }
                    },
                    "instance_per_stage": {
                        "description": "A separate function per stage, <service>-<stage>-<fn>.",
                        "type": "boolean",
                        "default": false
                    }
                }
            },
            "resource": {
                "type": "object",
                "additionalProperties": false,
                "required": ["Type"],
                "properties": {
                    "Type": { "type": "string", "pattern": "^[A-Za-z0-9]+(::[A-Za-z0-9]+)+$" },
                    "Properties": { "type": "object" },
                    "DependsOn": { "type": ["string", "array"], "items": { "type": "string" } },
                    "Metadata": { "type": "object" },
                    "DeletionPolicy": { "type": "string", "enum": DELETION_POLICIES },
                    "UpdateReplacePolicy": { "type": "string", "enum": DELETION_POLICIES },
                    "CreationPolicy": { "type": "object" },
                    "UpdatePolicy": { "type": "object" }
                }
            },
            "output": {
                "type": "object",
                "additionalProperties": false,
                "required": ["Value"],
                "properties": {
                    "Value": {},
                    "Description": { "type": "string" },
                    "Export": { "type": "object" }
                }
            },
            "api": {
                "description": "A REST API routing to functions; each stage is an API stage \
                                calling its alias.",
                "type": "object",
                "additionalProperties": false,
                "required": ["routes"],
                "properties": {
                    "routes": {
                        "description": "\"METHOD /path\" -> function key, e.g. \
                                        \"GET /orders/{id}\": api.",
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": {
                            "pattern": "^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) /"
                        },
                        "additionalProperties": { "type": "string", "pattern": lower_name }
                    }
                }
            },
            "stage": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "region": {
                        "description": "The stage stack's region; another than home makes a \
                                        service stage there.",
                        "allOf": [region]
                    },
                    "ttl": {
                        "description": "Cleanup removes the stage this long after its last \
                                        deploy: 7d, 12h, 30m.",
                        "type": "string",
                        "pattern": "^[0-9]+[dhm]$"
                    },
                    "independent": {
                        "description": "Its own home: own service stack and history.",
                        "type": "boolean",
                        "default": false
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "service: shop\nregion: us-east-1\nfunctions:\n  api:\n    code: build/api.zip\n";

    fn parse(text: &str) -> Result<Manifest, ManifestErrors> {
        Manifest::parse(text, "aliasflow.yaml")
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text).unwrap_err().to_string().lines().map(str::to_owned).collect()
    }

    fn example() -> Manifest {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/shop/aliasflow.yaml");
        Manifest::load(&path).unwrap()
    }

    #[test]
    fn a_minimal_manifest_takes_the_defaults() {
        let m = parse(MINIMAL).unwrap();
        assert_eq!(m.runtime, "provided.al2023");
        assert_eq!(m.architecture, Architecture::Arm64);
        assert_eq!(m.logs, LogsMode::Service);
        assert_eq!(m.retain, 10);
        let api = &m.functions["api"];
        assert_eq!((api.handler.as_str(), api.memory, api.timeout), ("bootstrap", 128, 3));
        assert!(!api.instance_per_stage);
    }

    #[test]
    fn a_manifest_with_several_problems_reports_all_of_them_with_lines() {
        let text = "\
service: Shop
region: mars
retain: 0
functions:
  api:
    code: build/api.zip
    memory: 100000
    timout: 5
  worker:
    handler: main
stages:
  Prod: {}
colour: blue
";
        let got = errors(text);
        let expected = [
            "aliasflow.yaml:1: service: `Shop` is not valid",
            "aliasflow.yaml:2: region: `mars` is not a region name",
            "aliasflow.yaml:3: retain: 0 is out of range",
            "aliasflow.yaml:7: functions.api.memory: 100000 is above Lambda's 10240 MB",
            "aliasflow.yaml:8: functions.api.timout: unknown key; did you mean `timeout`?",
            "aliasflow.yaml:9: functions.worker.code: is missing",
            "aliasflow.yaml:12: stages.Prod: ",
            "aliasflow.yaml:13: colour: unknown key; allowed here: service, region",
        ];
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for (line, want) in got.iter().zip(expected) {
            assert!(line.starts_with(want), "{line:?} should start with {want:?}\nall: {got:#?}");
        }
    }

    #[test]
    fn required_keys_are_reported_without_a_line_at_the_top() {
        assert_eq!(
            errors("runtime: provided.al2023\n"),
            [
                "aliasflow.yaml: service: is missing: the service name, e.g. `service: shop`",
                "aliasflow.yaml: region: is missing: the home region, e.g. `region: us-east-1`",
                "aliasflow.yaml: functions: is missing: at least one function, e.g. `functions: { \
                    api: { code: build/api.zip } }`",
            ]
        );
    }

    #[test]
    fn an_empty_functions_mapping_is_refused() {
        let got = errors("service: shop\nregion: us-east-1\nfunctions: {}\n");
        assert_eq!(got, ["aliasflow.yaml:3: functions: needs at least one function"]);
    }

    #[test]
    fn invalid_yaml_is_one_error_with_its_line() {
        let got = errors("service: shop\nregion: [us-east-1\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("aliasflow.yaml:") && got[0].contains("not valid YAML"), "{got:?}");
    }

    #[test]
    fn a_duplicate_key_is_refused() {
        let got = errors("service: shop\nservice: shop\nregion: us-east-1\nfunctions: { api: { code: a } }\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("not valid YAML"), "{got:?}");
    }

    #[test]
    fn an_empty_file_says_what_a_manifest_needs() {
        assert_eq!(
            errors(""),
            ["aliasflow.yaml: the file is empty; a manifest needs at least \
            service, region and functions"]
        );
    }

    #[test]
    fn an_unreadable_file_is_one_error_naming_it() {
        let err = Manifest::load(Path::new("/nonexistent/aliasflow.yaml")).unwrap_err();
        assert_eq!(err.errors.len(), 1);
        assert!(err.to_string().starts_with("/nonexistent/aliasflow.yaml: cannot read the manifest"), "{err}");
    }

    #[test]
    fn environment_numbers_and_booleans_are_kept_as_written() {
        let text = format!("{MINIMAL}    environment:\n      VERSION: 1.10\n      DEBUG: true\n      PORT: 8080\n");
        let m = parse(&text).unwrap();
        let env = &m.functions["api"].environment;
        assert_eq!((env["VERSION"].as_str(), env["DEBUG"].as_str(), env["PORT"].as_str()), ("1.10", "true", "8080"));
    }

    #[test]
    fn environment_references_must_name_declared_outputs() {
        let text = format!(
            "\
{MINIMAL}    environment:
      AA: ${{stage_output:Nope}}
      BB: ${{service_output:Gone}}
      CC: ${{region}}
      AWS_REGION: x
      OK: ${{stage}}
      X: y
"
        );
        let got = errors(&text);
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(
            got[0].contains("functions.api.environment.AA: ${stage_output:Nope}: stage_outputs has no `Nope`"),
            "{got:#?}"
        );
        assert!(got[1].contains("environment.BB: ${service_output:Gone}: outputs has no `Gone`"), "{got:#?}");
        assert!(got[2].contains("environment.CC: unknown reference ${region}"), "{got:#?}");
        assert!(got[3].contains("environment.AWS_REGION: Lambda reserves this variable"), "{got:#?}");
        assert!(got[4].contains("environment.X: variable names are a letter, then"), "{got:#?}");
    }

    #[test]
    fn deprecated_runtimes_name_their_successor() {
        let got = errors(
            "\
service: shop
region: us-east-1
runtime: nodejs18.x
functions: { api: { code: a, runtime: cobol } }
",
        );
        assert!(got[0].ends_with("runtime: Lambda has deprecated `nodejs18.x`; use nodejs24.x"), "{got:?}");
        assert!(got[1].contains("functions.api.runtime: `cobol` is not a Lambda runtime"), "{got:?}");
    }

    #[test]
    fn short_form_tags_become_their_long_form() {
        let text = format!(
            "\
{MINIMAL}resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub '${{AWS::StackName}}-assets'
outputs:
  BucketArn:
    Value: !GetAtt Bucket.Arn
  BucketName:
    Value: !Ref Bucket
"
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.resources["Bucket"]["Properties"]["BucketName"], json!({"Fn::Sub": "${AWS::StackName}-assets"}));
        assert_eq!(m.outputs["BucketArn"]["Value"], json!({"Fn::GetAtt": ["Bucket", "Arn"]}));
        assert_eq!(m.outputs["BucketName"]["Value"], json!({"Ref": "Bucket"}));
    }

    #[test]
    fn stage_references_may_name_stage_resources_service_outputs_stage_and_pseudo_parameters() {
        let text = format!(
            "\
{MINIMAL}outputs:
  Shared: {{ Value: x }}
stage_resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub '${{Stage}}-${{Shared}}-${{AWS::Region}}'
      Tags: [{{ Key: a, Value: !Ref Shared }}, {{ Key: b, Value: !Ref Stage }}]
stage_outputs:
  QueueArn: {{ Value: !GetAtt Queue.Arn }}
"
        );
        parse(&text).unwrap();
    }

    #[test]
    fn a_stage_reference_to_anything_else_is_refused_where_it_is() {
        let text = format!(
            "\
{MINIMAL}resources:
  Assets: {{ Type: AWS::S3::Bucket }}
stage_resources:
  Queue:
    Type: AWS::SQS::Queue
    DependsOn: Table
    Properties:
      QueueName: !Ref Assets
      Other: {{ 'Fn::Sub': '${{Missing.Arn}}' }}
stage_outputs:
  Arn: {{ Value: !GetAtt Assets.Arn }}
"
        );
        let got = errors(&text);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(
            got[0].starts_with("aliasflow.yaml:11: stage_resources.Queue.DependsOn: `Table` is not a resource"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("aliasflow.yaml:13: stage_resources.Queue.Properties.QueueName: Ref to `Assets`"),
            "{got:#?}"
        );
        assert!(
            got[2].starts_with(
                "aliasflow.yaml:14: stage_resources.Queue.Properties.Other: \
            Fn::Sub names ${Missing.Arn}"
            ),
            "{got:#?}"
        );
        assert!(got[3].starts_with("aliasflow.yaml:16: stage_outputs.Arn.Value: Fn::GetAtt of `Assets`"), "{got:#?}");
    }

    #[test]
    fn service_resources_may_refer_to_the_generated_role_and_functions() {
        let text = format!(
            "\
{MINIMAL}resources:
  Policy:
    Type: AWS::IAM::RolePolicy
    Properties:
      RoleName: !Ref FunctionRole
      PolicyName: extra
      PolicyDocument: {{ Statement: [] }}
outputs:
  ApiArn: {{ Value: !GetAtt ApiFunction.Arn }}
"
        );
        parse(&text).unwrap();
    }

    #[test]
    fn names_the_templates_generate_are_refused_in_user_sections() {
        let text = format!(
            "\
{MINIMAL}resources:
  ApiFunction: {{ Type: AWS::SNS::Topic }}
  RestApi: {{ Type: AWS::SNS::Topic }}
outputs:
  FunctionRoleArn: {{ Value: x }}
  Shared: {{ Value: x }}
stage_resources:
  Stage: {{ Type: AWS::SNS::Topic }}
  Shared: {{ Type: AWS::SNS::Topic }}
  ApiStage: {{ Type: AWS::SNS::Topic }}
stage_outputs:
  ApiLogGroupName: {{ Value: x }}
"
        );
        let got = errors(&text);
        let paths: Vec<&str> = got.iter().map(|l| l.split(": ").nth(1).unwrap_or_default()).collect();
        assert_eq!(
            paths,
            [
                "resources.ApiFunction",
                "resources.RestApi",
                "outputs.FunctionRoleArn",
                "stage_resources.Stage",
                "stage_resources.Shared",
                "stage_resources.ApiStage",
                "stage_outputs.ApiLogGroupName"
            ],
            "{got:#?}"
        );
    }

    #[test]
    fn functions_whose_logical_ids_collide_are_refused() {
        let got = errors(
            "service: shop\nregion: us-east-1\nfunctions:\n  a-b: { code: x }\n  \
            a--b: { code: y }\n",
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("functions.a-b: its CloudFormation id AB is also that of function a--b"), "{got:?}");
    }

    #[test]
    fn routes_are_checked_for_method_path_and_function() {
        let text = format!(
            "\
{MINIMAL}api:
  routes:
    GET /orders/{{id}}: api
    GET /orders/{{orderId}}/items: api
    FETCH /x: api
    GET orders: api
    GET /a//b: api
    POST /orders: nobody
    ANY /{{proxy+}}: api
    GET /: api
"
        );
        let got = errors(&text);
        assert_eq!(got.len(), 5, "{got:#?}");
        let all = got.join("\n");
        assert!(all.contains("{orderId} conflicts with {id}"), "{all}");
        assert!(all.contains("`FETCH` is not one of"), "{all}");
        assert!(all.contains("the path `orders` must start with '/'"), "{all}");
        assert!(all.contains("`` is not a path part"), "{all}");
        assert!(all.contains("`nobody` is not a function of this manifest"), "{all}");
    }

    #[test]
    fn stage_keys_are_names_or_globs_and_ttls_are_durations() {
        let text = format!(
            "\
{MINIMAL}stages:
  pr-*: {{ ttl: 7d }}
  dev: {{ ttl: 7 }}
  bad_name: {{}}
  eu: {{ region: eu-west-1, independent: yes }}
"
        );
        let got = errors(&text);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].contains("stages.dev.ttl: write a duration"), "{got:#?}");
        assert!(got[1].contains("stages.bad_name: a stage name"), "{got:#?}");
        assert!(got[2].contains("stages.eu.independent: must be true or false"), "{got:#?}");
    }

    #[test]
    fn stage_settings_take_the_exact_key_before_a_glob() {
        let text = format!(
            "\
{MINIMAL}stages:
  p*: {{ ttl: 1h }}
  pr-*: {{ ttl: 7d }}
  pr-1: {{ region: eu-west-1 }}
  audit: {{ region: eu-central-1, independent: true }}
"
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.stage_settings("pr-1").ttl, None);
        assert!(m.stage_settings("pr-1").remote);
        assert_eq!(m.stage_settings("pr-2").ttl, Some(Ttl { seconds: 3600 }), "first matching glob in key order");
        let audit = m.stage_settings("audit");
        assert!(audit.independent && !audit.remote);
        assert_eq!(
            m.stage_settings("dev"),
            ResolvedStage { region: "us-east-1".into(), ttl: None, independent: false, remote: false }
        );
    }

    #[test]
    fn functions_of_a_remote_stage_are_always_instances_per_stage() {
        let text = format!("{MINIMAL}stages:\n  eu: {{ region: eu-west-1 }}\n");
        let m = parse(&text).unwrap();
        assert!(m.is_instance_per_stage("api", "eu"));
        assert!(!m.is_instance_per_stage("api", "dev"));
        assert!(!m.is_instance_per_stage("nobody", "eu"));
    }

    #[test]
    fn check_stage_refuses_bad_names_and_instance_names_over_the_limit() {
        let m = example();
        assert_eq!(m.check_stage("pr-7"), Ok(()));
        let err = m.check_stage("Prod").unwrap_err().to_string();
        assert!(err.starts_with("aliasflow.yaml: stage: stage name `Prod` is not valid"), "{err}");
        let long = "p".repeat(60);
        let err = m.check_stage(&long).unwrap_err().to_string();
        assert!(err.contains("functions.thumbnailer: in stage"), "{err}");
        assert!(err.contains("at most 64"), "{err}");
    }

    #[test]
    fn check_stage_refuses_an_instance_named_like_a_shared_function() {
        let m = parse(
            "\
service: shop
region: us-east-1
functions:
  dev-api: { code: a }
  api: { code: b, instance_per_stage: true }
",
        )
        .unwrap();
        let err = m.check_stage("dev").unwrap_err().to_string();
        assert!(err.contains("shop-dev-api, which is also the name of function dev-api"), "{err}");
    }

    #[test]
    fn validate_refuses_names_that_collide_in_a_stage_the_manifest_names() {
        let text = "\
service: shop
region: us-east-1
functions:
  dev-thumb: { code: a }
  thumb: { code: b, instance_per_stage: true }
stages:
  STAGE: {}
";
        let err = parse(&text.replace("STAGE", "dev")).unwrap_err().to_string();
        assert!(err.contains("functions.thumb"), "{err}");
        assert!(err.contains("shop-dev-thumb, which is also the name of function dev-thumb"), "{err}");
        assert!(parse(&text.replace("STAGE", "prod")).is_ok(), "no collision in stage prod");
        assert!(parse(&text.replace("STAGE", "\"d*\"")).is_ok(), "a glob names no stage: Plan checks it");
    }

    #[test]
    fn stage_binding_comes_from_per_stage_logs_or_stage_references() {
        let m = example();
        assert!(m.stage_bound("api"), "uses ${{stage_output:..}}");
        assert!(!m.stage_bound("worker"));
        let per_stage_logs = Manifest { logs: LogsMode::Stage, ..m };
        assert!(per_stage_logs.stage_bound("worker"));
    }

    #[test]
    fn runtime_and_architecture_fall_back_to_the_service_defaults() {
        let m = parse(
            "\
service: shop
region: us-east-1
architecture: x86_64
functions:
  a: { code: x, runtime: python3.13, architecture: arm64 }
  b: { code: y }
",
        )
        .unwrap();
        assert_eq!((m.function_runtime("a"), m.function_architecture("a")), ("python3.13", Architecture::Arm64));
        assert_eq!((m.function_runtime("b"), m.function_architecture("b")), ("provided.al2023", Architecture::X86_64));
    }

    #[test]
    fn every_example_manifest_field_round_trips_through_json() {
        let m = example();
        let json = serde_json::to_string(&m).unwrap();
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!(serde_json::to_string(&back).unwrap(), json, "serializes deterministically");
        // Every field but an absent option is present in the JSON form, not left to defaults.
        let value = serde_json::to_value(&m).unwrap();
        for key in MANIFEST_KEYS.iter().filter(|k| **k != "role") {
            assert!(value.get(key).is_some(), "{key} missing from {value}");
        }
        assert_eq!(value["stages"]["pr-*"]["ttl"], json!("7d"));
        assert_eq!(value["architecture"], json!("arm64"));
    }

    #[test]
    fn the_json_form_is_a_manifest_the_parser_accepts_as_the_same() {
        // Step Functions inputs carry the JSON form, and the first step validates it as YAML.
        let m = example();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(Manifest::parse(&json, "input").unwrap(), m);
    }

    #[test]
    fn the_example_uses_every_feature() {
        let m = example();
        assert_eq!(m.service, "shop");
        assert_eq!(m.functions.keys().collect::<Vec<_>>(), ["api", "thumbnailer", "worker"]);
        assert!(m.functions["thumbnailer"].instance_per_stage);
        assert!(m.api.is_some() && !m.resources.is_empty() && !m.stage_resources.is_empty());
        assert_eq!(m.stage_settings("pr-7").ttl, Ttl::parse("7d"));
    }

    #[test]
    fn the_schema_lists_exactly_the_keys_the_parser_accepts() {
        let schema = schema();
        let keys =
            |value: &Value| -> Vec<String> { value["properties"].as_object().unwrap().keys().cloned().collect() };
        assert_eq!(keys(&schema), MANIFEST_KEYS);
        assert_eq!(keys(&schema["$defs"]["function"]), FUNCTION_KEYS);
        assert_eq!(keys(&schema["$defs"]["api"]), API_KEYS);
        assert_eq!(keys(&schema["$defs"]["stage"]), STAGE_KEYS);
        assert_eq!(keys(&schema["$defs"]["resource"]), RESOURCE_KEYS);
        assert_eq!(keys(&schema["$defs"]["output"]), OUTPUT_KEYS);
        assert_eq!(serde_json::to_string(&schema).unwrap(), serde_json::to_string(&super::schema()).unwrap());
    }

    #[test]
    fn regions_and_role_arns_are_checked_for_shape() {
        for good in ["us-east-1", "eu-central-2", "us-gov-west-1", "eusc-de-east-1", "ap-southeast-7"] {
            assert!(is_region(good), "{good}");
        }
        for bad in ["us-east", "useast1", "US-EAST-1", "u-east-1", "us--1"] {
            assert!(!is_region(bad), "{bad}");
        }
        assert!(is_role_arn("arn:aws:iam::123456789012:role/service/shop-fns"));
        assert!(!is_role_arn("arn:aws:iam::12345:role/x"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/x"));
    }

    #[test]
    fn ttls_print_in_their_largest_unit() {
        assert_eq!(Ttl::parse("48h").map(|t| t.to_string()).as_deref(), Some("2d"));
        assert_eq!(Ttl::parse("90m").map(|t| t.to_string()).as_deref(), Some("90m"));
    }
}
