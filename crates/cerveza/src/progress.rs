//! Progress of long operations on stderr: a spinner per host on a terminal, plain
//! lines otherwise (CI logs, pipes), nothing with `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use cerveza_core::ports::{Progress, Quiet};
use cerveza_core::Hostname;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Spinners on a terminal.
struct Spinners {
    multi: MultiProgress,
    bars: Mutex<HashMap<Hostname, ProgressBar>>,
}

impl Progress for Spinners {
    fn step(&self, host: &Hostname, what: &str) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(host.clone()).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template(if crate::colour::stderr() {
                    "{spinner} {prefix:.bold} {msg} ({elapsed})"
                } else {
                    "{spinner} {prefix} {msg} ({elapsed})"
                })
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(host.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        bar.set_message(what.to_owned());
    }

    fn warn(&self, message: &str) {
        // Above the spinners, which keep drawing below it.
        if self.multi.println(format!("warning: {message}")).is_err() {
            eprintln!("{} {message}", crate::colour::warning_label());
        }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for bar in self.bars.lock().unwrap_or_else(|p| p.into_inner()).values() {
            bar.finish_and_clear();
        }
    }
}

/// One line per step.
struct Lines;

impl Progress for Lines {
    fn step(&self, host: &Hostname, what: &str) {
        eprintln!("{host}: {what}");
    }

    fn warn(&self, message: &str) {
        eprintln!("{} {message}", crate::colour::warning_label());
    }
}

/// The progress display that fits stderr.
pub fn reporter(quiet: bool) -> Box<dyn Progress> {
    if quiet {
        Box::new(Quiet)
    } else if std::io::stderr().is_terminal() {
        Box::new(Spinners {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        })
    } else {
        Box::new(Lines)
    }
}
