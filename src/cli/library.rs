//! `train`, `eval` and `merge` for library callers (the Python package): the binary's own argument
//! parsing, checks and code path, given the flags as strings, returning what the run
//! produced instead of only printing it. One definition of every option, its default and
//! its validation, so a caller can never drift from the command line.
use super::{run_eval, run_merge, train_cmd, Cli, Command};
use clap::Parser;
use cliptune::eval::suite::EvalReport;
use cliptune::train::run::TrainSummary;
use cliptune::{Error, Result};

/// Parse `cliptune SUBCOMMAND ARGS...`; a refused flag is an [`Error`] carrying clap's
/// message (which names the flag), never a process exit.
fn parse(subcommand: &str, args: &[String]) -> Result<Command> {
    let argv = ["cliptune", subcommand]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(cli) => Ok(cli.command),
        Err(e) => {
            let msg = e.render().to_string();
            // clap's text ends in usage and a --help hint meant for a shell user.
            let first = msg.split("\n\n").next().unwrap_or(&msg).trim();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            Err(Error::invalid(format!("{subcommand}: {first}")))
        }
    }
}

/// `cliptune train ARGS...` (e.g. `["--method", "lora", "--model", "m/", "--data",
/// "shots/", "--out", "lora/"]`): trains and writes the adapter exactly as the binary does.
/// Progress goes to stderr. Inside [`crate::cancel::scoped`], a cancellation ends the run
/// after the current step with a resumable checkpoint and an `Interrupted` error.
///
/// ```
/// let err = cliptune::cli::train(&["--method".into(), "lora".into()]).err().unwrap();
/// assert!(err.msg.contains("--model"), "{}", err.msg); // required flags are named
/// ```
pub fn train(args: &[String]) -> Result<TrainSummary> {
    match parse("train", args)? {
        Command::Train(t) => train_cmd::run(t),
        _ => unreachable!("parse(\"train\") gives the train command"),
    }
}

/// `cliptune eval ARGS...` (e.g. `["--model", "m/", "--zero-shot", "fashion-mnist:test:10"]`):
/// the metrics report, also printed (and written with `--out`) as the binary does.
///
/// ```
/// let err = cliptune::cli::eval(&["--model".into(), "no-such-model".into()]).err().unwrap();
/// assert!(err.msg.contains("nothing to evaluate"), "{}", err.msg);
/// ```
pub fn eval(args: &[String]) -> Result<EvalReport> {
    run_eval(parse("eval", args)?)
}

/// `cliptune merge ARGS...` (e.g. `["--model", "m/", "--adapter", "lora/", "--out",
/// "merged/"]`): writes the merged Hugging Face checkpoint exactly as the binary does.
///
/// ```
/// let err = cliptune::cli::merge(&["--model".into(), "m/".into(), "--out".into(), "o/".into()]).err().unwrap();
/// assert!(err.msg.contains("--adapter"), "{}", err.msg);
/// ```
pub fn merge(args: &[String]) -> Result<()> {
    run_merge(parse("merge", args)?)
}
