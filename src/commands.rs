//! The commands that run no agent: `profiles`, `profile NAME`, `completions SHELL`, `man`. They
//! print to stdout and touch no cgroup.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, Cmd};
use crate::profile::search;
use crate::Error;

pub fn run(cmd: &Cmd) -> Result<i32, Error> {
    let mut out = std::io::stdout().lock();
    let text = match cmd {
        Cmd::Check { json } => {
            let (text, code) = crate::check::report(*json);
            let _ = out.write_all(text.as_bytes());
            return Ok(code);
        }
        Cmd::Gc {
            kill,
            cgroup_parent,
        } => {
            let (text, code) = crate::gc::run(cgroup_parent.as_deref(), *kill)?;
            let _ = out.write_all(text.as_bytes());
            return Ok(code);
        }
        Cmd::Profiles => profiles(),
        Cmd::Profile {
            name,
            sets,
            resolved,
        } => profile(name, sets, *resolved)?,
        Cmd::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "synwire-run", &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        }
        Cmd::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .map_err(Error::Output)?;
            String::from_utf8_lossy(&buf).into_owned()
        }
    };
    // A closed pipe (`synwire-run profiles | head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes());
    Ok(0)
}

/// `profile NAME`: the keys it sets (or, `resolved`, every key) as TOML, under a header naming
/// its chain.
fn profile(name: &str, sets: &[String], resolved: bool) -> Result<String, Error> {
    let (profile, chain, source) = search::load_chain_table(&search::search_dirs(), name, sets)?;
    let from: Vec<String> = chain
        .iter()
        .map(|f| format!("{} ({})", f.name, f.source))
        .collect();
    let (what, toml) = if resolved {
        ("every key, the defaults included", profile.to_toml())
    } else {
        (
            "the keys it sets; --resolved adds the defaults",
            profile.to_toml_set_in(&source),
        )
    };
    Ok(format!(
        "# synwire-run profile {name}: {}\n# {what}\n{toml}",
        from.join(" <- "),
    ))
}

fn profiles() -> String {
    let found = search::all(&search::search_dirs());
    let width = found.iter().map(|(f, _)| f.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (f, shadowed) in found {
        let description = crate::profile::parse(&f.name, &f.origin, &f.text)
            .map(|p| p.description.unwrap_or_default())
            .unwrap_or_else(|e| format!("INVALID: {e}"));
        let note = if shadowed { " (shadowed)" } else { "" };
        text.push_str(&format!(
            "{:width$}  {}{note}  {description}\n",
            f.name, f.source
        ));
    }
    text
}
