//! Colour on stderr, by the usual conventions: `--color always|never` decides;
//! `auto` (the default) colours only a terminal, and not when `NO_COLOR` is set to
//! anything or `TERM` is `dumb`. stdout (results, JSON) is never coloured.

use std::io::IsTerminal;
use std::sync::OnceLock;

use crate::cli::ColorChoice;

static STDERR: OnceLock<bool> = OnceLock::new();

/// Whether `choice` means colour for a stream that is (or is not) a terminal.
pub fn decide(choice: ColorChoice, terminal: bool, no_color: bool, dumb: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && !no_color && !dumb,
    }
}

/// Decides once, for the whole run.
pub fn init(choice: ColorChoice) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    *STDERR.get_or_init(|| decide(choice, std::io::stderr().is_terminal(), no_color, dumb))
}

/// Whether stderr gets colour (false before [`init`]).
pub fn stderr() -> bool {
    STDERR.get().copied().unwrap_or(false)
}

/// `error:` in bold red when stderr is coloured.
pub fn error_label() -> &'static str {
    if stderr() {
        "\x1b[1;31merror:\x1b[0m"
    } else {
        "error:"
    }
}

/// `warning:` in bold yellow when stderr is coloured.
pub fn warning_label() -> &'static str {
    if stderr() {
        "\x1b[1;33mwarning:\x1b[0m"
    } else {
        "warning:"
    }
}

/// The `--color` of a command line before clap parses it (clap's own help and errors
/// follow it too).
pub fn from_args(args: &[std::ffi::OsString]) -> ColorChoice {
    let mut choice = ColorChoice::Auto;
    let mut it = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        let value = match a.strip_prefix("--color") {
            Some("") => it.next().map(|v| v.into_owned()),
            Some(v) if v.starts_with('=') => Some(v[1..].to_owned()),
            _ => None,
        };
        choice = match value.as_deref() {
            Some("always") => ColorChoice::Always,
            Some("never") => ColorChoice::Never,
            Some("auto") => ColorChoice::Auto,
            _ => choice,
        };
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_and_auto_follows_the_conventions() {
        assert!(decide(ColorChoice::Always, false, true, true));
        assert!(!decide(ColorChoice::Never, true, false, false));
        assert!(decide(ColorChoice::Auto, true, false, false));
        assert!(!decide(ColorChoice::Auto, false, false, false), "a pipe");
        assert!(!decide(ColorChoice::Auto, true, true, false), "NO_COLOR");
        assert!(!decide(ColorChoice::Auto, true, false, true), "TERM=dumb");
    }

    #[test]
    fn the_last_color_flag_before_the_command_counts() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(from_args(&args(&["cerveza", "list"])), ColorChoice::Auto);
        assert_eq!(
            from_args(&args(&["cerveza", "--color", "never", "list"])),
            ColorChoice::Never
        );
        assert_eq!(
            from_args(&args(&[
                "cerveza",
                "--color=always",
                "remote",
                "x",
                "--",
                "--color=never"
            ])),
            ColorChoice::Always
        );
    }
}
