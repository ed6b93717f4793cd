//! Untrusted protocol bytes: every message type's decoder, and sequences of decoded client
//! messages and upload events driven through the aggregator's state machine. Must never
//! panic, whatever a client sends.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use lmgc_fl::aggregator::{Aggregator, ConnId, RoundPolicy, RoundState, StragglerPolicy};
use lmgc_fl::auth::Auth;
use lmgc_fl::wire::{self, ClientMsg, CodecOffer, Digest, ModelHeader, ServerMsg, UpdateKind, UploadHeader};

fuzz_target!(|data: &[u8]| {
    let _ = wire::decode::<ServerMsg>(data);
    let _ = wire::decode::<ModelHeader>(data);
    let _ = lmgc_fl::aggregator::UploadKey::from_file_name(&String::from_utf8_lossy(data));
    let policy = RoundPolicy {
        rounds: 2,
        clients_per_round: 2,
        min_clients: 1,
        round_timeout: Duration::from_secs(10),
        straggler: StragglerPolicy::Drop,
        update: UpdateKind::Delta,
        seed: 1,
        max_update_bytes: 1 << 20,
        ack_every: 64,
    };
    let auth = Auth::parse("a 0123456789abcdef0123456789abcdef\nb 0123456789abcdef0123456789abcdef\n").unwrap();
    let now = Instant::now();
    let mut agg = Aggregator::new(policy, auth, vec![CodecOffer::classical("bytegroup")], true, RoundState::fresh(Digest([0; 32])), vec![], now).unwrap();
    for c in 0..3 {
        agg.handle_connect(ConnId(c));
    }
    // Records: [kind][conn][len][body...]
    let mut rest = data;
    let mut t = now;
    while rest.len() >= 3 {
        let (kind, conn, len) = (rest[0], ConnId(u64::from(rest[1] % 3)), rest[2] as usize);
        let body = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[(3 + len).min(rest.len())..];
        t += Duration::from_millis(u64::from(kind) * 40);
        match kind % 6 {
            0 | 1 => {
                if let Ok(m) = wire::decode::<ClientMsg>(body) {
                    agg.handle_message(t, conn, m);
                }
            }
            2 => {
                if let Ok(h) = wire::decode::<UploadHeader>(body) {
                    if let Ok(p) = agg.handle_upload_start(conn, &h) {
                        let n = body.len() as u64 * 997;
                        agg.handle_upload_progress(conn, &p.key, p.offset.saturating_add(n));
                    }
                }
            }
            3 => agg.handle_disconnect(t, conn),
            4 => agg.handle_timeout(t),
            _ => agg.handle_connect(conn),
        }
        while let Some(a) = agg.poll_action() {
            match a {
                lmgc_fl::aggregator::Action::Decode(key, _) => agg.handle_decoded(t, &key, if body.first() == Some(&0) { Err("bad".into()) } else { Ok(0.1) }),
                lmgc_fl::aggregator::Action::Aggregate(round, _) => agg.handle_aggregated(t, round, Digest([1; 32])),
                _ => {}
            }
        }
    }
});
