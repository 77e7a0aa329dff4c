//! etcd-manager-ctl's commands against a kops backup store: `list-backups`,
//! `restore-backup NAME`, `list-commands`, `delete-command NAME`.

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::config::CtlConfig;
use crate::formats::etcd_manager::{
    SPEC_FILE, delete_commands, list_backups, list_commands, queue_restore,
};

/// Runs one of etcd-manager-ctl's commands against the store; returns what to print.
pub async fn ctl(cfg: &CtlConfig, shutdown: &Shutdown) -> Result<String> {
    let deadline = Deadline::after(std::time::Duration::from_secs(300));
    let (client, _) = cfg.remote.connect(SPEC_FILE, &deadline, shutdown).await?;
    let store = client.as_ref();
    let args: Vec<&str> = cfg.args.iter().map(String::as_str).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    match args.as_slice() {
        ["list-backups"] => Ok(list_backups(store).await?.join("\n")),
        ["restore-backup", name] => {
            let key = queue_restore(store, name, now).await?;
            Ok(format!("added restore-backup command for {name}: {key}"))
        }
        ["list-commands"] => Ok(list_commands(store)
            .await?
            .iter()
            .map(|(key, c)| format!("{key} {}", serde_json::to_string(c).expect("serialises")))
            .collect::<Vec<_>>()
            .join("\n")),
        ["delete-command", name] => {
            let n = delete_commands(store, name).await?;
            Ok(format!("deleted {n} command(s) for {name}"))
        }
        _ => Err(Error::Usage(format!(
            "unknown backup-store command {:?}: use list-backups, restore-backup NAME, list-commands or delete-command NAME",
            cfg.args.join(" ")
        ))),
    }
}
