//! Physical names derived from the manifest (functions, stacks, log groups, artifact keys), each
//! checked against AWS's limits here, before anything is called.

/// Lambda's limit on a function name.
pub const MAX_FUNCTION_NAME: usize = 64;
/// CloudFormation's limit on a stack name.
pub const MAX_STACK_NAME: usize = 128;
/// Lambda's limit on an alias name (a stage is an alias).
pub const MAX_STAGE_NAME: usize = 128;

/// A derived name that AWS would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is longer than AWS allows.
    #[error("{kind} `{name}` is {len} characters long; {owner} allows at most {max}")]
    TooLong {
        /// What the name names, e.g. `function name`.
        kind: &'static str,
        /// The offending name.
        name: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
        /// Who sets the limit, e.g. `Lambda`.
        owner: &'static str,
    },
    /// The name has characters AWS refuses, or does not start as it must.
    #[error("{kind} `{name}` is not valid: {rule}")]
    Invalid {
        /// What the name names, e.g. `stage name`.
        kind: &'static str,
        /// The offending name.
        name: String,
        /// What a valid name looks like.
        rule: &'static str,
    },
}

/// The tag every stack and function aliasflow creates carries.
pub const MANAGED_TAG: (&str, &str) = ("aliasflow:managed", "true");
/// The tag naming the service a stack or function belongs to.
pub const SERVICE_TAG: &str = "aliasflow:service";
/// The tag naming the stage a stack or function belongs to (absent: the whole service's).
pub const STAGE_TAG: &str = "aliasflow:stage";

/// Who a stack or function belongs to: a service, and a stage where it belongs to one (a stage
/// stack, an instance per stage). Written as tags when aliasflow creates the resource, and read
/// back before aliasflow changes or deletes it (DESIGN.md "Ownership is checked, not assumed").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// The service.
    pub service: String,
    /// The stage; `None` for the service stack and shared functions.
    pub stage: Option<String>,
}

impl Owner {
    /// The service's own: service stack, shared functions.
    pub fn service(service: &str) -> Self {
        Self { service: service.to_owned(), stage: None }
    }

    /// A stage's own: stage stack, instances per stage.
    pub fn stage(service: &str, stage: &str) -> Self {
        Self { service: service.to_owned(), stage: Some(stage.to_owned()) }
    }

    /// The tags that say so, `aliasflow:managed` first.
    ///
    /// ```
    /// use functions::domain::naming::Owner;
    /// let tags = Owner::stage("shop", "dev").tags();
    /// assert_eq!(tags[1], ("aliasflow:service".to_owned(), "shop".to_owned()));
    /// assert_eq!(tags[2], ("aliasflow:stage".to_owned(), "dev".to_owned()));
    /// ```
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags =
            vec![(MANAGED_TAG.0.to_owned(), MANAGED_TAG.1.to_owned()), (SERVICE_TAG.to_owned(), self.service.clone())];
        if let Some(stage) = &self.stage {
            tags.push((STAGE_TAG.to_owned(), stage.clone()));
        }
        tags
    }
}

/// A stack or function aliasflow must not change: it belongs to someone else, as its tags say.
/// Becomes `StepError::NotOwned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOwned {
    /// The resource, e.g. `stack shop-dev`.
    pub resource: String,
    /// Who owns it, as its tags say.
    pub owner: String,
    /// What to do instead.
    pub advice: String,
}

impl Owner {
    /// Whether `resource`, carrying `tags`, is this owner's to change. Refuses a resource of
    /// another service or stage, and one without aliasflow's service tag (made by someone else,
    /// or by hand under aliasflow's name): names can collide (`shop-dev` the service, `shop`
    /// stage `dev`), tags decide.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use functions::domain::naming::Owner;
    /// let shop_dev: BTreeMap<_, _> = Owner::stage("shop", "dev").tags().into_iter().collect();
    /// assert!(Owner::stage("shop", "dev").check("stack shop-dev", &shop_dev).is_ok());
    /// let refused = Owner::service("shop-dev").check("stack shop-dev", &shop_dev).unwrap_err();
    /// assert_eq!(refused.owner, "it belongs to stage dev of service shop");
    /// assert!(Owner::service("shop").check("function shop-api", &BTreeMap::new()).is_err());
    /// ```
    pub fn check(&self, resource: &str, tags: &std::collections::BTreeMap<String, String>) -> Result<(), NotOwned> {
        let Some(service) = tags.get(SERVICE_TAG) else {
            return Err(NotOwned {
                resource: resource.to_owned(),
                owner: "it carries no aliasflow:service tag, so aliasflow did not create it for any service".to_owned(),
                advice: "Delete or rename it if it is a leftover, or choose another service name.".to_owned(),
            });
        };
        let found = Self { service: service.clone(), stage: tags.get(STAGE_TAG).cloned() };
        if found == *self {
            return Ok(());
        }
        let advice = if found.service == self.service {
            format!("It is not {self}'s: a function's instance_per_stage setting or a stage name collides with it.")
        } else {
            format!("The names of service {} and {found} collide; choose another service name.", self.service)
        };
        Err(NotOwned { resource: resource.to_owned(), owner: format!("it belongs to {found}"), advice })
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.stage {
            Some(stage) => write!(f, "stage {stage} of service {}", self.service),
            None => write!(f, "service {}", self.service),
        }
    }
}

/// Who function `function_name` (manifest key `function`) of a deployment of `stage` belongs
/// to: the stage, for its instance per stage (`<service>-<stage>-<fn>`); else the service.
///
/// ```
/// use functions::domain::naming::{function_owner, Owner};
/// assert_eq!(function_owner("shop", "dev", "thumb", "shop-dev-thumb"), Owner::stage("shop", "dev"));
/// assert_eq!(function_owner("shop", "dev", "dev-thumb", "shop-dev-thumb"), Owner::service("shop"));
/// ```
pub fn function_owner(service: &str, stage: &str, function: &str, function_name: &str) -> Owner {
    if function_name_unchecked(service, Some(stage), function) == function_name {
        Owner::stage(service, stage)
    } else {
        Owner::service(service)
    }
}

/// The rule a stage name follows, as said in messages.
const STAGE_RULE: &str = "use lowercase letters, digits and '-', starting with a letter ([a-z][a-z0-9-]*), so it is a \
        valid alias and stack name part";

/// The function's physical name: `<service>-<fn>`, or `<service>-<stage>-<fn>` for an instance
/// per stage. Refuses what Lambda would refuse (over 64 characters, other characters).
///
/// ```
/// use functions::domain::naming::function_name;
/// assert_eq!(function_name("shop", None, "api")?, "shop-api");
/// assert_eq!(function_name("shop", Some("pr-7"), "thumb")?, "shop-pr-7-thumb");
/// assert!(function_name("shop", Some(&"x".repeat(60)), "thumb").is_err());
/// # Ok::<(), functions::domain::naming::NameError>(())
/// ```
pub fn function_name(service: &str, stage: Option<&str>, function: &str) -> Result<String, NameError> {
    let name = function_name_unchecked(service, stage, function);
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(NameError::Invalid {
            kind: "function name",
            name,
            rule: "Lambda allows letters, digits, '-' and '_' only",
        });
    }
    check_length("function name", name, MAX_FUNCTION_NAME, "Lambda")
}

/// The same name as [`function_name`] without its checks, for code that runs after them (the
/// templates of a manifest that passed [`Manifest::check_stage`]).
///
/// [`Manifest::check_stage`]: crate::domain::manifest::Manifest::check_stage
///
/// ```
/// use functions::domain::naming::function_name_unchecked;
/// assert_eq!(function_name_unchecked("shop", Some("dev"), "thumb"), "shop-dev-thumb");
/// ```
pub fn function_name_unchecked(service: &str, stage: Option<&str>, function: &str) -> String {
    match stage {
        Some(stage) => format!("{service}-{stage}-{function}"),
        None => format!("{service}-{function}"),
    }
}

/// The service stack's name: the service name, checked against CloudFormation's rules
/// (`[A-Za-z][A-Za-z0-9-]*`, at most 128 characters).
///
/// ```
/// use functions::domain::naming::service_stack_name;
/// assert_eq!(service_stack_name("shop")?, "shop");
/// assert!(service_stack_name("shop_v2").is_err());
/// # Ok::<(), functions::domain::naming::NameError>(())
/// ```
pub fn service_stack_name(service: &str) -> Result<String, NameError> {
    check_stack_name(service.to_owned())
}

/// The stage stack's name: `<service>-<stage>`, checked like [`service_stack_name`].
///
/// ```
/// use functions::domain::naming::stage_stack_name;
/// assert_eq!(stage_stack_name("shop", "dev")?, "shop-dev");
/// # Ok::<(), functions::domain::naming::NameError>(())
/// ```
pub fn stage_stack_name(service: &str, stage: &str) -> Result<String, NameError> {
    check_stack_name(format!("{service}-{stage}"))
}

/// Checks a stage name: aliasflow's `[a-z][a-z0-9-]*` (which also keeps it a valid part of stack,
/// function and log group names), and Lambda's alias rules (1 to 128 characters, not all digits,
/// which the first letter already ensures).
///
/// ```
/// use functions::domain::naming::check_stage_name;
/// assert!(check_stage_name("pr-7").is_ok());
/// assert!(check_stage_name("Prod").is_err());
/// assert!(check_stage_name("7").is_err());
/// ```
pub fn check_stage_name(stage: &str) -> Result<(), NameError> {
    if !is_lower_name(stage) {
        return Err(NameError::Invalid { kind: "stage name", name: stage.to_owned(), rule: STAGE_RULE });
    }
    check_length("stage name", stage.to_owned(), MAX_STAGE_NAME, "Lambda (alias names)").map(drop)
}

/// Whether `name` follows `[a-z][a-z0-9-]*`, the rule for service, function and stage names.
///
/// ```
/// use functions::domain::naming::is_lower_name;
/// assert!(is_lower_name("thumb-nailer2"));
/// assert!(!is_lower_name("2fast"));
/// assert!(!is_lower_name(""));
/// ```
pub fn is_lower_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The CloudFormation logical id stem of a function: PascalCase of its manifest key. The
/// templates add `Function`, `LogGroup` or `LogGroupName`.
///
/// ```
/// use functions::domain::naming::logical_id;
/// assert_eq!(logical_id("api"), "Api");
/// assert_eq!(logical_id("thumb-nailer"), "ThumbNailer");
/// ```
pub fn logical_id(function: &str) -> String {
    function
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| first.to_ascii_uppercase().to_string() + chars.as_str())
        })
        .collect()
}

/// The log group of a function that is shared by the stages: one per function (`stage: None`),
/// or with `logs: stage` one per function and stage.
///
/// ```
/// use functions::domain::naming::log_group_name;
/// assert_eq!(log_group_name("shop", None, "api"), "/aws/lambda/shop-api");
/// assert_eq!(log_group_name("shop", Some("dev"), "api"), "/aws/lambda/shop/dev/api");
/// ```
pub fn log_group_name(service: &str, stage: Option<&str>, function: &str) -> String {
    match stage {
        Some(stage) => format!("/aws/lambda/{service}/{stage}/{function}"),
        None => default_log_group_name(&function_name_unchecked(service, None, function)),
    }
}

/// Lambda's default log group of a physical function, which aliasflow creates explicitly: used
/// for shared functions with `logs: service` and for every instance-per-stage function.
///
/// ```
/// use functions::domain::naming::default_log_group_name;
/// assert_eq!(default_log_group_name("shop-dev-thumb"), "/aws/lambda/shop-dev-thumb");
/// ```
pub fn default_log_group_name(function_name: &str) -> String {
    format!("/aws/lambda/{function_name}")
}

/// The artifact bucket key of a code package, by content.
///
/// ```
/// use functions::domain::naming::artifact_key;
/// assert_eq!(artifact_key("shop", "ab12"), "shop/artifacts/ab12.zip");
/// ```
pub fn artifact_key(service: &str, sha256_hex: &str) -> String {
    format!("{service}/artifacts/{sha256_hex}.zip")
}

/// The artifact bucket key of a manifest (as JSON) that an `--engine aws` execution reads, by
/// content: an execution's input stays valid, so the console's "New execution" with the same
/// input repeats it exactly.
///
/// ```
/// use functions::domain::naming::manifest_key;
/// assert_eq!(manifest_key("shop", "ab12"), "shop/manifests/ab12.json");
/// ```
pub fn manifest_key(service: &str, sha256_hex: &str) -> String {
    format!("{service}/manifests/{sha256_hex}.json")
}

/// The artifact bucket key of the manifest the service was last run with by `--engine aws`:
/// what a hand-typed execution input (console, schedule) names.
///
/// ```
/// use functions::domain::naming::latest_manifest_key;
/// assert_eq!(latest_manifest_key("shop"), "shop/manifests/latest.json");
/// ```
pub fn latest_manifest_key(service: &str) -> String {
    format!("{service}/manifests/latest.json")
}

fn check_stack_name(name: String) -> Result<String, NameError> {
    let mut chars = name.chars();
    let valid =
        chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return Err(NameError::Invalid {
            kind: "stack name",
            name,
            rule: "CloudFormation wants a letter first, then letters, digits and '-' \
                ([A-Za-z][A-Za-z0-9-]*)",
        });
    }
    check_length("stack name", name, MAX_STACK_NAME, "CloudFormation")
}

fn check_length(kind: &'static str, name: String, max: usize, owner: &'static str) -> Result<String, NameError> {
    let len = name.chars().count();
    if len > max {
        return Err(NameError::TooLong { kind, name, len, max, owner });
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_name_over_64_characters_is_refused_with_the_name_and_the_limit() {
        let err =
            function_name("shop", Some("a-very-long-stage-name-for-a-pull-request-branch"), "thumbnailer").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("shop-a-very-long-stage-name-for-a-pull-request-branch-thumbnailer"), "{message}");
        assert!(message.contains("at most 64"), "{message}");
    }

    #[test]
    fn a_function_name_of_exactly_64_characters_is_accepted() {
        let function = "f".repeat(64 - "shop-".len());
        assert_eq!(function_name("shop", None, &function).map(|n| n.len()), Ok(64));
    }

    #[test]
    fn a_function_name_with_a_dot_is_refused() {
        assert!(matches!(function_name("shop", None, "a.b"), Err(NameError::Invalid { .. })));
    }

    #[test]
    fn stack_names_start_with_a_letter_and_stay_within_128_characters() {
        assert!(service_stack_name("1shop").is_err());
        assert!(stage_stack_name("shop", &"s".repeat(123)).is_ok());
        let err = stage_stack_name("shop", &"s".repeat(124)).unwrap_err();
        assert!(err.to_string().contains("at most 128"), "{err}");
    }

    #[test]
    fn stage_names_are_lowercase_words_that_start_with_a_letter() {
        for good in ["dev", "pr-7", "a", "prod2"] {
            assert_eq!(check_stage_name(good), Ok(()), "{good}");
        }
        for bad in ["", "Dev", "7", "pr_7", "-pr", "pr.7", "pr*"] {
            assert!(check_stage_name(bad).is_err(), "{bad}");
        }
        assert!(check_stage_name(&"s".repeat(129)).is_err());
    }

    #[test]
    fn logical_ids_capitalise_every_word_and_drop_the_hyphens() {
        assert_eq!(logical_id("a-b-c"), "ABC");
        assert_eq!(logical_id("img2-thumb"), "Img2Thumb");
    }
}
