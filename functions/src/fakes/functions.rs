//! [`FakeFunctions`]: Lambda of one region in memory, with the semantics aliasflow relies on
//! (functions must exist, `$LATEST` has a code sha and a revision, `PublishVersion` is guarded and
//! publishes nothing new when nothing changed, version numbers are never reused, an alias keeps
//! its version from being deleted) and knobs to break it.
//!
//! Code identity: the fake cannot read S3, so `UpdateFunctionCode` takes the sha256 a test (or the
//! `FakeAws` wiring) announced for the key with [`FakeFunctions::know_artifact`], and otherwise
//! the base64 sha256 of the key's own bytes: the same key always gives the same code, different
//! keys different code.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::domain::config::FunctionConfig;
use crate::error::AwsError;
use crate::ports::{AliasState, AliasTarget, Functions, Permission, Revision, UpdateStatus, VersionInfo};

/// Lambda of one region in memory. Operation names in knobs and counts are the AWS ones the
/// adapter calls: `GetFunction`, `GetFunctionConfiguration`, `UpdateFunctionCode`,
/// `UpdateFunctionConfiguration`, `PublishVersion`, `UpdateAlias`, `CreateAlias`, `DeleteAlias`,
/// `ListAliases`, `ListVersionsByFunction`, `DeleteFunction`, `AddPermission`, `GetPolicy`.
#[derive(Debug, Default)]
pub struct FakeFunctions {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    functions: BTreeMap<String, Function>,
    /// Artifact key -> the code sha256 (base64) its zip has.
    artifacts: BTreeMap<String, String>,
    /// (operation, function) pairs that always fail.
    failures: BTreeSet<(String, String)>,
    /// Function -> reason its next update ends with `LastUpdateStatus: Failed`.
    failing_updates: BTreeMap<String, String>,
    /// Every n-th call is throttled; 0: never.
    throttle_every: u64,
    total_calls: u64,
    calls: BTreeMap<String, u64>,
    /// Makes every revision id unique across functions, as AWS's are.
    revisions: u64,
}

#[derive(Debug, Clone)]
struct Function {
    code_sha256: String,
    config: FunctionConfig,
    revision_id: String,
    status: UpdateStatus,
    versions: BTreeMap<u64, Published>,
    /// The highest number ever handed out: Lambda never reuses one, even after a delete.
    last_version: u64,
    aliases: BTreeMap<String, String>,
    /// Alias -> statement id -> permission.
    permissions: BTreeMap<String, BTreeMap<String, Permission>>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Published {
    code_sha256: String,
    config: FunctionConfig,
}

/// The configuration of a function created without one (as a stack declares it).
fn default_config() -> FunctionConfig {
    FunctionConfig {
        runtime: "provided.al2023".to_owned(),
        architecture: "x86_64".to_owned(),
        handler: "bootstrap".to_owned(),
        memory: 128,
        timeout: 3,
        description: None,
        environment: BTreeMap::new(),
        log_group: None,
    }
}

/// The made-up code sha256 (base64) of an artifact the fake was not told about.
fn sha_of_key(key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(key.as_bytes()))
}

fn error(operation: &str, function: &str, code: &str, message: &str) -> AwsError {
    AwsError { message: message.to_owned(), ..AwsError::fake(operation, function, code) }
}

fn not_found(operation: &str, function: &str) -> AwsError {
    error(operation, function, "ResourceNotFoundException", &format!("Function not found: {function}"))
}

impl State {
    /// Counts one call and applies the throttling and failure knobs, as AWS would refuse it
    /// before doing anything.
    fn enter(&mut self, operation: &str, function: &str) -> Result<(), AwsError> {
        self.total_calls += 1;
        *self.calls.entry(operation.to_owned()).or_default() += 1;
        if self.throttle_every > 0 && self.total_calls.is_multiple_of(self.throttle_every) {
            return Err(error(operation, function, "ThrottlingException", "Rate exceeded (injected by a fake)"));
        }
        if self.failures.contains(&(operation.to_owned(), function.to_owned())) {
            // A refusal no retry overcomes, unlike ServiceException, which is transient.
            return Err(error(operation, function, "AccessDeniedException", "injected permanent failure"));
        }
        Ok(())
    }

    fn next_revision(&mut self) -> String {
        self.revisions += 1;
        format!("00000000-fake-revision-{:012}", self.revisions)
    }

    fn function(&mut self, operation: &str, function: &str) -> Result<&mut Function, AwsError> {
        self.functions.get_mut(function).ok_or_else(|| not_found(operation, function))
    }

    /// Ends an update: a new revision, and the status a test asked for.
    fn finish_update(&mut self, function: &str) -> Revision {
        let revision_id = self.next_revision();
        let status = match self.failing_updates.remove(function) {
            Some(reason) => UpdateStatus::Failed(reason),
            None => UpdateStatus::Successful,
        };
        match self.functions.get_mut(function) {
            Some(f) => {
                f.revision_id = revision_id;
                f.status = status;
                f.revision()
            }
            None => Revision { revision_id, code_sha256: String::new(), status, config: None, tags: BTreeMap::new() },
        }
    }
}

impl Function {
    fn new(revision_id: String, code_sha256: String) -> Self {
        Self {
            code_sha256,
            config: default_config(),
            revision_id,
            status: UpdateStatus::Successful,
            versions: BTreeMap::new(),
            last_version: 0,
            aliases: BTreeMap::new(),
            permissions: BTreeMap::new(),
            tags: BTreeMap::new(),
        }
    }

    /// `$LATEST` as an update answers it: without tags.
    fn revision(&self) -> Revision {
        Revision {
            revision_id: self.revision_id.clone(),
            code_sha256: self.code_sha256.clone(),
            status: self.status.clone(),
            config: Some(self.config.clone()),
            tags: BTreeMap::new(),
        }
    }

    /// `$LATEST` as `GetFunction` answers it: with the tags.
    fn described(&self) -> Revision {
        Revision { tags: self.tags.clone(), ..self.revision() }
    }

    fn has_version(&self, version: &str) -> bool {
        version == "$LATEST" || version.parse().is_ok_and(|n: u64| self.versions.contains_key(&n))
    }
}

impl FakeFunctions {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates function `name` with placeholder code, a default configuration and no tags, as
    /// someone other than aliasflow would; an existing function is left as it is (a stack update
    /// never resets code).
    pub fn create_function(&self, name: &str) {
        let mut state = self.lock();
        if !state.functions.contains_key(name) {
            let revision = state.next_revision();
            state.functions.insert(name.to_owned(), Function::new(revision, sha_of_key("placeholder")));
        }
    }

    /// [`create_function`](Self::create_function) for building a fake in a test:
    /// `FakeFunctions::default().create("shop-api")`.
    #[must_use]
    pub fn create(self, name: &str) -> Self {
        self.create_function(name);
        self
    }

    /// [`create_function`](Self::create_function), then gives the function the tags of `owner`,
    /// as aliasflow's stacks do.
    pub fn create_owned(&self, name: &str, owner: &crate::domain::naming::Owner) {
        self.create_function(name);
        self.set_tags(name, owner.tags().into_iter().collect());
    }

    /// Replaces the tags of function `name` (a stack create or update applies the template's);
    /// a missing function is left missing.
    pub fn set_tags(&self, name: &str, tags: BTreeMap<String, String>) {
        if let Some(function) = self.lock().functions.get_mut(name) {
            function.tags = tags;
        }
    }

    /// Deletes function `name` with its versions, aliases and permissions (a stack delete).
    pub fn delete_function(&self, name: &str) {
        self.lock().functions.remove(name);
    }

    /// Whether function `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.lock().functions.contains_key(name)
    }

    /// Every function's name, sorted.
    pub fn function_names(&self) -> Vec<String> {
        self.lock().functions.keys().cloned().collect()
    }

    /// `$LATEST` of `name` with its tags, without counting a call.
    pub fn peek(&self, name: &str) -> Option<Revision> {
        self.lock().functions.get(name).map(Function::described)
    }

    /// Tells the fake that the zip at `key` has code sha256 `sha256_base64` (what Lambda would
    /// compute from the bytes).
    pub fn know_artifact(&self, key: &str, sha256_base64: &str) {
        self.lock().artifacts.insert(key.to_owned(), sha256_base64.to_owned());
    }

    /// Makes every call of `operation` (e.g. `UpdateAlias`) on `function` fail, permanently,
    /// with `AccessDeniedException`.
    pub fn fail(&self, operation: &str, function: &str) {
        self.lock().failures.insert((operation.to_owned(), function.to_owned()));
    }

    /// Undoes [`fail`](Self::fail).
    pub fn heal(&self, operation: &str, function: &str) {
        self.lock().failures.remove(&(operation.to_owned(), function.to_owned()));
    }

    /// Makes the next code or configuration update of `function` end with
    /// `LastUpdateStatus: Failed` and `reason`.
    pub fn fail_next_update(&self, function: &str, reason: &str) {
        self.lock().failing_updates.insert(function.to_owned(), reason.to_owned());
    }

    /// Throttles every `n`-th call (of any operation, on any function) with a transient
    /// `ThrottlingException`; 0 stops throttling.
    pub fn throttle_every(&self, n: u64) {
        self.lock().throttle_every = n;
    }

    /// How many calls of `operation` were made, throttled and failed ones included.
    pub fn calls(&self, operation: &str) -> u64 {
        self.lock().calls.get(operation).copied().unwrap_or_default()
    }

    /// Calls per operation.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.lock().calls.clone()
    }

    /// Calls of all operations.
    pub fn total_calls(&self) -> u64 {
        self.lock().total_calls
    }

    /// Where every alias points: (function, alias) -> version.
    pub fn alias_snapshot(&self) -> BTreeMap<(String, String), String> {
        let state = self.lock();
        let mut snapshot = BTreeMap::new();
        for (name, function) in &state.functions {
            for (alias, version) in &function.aliases {
                snapshot.insert((name.clone(), alias.clone()), version.clone());
            }
        }
        snapshot
    }

    /// The permissions on `function:alias`.
    pub fn permissions(&self, function: &str, alias: &str) -> Vec<Permission> {
        let state = self.lock();
        let on_alias = state.functions.get(function).and_then(|f| f.permissions.get(alias));
        on_alias.map(|p| p.values().cloned().collect()).unwrap_or_default()
    }
}

#[async_trait]
impl Functions for FakeFunctions {
    async fn latest(&self, function: &str) -> Result<Option<Revision>, AwsError> {
        let mut state = self.lock();
        state.enter("GetFunction", function)?;
        Ok(state.functions.get(function).map(Function::described))
    }

    async fn alias(&self, function: &str, alias: &str) -> Result<AliasState, AwsError> {
        let mut state = self.lock();
        state.enter("GetFunction", function)?;
        let found = state.functions.get(function).map(|f| {
            let version = f.aliases.get(alias).cloned();
            let code_sha256 = version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .and_then(|n| f.versions.get(&n))
                .map_or_else(|| f.code_sha256.clone(), |p| p.code_sha256.clone());
            (version, code_sha256, f.tags.clone())
        });
        match found {
            Some((Some(version), code_sha256, tags)) => Ok(AliasState::At { version, code_sha256, tags }),
            // The adapter asks again without the alias to tell the two apart: count that call.
            Some((None, _, tags)) => {
                state.enter("GetFunction", function)?;
                Ok(AliasState::AliasMissing { tags })
            }
            None => {
                state.enter("GetFunction", function)?;
                Ok(AliasState::FunctionMissing)
            }
        }
    }

    async fn update_code(
        &self,
        function: &str,
        _bucket: &str,
        key: &str,
        architecture: &str,
    ) -> Result<Revision, AwsError> {
        let operation = "UpdateFunctionCode";
        let mut state = self.lock();
        state.enter(operation, function)?;
        let sha = state.artifacts.get(key).cloned().unwrap_or_else(|| sha_of_key(key));
        let target = state.function(operation, function)?;
        target.code_sha256 = sha;
        architecture.clone_into(&mut target.config.architecture);
        Ok(state.finish_update(function))
    }

    async fn update_config(&self, function: &str, config: &FunctionConfig) -> Result<Revision, AwsError> {
        let operation = "UpdateFunctionConfiguration";
        let mut state = self.lock();
        state.enter(operation, function)?;
        let target = state.function(operation, function)?;
        // Architecture belongs to the code (UpdateFunctionCode); a log group of None leaves the
        // one the stack declared, as the adapter does.
        let architecture = target.config.architecture.clone();
        let log_group = config.log_group.clone().or_else(|| target.config.log_group.clone());
        target.config = FunctionConfig { architecture, log_group, ..config.clone() };
        Ok(state.finish_update(function))
    }

    async fn config_of(&self, function: &str, version: &str) -> Result<Option<FunctionConfig>, AwsError> {
        let mut state = self.lock();
        state.enter("GetFunctionConfiguration", function)?;
        let number = version.parse::<u64>().ok();
        let target = state.functions.get(function);
        Ok(target.and_then(|f| number.and_then(|n| f.versions.get(&n))).map(|p| p.config.clone()))
    }

    async fn publish(
        &self,
        function: &str,
        code_sha256: &str,
        revision_id: &str,
        _description: &str,
    ) -> Result<VersionInfo, AwsError> {
        let operation = "PublishVersion";
        let mut state = self.lock();
        state.enter(operation, function)?;
        let target = state.function(operation, function)?;
        if target.code_sha256 != code_sha256 || target.revision_id != revision_id {
            return Err(error(
                operation,
                function,
                "PreconditionFailedException",
                "The RevisionId or CodeSha256 provided does not match $LATEST",
            ));
        }
        // As AWS: nothing changed since the latest version, so that version is the answer.
        if let Some((number, latest)) = target.versions.last_key_value() {
            if latest.code_sha256 == target.code_sha256 && latest.config == target.config {
                return Ok(VersionInfo { version: number.to_string(), code_sha256: latest.code_sha256.clone() });
            }
        }
        target.last_version += 1;
        let number = target.last_version;
        let published = Published { code_sha256: target.code_sha256.clone(), config: target.config.clone() };
        target.versions.insert(number, published);
        Ok(VersionInfo { version: number.to_string(), code_sha256: target.code_sha256.clone() })
    }

    async fn point_alias(&self, function: &str, alias: &str, version: &str) -> Result<(), AwsError> {
        let mut state = self.lock();
        state.enter("UpdateAlias", function)?;
        let exists = state.functions.get(function).map(|f| f.aliases.contains_key(alias));
        // The adapter creates the alias after UpdateAlias says it is missing: count that call too.
        let operation = if exists == Some(true) {
            "UpdateAlias"
        } else {
            state.enter("CreateAlias", function)?;
            "CreateAlias"
        };
        let target = state.function(operation, function)?;
        if !target.has_version(version) {
            return Err(error(
                operation,
                function,
                "ResourceNotFoundException",
                &format!("version {version} not found"),
            ));
        }
        target.aliases.insert(alias.to_owned(), version.to_owned());
        Ok(())
    }

    async fn delete_alias(&self, function: &str, alias: &str) -> Result<(), AwsError> {
        let mut state = self.lock();
        state.enter("DeleteAlias", function)?;
        if let Some(target) = state.functions.get_mut(function) {
            target.aliases.remove(alias);
            target.permissions.remove(alias);
        }
        Ok(())
    }

    async fn aliases(&self, function: &str) -> Result<Vec<AliasTarget>, AwsError> {
        let mut state = self.lock();
        state.enter("ListAliases", function)?;
        let aliases = state.functions.get(function).map(|f| {
            f.aliases
                .iter()
                .map(|(alias, version)| AliasTarget { alias: alias.clone(), version: version.clone() })
                .collect()
        });
        Ok(aliases.unwrap_or_default())
    }

    async fn versions(&self, function: &str) -> Result<Vec<VersionInfo>, AwsError> {
        let mut state = self.lock();
        state.enter("ListVersionsByFunction", function)?;
        let versions = state.functions.get(function).map(|f| {
            f.versions
                .iter()
                .map(|(n, p)| VersionInfo { version: n.to_string(), code_sha256: p.code_sha256.clone() })
                .collect()
        });
        Ok(versions.unwrap_or_default())
    }

    async fn delete_version(&self, function: &str, version: &str) -> Result<(), AwsError> {
        let operation = "DeleteFunction";
        let mut state = self.lock();
        state.enter(operation, function)?;
        let Ok(number) = version.parse::<u64>() else {
            return Err(error(
                operation,
                function,
                "InvalidParameterValueException",
                "only published versions can be deleted",
            ));
        };
        let Some(target) = state.functions.get_mut(function) else {
            return Ok(());
        };
        let holders: Vec<&str> =
            target.aliases.iter().filter(|(_, v)| **v == version).map(|(alias, _)| alias.as_str()).collect();
        if !holders.is_empty() {
            let message = format!("Unable to delete version because the following aliases reference it: {holders:?}");
            return Err(error(operation, function, "ResourceConflictException", &message));
        }
        target.versions.remove(&number);
        Ok(())
    }

    async fn add_permission(&self, function: &str, alias: &str, permission: &Permission) -> Result<(), AwsError> {
        let operation = "AddPermission";
        let mut state = self.lock();
        state.enter(operation, function)?;
        let target = state.function(operation, function)?;
        if !target.aliases.contains_key(alias) {
            return Err(not_found(operation, &format!("{function}:{alias}")));
        }
        let on_alias = target.permissions.entry(alias.to_owned()).or_default();
        if on_alias.contains_key(&permission.statement_id) {
            // AWS answers ResourceConflictException and the adapter reads the policy to be sure.
            state.enter("GetPolicy", function)?;
            return Ok(());
        }
        on_alias.insert(permission.statement_id.clone(), permission.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(memory: u32) -> FunctionConfig {
        FunctionConfig { memory, environment: BTreeMap::from([("MODE".into(), "fast".into())]), ..default_config() }
    }

    async fn deploy(fake: &FakeFunctions, function: &str, key: &str) -> VersionInfo {
        let revision = fake.update_code(function, "bucket", key, "arm64").await.unwrap();
        fake.publish(function, &revision.code_sha256, &revision.revision_id, "").await.unwrap()
    }

    #[tokio::test]
    async fn a_missing_function_has_no_latest_and_refuses_updates() {
        let fake = FakeFunctions::default();
        assert_eq!(fake.latest("shop-api").await.unwrap(), None);
        let err = fake.update_code("shop-api", "b", "k", "arm64").await.unwrap_err();
        assert_eq!((err.operation.as_str(), err.code.as_str()), ("UpdateFunctionCode", "ResourceNotFoundException"));
        assert!(fake.aliases("shop-api").await.unwrap().is_empty());
        assert!(fake.versions("shop-api").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn code_of_a_known_artifact_has_its_sha_and_an_unknown_one_a_stable_made_up_sha() {
        let fake = FakeFunctions::default().create("a").create("b");
        fake.know_artifact("api.zip", "c2hhLW9mLXRoZS16aXA=");
        assert_eq!(
            fake.update_code("a", "bucket", "api.zip", "arm64").await.unwrap().code_sha256,
            "c2hhLW9mLXRoZS16aXA="
        );
        let first = fake.update_code("b", "bucket", "other.zip", "arm64").await.unwrap();
        let again = fake.update_code("b", "bucket", "other.zip", "arm64").await.unwrap();
        assert_eq!(first.code_sha256, again.code_sha256);
        assert_ne!(first.revision_id, again.revision_id, "every update is a new revision");
        assert_eq!(again.config.unwrap().architecture, "arm64");
    }

    #[tokio::test]
    async fn publishing_unchanged_code_returns_the_latest_version_and_a_change_a_new_number() {
        let fake = FakeFunctions::default().create("shop-api");
        let v1 = deploy(&fake, "shop-api", "one.zip").await;
        let same = deploy(&fake, "shop-api", "one.zip").await;
        let v2 = deploy(&fake, "shop-api", "two.zip").await;
        assert_eq!((v1.version.as_str(), same.version.as_str(), v2.version.as_str()), ("1", "1", "2"));
        let revision = fake.update_config("shop-api", &config(512)).await.unwrap();
        let v3 = fake.publish("shop-api", &revision.code_sha256, &revision.revision_id, "").await.unwrap();
        assert_eq!(v3.version, "3", "a configuration change is a change too");
    }

    #[tokio::test]
    async fn publish_is_refused_when_code_or_revision_no_longer_match() {
        let fake = FakeFunctions::default().create("shop-api");
        let seen = fake.update_code("shop-api", "bucket", "one.zip", "arm64").await.unwrap();
        let err = fake.publish("shop-api", &seen.code_sha256, "stale", "").await.unwrap_err();
        assert_eq!(err.code, "PreconditionFailedException");
        assert!(!err.transient);
        fake.update_code("shop-api", "bucket", "two.zip", "arm64").await.unwrap();
        let err = fake.publish("shop-api", &seen.code_sha256, &seen.revision_id, "").await.unwrap_err();
        assert_eq!(err.code, "PreconditionFailedException");
        assert!(fake.versions("shop-api").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_versions_configuration_is_the_one_it_was_published_with() {
        let fake = FakeFunctions::default().create("shop-api");
        let v1 = deploy(&fake, "shop-api", "one.zip").await;
        fake.update_config("shop-api", &config(512)).await.unwrap();
        deploy(&fake, "shop-api", "two.zip").await;
        let published = fake.config_of("shop-api", &v1.version).await.unwrap().unwrap();
        assert_eq!((published.memory, published.architecture.as_str()), (128, "arm64"));
        assert_eq!(fake.config_of("shop-api", "9").await.unwrap(), None);
        assert_eq!(fake.config_of("shop-web", "1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn version_numbers_are_never_reused_after_a_delete() {
        let fake = FakeFunctions::default().create("shop-api");
        deploy(&fake, "shop-api", "one.zip").await;
        let v2 = deploy(&fake, "shop-api", "two.zip").await;
        fake.delete_version("shop-api", &v2.version).await.unwrap();
        fake.delete_version("shop-api", &v2.version).await.unwrap();
        assert_eq!(deploy(&fake, "shop-api", "three.zip").await.version, "3");
    }

    #[tokio::test]
    async fn a_version_an_alias_points_at_cannot_be_deleted() {
        let fake = FakeFunctions::default().create("shop-api");
        let v1 = deploy(&fake, "shop-api", "one.zip").await;
        fake.point_alias("shop-api", "prod", &v1.version).await.unwrap();
        let err = fake.delete_version("shop-api", &v1.version).await.unwrap_err();
        assert_eq!(err.code, "ResourceConflictException");
        let err = fake.delete_version("shop-api", "$LATEST").await.unwrap_err();
        assert_eq!(err.code, "InvalidParameterValueException");
    }

    #[tokio::test]
    async fn pointing_an_alias_creates_it_then_moves_it() {
        let fake = FakeFunctions::default().create("shop-api");
        let v1 = deploy(&fake, "shop-api", "one.zip").await;
        let v2 = deploy(&fake, "shop-api", "two.zip").await;
        fake.point_alias("shop-api", "dev", &v1.version).await.unwrap();
        fake.point_alias("shop-api", "dev", &v2.version).await.unwrap();
        assert_eq!(fake.calls("CreateAlias"), 1);
        assert_eq!(fake.calls("UpdateAlias"), 2);
        let key = ("shop-api".to_owned(), "dev".to_owned());
        assert_eq!(fake.alias_snapshot(), BTreeMap::from([(key, "2".to_owned())]));
        let err = fake.point_alias("shop-api", "dev", "9").await.unwrap_err();
        assert_eq!(err.code, "ResourceNotFoundException");
        fake.delete_alias("shop-api", "dev").await.unwrap();
        fake.delete_alias("shop-api", "dev").await.unwrap();
        assert!(fake.aliases("shop-api").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_injected_failure_hits_only_its_operation_and_function_until_healed() {
        let fake = FakeFunctions::default().create("shop-api").create("shop-web");
        fake.fail("UpdateAlias", "shop-api");
        let err = fake.point_alias("shop-api", "dev", "$LATEST").await.unwrap_err();
        assert_eq!(err.to_string(), "UpdateAlias on shop-api: AccessDeniedException: injected permanent failure");
        assert!(!err.transient);
        fake.point_alias("shop-web", "dev", "$LATEST").await.unwrap();
        fake.heal("UpdateAlias", "shop-api");
        fake.point_alias("shop-api", "dev", "$LATEST").await.unwrap();
    }

    #[tokio::test]
    async fn every_nth_call_is_throttled_transiently() {
        let fake = FakeFunctions::default().create("shop-api");
        fake.throttle_every(3);
        let mut outcomes = Vec::new();
        for _ in 0..6 {
            outcomes.push(fake.latest("shop-api").await.map_err(|e| (e.code, e.transient)));
        }
        let throttled: Vec<usize> = outcomes.iter().enumerate().filter(|(_, o)| o.is_err()).map(|(i, _)| i).collect();
        assert_eq!(throttled, [2, 5]);
        assert_eq!(outcomes[2].clone().unwrap_err(), ("ThrottlingException".to_owned(), true));
        assert_eq!(fake.calls("GetFunction"), 6);
    }

    #[tokio::test]
    async fn a_failed_update_is_reported_in_the_revision_once() {
        let fake = FakeFunctions::default().create("shop-api");
        fake.fail_next_update("shop-api", "bad handler");
        let revision = fake.update_config("shop-api", &config(256)).await.unwrap();
        assert_eq!(revision.status, UpdateStatus::Failed("bad handler".into()));
        let revision = fake.update_config("shop-api", &config(256)).await.unwrap();
        assert_eq!(revision.status, UpdateStatus::Successful);
    }

    #[tokio::test]
    async fn update_config_replaces_the_environment_and_keeps_architecture_and_declared_log_group() {
        let fake = FakeFunctions::default().create("shop-api");
        fake.update_code("shop-api", "bucket", "one.zip", "arm64").await.unwrap();
        let with_group = FunctionConfig { log_group: Some("/shop/dev/api".into()), ..config(256) };
        fake.update_config("shop-api", &with_group).await.unwrap();
        let plain = FunctionConfig { environment: BTreeMap::new(), ..config(1024) };
        let got = fake.update_config("shop-api", &plain).await.unwrap().config.unwrap();
        assert_eq!(got.memory, 1024);
        assert!(got.environment.is_empty());
        assert_eq!(got.architecture, "arm64");
        assert_eq!(got.log_group.as_deref(), Some("/shop/dev/api"));
    }

    #[tokio::test]
    async fn adding_a_permission_twice_keeps_one_statement() {
        let fake = FakeFunctions::default().create("shop-api");
        let permission = Permission {
            statement_id: "apigateway-dev".into(),
            principal: "apigateway.amazonaws.com".into(),
            source_arn: "arn:aws:execute-api:us-east-1:123456789012:abc/*".into(),
        };
        let err = fake.add_permission("shop-api", "dev", &permission).await.unwrap_err();
        assert_eq!(err.code, "ResourceNotFoundException", "the alias must exist first");
        fake.point_alias("shop-api", "dev", "$LATEST").await.unwrap();
        fake.add_permission("shop-api", "dev", &permission).await.unwrap();
        fake.add_permission("shop-api", "dev", &permission).await.unwrap();
        assert_eq!(fake.permissions("shop-api", "dev"), [permission]);
    }
}
