//! `aliasflow unlock --stage S --lock-id ID`: breaks a stage's lock on purpose, like
//! `terraform force-unlock`. Only the named holder's lock is broken.

use std::path::Path;

use functions::steps::acquire_lock::stage_lock;
use serde_json::json;

use super::{deps, manifest_for_stage, CliError};
use crate::output::Reply;
use crate::App;

/// Breaks the lock if `lock_id` holds it.
pub async fn run(file: &Path, stage: &str, lock_id: &str, app: &App) -> Result<Reply, CliError> {
    let manifest = manifest_for_stage(file, stage)?;
    let (deps, _) = deps(&manifest, app).await?;
    let name = stage_lock(stage);
    let released =
        deps.history.release(&manifest.service, &name, lock_id).await.map_err(|e| CliError::aws("unlock", e))?;
    if !released {
        let holder = deps.history.lock(&manifest.service, &name).await.map_err(|e| CliError::aws("unlock", e))?;
        let now = match holder {
            Some(lock) => format!("it is held by {} until {}", lock.owner, lock.expires_at.to_rfc3339()),
            None => "it is not locked".to_owned(),
        };
        return Err(CliError::Usage(format!("stage {stage} is not locked by {lock_id}: {now}; nothing changed")));
    }
    Ok(Reply::new(
        json!({ "stage": stage, "unlocked": true, "lock_id": lock_id }),
        format!("stage {stage}: lock {lock_id} broken"),
    ))
}
