//! `cliptune report`: before/after eval files + training logs -> HTML page and PNG charts.
use std::path::PathBuf;

use cliptune::report::{retention_class, write_report, ReportOptions};
use cliptune::Result;

pub struct ReportArgs {
    pub before: PathBuf,
    pub after: PathBuf,
    pub logs: Vec<PathBuf>,
    pub targets: Vec<String>,
    pub out: PathBuf,
}

pub fn run(a: ReportArgs) -> Result<()> {
    let opts = ReportOptions {
        before: a.before,
        after: a.after,
        logs: a.logs,
        targets: a.targets,
        out: a.out,
        generated_unix: None,
    };
    let rep = write_report(&opts)?;
    let c = &rep.comparison;
    for r in &c.rows {
        let role = if r.target { "target   " } else { "retention" };
        for m in r.headline() {
            let fmt = |x: Option<f32>| {
                x.map(|x| format!("{:6.2}%", 100.0 * x))
                    .unwrap_or_else(|| "      -".into())
            };
            let delta = m.delta_pp().map(|d| format!("{d:+7.2} pp")).unwrap_or_default();
            let ratio = match m.ratio() {
                Some(x) if !r.target => format!("  retention {x:.3} ({})", retention_class(x)),
                _ => String::new(),
            };
            println!(
                "{role} {:<12} {:<32} {:<16} {} -> {} {delta}{ratio}",
                r.kind_label(),
                r.name,
                m.name,
                fmt(m.before),
                fmt(m.after)
            );
        }
    }
    let mut written = vec![rep.html.display().to_string()];
    written.extend(rep.charts.iter().map(|p| p.display().to_string()));
    eprintln!("wrote {}", written.join(", "));
    Ok(())
}
