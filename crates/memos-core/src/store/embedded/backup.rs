//! Online backup of the embedded store: a consistent copy of `memos.db` taken while a
//! server keeps serving, with SQLite's backup API.
//!
//! The copy is made in one backup step, which reads under one read transaction: in WAL
//! mode that blocks no writer, and the copy is the store as of one revision (a step of a
//! few pages at a time would start over whenever the server wrote in between). Only the
//! database is copied: the search index is derived from it and rebuilt when a server
//! starts on the copy (its recorded revision is missing), so restoring is pointing
//! `--data-dir` at the backup.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};

use super::EmbeddedStore;
use crate::error::{Error, Result};

impl EmbeddedStore {
    /// Copies the database into `dest` (a directory that must not exist yet or be empty)
    /// as `memos.db`, written under a temporary name and renamed when complete, so a
    /// backup cut short never looks like one. Returns the copy's size in bytes.
    pub async fn backup(&self, dest: &Path) -> Result<u64> {
        let dest = dest.to_path_buf();
        if dest.exists()
            && std::fs::read_dir(&dest)
                .map_err(|e| Error::Config(format!("cannot read {}: {e}", dest.display())))?
                .next()
                .is_some()
        {
            return Err(Error::Config(format!(
                "{} is not empty: back up into a new directory",
                dest.display()
            )));
        }
        std::fs::create_dir_all(&dest)
            .map_err(|e| Error::Config(format!("cannot create {}: {e}", dest.display())))?;
        self.with_reader(move |src| {
            let part = dest.join("memos.db.part");
            let mut out = rusqlite::Connection::open(&part)?;
            {
                let backup = Backup::new(src, &mut out)?;
                // -1: every page in one step, under one read transaction.
                let mut tries = 0;
                // Busy or locked (a checkpoint under way): wait and step again, for a while.
                while backup.step(-1)? != StepResult::Done {
                    tries += 1;
                    if tries == 1500 {
                        return Err(Error::Unavailable(
                            "the database stayed locked for 30 s; no backup was made".into(),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            // The copy in the rollback journal mode a fresh file has; the server that
            // opens it switches it to WAL as it does every store.
            out.close().map_err(|(_, e)| e)?;
            let io = |e: std::io::Error| Error::Config(format!("backup: {e}"));
            std::fs::File::open(&part)
                .and_then(|f| f.sync_all())
                .map_err(io)?;
            let done = dest.join("memos.db");
            std::fs::rename(&part, &done).map_err(io)?;
            std::fs::File::open(&dest)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
            Ok(std::fs::metadata(&done).map_err(io)?.len())
        })
        .await
    }
}
