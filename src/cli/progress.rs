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

/// A bar counting training steps, with steps/s, ETA and the latest loss.
pub fn steps_bar(total: u64, what: &str, out: Output) -> ProgressBar {
    let pb = bar(total, what, out);
    pb.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} steps {per_sec} ETA {eta} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb
}

/// Tokens a prior codec coded into a container (`None` for other codecs): the sum of its
/// streams' symbols (an `auto` block's selector and bytegroup streams are not tokens).
pub fn prior_tokens(h: &lmgc::core::container::Header) -> Option<u64> {
    use lmgc::core::codec::CodecSpec;
    match &h.codec {
        CodecSpec::Prior(_) => Some(
            h.blocks
                .iter()
                .flat_map(|b| &b.streams)
                .map(|s| s.symbols)
                .sum(),
        ),
        // A hybrid block's tail streams (bytegroup chunks) come last and are not tokens.
        CodecSpec::Hybrid(_) => Some(
            h.blocks
                .iter()
                .flat_map(|b| {
                    let tail = lmgc::core::hybrid::tail_lengths(b.dtype, b.len).len();
                    &b.streams[..b.streams.len().saturating_sub(tail)]
                })
                .map(|s| s.symbols)
                .sum(),
        ),
        CodecSpec::Auto(_) => Some(
            h.blocks
                .iter()
                .filter(|b| {
                    b.streams.first().map(|s| s.symbols) == Some(lmgc::core::auto_codec::PRIOR)
                })
                .flat_map(|b| &b.streams[1..])
                .map(|s| s.symbols)
                .sum(),
        ),
        _ => None,
    }
}
