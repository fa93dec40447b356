//! `cerveza man`: the manual pages, generated from the same definitions as `--help`.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::exit;

/// Prints cerveza(1), or writes every page into `out`.
pub fn run(out: Option<&Path>) -> Result<u8> {
    let cmd = crate::cli::command();
    match out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            crate::output::emit(&String::from_utf8_lossy(&page));
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            let n = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("cerveza"))
                .count();
            eprintln!("{n} manual pages in {}", dir.display());
        }
    }
    Ok(exit::OK)
}
