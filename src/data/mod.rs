//! Datasets: what users train and evaluate on.
//!
//! - [`captions`]: image-caption files (CSV, TSV, JSONL; `image,caption` or open_clip's
//!   `filepath,title`; optional `negatives`), paths relative to the file, several captions
//!   per image merged into one [`CaptionRecord`].
//! - [`class_folders`]: labelled images in `root/<class>/*.png|jpg|jpeg`, class names from
//!   the folder names or a classes file.
//! - [`fashion_mnist`]: Fashion-MNIST from the Debian package `dataset-fashion-mnist`.
//! - [`sprite_sheet`]: a labelled/captioned image set as one PNG of tiles + a JSON file.
//! - [`labeled`]: any labelled image set by its spec (class folders, sprite sheet,
//!   `fashion-mnist:...`), its pixels and embeddings.
//! - [`training`]: what a training run reads: labelled images or captions, preprocessed.
//! - [`report`]: the report printed before training (counts, duplicate images, bare-label
//!   captions, class imbalance).
//!
//! Every loader checks its input up front and fails with one message that names the file
//! (and line) at fault; missing images are all listed at once rather than one per run.
pub mod captions;
pub mod class_folders;
pub mod fashion_mnist;
pub mod labeled;
pub mod report;
pub mod sprite_sheet;
pub mod training;

pub use captions::{load_captions, CaptionFormat, CaptionRecord};
pub use class_folders::{folder_to_class_name, load_class_folders, LabeledImages};
pub use fashion_mnist::{load_fashion_mnist, Split, FASHION_MNIST_CLASSES};
pub use report::{is_label_like, report_captions, report_classes, DataReport, ReportKind};
pub use sprite_sheet::{read_sprite_sheet, write_sprite_sheet, SpriteItem, SpriteSheet};
