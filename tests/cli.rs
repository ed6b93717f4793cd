//! End-to-end tests of the `lmgc` binary: real files, real gradients, every bad-input class.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lmgc::core::io::{npy_bytes, safetensors_bytes};
use lmgc::core::{DType, Gradient, Tensor};

#[path = "../examples/mlp_gradients.rs"]
#[allow(dead_code)]
mod mlp_gradients;
#[path = "../examples/synthetic_gradient.rs"]
#[allow(dead_code)]
mod synthetic_gradient;

fn lmgc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmgc"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn ok(args: &[&str]) -> Output {
    let out = lmgc(args);
    assert!(
        out.status.success(),
        "lmgc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must fail with exit code 1 and a message, and returns stderr.
fn fails(args: &[&str]) -> String {
    let out = lmgc(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "lmgc {args:?}: {stderr}");
    assert!(
        stderr.contains("error"),
        "lmgc {args:?} printed no error: {stderr}"
    );
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// compress → decompress → byte-identical file, for every codec.
fn round_trip_all_codecs(input: &Path, dir: &Path) {
    for codec_args in [
        &["--codec", "bytegroup"][..],
        &["--codec", "store"],
        &[
            "--codec",
            "context",
            "--format",
            "hex-space-be",
            "--window",
            "256",
        ],
        &[
            "--codec",
            "context",
            "--format",
            "iso-none",
            "--order",
            "1",
            "--precision",
            "16",
        ],
    ] {
        let packed = dir.join("x.lmgc");
        let restored = dir.join("restored");
        let mut args = vec!["compress", s(input), "-o", s(&packed), "--quiet"];
        args.extend_from_slice(codec_args);
        ok(&args);
        ok(&["decompress", s(&packed), "-o", s(&restored), "--quiet"]);
        assert_eq!(
            std::fs::read(input).unwrap(),
            std::fs::read(&restored).unwrap(),
            "{codec_args:?}"
        );
    }
}

/// The CIFAR-10 directory from `LMGC_CIFAR10_DIR`; `None` (the test is skipped, with a
/// message) when it is unset, which CI must never be.
fn cifar10_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("LMGC_CIFAR10_DIR").map(PathBuf::from);
    if dir.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set LMGC_CIFAR10_DIR"
        );
        eprintln!("skipped: set LMGC_CIFAR10_DIR to a CIFAR-10 binary directory");
    }
    dir
}

/// Gradients of a real model on real data (CIFAR-10): the acceptance check.
#[test]
fn real_gradients_round_trip_bit_exactly() {
    let Some(data) = cifar10_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let grads = mlp_gradients::collect(&data, 2, 32).unwrap();
    let file = dir.path().join("grad.safetensors");
    std::fs::write(&file, safetensors_bytes(&grads[1])).unwrap();
    round_trip_all_codecs(&file, dir.path());

    // bytegroup must actually compress real gradients.
    let packed = dir.path().join("g.lmgc");
    let out = ok(&["compress", s(&file), "-o", s(&packed), "--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["ratio"].as_f64().unwrap() < 0.9, "{summary}");
}

/// `lmgc payload`: a q4 payload of a gradient is a quarter of its tensor bytes, codes
/// losslessly like any file, and densifies to values within half a step of the original;
/// deltas, top-k and refusals of bad input.
#[test]
fn payloads_reduce_code_and_densify() {
    let dir = tempfile::tempdir().unwrap();
    let values = pseudo_random(4096, 3);
    let old: Vec<f32> = values.iter().map(|v| v * 0.5).collect();
    let input = dir.path().join("w.safetensors");
    let base = dir.path().join("old.safetensors");
    let g = |v: &[f32]| {
        safetensors_bytes(
            &Gradient::new(vec![
                Tensor::new(
                    "w",
                    DType::F32,
                    vec![64, 64],
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
                .unwrap(),
            ])
            .unwrap(),
        )
    };
    std::fs::write(&input, g(&values)).unwrap();
    std::fs::write(&base, g(&old)).unwrap();
    let q4 = dir.path().join("q4.safetensors");
    let out = ok(&[
        "payload",
        s(&input),
        "--to",
        "q4-channel",
        "-o",
        s(&q4),
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["payload"], "q4-channel", "{summary}");
    assert!(
        summary["output_tensor_bytes"].as_u64().unwrap() < 4096 + 64 * 4 + 1,
        "{summary}"
    );
    assert!(
        summary["relative_l2_error"].as_f64().unwrap() < 0.2,
        "{summary}"
    );
    round_trip_all_codecs(&q4, dir.path());
    let dense = dir.path().join("dense.safetensors");
    ok(&["-q", "payload", s(&q4), "--densify", "-o", s(&dense)]);
    let back = lmgc::core::io::read_safetensors(&dense).unwrap();
    let w = back.get("w").unwrap();
    assert_eq!(w.shape(), &[64, 64]);
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in values.iter().zip(w.to_f32().unwrap()) {
        assert!((a - b).abs() <= max / 7.0 * 0.5001, "{a} {b}");
    }
    // A delta, top-k of it, and the densify limit.
    let top = dir.path().join("top.safetensors");
    ok(&[
        "-q",
        "payload",
        s(&input),
        "--minus",
        s(&base),
        "--to",
        "top5%",
        "-o",
        s(&top),
    ]);
    let t = lmgc::core::io::read_safetensors(&top).unwrap();
    assert_eq!(t.get("w::value").unwrap().numel(), 205);
    fails(&[
        "payload",
        s(&top),
        "--densify",
        "--max-output",
        "1000",
        "-o",
        s(&dense),
    ]);
    // Bad names, values and files are errors, and nothing is written.
    let never = dir.path().join("never.safetensors");
    fails(&["payload", s(&input), "--to", "q3", "-o", s(&never)]);
    fails(&["payload", s(&input), "--to", "top0%", "-o", s(&never)]);
    fails(&["payload", s(&input), "--minus", s(&q4), "-o", s(&never)]);
    std::fs::write(&base, g(&[f32::NAN; 4096])).unwrap();
    fails(&["payload", s(&base), "-o", s(&never)]);
    assert!(!never.exists());
}

/// `lmgc collect` trains the paper's ConvNet (a tiny run) and writes gradient files that
/// every codec round-trips.
#[test]
fn collect_writes_convnet_gradients() {
    let Some(data) = cifar10_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let grads = dir.path().join("grads");
    let out = ok(&[
        "collect",
        "-o",
        s(&grads),
        "--data-dir",
        s(&data),
        "--steps",
        "2",
        "--every",
        "1",
        "--batch",
        "4",
        "--max-images",
        "8",
        "--eval",
        "8",
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["files"].as_array().unwrap().len(), 2, "{summary}");
    let acc = summary["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let file = grads.join("step000001.safetensors");
    let g = lmgc::core::io::read_safetensors(&file).unwrap();
    let conv = g
        .tensors()
        .iter()
        .find(|t| t.name() == "features.4.weight")
        .unwrap();
    assert_eq!(conv.shape(), [128, 128, 3, 3]);
    assert!(conv.data().chunks_exact(4).any(|b| b != [0; 4]));
    round_trip_all_codecs(&file, dir.path());
    let e = lmgc(&["collect", "-o", s(&grads), "--data-dir", s(dir.path())]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("LMGC_CIFAR10_DIR"));
}

#[test]
fn special_values_all_dtypes_npy_and_raw() {
    let dir = tempfile::tempdir().unwrap();
    let f32s = [
        f32::NAN,
        f32::from_bits(0xffc0_0001),
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e-45,
        3.5,
    ];
    let g = Gradient::new(vec![
        Tensor::from_f32("a", &f32s),
        Tensor::new(
            "b",
            DType::F64,
            vec![2],
            [f64::NAN.to_le_bytes(), (-0.0f64).to_le_bytes()].concat(),
        )
        .unwrap(),
        Tensor::new("c", DType::F16, vec![2, 1], vec![0x01, 0x7c, 0x00, 0x80]).unwrap(),
        Tensor::new("d", DType::BF16, vec![1], vec![0xc0, 0x7f]).unwrap(),
        Tensor::new("e", DType::I32, vec![0], vec![]).unwrap(),
    ])
    .unwrap();
    let st = dir.path().join("g.safetensors");
    std::fs::write(&st, safetensors_bytes(&g)).unwrap();
    round_trip_all_codecs(&st, dir.path());

    let npy = dir.path().join("a.npy");
    std::fs::write(&npy, npy_bytes(&g.tensors()[0]).unwrap()).unwrap();
    round_trip_all_codecs(&npy, dir.path());

    let raw = dir.path().join("a.f32");
    std::fs::write(&raw, g.tensors()[0].data()).unwrap();
    round_trip_all_codecs(&raw, dir.path());
    let empty = dir.path().join("empty.f32");
    std::fs::write(&empty, b"").unwrap();
    round_trip_all_codecs(&empty, dir.path());
}

#[test]
fn inspect_reports_without_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("g.safetensors");
    std::fs::write(
        &st,
        safetensors_bytes(&Gradient::new(vec![Tensor::from_f32("w", &[0.25; 100])]).unwrap()),
    )
    .unwrap();
    let packed = dir.path().join("g.lmgc");
    ok(&[
        "compress",
        s(&st),
        "-o",
        s(&packed),
        "--codec",
        "context",
        "--window",
        "64",
        "-q",
    ]);
    let human = String::from_utf8(ok(&["inspect", s(&packed), "--streams"]).stdout).unwrap();
    assert!(
        human.contains("prior:context-o3")
            && human.contains("hex-none-le")
            && human.contains("stream"),
        "{human}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&ok(&["inspect", s(&packed), "--json"]).stdout).unwrap();
    assert_eq!(json["tensors"], 1);
    assert_eq!(
        json["file_bytes"],
        std::fs::metadata(&packed).unwrap().len()
    );
    let windows = json["blocks"][1]["streams"].as_array().unwrap();
    assert_eq!(
        windows
            .iter()
            .map(|w| w["span"].as_u64().unwrap())
            .sum::<u64>(),
        800
    );
    assert!(windows.iter().all(|w| w["symbols"].as_u64().unwrap() <= 63));
}

/// Each bad-input class: typed message, exit code 1, and no output file left behind (an
/// existing output stays as it was).
#[test]
fn bad_input_is_an_error_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let st = p("g.safetensors");
    std::fs::write(
        &st,
        safetensors_bytes(&Gradient::new(vec![Tensor::from_f32("w", &[1.0, 2.0, 3.0])]).unwrap()),
    )
    .unwrap();
    let packed = p("g.lmgc");
    ok(&["compress", s(&st), "-o", s(&packed), "-q"]);
    let good = std::fs::read(&packed).unwrap();
    let out = p("out");
    std::fs::write(&out, b"precious").unwrap();

    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 3].to_vec(), "truncated"),
        ("header cut", good[..20].to_vec(), "corrupt"),
        ("empty", vec![], "not an .lmgc"),
        (
            "foreign",
            b"\x28\xb5\x2f\xfd zstd frame".to_vec(),
            "not an .lmgc",
        ),
        (
            "future version",
            [&good[..8], &[9], &good[9..]].concat(),
            "version 9",
        ),
        ("trailing bytes", [&good[..], b"x"].concat(), "trailing"),
    ];
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    cases.push(("corrupt stream", flipped, "checksum"));
    let mut header = good.clone();
    header[20] ^= 1;
    cases.push(("corrupt header", header, "header"));
    for (what, bytes, expect) in cases {
        let bad = p("bad.lmgc");
        std::fs::write(&bad, bytes).unwrap();
        let err = fails(&["decompress", s(&bad), "-o", s(&out)]);
        assert!(err.contains(expect), "{what}: {err}");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"precious",
            "{what}: output touched"
        );
        let err = fails(&["decompress", s(&bad), "-o", s(&p("fresh"))]);
        assert!(!p("fresh").exists(), "{what}: half-written output: {err}");
    }

    // Limits on declared sizes.
    let err = fails(&[
        "decompress",
        s(&packed),
        "-o",
        s(&out),
        "--max-output",
        "10",
    ]);
    assert!(err.contains("limit"), "{err}");

    // Bad tensor files and bad options.
    std::fs::write(p("bad.safetensors"), u64::MAX.to_le_bytes()).unwrap();
    assert!(fails(&["compress", s(&p("bad.safetensors")), "-o", s(&out)]).contains("safetensors"));
    std::fs::write(p("bad.npy"), b"\x93NUMPY\x01\x00\xff\xff{'descr'").unwrap();
    assert!(fails(&["compress", s(&p("bad.npy")), "-o", s(&out)]).contains("npy"));
    std::fs::write(p("odd.f32"), b"12345").unwrap();
    assert!(fails(&["compress", s(&p("odd.f32")), "-o", s(&out)]).contains("whole number"));
    assert!(fails(&["compress", s(&p("missing.safetensors"))]).contains("missing.safetensors"));
    assert!(fails(&["compress", s(&p("g.txt"))]).contains("extension"));
    assert!(
        fails(&[
            "compress",
            s(&st),
            "--codec",
            "context",
            "--format",
            "hex-tab"
        ])
        .contains("format")
    );
    assert!(fails(&["compress", s(&st), "--codec", "context", "--window", "1"]).contains("window"));
    assert!(
        fails(&[
            "compress",
            s(&st),
            "--codec",
            "context",
            "--precision",
            "30"
        ])
        .contains("precision")
    );
    assert!(fails(&["compress", s(&st), "--codec", "zip"]).contains("invalid codec"));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(lmgc(&["--help"]).status.code(), Some(0));
}

/// `lmgc bench` on a synthetic gradient: every codec round-trips and the JSON says so.
#[test]
fn bench_runs_every_codec_on_a_synthetic_file() {
    let dir = tempfile::tempdir().unwrap();
    let g = synthetic_gradient::synthetic_gradient(20_000);
    let file = dir.path().join("synthetic.safetensors");
    std::fs::write(&file, safetensors_bytes(&g)).unwrap();
    let json = dir.path().join("r.json");
    let md = dir.path().join("r.md");
    let out = ok(&[
        "bench",
        s(&file),
        "--codecs",
        "all",
        "--json",
        s(&json),
        "--markdown",
        s(&md),
        "--chunked",
        "512",
        "--window",
        "256",
    ]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table, std::fs::read_to_string(&md).unwrap());
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let results = report["files"][0]["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["codec"].as_str().unwrap())
        .collect();
    for codec in [
        "bytegroup",
        "gzip",
        "xz6",
        "xz9",
        "zstd",
        "brotli",
        "png",
        "flac",
        "pcodec",
        "context",
        "store",
    ] {
        assert!(names.contains(&codec), "{codec} missing from {names:?}");
    }
    for r in results {
        // fpzip is only built with `--features fpzip`; without it the row must say FAILED.
        let fpzip_missing = r["codec"] == "fpzip" && !cfg!(feature = "fpzip");
        let status = if fpzip_missing { "failed" } else { "ok" };
        assert_eq!(r["whole"]["status"], status, "{r}");
        assert_eq!(r["chunked"]["status"], status, "{r}");
    }
    let bytegroup = results.iter().find(|r| r["codec"] == "bytegroup").unwrap();
    assert!(bytegroup["whole"]["ratio"].as_f64().unwrap() < 0.9);
    assert!(table.contains("order-0 byte-plane entropy"));
    // Unknown codecs and unreadable files are errors before any work.
    assert!(fails(&["bench", s(&file), "--codecs", "zip"]).contains("codec"));
    assert!(fails(&["bench", s(&dir.path().join("nope.safetensors"))]).contains("nope"));
}

/// fpzip's decoder is unsafe on hostile input: refused unless the user vouches for the file.
#[cfg(feature = "fpzip")]
#[test]
fn fpzip_decodes_only_trusted_files() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("g.safetensors");
    std::fs::write(
        &st,
        safetensors_bytes(&synthetic_gradient::synthetic_gradient(1000)),
    )
    .unwrap();
    let packed = dir.path().join("g.lmgc");
    let out = dir.path().join("out.safetensors");
    ok(&[
        "compress",
        s(&st),
        "-o",
        s(&packed),
        "--codec",
        "fpzip",
        "-q",
    ]);
    assert!(fails(&["decompress", s(&packed), "-o", s(&out)]).contains("--trust-input"));
    assert!(!out.exists());
    ok(&[
        "decompress",
        s(&packed),
        "-o",
        s(&out),
        "--trust-input",
        "-q",
    ]);
    assert_eq!(std::fs::read(&st).unwrap(), std::fs::read(&out).unwrap());
    // inspect decodes nothing, so it reads the file either way.
    ok(&["inspect", s(&packed)]);
}

/// `lmgc model` refuses bad names and options before fetching or loading anything.
#[test]
fn model_commands_refuse_bad_input() {
    assert!(fails(&["model", "fetch", "gpt-17"]).contains("no known model"));
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("g.safetensors");
    std::fs::write(
        &st,
        safetensors_bytes(&Gradient::new(vec![Tensor::from_f32("w", &[1.0; 8])]).unwrap()),
    )
    .unwrap();
    assert!(fails(&["model", "eval", s(&st), "--sim-bits", "8,99,8"]).contains("--sim-bits"));
    assert!(fails(&["model", "eval", s(&st), "--sim-bits", "8,16"]).contains("--sim-bits"));
    assert!(fails(&["model", "eval", s(&st), "--model", "gpt-17"]).contains("no known model"));
    let bad_model = dir.path().join("x.gguf");
    std::fs::write(&bad_model, b"not a model").unwrap();
    assert!(
        fails(&[
            "model",
            "eval",
            s(&st),
            "--values",
            "0",
            "--model",
            s(&bad_model)
        ])
        .contains("nothing to evaluate")
    );
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00").unwrap();
    assert!(fails(&["model", "info", s(&bad)]).contains("GGUF"));
}

/// The LLM codec end to end with the default model on the CPU: several windows coded, decoded
/// in lockstep, byte-identical output; a model that is not the one the file names is refused
/// before anything is decoded.
#[test]
fn lm_codec_round_trips_with_the_default_model() {
    let fetched = lmgc(&["-q", "model", "fetch", "smollm2-135m"]);
    if !fetched.status.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs the default model: {}",
            String::from_utf8_lossy(&fetched.stderr)
        );
        eprintln!("skipped: no default model (offline?)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..40)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) * 3.1e-4)
        .collect();
    let input = dir.path().join("g.npy");
    std::fs::write(&input, npy_bytes(&Tensor::from_f32("g", &values)).unwrap()).unwrap();
    let packed = dir.path().join("g.lmgc");
    let restored = dir.path().join("h.npy");
    ok(&[
        "-q",
        "compress",
        s(&input),
        "-o",
        s(&packed),
        "--codec",
        "lm",
        "--window",
        "96",
    ]);
    let info = String::from_utf8(ok(&["inspect", s(&packed), "--streams"]).stdout).unwrap();
    assert!(
        info.contains("smollm2-135m") && info.contains("hex-comma-be"),
        "{info}"
    );
    assert!(info.matches("stream ").count() >= 3, "{info}");
    ok(&[
        "-q",
        "decompress",
        s(&packed),
        "-o",
        s(&restored),
        "--batch",
        "2",
    ]);
    assert_eq!(
        std::fs::read(&input).unwrap(),
        std::fs::read(&restored).unwrap()
    );
    // Another model (here: not a model at all) is refused, and nothing is written.
    let other = dir.path().join("other.gguf");
    std::fs::write(&other, b"GGUF\x03\x00\x00\x00").unwrap();
    let again = dir.path().join("again.npy");
    fails(&[
        "decompress",
        s(&packed),
        "-o",
        s(&again),
        "--model",
        s(&other),
    ]);
    assert!(!again.exists());
    // auto: lm or bytegroup per block, never larger than bytegroup, decodes exactly.
    let auto = dir.path().join("g.auto.lmgc");
    let grouped = dir.path().join("g.bg.lmgc");
    ok(&[
        "-q",
        "compress",
        s(&input),
        "-o",
        s(&auto),
        "--codec",
        "auto",
        "--window",
        "96",
    ]);
    ok(&[
        "-q",
        "compress",
        s(&input),
        "-o",
        s(&grouped),
        "--codec",
        "bytegroup",
    ]);
    let (auto_len, bg_len) = (
        std::fs::metadata(&auto).unwrap().len(),
        std::fs::metadata(&grouped).unwrap().len(),
    );
    assert!(auto_len <= bg_len, "auto {auto_len} > bytegroup {bg_len}");
    let from_auto = dir.path().join("auto.npy");
    ok(&["-q", "decompress", s(&auto), "-o", s(&from_auto)]);
    assert_eq!(
        std::fs::read(&input).unwrap(),
        std::fs::read(&from_auto).unwrap()
    );
    // hybrid: the LLM codes the exponents (one token each), the byte planes the rest.
    let hybrid = dir.path().join("g.hybrid.lmgc");
    let out = ok(&[
        "compress",
        s(&input),
        "-o",
        s(&hybrid),
        "--codec",
        "hybrid",
        "--window",
        "32",
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["codec"], "hybrid", "{summary}");
    // One token per exponent and per byte of the .npy header (a one-byte block).
    let header = summary["raw_bytes"].as_u64().unwrap() - 4 * 40;
    assert_eq!(
        summary["tokens"].as_u64().unwrap(),
        40 + header,
        "{summary}"
    );
    let info = String::from_utf8(ok(&["inspect", s(&hybrid), "--streams"]).stdout).unwrap();
    assert!(info.contains("hybrid") && info.contains("token"), "{info}");
    let from_hybrid = dir.path().join("hybrid.npy");
    ok(&["-q", "decompress", s(&hybrid), "-o", s(&from_hybrid)]);
    assert_eq!(
        std::fs::read(&input).unwrap(),
        std::fs::read(&from_hybrid).unwrap()
    );
    // The per-position breakdown of the exact model's bits adds up to its total.
    let out = ok(&[
        "model",
        "eval",
        s(&input),
        "--exact",
        "--values",
        "8",
        "--format",
        "hex-comma-be",
        "--mask",
        "--window",
        "64",
        "--json",
    ]);
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parts: Vec<f64> = eval["bits_per_value_by_position"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(parts.len(), 9, "{eval}");
    let total = eval["bits_per_value"].as_f64().unwrap();
    assert!(
        (parts.iter().sum::<f64>() - total).abs() < 1e-6 * total.max(1.0),
        "{eval}"
    );
    // A text file is scored whole unless --values says otherwise (runs of spaces are few
    // tokens, so this stays fast).
    let text = dir.path().join("spaces.txt");
    std::fs::write(&text, format!("x{}", " ".repeat(2999))).unwrap();
    for (args, bytes) in [(vec![], 3000), (vec!["--values", "100"], 100)] {
        let mut a = vec![
            "model",
            "eval",
            s(&text),
            "--text",
            "--window",
            "256",
            "--json",
        ];
        a.extend(args);
        let eval: serde_json::Value = serde_json::from_slice(&ok(&a).stdout).unwrap();
        assert_eq!(eval["values"], bytes, "{eval}");
    }
}

/// A UDP port that was free a moment ago.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40503)) as f32
                / u32::MAX as f32
                - 0.5
        })
        .collect()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed().as_secs() < 120,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn serve_and_clients_as_processes_survive_a_killed_aggregator() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 200_000;
    let g = |v: &[f32]| Gradient::new(vec![Tensor::from_f32("w", v)]).unwrap();
    std::fs::write(
        d.join("init.safetensors"),
        safetensors_bytes(&g(&vec![0.0; n])),
    )
    .unwrap();
    let (t1, t2) = ("1".repeat(32), "2".repeat(32));
    std::fs::write(
        d.join("tokens.txt"),
        format!("client-1 {t1}\nclient-2 {t2}\n"),
    )
    .unwrap();
    let samples = [3u64, 5];
    for (c, client) in ["client-1", "client-2"].iter().enumerate() {
        std::fs::create_dir_all(d.join(client)).unwrap();
        for r in 0..2 {
            let v = pseudo_random(n, (c * 10 + r) as u32);
            std::fs::write(
                d.join(client).join(format!("round-{r}.safetensors")),
                safetensors_bytes(&g(&v)),
            )
            .unwrap();
        }
    }
    let port = free_udp_port();
    std::fs::write(
        d.join("aggregator.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\nrounds = 2\nclients_per_round = 2\nmin_clients = 2\ninitial_model = \"{}\"\ncodecs = [\"bytegroup\"]\nidle_timeout_secs = 2\nlinger_secs = 20\n[auth]\ntokens = \"{}\"\n",
            s(&d.join("state")), s(&d.join("init.safetensors")), s(&d.join("tokens.txt"))
        ),
    )
    .unwrap();
    for (i, (client, token)) in [("client-1", &t1), ("client-2", &t2)].iter().enumerate() {
        // client-2 uploads slowly, so the aggregator dies in the middle of its upload.
        let rate = if i == 1 { 200_000 } else { 0 };
        std::fs::write(
            d.join(format!("{client}.toml")),
            format!(
                "server = \"127.0.0.1:{port}\"\nclient_id = \"{client}\"\ntoken = \"{token}\"\nstate_dir = \"{}\"\nmax_upload_rate = {rate}\nidle_timeout_secs = 2\nreconnect_secs = 60\n[train]\nkind = \"files\"\nupdates = \"{}/{{client}}/round-{{round}}.safetensors\"\nsamples = {}\n",
                s(&d.join(format!("{client}-state"))), s(d), samples[i]
            ),
        )
        .unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_lmgc");
    let serve = || {
        Command::new(bin)
            .args(["serve", "--config", s(&d.join("aggregator.toml"))])
            .stderr(
                std::fs::File::create(d.join(format!(
                        "serve-{}.log",
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_nanos()
                    )))
                .unwrap(),
            )
            .spawn()
            .unwrap()
    };
    let mut server = serve();
    let fp_file = d.join("state/tls/fingerprint.txt");
    wait_for("the fingerprint", || fp_file.exists());
    let fp = std::fs::read_to_string(&fp_file).unwrap().trim().to_owned();
    let client = |name: &str| {
        Command::new(bin)
            .args([
                "client",
                "--config",
                s(&d.join(format!("{name}.toml"))),
                "--server-fingerprint",
                &fp,
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let c1 = client("client-1");
    let c2 = client("client-2");
    // Kill -9 the aggregator once client-1's update is accepted and client-2's is partly in.
    let state = d.join("state/state.json");
    wait_for("client-1 accepted and client-2 half uploaded", || {
        // `selected` names both clients from the start: look at `accepted` only.
        let accepted = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| {
                v["accepted"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|u| u["client"] == "client-1"))
            });
        let partial = std::fs::read_dir(d.join("state/partial"))
            .map(|it| {
                it.flatten().any(|e| {
                    e.file_name().to_string_lossy().contains("-client-2-")
                        && e.metadata().is_ok_and(|m| m.len() > 100_000)
                })
            })
            .unwrap_or(false);
        accepted && partial
    });
    server.kill().unwrap();
    server.wait().unwrap();
    let mut server = serve();
    let (o1, o2) = (
        c1.wait_with_output().unwrap(),
        c2.wait_with_output().unwrap(),
    );
    let (e1, e2) = (
        String::from_utf8_lossy(&o1.stderr),
        String::from_utf8_lossy(&o2.stderr),
    );
    assert!(o1.status.success(), "{e1}");
    assert!(o2.status.success(), "{e2}");
    assert!(e2.contains("resuming the upload at byte"), "{e2}");
    assert!(server.wait().unwrap().success());
    // The final model is FedAvg of both clients' updates over both rounds, bit for bit.
    let mut want = vec![0f32; n];
    for r in 0..2 {
        let (a, b) = (pseudo_random(n, r as u32), pseudo_random(n, 10 + r as u32));
        for i in 0..n {
            let sum = 3.0 * f64::from(a[i]) + 5.0 * f64::from(b[i]);
            want[i] = (f64::from(want[i]) + sum / 8.0) as f32;
        }
    }
    ok(&[
        "decompress",
        s(&d.join("state/models/global-r2.lmgc")),
        "-o",
        s(&d.join("final.safetensors")),
    ]);
    let got = lmgc::core::io::read_safetensors(&d.join("final.safetensors")).unwrap();
    assert_eq!(got.tensors()[0].to_f32().unwrap(), want);
    let metrics = std::fs::read_to_string(d.join("state/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);
}

#[test]
fn serve_and_client_refuse_bad_configs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.toml");
    std::fs::write(&p, "rounds = 0\n").unwrap();
    assert!(fails(&["serve", "--config", s(&p)]).contains("rounds"));
    std::fs::write(&p, "rounds = 1\n").unwrap();
    assert!(fails(&["serve", "--config", s(&p)]).contains("auth.tokens"));
    std::fs::write(&p, "client_id = \"x\"\ntoken = \"t\"\nserver_fingerprint = \"00\"\n[train]\nkind = \"files\"\nupdates = \"u{round}\"\nsamples = 1\n").unwrap();
    assert!(fails(&["client", "--config", s(&p)]).contains("server_fingerprint"));
    std::fs::write(&p, "client_id = \"x\"\ntoken = \"t\"\n").unwrap();
    assert!(
        fails(&[
            "client",
            "--config",
            s(&p),
            "--server-fingerprint",
            &"ab".repeat(32)
        ])
        .contains("[train]")
    );
}

/// The federated example's engine, small: 2 clients, 2 rounds, through the real transport;
/// the aggregator's schedule moves the clients from dense to 4-bit updates after round 0.
#[test]
fn fedavg_two_clients_two_rounds_through_the_transport() {
    let Some(data) = cifar10_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = lmgc::fedavg::FedAvgConfig {
        data_dir: Some(data),
        clients: 2,
        clients_per_round: 2,
        rounds: 2,
        batch: 16,
        max_images: 64,
        eval_images: 50,
        codec: "bytegroup".into(),
        compare: vec!["store".into()],
        payload: "q4,dense".into(),
        payload_schedule: vec!["0:dense".parse().unwrap(), "1:quantized".parse().unwrap()],
        out: dir.path().to_path_buf(),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let report = lmgc::fedavg::run(&cfg, "bytegroup", "test", &|_| {}, &|_, _| {}, |r| {
        seen.push(r.round)
    })
    .unwrap();
    assert_eq!(seen, [0, 1]);
    for r in &report.rows {
        assert_eq!(r.updates, 2);
        assert!(r.wire_bytes < r.raw_bytes);
        // store adds a small container header to each update.
        assert!(r.compared["store"] > r.raw_bytes);
        assert!((0.0..=1.0).contains(&r.accuracy));
    }
    use lmgc_core::payload::PayloadClass;
    assert_eq!(report.rows[0].payloads, [PayloadClass::Dense]);
    assert_eq!(report.rows[1].payloads, [PayloadClass::Quantized]);
    assert!(report.rows[1].wire_bytes * 3 < report.rows[0].wire_bytes);
    let svg = dir.path().join("plot.svg");
    lmgc::fedavg::plot(&report, &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("bytegroup (sent)"));
}

/// The configuration files shipped in `configs/` load and validate as written (clients with
/// a token in place of their token file, which the walkthrough creates).
#[test]
fn shipped_configs_are_valid() {
    use lmgc::fl_transport::config::{AggregatorConfig, ClientConfig};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let agg = AggregatorConfig::load(&root.join("aggregator.toml")).unwrap();
    let policy = agg.policy().unwrap();
    assert_eq!(policy.payload_schedule.len(), 2);
    lmgc::fedavg::FedAvgConfig::load(&root.join("fedavg_cifar.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["client-1.toml", "client-2.toml"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("token_file"))
            .expect("a token_file line");
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace(line, "token = \"x\"")).unwrap();
        let c = ClientConfig::load(&path).unwrap();
        // Every round of the aggregator's schedule accepts one of the client's payloads.
        let classes: Vec<_> = c.payloads().unwrap().iter().map(|p| p.class()).collect();
        for r in 0..agg.rounds {
            let round = lmgc::fl_transport::wire::Round(r);
            assert!(
                policy.assign(round, &classes).is_some(),
                "{name}, round {r}"
            );
        }
    }
}
