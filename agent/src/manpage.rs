//! `loyalty-agent man`: one man page, generated from the CLI definition (clap_mangen): the
//! command's own page, then each command's synopsis and options, so `man loyalty-agent` holds
//! every flag the binary takes.

use crate::cli::Cli;
use clap::CommandFactory;
use std::io::Write;

pub fn render(out: &mut dyn Write) -> std::io::Result<()> {
    let mut command = Cli::command();
    command.build();
    clap_mangen::Man::new(command.clone()).render(out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_command(sub, out)?;
        for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
            write_command(nested, out)?;
        }
    }
    Ok(())
}

fn write_command(command: &clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let name = command
        .get_bin_name()
        .unwrap_or(command.get_name())
        .to_uppercase();
    writeln!(out, ".SH \"{name}\"")?;
    if let Some(about) = command.get_long_about().or(command.get_about()) {
        writeln!(out, "{}", escape(&about.to_string()))?;
    }
    let man = clap_mangen::Man::new(command.clone());
    man.render_synopsis_section(out)?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    Ok(())
}

/// Text as roff reads it: a leading `.` or `'` would be a request, `\` an escape.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e")
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
