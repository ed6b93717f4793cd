//! `lmgc collect`: train the paper's ConvNet on CIFAR-10 and save raw gradients.

use burn::module::AutodiffModule;
use lmgc::model::backend::BackendKind;
use lmgc::train::cifar::{self, Cifar10};
use lmgc::train::collect::{CollectConfig, StepReport, collect};
use lmgc::train::convnet::ConvNet;

use super::{CollectArgs, Output, print_json};

pub fn run(a: CollectArgs, out: Output) -> anyhow::Result<()> {
    let cfg = CollectConfig {
        steps: a.steps,
        every: a.every,
        batch: a.batch,
        lr: a.lr,
        augment: !a.no_augment,
        seed: a.seed,
        max_images: a.max_images,
        ..CollectConfig::default()
    };
    // Options first: a typo should not cost loading 180 MB of images.
    let kind: BackendKind = a.backend.parse()?;
    let dir = cifar::locate(a.data_dir.as_deref())?;
    let data = Cifar10::load(&dir)?;
    if !out.quiet && !out.json {
        eprintln!(
            "CIFAR-10 from {} ({} training images in {}, {} test); ConvNet on {kind}; \
             {} steps of {}, gradients every {} into {}",
            data.dir.display(),
            data.train.len(),
            data.train_files.join(", "),
            data.test.len(),
            cfg.steps,
            cfg.batch,
            cfg.every,
            a.out.display()
        );
    }
    let pb = super::progress::steps_bar(cfg.steps as u64, "training", out);
    let report = |r: &StepReport| {
        pb.set_position(r.step as u64 + 1);
        pb.set_message(format!("loss {:.3}", r.loss));
        if let Some(p) = &r.saved {
            pb.println(format!(
                "step {:>6}  loss {:.4}  lr {:.4}  → {}",
                r.step,
                r.loss,
                r.lr,
                p.display()
            ));
        }
    };
    let (files, accuracy) = match kind {
        BackendKind::Ndarray => {
            type B = burn::backend::Autodiff<burn::backend::NdArray>;
            let device = Default::default();
            let (files, model) = collect::<B>(&data, &cfg, &a.out, &device, report)?;
            (files, test_accuracy(model.valid(), &data, a.eval, &device))
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            type B = burn::backend::Autodiff<burn::backend::Wgpu>;
            let device = Default::default();
            let (files, model) = collect::<B>(&data, &cfg, &a.out, &device, report)?;
            (files, test_accuracy(model.valid(), &data, a.eval, &device))
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda | BackendKind::CudaBurn => {
            type B = burn::backend::Autodiff<burn::backend::Cuda>;
            let device = Default::default();
            let (files, model) = collect::<B>(&data, &cfg, &a.out, &device, report)?;
            (files, test_accuracy(model.valid(), &data, a.eval, &device))
        }
        #[allow(unreachable_patterns)]
        other => {
            anyhow::bail!("this build has no {other} backend: rebuild with --features {other}")
        }
    };
    pb.finish_and_clear();
    if out.json {
        print_json(&serde_json::json!({
            "data_dir": data.dir,
            "train_images": data.train.len(),
            "steps": cfg.steps,
            "files": files,
            "test_accuracy": accuracy,
        }));
    } else if !out.quiet {
        eprintln!("wrote {} gradient files", files.len());
        if let Some(acc) = accuracy {
            eprintln!(
                "test accuracy after {} steps: {:.2}%",
                cfg.steps,
                100.0 * acc
            );
        }
    }
    Ok(())
}

fn test_accuracy<B: burn::tensor::backend::Backend>(
    model: ConvNet<B>,
    data: &Cifar10,
    eval: usize,
    device: &B::Device,
) -> Option<f64> {
    (eval > 0).then(|| {
        let mut test = data.test.clone();
        test.truncate(eval);
        model.accuracy(&test, 256, device)
    })
}
