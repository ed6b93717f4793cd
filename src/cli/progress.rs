//! Progress bars: bytes done, throughput and ETA on stderr; hidden when quiet, in JSON mode
//! or when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Output;

pub fn bar(total: u64, what: &str, out: Output) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if out.quiet || out.json {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

/// A bar counting tokens scored by a model, with tokens/s and ETA.
pub fn tokens_bar(total: u64, what: &str, out: Output) -> ProgressBar {
    let pb = bar(total, what, out);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {human_pos}/{human_len} tokens {per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb
}
