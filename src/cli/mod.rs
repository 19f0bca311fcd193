//! Subcommands.
mod args;
mod bench_cmd;
mod clip_cmds;
mod demo_cmd;
mod devices;
mod eval_cmd;
mod library;
mod merge_cmd;
mod pretrain_cmd;
mod report_cmd;
mod train_cmd;

pub use library::{eval, merge, train};

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use cliptune::clip::Pipeline;
use cliptune::Result;

#[derive(Parser)]
#[command(name = "cliptune", version, about = "Fine-tune CLIP without breaking it")]
struct Cli {
    /// GPU API for every --device choice that uses a GPU: vulkan, metal, dx12 or gl
    /// (default: the best adapter of any API).
    #[arg(long, global = true, value_name = "API")]
    backend: Option<String>,
    #[command(subcommand)]
    command: Command,
}

fn parse_pipeline(s: &str) -> std::result::Result<Pipeline, String> {
    s.parse().map_err(|e: cliptune::Error| e.msg)
}

#[derive(Subcommand)]
enum Command {
    /// List the compute devices cliptune sees (GPU adapters and the CPU backend).
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Engine self-check: every kernel on the device against the CPU oracle, then a
    /// small two-tower contrastive transformer trained for 40 steps.
    Check {
        /// auto (a real GPU, else the CPU backend), cpu, or gpu (any adapter).
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Print the CLIP token ids of each text (one JSON array per line, BOS..EOS).
    Tokenize {
        /// Use this model directory's tokenizer.json (default: the embedded CLIP tokenizer).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Text cleaning and image transform to reproduce: hf (transformers' CLIPTokenizer and
        /// CLIPImageProcessor) or open_clip (ftfy + HTML unescape + Python lower-case, torchvision
        /// resize/center-crop, alpha dropped). Default: the model directory's own layout.
        #[arg(long, value_parser = parse_pipeline)]
        pipeline: Option<Pipeline>,
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Embed images and/or texts; writes image_embeds, text_embeds and logits_per_image.
    Embed {
        #[arg(long)]
        model: PathBuf,
        #[arg(long = "image")]
        images: Vec<PathBuf>,
        #[arg(long = "text")]
        texts: Vec<String>,
        /// One text per line.
        #[arg(long)]
        texts_file: Option<PathBuf>,
        /// A safetensors file whose `pixel_values` [N,3,H,W] f32 is already preprocessed.
        #[arg(long, conflicts_with = "images")]
        pixels: Option<PathBuf>,
        /// The safetensors file to write; never an existing file (see --force) or a path
        /// inside the model or an adapter directory.
        #[arg(long)]
        out: PathBuf,
        /// Replace --out if it exists (still never inside a model or adapter directory).
        #[arg(long)]
        force: bool,
        #[arg(long, default_value = "auto")]
        device: String,
        /// Skip unreadable images (reported; `image_input_index` says which input each
        /// row is) instead of stopping.
        #[arg(long)]
        skip_bad_images: bool,
        #[arg(long, value_parser = args::positive_count, default_value_t = 64)]
        batch: usize,
        /// Adapter directory to load (repeatable; see `cliptune merge` to bake LoRA in).
        #[arg(long = "adapter")]
        adapters: Vec<PathBuf>,
        /// Text cleaning and image transform to reproduce: hf (transformers' CLIPTokenizer and
        /// CLIPImageProcessor) or open_clip (ftfy + HTML unescape + Python lower-case, torchvision
        /// resize/center-crop, alpha dropped). Default: the model directory's own layout.
        #[arg(long, value_parser = parse_pipeline)]
        pipeline: Option<Pipeline>,
    },
    /// Evaluate a model: zero-shot top-1/top-5, retrieval R@1/5/10 both ways, linear probe.
    /// DATA is a class-folder root (root/<class>/*.png), fashion-mnist:train|test[:N per
    /// class], a sprite sheet (NAME.json + NAME.png), or (for --retrieval) a caption file
    /// (.csv/.tsv/.jsonl with image,caption) or a sprite sheet with captions.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[arg(long = "zero-shot")]
        zero_shot: Vec<String>,
        #[arg(long)]
        retrieval: Vec<PathBuf>,
        /// TRAIN TEST (repeatable).
        #[arg(long = "linear-probe", num_args = 2, value_names = ["TRAIN", "TEST"])]
        linear_probe: Vec<String>,
        /// Class names (one per line, in sorted-folder order) for class-folder data.
        #[arg(long)]
        classes_file: Option<PathBuf>,
        #[arg(long, default_value = "openai")]
        templates: String,
        #[arg(long)]
        json: bool,
        /// Also write the JSON to this file (for `cliptune report`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Adapter directory to load before evaluating (repeatable). A linear probe is the
        /// classifier of --zero-shot (every class of DATA must be one of the probe's).
        #[arg(long = "adapter")]
        adapters: Vec<PathBuf>,
        /// With a prompt adapter: apply its learned (shared) context to --zero-shot data whose
        /// classes differ from the ones it was trained on (CoOp's base-to-new evaluation)
        /// instead of refusing them.
        #[arg(long)]
        new_classes: bool,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Compare two `eval --out` files (before/after fine-tuning) and training logs: writes an HTML
    /// page with target-domain gain, retention and curves, and PNG charts next to it.
    Report {
        /// Eval JSON of the base model (`cliptune eval --out`).
        #[arg(long)]
        before: PathBuf,
        /// Eval JSON after fine-tuning.
        #[arg(long)]
        after: PathBuf,
        /// Training log, JSON lines with step, loss[, lr, epoch, retention, eval_top1] (repeatable).
        #[arg(long = "log")]
        logs: Vec<PathBuf>,
        /// A target-domain dataset (repeatable); default: the dataset with the largest gain.
        #[arg(long = "target")]
        targets: Vec<String>,
        /// The HTML file; charts are written next to it as STEM_retention.png and STEM_curves.png.
        #[arg(long)]
        out: PathBuf,
    },
    /// Time one workload (embed-image, embed-text, lora-step, coop-step, linear-probe) on a
    /// named config (random weights) or a model directory; --json prints one object.
    Bench(bench_cmd::BenchCli),
    /// The whole story on the embedded cliptune-mini: every fine-tuning method on a new domain
    /// (Fashion-MNIST), target accuracy and retention of the model's own domain side by side;
    /// writes an HTML report.
    Demo(demo_cmd::DemoCli),
    /// Fine-tune: prompt (CoOp), linear-probe, lora, textual-inversion or full; writes an adapter dir.
    Train(train_cmd::TrainCli),
    /// Pretrain a CLIP from scratch on an image-caption file (both towers, contrastive): how
    /// the embedded cliptune-mini is made. Writes an HF CLIPModel directory (f16).
    Pretrain(pretrain_cmd::PretrainCli),
    /// Merge LoRA (and textual-inversion) adapters into the base weights: writes a Hugging Face
    /// CLIPModel directory that loads without --adapter.
    Merge {
        /// The base model (Hugging Face CLIPModel directory).
        #[arg(long)]
        model: PathBuf,
        /// Adapter directory (repeatable).
        #[arg(long = "adapter", required = true)]
        adapters: Vec<PathBuf>,
        /// A new (or empty) directory for the merged checkpoint.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Classify images by similarity to class prompts.
    ZeroShot {
        #[arg(long)]
        model: PathBuf,
        /// Comma-separated class names.
        #[arg(long)]
        classes: Option<String>,
        /// One class name per line.
        #[arg(long)]
        classes_file: Option<PathBuf>,
        /// openai (80 templates), simple, or a file with one template per line containing {}.
        #[arg(long, default_value = "openai")]
        templates: String,
        #[arg(long, value_parser = args::positive_count, default_value_t = 5)]
        top_k: usize,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long)]
        skip_bad_images: bool,
        /// Adapter directory to load (repeatable); a prompt adapter's learned prompts replace
        /// the templates and bring its classes; a linear probe classifies with its own weights
        /// and brings its classes (--classes, if given, must be among them: their
        /// probabilities are renormalised over the ones given).
        #[arg(long = "adapter")]
        adapters: Vec<PathBuf>,
        /// With a prompt adapter: apply its learned (shared) context to --classes it was not
        /// trained on instead of refusing them.
        #[arg(long)]
        new_classes: bool,
        /// Text cleaning and image transform to reproduce: hf (transformers' CLIPTokenizer and
        /// CLIPImageProcessor) or open_clip (ftfy + HTML unescape + Python lower-case, torchvision
        /// resize/center-crop, alpha dropped). Default: the model directory's own layout.
        #[arg(long, value_parser = parse_pipeline)]
        pipeline: Option<Pipeline>,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    if let Some(api) = &cli.backend {
        cliptune::backend::set_cli_api(api.parse()?);
    }
    match cli.command {
        Command::Devices { json } => devices::run(json),
        Command::Check { device } => {
            let dev = cliptune::Device::select(device.parse()?)?;
            cliptune::selfcheck::run(&dev)
        }
        eval @ Command::Eval { .. } => run_eval(eval).map(|_| ()),
        Command::Demo(d) => demo_cmd::run(d),
        Command::Train(t) => train_cmd::run(t).map(|_| ()),
        Command::Pretrain(p) => pretrain_cmd::run(p),
        Command::Bench(b) => bench_cmd::run(b),
        Command::Report {
            before,
            after,
            logs,
            targets,
            out,
        } => report_cmd::run(report_cmd::ReportArgs {
            before,
            after,
            logs,
            targets,
            out,
        }),
        Command::Tokenize { model, pipeline, texts } => clip_cmds::tokenize_cmd(model.as_deref(), pipeline, &texts),
        Command::Embed {
            model,
            images,
            texts,
            texts_file,
            pixels,
            out,
            force,
            device,
            skip_bad_images,
            batch,
            adapters,
            pipeline,
        } => {
            let dev = cliptune::Device::select(device.parse()?)?;
            let texts = clip_cmds::gather_texts(&texts, texts_file.as_deref())?;
            clip_cmds::embed_cmd(
                &model,
                pipeline,
                &images,
                &texts,
                pixels.as_deref(),
                &out,
                &dev,
                skip_bad_images,
                batch,
                &adapters,
                force,
            )
        }
        merge @ Command::Merge { .. } => run_merge(merge),
        Command::ZeroShot {
            model,
            classes,
            classes_file,
            templates,
            top_k,
            json,
            device,
            skip_bad_images,
            adapters,
            new_classes,
            pipeline,
            images,
        } => {
            let dev = cliptune::Device::select(device.parse()?)?;
            let classes = clip_cmds::read_classes(classes.as_deref(), classes_file.as_deref())?;
            clip_cmds::zero_shot_cmd(
                &model,
                pipeline,
                classes,
                &templates,
                &images,
                top_k,
                json,
                &dev,
                skip_bad_images,
                &adapters,
                new_classes,
            )
        }
    }
}

/// `eval` (the binary's and [`eval`]'s): the report it printed, for library callers.
fn run_eval(c: Command) -> Result<cliptune::eval::suite::EvalReport> {
    let Command::Eval {
        model,
        zero_shot,
        retrieval,
        linear_probe,
        classes_file,
        templates,
        json,
        out,
        adapters,
        new_classes,
        device,
    } = c
    else {
        unreachable!("run_eval takes the eval command")
    };
    let dev = cliptune::Device::select(device.parse()?)?;
    let args = eval_cmd::EvalArgs {
        model,
        zero_shot,
        retrieval,
        linear_probe,
        classes_file,
        templates,
        json,
        out,
        adapters,
        new_classes,
    };
    eval_cmd::run(args, &dev)
}

/// `merge` (the binary's and [`merge`]'s).
fn run_merge(c: Command) -> Result<()> {
    let Command::Merge {
        model,
        adapters,
        out,
        device,
    } = c
    else {
        unreachable!("run_merge takes the merge command")
    };
    let dev = cliptune::Device::select(device.parse()?)?;
    merge_cmd::run(&model, &adapters, &out, &dev)
}
